/* SPDX-License-Identifier: MIT */
/*
 * producer-consumer: producer processes bake buns, consumer processes eat
 * them, through one mproc_queue; every bun is eaten exactly once.
 *
 * The Python tutorials' two forms, in C.  The first ends the consumers with
 * one sentinel each:
 *
 *     def producer(q, n):
 *         for i in range(items):
 *             q.put(f"bun {i} from producer {n}")
 *
 *     def consumer(q, n):
 *         while (item := q.get()) is not None:  # None: the sentinel
 *             print(f"consumer {n}: ate {item}")
 *
 *     q = Queue()
 *     ...start the consumers and producers, join the producers...
 *     for _ in consumers:
 *         q.put(None)                           # one sentinel per consumer
 *
 * The second (--joinable) uses a JoinableQueue: each producer join()s the
 * queue after its puts, and daemon consumers loop forever, calling
 * task_done() after each item; the main process ends them once every
 * producer's join has returned:
 *
 *     def consumer(q, n):
 *         while True:
 *             item = q.get()
 *             print(f"consumer {n}: ate {item}")
 *             q.task_done()
 *
 *     def producer(q, n):
 *         for i in range(items):
 *             q.put(f"bun {i} from producer {n}")
 *         q.join()                              # until every bun is eaten
 *
 * Messages are byte strings: a bun is its text, and the sentinel is the
 * empty message (C has no None).  To prove "exactly once", each consumer
 * checks that what it got is a whole bun and reports it to the main process
 * through a second queue (`eaten`), before task_done() in the joinable form,
 * so a producer's join returning means its buns are all reported.  The main
 * process then counts every (producer, bun) pair: duplicates= and lost=.
 *
 * Build it alone:  cc -o producer_consumer producer_consumer.c \
 *                      $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, MAP_ANONYMOUS, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* The entry point the `mproc demo producer-consumer` command calls. */
int mproc_demo_producer_consumer(int argc, char **argv);

enum { MAX_PRODUCERS = 16, MAX_CONSUMERS = 16, MAX_ITEMS = 10000, BUN_MAX = 64 };

struct options {
    long producers;
    long consumers;
    long items;    /* buns per producer */
    bool joinable; /* the JoinableQueue form */
    bool json;
    FILE *out;     /* the step lines; stderr with --json so stdout is pure JSON */
};

/* What a consumer tells the main process about one bun it ate. */
struct report {
    int32_t consumer;
    int32_t producer;
    int32_t bun;
};

/* In MAP_SHARED memory: made[p] is written by producer p + 1 alone (the
 * buns whose put returned 0) and read by the main process after waitpid(). */
struct tally {
    long made[MAX_PRODUCERS];
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--producers N] [--consumers N] [--items N] [--joinable] [--json]\n"
            "Producer processes put buns on one mproc_queue, consumer processes eat\n"
            "them; the main process checks every bun was eaten exactly once.\n"
            "  -p, --producers N  producer processes (default 2, at most %d)\n"
            "  -c, --consumers N  consumer processes (default 3, at most %d)\n"
            "  -n, --items N      buns per producer (default 5, at most %d)\n"
            "  -J, --joinable     JoinableQueue form: producers join() the queue,\n"
            "                     daemon consumers task_done() each bun (default:\n"
            "                     one empty-message sentinel per consumer)\n"
            "  -j, --json         print the summary as one JSON object\n"
            "  -h, --help         show this help\n"
            "Exit status: 0 if every bun was eaten exactly once, 1 if not or on\n"
            "error, 2 on a usage error.\n",
            prog, MAX_PRODUCERS, MAX_CONSUMERS, MAX_ITEMS);
}

static bool parse_long(const char *text, long lo, long hi, long *value) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
        return false;
    *value = v;
    return true;
}

/* Returns -1 to go on, or the exit status (0 after --help). */
static int parse_options(int argc, char **argv, struct options *opt) {
    static const struct option longopts[] = {
        {"producers", required_argument, NULL, 'p'}, {"consumers", required_argument, NULL, 'c'},
        {"items", required_argument, NULL, 'n'},     {"joinable", no_argument, NULL, 'J'},
        {"json", no_argument, NULL, 'j'},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.producers = 2, .consumers = 3, .items = 5};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "p:c:n:Jjh", longopts, NULL)) != -1) {
        const char *what = NULL;
        long hi = 0, *field = NULL;
        switch (c) {
        case 'p': what = "--producers", hi = MAX_PRODUCERS, field = &opt->producers; break;
        case 'c': what = "--consumers", hi = MAX_CONSUMERS, field = &opt->consumers; break;
        case 'n': what = "--items", hi = MAX_ITEMS, field = &opt->items; break;
        case 'J': opt->joinable = true; break;
        case 'j': opt->json = true; break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: fprintf(stderr, "Try '%s --help'.\n", argv[0]); return 2;
        }
        if (field != NULL && !parse_long(optarg, 1, hi, field)) {
            fprintf(stderr, "%s: %s wants 1..%ld, not '%s'\n", argv[0], what, hi, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return 2;
    }
    opt->out = opt->json ? stderr : stdout;
    return -1;
}

static int bun_text(char *buf, int producer, long bun) {
    return snprintf(buf, BUN_MAX, "bun %ld from producer %d", bun, producer);
}

/* The producer's whole life.  Returns its exit status. */
static int producer(mproc_queue *queue, struct tally *tally, int number,
                    const struct options *opt) {
    char bun[BUN_MAX];
    for (long i = 0; i < opt->items; i++) {
        int len = bun_text(bun, number, i);
        int rc = mproc_queue_put(queue, bun, (size_t)len, MPROC_FOREVER);
        if (rc != 0) {
            fprintf(stderr, "producer %d: mproc_queue_put: %s\n", number, mproc_strerror(rc));
            return 1;
        }
        tally->made[number - 1]++;
        fprintf(opt->out, "producer %d: made %s\n", number, bun);
        fflush(opt->out);
    }
    if (!opt->joinable)
        return 0;
    /* q.join(): returns once every bun put so far, ours included, was
     * task_done()'d (or MPROC_E_ABANDONED if a consumer died holding one). */
    int rc = mproc_queue_join(queue, MPROC_FOREVER);
    if (rc != 0) {
        fprintf(stderr, "producer %d: mproc_queue_join: %s\n", number, mproc_strerror(rc));
        return 1;
    }
    fprintf(opt->out, "producer %d: join returned: all my %ld buns were eaten\n", number,
            opt->items);
    fflush(opt->out);
    return 0;
}

/* Checks `item` is a whole bun and reports it on `eaten`.  0, or the exit
 * status for a torn bun or a failed report. */
static int eat(mproc_queue *eaten, const char *item, size_t len, int number,
               const struct options *opt) {
    struct report report = {.consumer = number};
    long bun = -1;
    int producer_number = -1, end = 0;
    char again[BUN_MAX];
    /* Whole means: it parses and prints back to exactly the bytes got. */
    if (sscanf(item, "bun %ld from producer %d%n", &bun, &producer_number, &end) != 2 ||
        (size_t)end != len || bun_text(again, producer_number, bun) != (int)len ||
        memcmp(again, item, len) != 0 || producer_number < 1 ||
        producer_number > opt->producers || bun < 0 || bun >= opt->items) {
        fprintf(stderr, "consumer %d: not a bun: \"%.*s\"\n", number, (int)len, item);
        return 1;
    }
    report.producer = producer_number;
    report.bun = (int32_t)bun;
    fprintf(opt->out, "consumer %d: ate %s\n", number, item);
    fflush(opt->out);
    int rc = mproc_queue_put(eaten, &report, sizeof report, MPROC_FOREVER);
    if (rc != 0) {
        fprintf(stderr, "consumer %d: mproc_queue_put: %s\n", number, mproc_strerror(rc));
        return 1;
    }
    return 0;
}

/* The consumer's whole life: until the sentinel, or (joinable) until the
 * main process ends it.  Returns its exit status. */
static int consumer(mproc_queue *queue, mproc_queue *eaten, int number,
                    const struct options *opt) {
    char item[BUN_MAX + 1];
    long ate = 0;
    for (;;) {
        size_t len;
        int rc = mproc_queue_get(queue, item, BUN_MAX, &len, MPROC_FOREVER);
        if (rc != 0) {
            fprintf(stderr, "consumer %d: mproc_queue_get: %s\n", number, mproc_strerror(rc));
            return 1;
        }
        if (len == 0 && !opt->joinable) {
            fprintf(opt->out, "consumer %d: got the sentinel (ate %ld bun%s)\n", number, ate,
                    ate == 1 ? "" : "s");
            fflush(opt->out);
            return 0;
        }
        item[len] = '\0';
        int status = eat(eaten, item, len, number, opt);
        if (status != 0)
            return status;
        ate++;
        if (opt->joinable && (rc = mproc_queue_task_done(queue)) != 0) {
            fprintf(stderr, "consumer %d: mproc_queue_task_done: %s\n", number,
                    mproc_strerror(rc));
            return 1;
        }
    }
}

/* Forks one child running producer() or consumer(). */
static pid_t spawn(mproc_queue *queue, mproc_queue *eaten, struct tally *tally, int number,
                   bool is_producer, const struct options *opt) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* A daemon: dies with the main process, whatever happens to it.  And a
     * bound on every child's life, so the main process's waitpid() returns. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm((unsigned)(10 + opt->producers * opt->items / 1000));
    int status = is_producer ? producer(queue, tally, number, opt)
                             : consumer(queue, eaten, number, opt);
    mproc_queue_close(queue);
    mproc_queue_close(eaten);
    _exit(status); /* not exit(): the parent's stdio buffers and atexit are not ours */
}

/* Waits for `pid`; true if it exited 0, or was killed by `expected_signal`
 * (0: none expected). */
static bool reap(pid_t pid, const char *who, int number, int expected_signal) {
    int status;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        continue;
    if (got < 0) {
        perror("producer-consumer: waitpid");
        return false;
    }
    if (WIFSIGNALED(status)) {
        if (WTERMSIG(status) == expected_signal && expected_signal != 0)
            return true;
        fprintf(stderr, "producer-consumer: %s %d killed by signal %d\n", who, number,
                WTERMSIG(status));
        return false;
    }
    return WEXITSTATUS(status) == 0;
}

/* The main process's part once the producers are done: one sentinel per
 * consumer, or (joinable) ending the daemon consumers.  False on failure. */
static bool stop_consumers(mproc_queue *queue, const pid_t *consumers, long count,
                           bool producers_ok, const struct options *opt) {
    bool ok = true;
    if (opt->joinable) {
        /* A producer exits 0 only after its join returned. */
        fprintf(opt->out, "main: %s; ending the %ld daemon consumers\n",
                producers_ok ? "every producer's join returned" : "a producer failed", count);
        fflush(opt->out);
        for (long i = 0; i < count; i++)
            kill(consumers[i], SIGTERM);
    } else {
        for (long i = 0; i < count; i++) {
            int rc = mproc_queue_put(queue, NULL, 0, MPROC_FOREVER);
            if (rc != 0) {
                fprintf(stderr, "producer-consumer: sentinel: %s\n", mproc_strerror(rc));
                ok = false;
            }
        }
    }
    for (long i = 0; i < count; i++)
        if (!reap(consumers[i], "consumer", (int)i + 1, opt->joinable ? SIGTERM : 0))
            ok = false;
    return ok;
}

/* Forks `want` producers or consumers into pids[]; returns how many started. */
static long spawn_all(pid_t *pids, long want, bool is_producer, mproc_queue *queue,
                      mproc_queue *eaten, struct tally *tally, const struct options *opt) {
    long started = 0;
    for (; started < want; started++) {
        pids[started] = spawn(queue, eaten, tally, (int)started + 1, is_producer, opt);
        if (pids[started] < 0) {
            perror("producer-consumer: fork");
            break;
        }
    }
    return started;
}

/* Starts everyone, waits for the producers, stops the consumers.  False on
 * any failure (already reported). */
static bool run(mproc_queue *queue, mproc_queue *eaten, struct tally *tally,
                const struct options *opt) {
    fflush(NULL); /* or the children would inherit, and print, our pending output */
    pid_t consumers[MAX_CONSUMERS], producers[MAX_PRODUCERS];
    long nconsumers = spawn_all(consumers, opt->consumers, false, queue, eaten, tally, opt);
    long nproducers = 0;
    if (nconsumers == opt->consumers)
        nproducers = spawn_all(producers, opt->producers, true, queue, eaten, tally, opt);
    if (nconsumers < opt->consumers || nproducers < opt->producers) {
        /* Without every process the buns may never be eaten: end them all. */
        for (long i = 0; i < nproducers; i++)
            kill(producers[i], SIGKILL);
        for (long i = 0; i < nconsumers; i++)
            kill(consumers[i], SIGKILL);
        for (long i = 0; i < nproducers; i++)
            reap(producers[i], "producer", (int)i + 1, SIGKILL);
        for (long i = 0; i < nconsumers; i++)
            reap(consumers[i], "consumer", (int)i + 1, SIGKILL);
        return false;
    }
    bool ok = true;
    for (long i = 0; i < nproducers; i++)
        if (!reap(producers[i], "producer", (int)i + 1, 0))
            ok = false;
    /* Even after a failed producer: the consumers need their sentinels. */
    return stop_consumers(queue, consumers, nconsumers, ok, opt) && ok;
}

struct count {
    long produced, consumed, duplicates, lost;
};

/* Drains the reports (every consumer has exited, so `eaten` is complete)
 * and accounts for every bun.  False on a bad report. */
static bool account(mproc_queue *eaten, const struct tally *tally, const struct options *opt,
                    struct count *count) {
    size_t buns = (size_t)(opt->producers * opt->items);
    unsigned char *seen = calloc(buns, 1);
    if (seen == NULL) {
        perror("producer-consumer: calloc");
        return false;
    }
    bool ok = true;
    for (long p = 0; p < opt->producers; p++)
        count->produced += tally->made[p];
    for (;;) {
        struct report report;
        size_t len;
        int rc = mproc_queue_get_nowait(eaten, &report, sizeof report, &len);
        if (rc == MPROC_E_EMPTY)
            break;
        if (rc != 0 || len != sizeof report || report.producer < 1 ||
            report.producer > opt->producers || report.bun < 0 || report.bun >= opt->items) {
            fprintf(stderr, "producer-consumer: bad report (%s)\n", mproc_strerror(rc));
            ok = false;
            break;
        }
        count->consumed++;
        size_t index = (size_t)(report.producer - 1) * (size_t)opt->items + (size_t)report.bun;
        if (seen[index]++ != 0)
            count->duplicates++;
    }
    for (size_t i = 0; i < buns; i++)
        count->lost += seen[i] == 0;
    free(seen);
    return ok;
}

static void summary(const struct options *opt, const struct count *count) {
    if (opt->json)
        printf("{\"produced\": %ld, \"consumed\": %ld, \"duplicates\": %ld, \"lost\": %ld, "
               "\"producers\": %ld, \"consumers\": %ld, \"items\": %ld, \"joinable\": %s}\n",
               count->produced, count->consumed, count->duplicates, count->lost,
               opt->producers, opt->consumers, opt->items, opt->joinable ? "true" : "false");
    else
        printf("produced=%ld consumed=%ld duplicates=%ld lost=%ld producers=%ld consumers=%ld "
               "items=%ld joinable=%s\n",
               count->produced, count->consumed, count->duplicates, count->lost,
               opt->producers, opt->consumers, opt->items, opt->joinable ? "yes" : "no");
    fflush(stdout);
}

static int close_queue(mproc_queue *queue) {
    int rc = mproc_queue_close(queue);
    if (rc != 0)
        fprintf(stderr, "producer-consumer: mproc_queue_close: %s\n", mproc_strerror(rc));
    return rc;
}

int mproc_demo_producer_consumer(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;

    struct tally *tally = mmap(NULL, sizeof *tally, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (tally == MAP_FAILED) {
        perror("producer-consumer: mmap");
        return 1;
    }
    memset(tally, 0, sizeof *tally);
    /* Queue() / JoinableQueue(): unbounded, as in the tutorial. */
    mproc_queue *queue = NULL, *eaten = NULL;
    int rc = opt.joinable ? mproc_joinable_queue_create(&queue, 0, NULL)
                          : mproc_queue_create(&queue, 0, NULL);
    if (rc == 0)
        rc = mproc_queue_create(&eaten, 0, NULL);
    if (rc != 0) {
        fprintf(stderr, "producer-consumer: mproc_queue_create: %s\n", mproc_strerror(rc));
        if (queue != NULL)
            mproc_queue_close(queue);
        munmap(tally, sizeof *tally);
        return 1;
    }

    struct count count = {0};
    bool ok = run(queue, eaten, tally, &opt);
    ok = account(eaten, tally, &opt, &count) && ok;
    summary(&opt, &count);
    long buns = opt.producers * opt.items;
    status = ok && count.produced == buns && count.consumed == buns && count.duplicates == 0 &&
                     count.lost == 0
                 ? 0
                 : 1;
    if (close_queue(queue) != 0)
        status = 1;
    if (close_queue(eaten) != 0)
        status = 1;
    munmap(tally, sizeof *tally);
    return status;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_producer_consumer(argc, argv);
}
#endif
