/* SPDX-License-Identifier: MIT */
/*
 * threads: 100 threads each take 1 from a shared number under a Lock.
 *
 * The Python tutorials' sudnum example, in C:
 *
 *     sudnum = 100
 *
 *     def take_one(lock):
 *         global sudnum
 *         with lock:
 *             seen = sudnum            # read
 *             time.sleep(0.01)         # widen the race window
 *             sudnum = seen - 1        # write
 *
 *     lock = Lock()
 *     threads = [Thread(target=take_one, args=(lock,)) for _ in range(100)]
 *
 * mproc locks work between the threads of one process as well as between
 * processes.  With the lock (MPROC_WITH is `with lock:`) the number ends at
 * exactly 0, even though each thread yields the CPU between its read and
 * its write.  --unsafe drops the lock.  Rather than hope that the threads'
 * windows overlap, it makes them: every thread reads, then waits at an
 * mproc_barrier until all have read, then writes.  Every thread has read
 * 100, so every thread writes 99: 99 of the 100 subtractions are lost, and
 * the result is the same on every run and machine.
 *
 * The number is an atomic int loaded and stored with relaxed order: the race
 * shown is the lost update between a load and a store, which C defines,
 * not a data race, which it does not (and which ThreadSanitizer would flag).
 *
 * Build it alone:  cc -o threads threads.c $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry point the `mproc demo threads` command calls. */
int mproc_demo_threads(int argc, char **argv);

enum { MAX_THREADS = 1000 };

/* How long a thread waits at the --unsafe barrier for the others. */
#define GATE_TIMEOUT 10.0

/* What the threads share.  number: relaxed atomic, see the top comment;
 * with the lock, only its holder touches it.  lock, gate: one of them is
 * NULL, fixed before the threads start.  failures: atomic, read after the
 * joins. */
struct shared {
    atomic_int number;
    mproc_lock *lock;     /* NULL with --unsafe */
    mproc_barrier *gate;  /* --unsafe only: all read before any writes */
    atomic_int failures;
};

struct options {
    long threads;
    bool unsafe;
    bool json;
    FILE *out; /* the narration; stderr with --json so stdout is pure JSON */
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--threads N] [--unsafe] [--json]\n"
            "N threads each take 1 from a shared number that starts at N, under\n"
            "one mproc_lock, and check that it ends at exactly 0.\n"
            "  -n, --threads N    threads, and the starting number (default 100,\n"
            "                     at most %d)\n"
            "  -u, --unsafe       no lock: all threads read before any writes, so all\n"
            "                     but one subtraction is lost (exits 0 anyway)\n"
            "  -j, --json         print the summary as one JSON object\n"
            "  -h, --help         show this help\n"
            "Exit status: 0 if the number ends at 0 (or --unsafe), 1 if not or on\n"
            "error, 2 on a usage error.\n",
            prog, MAX_THREADS);
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
        {"threads", required_argument, NULL, 'n'}, {"unsafe", no_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.threads = 100};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "n:ujh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!parse_long(optarg, 1, MAX_THREADS, &opt->threads)) {
                fprintf(stderr, "%s: --threads wants 1..%d, not '%s'\n", argv[0], MAX_THREADS,
                        optarg);
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

static void fail(struct shared *shared, const char *what, const char *why) {
    fprintf(stderr, "threads: %s: %s\n", what, why);
    atomic_fetch_add_explicit(&shared->failures, 1, memory_order_relaxed);
}

/* The thread's whole life: Python's take_one(). */
static void *take_one(void *arg) {
    struct shared *shared = arg;
    if (shared->lock == NULL) {
        int seen = atomic_load_explicit(&shared->number, memory_order_relaxed);
        /* The window, made certain: nobody writes until everybody has read.
         * On a failure (a thread could not start, so the gate was aborted)
         * the write still happens; the failure is what gets reported. */
        int rc = mproc_barrier_wait(shared->gate, NULL);
        if (rc != 0)
            fail(shared, "mproc_barrier_wait", mproc_strerror(rc));
        atomic_store_explicit(&shared->number, seen - 1, memory_order_relaxed);
        return NULL;
    }
    bool took = false;
    MPROC_WITH(shared->lock) {
        int seen = atomic_load_explicit(&shared->number, memory_order_relaxed);
        sched_yield(); /* the tutorial's sleep: let another thread run here */
        atomic_store_explicit(&shared->number, seen - 1, memory_order_relaxed);
        took = true;
    }
    /* The body is skipped only if the acquire failed.  EOWNERDEAD cannot
     * happen: the lock never leaves this process, whose threads all live. */
    if (!took)
        fail(shared, "mproc_lock_acquire", "the with-block's acquire failed");
    return NULL;
}

/* Starts and joins the threads; false if one could not start. */
static bool run(struct shared *shared, const struct options *opt) {
    pthread_t *threads = calloc((size_t)opt->threads, sizeof *threads);
    if (threads == NULL) {
        perror("threads: calloc");
        return false;
    }
    long started = 0;
    for (; started < opt->threads; started++) {
        int rc = pthread_create(&threads[started], NULL, take_one, shared);
        if (rc != 0) {
            fprintf(stderr, "threads: pthread_create: %s\n", strerror(rc));
            /* The started threads would wait at the gate for parties that
             * never come: release them now rather than at its timeout. */
            if (shared->gate != NULL)
                mproc_barrier_abort(shared->gate);
            break;
        }
    }
    /* Each thread's life is bounded: an uncontended-or-not lock hand-off
     * per thread, or a barrier wait of at most GATE_TIMEOUT. */
    for (long i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    return started == opt->threads;
}

int mproc_demo_threads(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;

    struct shared shared = {.lock = NULL, .gate = NULL};
    atomic_init(&shared.number, (int)opt.threads);
    atomic_init(&shared.failures, 0);
    int rc = opt.unsafe ? mproc_barrier_create(&shared.gate, (unsigned)opt.threads, NULL, NULL,
                                               GATE_TIMEOUT, NULL)
                        : mproc_lock_create(&shared.lock, NULL);
    if (rc != 0) {
        fprintf(stderr, "threads: mproc_%s_create: %s\n", opt.unsafe ? "barrier" : "lock",
                mproc_strerror(rc));
        return 1;
    }
    fprintf(opt.out, "%ld threads each take 1 from %ld %s\n", opt.threads, opt.threads,
            opt.unsafe ? "without a lock, all reading before any writes"
                       : "under one mproc_lock");
    fflush(opt.out);

    bool ran = run(&shared, &opt);
    int final = atomic_load_explicit(&shared.number, memory_order_relaxed);
    if (opt.json)
        printf("{\"final\": %d, \"threads\": %ld, \"start\": %ld, \"unsafe\": %s}\n", final,
               opt.threads, opt.threads, opt.unsafe ? "true" : "false");
    else
        printf("final=%d threads=%ld start=%ld unsafe=%s\n", final, opt.threads, opt.threads,
               opt.unsafe ? "yes" : "no");
    fflush(stdout);

    status = ran && atomic_load_explicit(&shared.failures, memory_order_relaxed) == 0 ? 0 : 1;
    if (status == 0 && !opt.unsafe && final != 0) {
        fprintf(stderr, "threads: ended at %d despite the lock\n", final);
        status = 1;
    }
    rc = opt.unsafe ? mproc_barrier_close(shared.gate) : mproc_lock_close(shared.lock);
    if (rc != 0) {
        fprintf(stderr, "threads: close: %s\n", mproc_strerror(rc));
        status = 1;
    }
    return status;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_threads(argc, argv);
}
#endif
