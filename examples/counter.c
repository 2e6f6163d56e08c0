/* SPDX-License-Identifier: MIT */
/*
 * counter: three processes add to one shared counter under a Lock.
 *
 * The Python tutorials' add/plus example, in C:
 *
 *     def add(total, lock, amount, rounds):
 *         for _ in range(rounds):
 *             with lock:
 *                 seen = total.value            # read
 *                 time.sleep(0.001)             # widen the race window
 *                 total.value = seen + amount   # write
 *
 *     total, lock = Value('i', 0, lock=False), Lock()
 *     procs = [Process(target=add, args=(total, lock, n, 5)) for n in (1, 3, 5)]
 *
 * The counter is a plain int in MAP_SHARED|MAP_ANONYMOUS memory (a raw
 * Value), the processes come from fork(), and `with lock:` is
 * MPROC_WITH_RC.  With the lock the total is exactly (1+3+5) * rounds.
 * --unsafe drops the lock: two processes read the same value, both write,
 * and one addition is lost; the summary's lost= counts them.
 *
 * Build it alone:  cc -o counter counter.c $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, MAP_ANONYMOUS, usleep, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* The entry point the `mproc demo counter` command calls. */
int mproc_demo_counter(int argc, char **argv);

enum { NPROCS = 3 };
static const int amounts[NPROCS] = {1, 3, 5};

struct options {
    long rounds;   /* additions per process */
    long pause_us; /* between read and write: the race window */
    bool unsafe;   /* no lock: show the lost updates */
    bool json;
    FILE *out;     /* the step lines; stderr with --json so stdout is pure JSON */
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--rounds N] [--pause-us US] [--unsafe] [--json]\n"
            "Three processes add 1, 3 and 5 to one shared counter, each N times,\n"
            "under one mproc_lock, and check the total is exactly (1+3+5)*N.\n"
            "  -r, --rounds N     additions per process (default 5)\n"
            "  -p, --pause-us US  pause between read and write (default 1000)\n"
            "  -u, --unsafe       no lock: updates get lost (exits 0 anyway)\n"
            "  -j, --json         print the summary as one JSON object\n"
            "  -h, --help         show this help\n"
            "Exit status: 0 if the total is exact (or --unsafe), 1 if not or on\n"
            "error, 2 on a usage error.\n",
            prog);
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
        {"rounds", required_argument, NULL, 'r'}, {"pause-us", required_argument, NULL, 'p'},
        {"unsafe", no_argument, NULL, 'u'},       {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.rounds = 5, .pause_us = 1000};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "r:p:ujh", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (!parse_long(optarg, 1, 10000, &opt->rounds)) {
                fprintf(stderr, "%s: --rounds wants 1..10000, not '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        case 'p':
            if (!parse_long(optarg, 0, 100000, &opt->pause_us)) {
                fprintf(stderr, "%s: --pause-us wants 0..100000, not '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        case 'u': opt->unsafe = true; break;
        case 'j': opt->json = true; break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: fprintf(stderr, "Try '%s --help'.\n", argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return 2;
    }
    opt->out = opt->json ? stderr : stdout;
    return -1;
}

/*
 * One read-modify-write, each step printed.  Flushing before the next step
 * matters: stdout may be a fully buffered pipe, and the lock only keeps the
 * lines together if they leave this process while it holds the lock.
 */
static void add_once(int *total, int amount, const struct options *opt) {
    int seen = *total;
    fprintf(opt->out, "[pid %d +%d] read %d\n", (int)getpid(), amount, seen);
    fflush(opt->out);
    usleep((useconds_t)opt->pause_us);
    *total = seen + amount;
    fprintf(opt->out, "[pid %d +%d] wrote %d\n", (int)getpid(), amount, seen + amount);
    fflush(opt->out);
}

/* The child's whole life: Python's add().  lock is NULL with --unsafe. */
static int adder(int *total, mproc_lock *lock, int amount, const struct options *opt) {
    for (long round = 0; round < opt->rounds; round++) {
        if (lock == NULL) {
            add_once(total, amount, opt);
            continue;
        }
        int rc;
        MPROC_WITH_RC(lock, rc) {
            /* EOWNERDEAD would mean an adder died holding the lock.  Its
             * write is one int store, whole or absent, so nothing needs
             * repair; the total check shows the missing addition. */
            add_once(total, amount, opt);
        }
        if (rc != 0 && rc != EOWNERDEAD) {
            fprintf(stderr, "counter: mproc_lock_acquire: %s\n", mproc_strerror(rc));
            return 1;
        }
    }
    return 0;
}

/* Forks one adder.  It waits at the gate (a read that returns when the
 * parent closes the write end) so that all three start together. */
static pid_t spawn(int *total, mproc_lock *lock, int amount, const int gate[2],
                   const struct options *opt) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    close(gate[1]);
    /* A bound on the child's life: whatever goes wrong, the parent's
     * waitpid() returns. */
    alarm((unsigned)(10 + NPROCS * opt->rounds * (opt->pause_us + 1000) / 1000000));
    char byte;
    while (read(gate[0], &byte, 1) < 0 && errno == EINTR)
        continue;
    int status = adder(total, lock, amount, opt);
    if (lock != NULL) {
        int rc = mproc_lock_close(lock);
        if (rc != 0) {
            fprintf(stderr, "counter: mproc_lock_close: %s\n", mproc_strerror(rc));
            status = 1;
        }
    }
    _exit(status); /* not exit(): the parent's stdio buffers and atexit are not ours */
}

/* Waits for every child; true if all exited 0. */
static bool reap(const pid_t *pids, int count) {
    bool ok = true;
    for (int i = 0; i < count; i++) {
        int status;
        pid_t got;
        while ((got = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            perror("counter: waitpid");
            ok = false;
        } else if (WIFSIGNALED(status)) {
            fprintf(stderr, "counter: adder %d killed by signal %d\n", (int)pids[i],
                    WTERMSIG(status));
            ok = false;
        } else if (WEXITSTATUS(status) != 0) {
            ok = false;
        }
    }
    return ok;
}

/* Runs the three adders; false on any failure (already reported). */
static bool run(int *total, mproc_lock *lock, const struct options *opt) {
    int gate[2];
    if (pipe(gate) != 0) {
        perror("counter: pipe");
        return false;
    }
    fflush(NULL); /* or the children would inherit, and print, our pending output */
    pid_t pids[NPROCS];
    int started = 0;
    for (; started < NPROCS; started++) {
        pids[started] = spawn(total, lock, amounts[started], gate, opt);
        if (pids[started] < 0) {
            perror("counter: fork");
            break;
        }
    }
    close(gate[1]); /* opens the gate: every read() in the children returns 0 */
    close(gate[0]);
    bool ok = reap(pids, started);
    return ok && started == NPROCS;
}

static void summary(const struct options *opt, int total, int expected) {
    const char *lock = opt->unsafe ? "no" : "yes";
    if (opt->json)
        printf("{\"total\": %d, \"expected\": %d, \"lost\": %d, \"processes\": %d, "
               "\"rounds\": %ld, \"lock\": %s}\n",
               total, expected, expected - total, NPROCS, opt->rounds,
               opt->unsafe ? "false" : "true");
    else
        printf("total=%d expected=%d lost=%d processes=%d rounds=%ld lock=%s\n", total,
               expected, expected - total, NPROCS, opt->rounds, lock);
    fflush(stdout);
}

int mproc_demo_counter(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;

    int *total = mmap(NULL, sizeof *total, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (total == MAP_FAILED) {
        perror("counter: mmap");
        return 1;
    }
    *total = 0;
    mproc_lock *lock = NULL;
    if (!opt.unsafe) {
        int rc = mproc_lock_create(&lock, NULL);
        if (rc != 0) {
            fprintf(stderr, "counter: mproc_lock_create: %s\n", mproc_strerror(rc));
            munmap(total, sizeof *total);
            return 1;
        }
    }

    bool ran = run(total, lock, &opt);
    int expected = (1 + 3 + 5) * (int)opt.rounds;
    summary(&opt, *total, expected);
    status = ran ? 0 : 1;
    if (ran && !opt.unsafe && *total != expected) {
        fprintf(stderr, "counter: lost %d despite the lock\n", expected - *total);
        status = 1;
    }

    if (lock != NULL) {
        int rc = mproc_lock_close(lock);
        if (rc != 0) {
            fprintf(stderr, "counter: mproc_lock_close: %s\n", mproc_strerror(rc));
            status = 1;
        }
    }
    munmap(total, sizeof *total);
    return status;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_counter(argc, argv);
}
#endif
