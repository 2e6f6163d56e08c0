/* SPDX-License-Identifier: MIT */
/*
 * pool: the Python tutorials' Pool, in C, and a worker killed mid-map.
 *
 *     def square(x):
 *         time.sleep(0.05)                        # some work
 *         return x * x
 *
 *     with Pool(2) as pool:
 *         r = pool.map_async(square, range(10))
 *         print(r.get())                          # [0, 1, 4, ..., 81], in order
 *         print(pool.apply_async(square, (10,)).get(timeout=10))     # 100
 *
 * A pool of --workers processes maps square over range(--items) with
 * map_async (map without waiting, so the main thread stays free while it
 * runs), gets the result and prints every item in order, with the worker
 * that computed it; then apply_async runs one more item.
 *
 * --kill-worker: the worker that runs square(items / 2) tells the main
 * process so, from inside the item, and waits; the main process SIGKILLs
 * it there.  The pool forks a replacement, that one item fails with
 * MPROC_E_WORKER_DIED (with --retries R >= 1 it runs again on another
 * worker instead, once: only its first run waits to be killed), the items
 * the dead worker had finished keep their results, every other item
 * completes, and apply_async afterwards shows the pool still works.
 * Python's Pool would replace the worker too, but lose its task, and its
 * map() would never return.
 *
 * Workers are forked by the pool, so a task sees the program's memory as it
 * was then: `stage` below (a pipe, and MAP_SHARED memory where each item
 * counts its runs) is filled in before the pool is created, as Python's
 * fork-started Pool needs its function and globals defined before Pool().
 *
 * Summary, deterministic for a correct run:
 *   items=N workers=W ok=O failed=F killed=K replaced=R retried=T in_order=yes
 * ok: items that returned 0 with the right square; failed: items with a
 * nonzero code; killed: workers the demo SIGKILLed; replaced: workers the
 * pool started beyond its first W; retried: items run again after their
 * worker died; in_order: every finished item sits at its own index.  Exit
 * status 0 when it holds (all ok; with --kill-worker: killed=1 replaced=1
 * and the killed item failed=1 retried=0, or failed=0 retried=1 with
 * --retries), 1 otherwise, 2 on a usage error.
 *
 * Build it alone:  cc -o pool pool.c $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, MAP_ANONYMOUS, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The entry point the `mproc demo pool` command calls. */
int mproc_demo_pool(int argc, char **argv);

enum { MAX_WORKERS = 16, MAX_ITEMS = 10000, MAX_DELAY_MS = 10000, MAX_RETRIES = 10 };
#define BOUND 10.0 /* s: no wait here is longer, beyond the work itself */

struct options {
    long workers, items, delay_ms, retries;
    bool kill_worker, json;
    FILE *out; /* the narration; stderr with --json so stdout is pure JSON */
};

/* One item's output: what the task computed, and where. */
struct result {
    long x, square;
    int pid, run; /* run: 1 for the item's first run, 2 for its retry... */
    char worker[32];
};

/* The victim's message to the main process (one write, under PIPE_BUF). */
struct victim {
    int pid;
    long x;
    char worker[32];
};

/* What the task reads: set before the pool is created (the workers get a
 * copy at fork) and not changed while it lives. */
static struct {
    long delay_ms;
    long victim;         /* the item whose first run waits to be killed; -1: none */
    int kill_fd;         /* the pipe's write end: the victim reports there */
    _Atomic int *runs;   /* MAP_SHARED: runs of item x, for x in 0..items */
    FILE *out;
} stage = {.victim = -1, .kill_fd = -1};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--workers N] [--items N] [--delay-ms MS] [--kill-worker]\n"
            "          [--retries R] [--json]\n"
            "A Pool maps square(x) over range(N) and prints the results in order;\n"
            "--kill-worker SIGKILLs a worker mid-map and the pool finishes the rest.\n"
            "  -n, --workers N     pool workers (default 2, at most %d)\n"
            "  -i, --items N       items to map (default 10, at most %d)\n"
            "  -d, --delay-ms MS   each item sleeps MS ms first (default 50, at most %d)\n"
            "  -k, --kill-worker   SIGKILL the worker running square(N / 2), inside it:\n"
            "                      that item fails with MPROC_E_WORKER_DIED, the rest\n"
            "                      completes (Python's Pool would hang)\n"
            "  -r, --retries R     run an item again, up to R times, when its worker\n"
            "                      dies (default 0, at most %d): the killed item succeeds\n"
            "  -j, --json          print the summary as one JSON object\n"
            "  -h, --help          show this help\n"
            "Summary: items=N workers=W ok=O failed=F killed=K replaced=R retried=T\n"
            "in_order=yes.  Exit status 0 if the run went as described, 1 if not, 2 on\n"
            "a usage error.\n",
            prog, MAX_WORKERS, MAX_ITEMS, MAX_DELAY_MS, MAX_RETRIES);
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
        {"workers", required_argument, NULL, 'n'}, {"items", required_argument, NULL, 'i'},
        {"delay-ms", required_argument, NULL, 'd'}, {"kill-worker", no_argument, NULL, 'k'},
        {"retries", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.workers = 2, .items = 10, .delay_ms = 50};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "n:i:d:kr:jh", longopts, NULL)) != -1) {
        long *number = NULL, lo = 0, hi = 0;
        switch (c) {
        case 'n': number = &opt->workers, lo = 1, hi = MAX_WORKERS; break;
        case 'i': number = &opt->items, lo = 1, hi = MAX_ITEMS; break;
        case 'd': number = &opt->delay_ms, hi = MAX_DELAY_MS; break;
        case 'r': number = &opt->retries, hi = MAX_RETRIES; break;
        case 'k': opt->kill_worker = true; break;
        case 'j': opt->json = true; break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: fprintf(stderr, "Try '%s --help'.\n", argv[0]); return 2;
        }
        if (number != NULL && !parse_long(optarg, lo, hi, number)) {
            const struct option *o = longopts;
            while (o->val != c)
                o++;
            fprintf(stderr, "%s: --%s wants %ld..%ld, not '%s'\n", argv[0], o->name, lo, hi,
                    optarg);
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

/* One narration line, in one write() and never through stdio's buffer: the
 * pool forks workers from a thread of its own at any moment, and a fork
 * that copied a half-filled buffer would print it twice. */
__attribute__((format(printf, 2, 3))) static void say(FILE *out, const char *format, ...) {
    char line[512];
    va_list ap;
    va_start(ap, format);
    int len = vsnprintf(line, sizeof line - 1, format, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len > sizeof line - 2)
        len = (int)sizeof line - 2;
    line[len++] = '\n';
    if (write(fileno(out), line, (size_t)len) < 0)
        return; /* nowhere to say it */
}

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
}

/* ---- the task, run in the workers ---- */

/* The victim's first run: reports where it is, then waits for its SIGKILL,
 * which lands here, inside the item.  Returns only if none comes. */
static void wait_to_be_killed(long x) {
    struct victim v = {.pid = (int)getpid(), .x = x};
    snprintf(v.worker, sizeof v.worker, "%s", mproc_current_process_name());
    say(stage.out, "%s (pid %d): inside square(%ld); main, kill me now", v.worker, v.pid, x);
    if (write(stage.kill_fd, &v, sizeof v) != (ssize_t)sizeof v)
        return;
    sleep_ms((long)(BOUND * 1000));
}

static int square(const void *in, void *out) {
    long x = *(const long *)in;
    struct result *r = out;
    /* relaxed: a count, and the add alone tells each run which one it is */
    r->run = atomic_fetch_add_explicit(&stage.runs[x], 1, memory_order_relaxed) + 1;
    r->x = x;
    r->pid = (int)getpid();
    snprintf(r->worker, sizeof r->worker, "%s", mproc_current_process_name());
    if (x == stage.victim && r->run == 1)
        wait_to_be_killed(x);
    sleep_ms(stage.delay_ms);
    r->square = x * x;
    return 0;
}

/* ---- the main process ---- */

struct tally {
    long ok, failed, retried_items;
    int killed, killed_pid;
    int first_code;        /* the map's code: 0 or the lowest failing item's */
    size_t first_failed;   /* its index, SIZE_MAX if none */
    bool in_order, apply_ok;
    mproc_pool_stats stats;
};

/* True if pid is one of the pool's workers.  Polled for up to 1 s: the
 * pool records a worker's pid just after the fork, and the worker may have
 * reached the item before that. */
static bool is_worker(mproc_pool *pool, int pid) {
    for (int tries = 0; pid > 0 && tries < 1000; tries++) {
        int pids[MAX_WORKERS];
        unsigned count = 0;
        if (mproc_pool_worker_pids(pool, pids, MAX_WORKERS, &count) != 0)
            return false;
        for (unsigned i = 0; i < count && i < MAX_WORKERS; i++)
            if (pids[i] == pid)
                return true;
        sleep_ms(1); /* polling a bound */
    }
    return false;
}

/* Reads the victim's report (within BOUND) and SIGKILLs it, after checking
 * that the pid is one of the pool's workers. */
static void kill_victim(mproc_pool *pool, int report_fd, const struct options *opt,
                        struct tally *t) {
    struct pollfd pfd = {.fd = report_fd, .events = POLLIN};
    struct victim v;
    int n;
    while ((n = poll(&pfd, 1, (int)(BOUND * 1000))) < 0 && errno == EINTR)
        continue;
    if (n != 1 || read(report_fd, &v, sizeof v) != (ssize_t)sizeof v) {
        fprintf(stderr, "pool: no worker reported running square(%ld) within %.0f s\n",
                stage.victim, BOUND);
        return;
    }
    v.worker[sizeof v.worker - 1] = '\0';
    if (!is_worker(pool, v.pid)) {
        fprintf(stderr, "pool: pid %d is not one of the pool's workers\n", v.pid);
        return;
    }
    int rc = kill(v.pid, SIGKILL) == 0 ? 0 : errno;
    t->killed += rc == 0;
    t->killed_pid = v.pid;
    say(opt->out, "MainProcess: SIGKILL to %s (pid %d), inside square(%ld): %s", v.worker,
        v.pid, v.x, mproc_errname(rc));
    say(opt->out, "MainProcess: Python's Pool would hang here: it starts a new worker, but "
                  "square(%ld) is lost and map() never returns",
        v.x);
    if (opt->retries > 0)
        say(opt->out, "MainProcess: this one starts a new worker too, runs square(%ld) again "
                      "(--retries %ld) and finishes the rest",
            v.x, opt->retries);
    else
        say(opt->out, "MainProcess: this one starts a new worker too, fails square(%ld) with "
                      "MPROC_E_WORKER_DIED and finishes the rest",
            v.x);
}

/* Prints item i's line and counts it. */
static void show_item(const mproc_result *res, const struct result *r, long i,
                      const struct options *opt, struct tally *t) {
    int code = -1;
    mproc_result_code(res, (size_t)i, &code);
    if (code != 0) {
        t->failed++;
        say(opt->out, "square(%ld): %s: %s", i, mproc_errname(code), mproc_strerror(code));
        return;
    }
    bool right = r->x == i && r->square == i * i;
    t->ok += right;
    t->in_order = t->in_order && right;
    t->retried_items += r->run > 1;
    char again[96] = "";
    if (r->run > 1)
        snprintf(again, sizeof again, ", run %d: the worker of its first run was killed",
                 r->run);
    say(opt->out, "square(%ld) = %-8ld by %s (pid %d)%s", i, r->square, r->worker, r->pid,
        again);
}

/* map_async, the kill, get, and the items in order. */
static bool map_items(mproc_pool *pool, int report_fd, const struct options *opt,
                      struct tally *t) {
    long n = opt->items;
    long *xs = malloc((size_t)n * sizeof *xs);
    struct result *results = calloc((size_t)n, sizeof *results);
    mproc_result *res = NULL;
    int rc = xs == NULL || results == NULL ? ENOMEM : 0;
    for (long i = 0; rc == 0 && i < n; i++)
        xs[i] = i;
    if (rc == 0)
        rc = mproc_pool_map_async(pool, square, xs, sizeof *xs, results, sizeof *results,
                                  (size_t)n, 0, &res);
    if (rc != 0) {
        fprintf(stderr, "pool: map_async: %s\n", mproc_strerror(rc));
        free(xs);
        free(results);
        return false;
    }
    if (opt->kill_worker)
        kill_victim(pool, report_fd, opt, t);
    /* Bounded: the work itself (all of it on one worker, at worst), plus BOUND. */
    double bound = BOUND + (double)n * (double)opt->delay_ms / 1000.0;
    rc = mproc_result_get(res, bound, &t->first_failed);
    bool ok = mproc_result_ready(res);
    if (!ok) {
        fprintf(stderr, "pool: the map did not finish within %.0f s\n", bound);
    } else {
        t->first_code = rc;
        if (rc == 0)
            say(opt->out, "MainProcess: get() returned OK: every item finished");
        else
            say(opt->out, "MainProcess: get() returned %s for item %zu, the lowest failing "
                          "one; every other item finished",
                mproc_errname(rc), t->first_failed);
        t->in_order = true;
        for (long i = 0; i < n; i++)
            show_item(res, &results[i], i, opt, t);
    }
    mproc_result_free(res);
    free(xs);
    free(results);
    return ok;
}

/* Waits (bounded) until every slot has a worker again and the killed pid is
 * gone from them, and shows the pids. */
static void show_replacement(mproc_pool *pool, const struct options *opt, int killed_pid) {
    int pids[MAX_WORKERS];
    unsigned count = 0;
    for (int tries = 0; tries < (int)(BOUND * 1000); tries++) {
        bool whole = mproc_pool_worker_pids(pool, pids, MAX_WORKERS, &count) == 0;
        for (unsigned i = 0; whole && i < count; i++)
            whole = pids[i] != 0 && pids[i] != killed_pid;
        if (whole)
            break;
        sleep_ms(1); /* polling a bound: the pool has no "replaced" event */
    }
    char text[MAX_WORKERS * 12] = "";
    size_t len = 0;
    for (unsigned i = 0; i < count && i < MAX_WORKERS; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, " %d", pids[i]);
    say(opt->out, "MainProcess: the pool replaced the killed worker; worker pids now:%s", text);
}

/* apply_async(square, (items,)).get(BOUND): the pool still works. */
static void apply_one(mproc_pool *pool, const struct options *opt, struct tally *t) {
    long x = opt->items;
    struct result r = {0};
    mproc_result *res;
    int rc = mproc_pool_apply_async(pool, square, &x, sizeof x, &r, sizeof r, &res);
    if (rc == 0) {
        rc = mproc_result_get(res, BOUND + (double)opt->delay_ms / 1000.0, NULL);
        mproc_result_free(res);
    }
    t->apply_ok = rc == 0 && r.x == x && r.square == x * x;
    if (rc == 0)
        say(opt->out, "apply_async(square, (%ld,)).get() = %ld by %s (pid %d)", x, r.square,
            r.worker, r.pid);
    else
        say(opt->out, "apply_async(square, (%ld,)).get(): %s: %s", x, mproc_errname(rc),
            mproc_strerror(rc));
}

static bool run(const struct options *opt, int report_fd, struct tally *t) {
    mproc_pool *pool;
    mproc_pool_options po = {.workers = (unsigned)opt->workers,
                             .retries = (unsigned)opt->retries};
    int rc = mproc_pool_create(&pool, &po);
    if (rc != 0) {
        fprintf(stderr, "pool: mproc_pool_create: %s\n", mproc_strerror(rc));
        return false;
    }
    long parts = opt->workers * 4; /* Python's default chunksize, which map uses too */
    say(opt->out, "MainProcess: Pool(%ld); map_async(square, range(%ld)), chunksize %ld; "
                  "square sleeps %ld ms, then returns x*x",
        opt->workers, opt->items, (opt->items + parts - 1) / parts, opt->delay_ms);
    bool ok = map_items(pool, report_fd, opt, t);
    if (ok && t->killed > 0)
        show_replacement(pool, opt, t->killed_pid);
    if (ok)
        apply_one(pool, opt, t);
    mproc_pool_close(pool);
    if ((rc = mproc_pool_join(pool, BOUND)) != 0) {
        fprintf(stderr, "pool: join: %s\n", mproc_strerror(rc));
        ok = false;
    }
    mproc_pool_get_stats(pool, &t->stats);
    mproc_pool_free(pool);
    say(opt->out, "MainProcess: closed and joined: workers started %llu, died %llu; items "
                  "lost %llu, retried %llu",
        t->stats.started, t->stats.died, t->stats.lost, t->stats.retried);
    return ok;
}

/* ---- the whole demo ---- */

static bool holds(const struct options *opt, const struct tally *t) {
    unsigned long long replaced = t->stats.started - t->stats.workers;
    if (!opt->kill_worker)
        return t->ok == opt->items && t->failed == 0 && t->killed == 0 && replaced == 0 &&
               t->in_order && t->apply_ok;
    bool retry = opt->retries > 0;
    long failed = retry ? 0 : 1;
    bool victim_failed_only =
        retry ? t->first_code == 0
              : t->first_code == MPROC_E_WORKER_DIED && t->first_failed == (size_t)stage.victim;
    return t->ok == opt->items - failed && t->failed == failed && victim_failed_only &&
           t->killed == 1 && replaced == 1 && t->stats.retried == (retry ? 1u : 0u) &&
           t->retried_items == (retry ? 1 : 0) && t->in_order && t->apply_ok;
}

static void print_summary(const struct options *opt, const struct tally *t) {
    unsigned long long replaced = t->stats.started - t->stats.workers;
    if (opt->json)
        printf("{\"items\": %ld, \"workers\": %ld, \"ok\": %ld, \"failed\": %ld, "
               "\"killed\": %d, \"replaced\": %llu, \"retried\": %llu, \"in_order\": %s, "
               "\"code\": \"%s\", \"failed_index\": %lld, \"delay_ms\": %ld, \"retries\": %ld}\n",
               opt->items, opt->workers, t->ok, t->failed, t->killed, replaced,
               t->stats.retried, t->in_order ? "true" : "false", mproc_errname(t->first_code),
               t->first_failed == SIZE_MAX ? -1LL : (long long)t->first_failed, opt->delay_ms,
               opt->retries);
    else
        printf("items=%ld workers=%ld ok=%ld failed=%ld killed=%d replaced=%llu retried=%llu "
               "in_order=%s\n",
               opt->items, opt->workers, t->ok, t->failed, t->killed, replaced,
               t->stats.retried, t->in_order ? "yes" : "no");
    fflush(stdout);
}

int mproc_demo_pool(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;
    /* The stage, before the pool: its workers are forked with it. */
    size_t runs_size = (size_t)(opt.items + 1) * sizeof *stage.runs; /* + apply's item */
    void *runs = mmap(NULL, runs_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int report[2] = {-1, -1};
    if (runs == MAP_FAILED || (opt.kill_worker && pipe(report) != 0)) {
        perror("pool: mmap/pipe");
        return 1;
    }
    stage.runs = runs; /* zeroed: fresh anonymous memory */
    stage.delay_ms = opt.delay_ms;
    stage.victim = opt.kill_worker ? opt.items / 2 : -1;
    stage.kill_fd = report[1];
    stage.out = opt.out;
    fflush(NULL); /* nothing buffered for the workers to inherit */

    struct tally t = {.first_failed = SIZE_MAX, .killed_pid = -1};
    bool ok = run(&opt, report[0], &t);
    print_summary(&opt, &t);
    if (report[0] >= 0) {
        close(report[0]);
        close(report[1]);
    }
    munmap(runs, runs_size);
    return ok && holds(&opt, &t) ? 0 : 1;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_pool(argc, argv);
}
#endif
