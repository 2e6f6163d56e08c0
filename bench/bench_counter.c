/* SPDX-License-Identifier: MIT */
/*
 * counter_2proc: two processes increment one shared counter under one lock
 * until it reaches n — the lock under full contention across processes.
 * The figure is total increments per second.
 *
 * Both children are forked before the clock starts (bench_gate) and each
 * stamps its own start and end; the run lasts from the first start to the
 * last end.  The counter must come out exactly n, and the two processes'
 * own counts must add up to n, in every run, or the run fails.  Each
 * process's share and the number of lock handoffs (the owner changing) are
 * reported, because an unfair lock can post a high rate by letting one
 * process run alone.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#include "harness.h"

#define MIN_SHARE 0.30

/* Shared by the parent and both children (MAP_SHARED, inherited by fork). */
typedef struct counter_shared {
    _Alignas(64) pthread_mutex_t mutex; /* the pthread_robust impl's lock */
    /* Written only under the lock under test: */
    _Alignas(64) uint64_t value;
    uint32_t last; /* 1 + index of the last process that incremented */
    uint64_t target; /* read-only once the children run */
    /* Each written only by its own process, read by the parent after join. */
    struct {
        _Alignas(64) uint64_t count, handoffs;
        double t0, t1;
        int bad;
    } proc[2];
} counter_shared;

typedef struct counter_job {
    counter_shared *sh;
    mproc_lock *lock; /* NULL: use sh->mutex */
} counter_job;

/* One loop shape for every impl; handoffs are counted by the new owner. */
#define COUNTER_LOOP(sh, me, ACQUIRE, RELEASE)                                             \
    do {                                                                                   \
        uint64_t mine_ = 0, handoffs_ = 0;                                                 \
        int bad_ = 0;                                                                      \
        double t0_ = bench_now();                                                          \
        for (;;) {                                                                         \
            if ((ACQUIRE) != 0) {                                                          \
                bad_ = 1;                                                                  \
                break;                                                                     \
            }                                                                              \
            if ((sh)->value >= (sh)->target) {                                             \
                bad_ |= (RELEASE) != 0;                                                    \
                break;                                                                     \
            }                                                                              \
            (sh)->value++;                                                                 \
            if ((sh)->last != (uint32_t)(me) + 1) {                                        \
                (sh)->last = (uint32_t)(me) + 1;                                           \
                handoffs_++;                                                               \
            }                                                                              \
            if ((RELEASE) != 0) {                                                          \
                bad_ = 1;                                                                  \
                break;                                                                     \
            }                                                                              \
            mine_++;                                                                       \
        }                                                                                  \
        (sh)->proc[me].t1 = bench_now();                                                   \
        (sh)->proc[me].t0 = t0_;                                                           \
        (sh)->proc[me].count = mine_;                                                      \
        (sh)->proc[me].handoffs = handoffs_;                                               \
        (sh)->proc[me].bad = bad_;                                                         \
    } while (0)

static int child(void *arg, int me) {
    counter_job *job = arg;
    counter_shared *sh = job->sh;
    if (job->lock != NULL)
        COUNTER_LOOP(sh, me, mproc_lock_acquire(job->lock, MPROC_FOREVER),
                     mproc_lock_release(job->lock));
    else
        COUNTER_LOOP(sh, me, pthread_mutex_lock(&sh->mutex), pthread_mutex_unlock(&sh->mutex));
    return sh->proc[me].bad;
}

static int check(const bench_ctx *ctx, const counter_shared *sh, uint64_t n) {
    uint64_t sum = sh->proc[0].count + sh->proc[1].count;
    if (sh->proc[0].bad || sh->proc[1].bad || sh->value != n || sum != n) {
        bench_error(ctx, "counter %llu, per process %llu + %llu, want %llu%s",
                    (unsigned long long)sh->value, (unsigned long long)sh->proc[0].count,
                    (unsigned long long)sh->proc[1].count, (unsigned long long)n,
                    sh->proc[0].bad || sh->proc[1].bad ? " (a lock call failed)" : "");
        return -1;
    }
    return 0;
}

static int run_counter(const bench_ctx *ctx, uint64_t n, bench_run *out, counter_job *job) {
    counter_shared *sh = job->sh;
    sh->target = n;
    bench_gate gate;
    if (bench_gate_start(&gate, 2, child, job) != 0) {
        bench_error(ctx, "fork failed");
        return -1;
    }
    int opened = bench_gate_open(&gate);
    int joined = bench_gate_join(&gate);
    if (opened != 0) {
        bench_error(ctx, "the children never got ready");
        return -1;
    }
    if (check(ctx, sh, n) != 0)
        return -1;
    if (joined != 0) {
        bench_error(ctx, "a child exited abnormally");
        return -1;
    }
    double t0 = sh->proc[0].t0 < sh->proc[1].t0 ? sh->proc[0].t0 : sh->proc[1].t0;
    double t1 = sh->proc[0].t1 > sh->proc[1].t1 ? sh->proc[0].t1 : sh->proc[1].t1;
    out->ops = n;
    out->seconds = t1 - t0;
    out->extra[0] = (double)sh->proc[0].count / (double)n;
    out->extra[1] = (double)(sh->proc[0].handoffs + sh->proc[1].handoffs);
    return 0;
}

static int run_mproc(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    counter_job job = {bench_shared_alloc(sizeof *job.sh), NULL};
    int rc = job.sh == NULL ? ENOMEM : mproc_lock_create(&job.lock, NULL), result = -1;
    if (rc != 0)
        bench_error(ctx, "setup: %s", mproc_strerror(rc));
    else
        result = run_counter(ctx, n, out, &job);
    if (job.lock != NULL)
        mproc_lock_close(job.lock);
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

static int run_pthread_robust(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    counter_job job = {bench_shared_alloc(sizeof *job.sh), NULL};
    if (job.sh == NULL) {
        bench_error(ctx, "mmap failed");
        return -1;
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&job.sh->mutex, &attr), result = -1;
    pthread_mutexattr_destroy(&attr);
    if (rc != 0)
        bench_error(ctx, "pthread_mutex_init: error %d", rc);
    else
        result = run_counter(ctx, n, out, &job);
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

/* The fastest idiomatic Python: `with lock:` on a multiprocessing.Lock
 * around a RawValue (a Value's own get_lock() is an RLock, slower), the
 * same stop-at-target loop and the same gate (two pipes) as the C impls. */
static const char python_counter[] =
    "def _worker(me, lock, value, res, target, gate):\n"
    "    gate_pass(gate)\n"
    "    mine = 0\n"
    "    t0 = perf_counter()\n"
    "    while True:\n"
    "        with lock:\n"
    "            if value.value >= target:\n"
    "                break\n"
    "            value.value += 1\n"
    "        mine += 1\n"
    "    res[3 * me:3 * me + 3] = [t0, perf_counter(), float(mine)]\n"
    "def main():\n"
    "    shares = []\n"
    "    def run(n):\n"
    "        lock, value, res = ctx.Lock(), ctx.RawValue('q', 0), ctx.RawArray('d', 6)\n"
    "        procs = run_gated(_worker, (lock, value, res, n))\n"
    "        counts = [int(res[2]), int(res[5])]\n"
    "        if [p.exitcode for p in procs] != [0, 0] or value.value != n or sum(counts) != n:\n"
    "            raise BenchError('counter %d, per process %s, want %d, exit codes %s'\n"
    "                             % (value.value, counts, n, [p.exitcode for p in procs]))\n"
    "        shares.append(counts[0] / n)\n"
    "        return n, max(res[1], res[4]) - min(res[0], res[3])\n"
    "    measure(run, 1000)\n"
    "    note('with lock: value.value += 1 (multiprocessing.Lock, RawValue q); counter exact in '\n"
    "         'every rep; process 0 share per rep (%%): %s'\n"
    "         % '/'.join('%.0f' % (100 * s) for s in shares[-REPS:]))\n";

static void report(const bench_def *def, const bench_result *res, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (res[i].status != BENCH_OK || res[i].nruns == 0)
            continue; /* Python impls note their own shares */
        char shares[1024] = "";
        size_t len = 0;
        double worst = 1.0;
        for (size_t r = 0; r < res[i].nruns && len < sizeof shares - 8; r++) {
            double share = res[i].runs[r].extra[0];
            double low = share < 1 - share ? share : 1 - share;
            worst = low < worst ? low : worst;
            len += (size_t)snprintf(shares + len, sizeof shares - len, "%s%.0f", r ? "/" : "",
                                    100 * share);
        }
        const bench_run *last = &res[i].runs[res[i].nruns - 1];
        bench_note(def, res[i].impl->name,
                   "counter exact in every rep; process 0 share per rep (%%): %s; last rep %.0f "
                   "lock handoffs (%.1f increments per handoff)",
                   shares, last->extra[1], (double)last->ops / (last->extra[1] + 1));
        if (strcmp(res[i].impl->name, "mproc") == 0) {
            char what[96], got[64];
            snprintf(what, sizeof what, "%s: each process >= %.0f%% of the increments",
                     res[i].impl->name, 100 * MIN_SHARE);
            snprintf(got, sizeof got, "smallest share in any rep %.1f%%", 100 * worst);
            bench_check(def, what, got, worst >= MIN_SHARE);
        }
    }
}

static const bench_def counter_2proc = {
    .name = "counter_2proc",
    .what = "2 processes increment a shared counter under one lock to a target",
    .kind = BENCH_RATE,
    .unit = "ops/s",
    .scale = 1,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 1000},
            {.name = "pthread_robust", .run = run_pthread_robust, .n0 = 1000},
            {.name = "python_mp", .python = python_counter},
        },
    .targets =
        {
            {"mproc", BENCH_AT_LEAST, 1.0, "pthread_robust"},
            {"mproc", BENCH_AT_LEAST, 15.0, "python_mp"},
        },
    .report = report,
};

BENCH_REGISTER(counter_2proc)
