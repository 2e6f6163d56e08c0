/* SPDX-License-Identifier: MIT */
/*
 * value_counter_2proc: two processes increment one shared Value('i') under
 * the Value's own lock until it reaches n, the way Python's tutorial does it:
 *
 *   mproc:      mproc_value_acquire(v); ++*(int *)mproc_value_ptr(v); release
 *   python_mp:  with v.get_lock(): v.value += 1      (Value('i'), an RLock)
 *
 * The figure is total increments per second.  As in counter_2proc
 * (bench_counter.c): both children are forked before the clock starts
 * (bench_gate) and stamp their own start and end; the Value must come out
 * exactly n and the two processes' own counts must add up to n in every
 * run; each process's share and the lock handoffs are reported, because an
 * unfair lock can post a high rate by letting one process run alone.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "harness.h"

#define CHILD_ALARM_S 120 /* a lost wake-up kills the child instead of hanging the bench */

/* Shared by the parent and both children (MAP_SHARED, inherited by fork). */
typedef struct value_shared {
    _Alignas(64) uint32_t last; /* 1 + index of the last incrementer; under the Value's lock */
    int target;                 /* read-only once the children run */
    /* Each written only by its own process, read by the parent after join. */
    struct {
        _Alignas(64) uint64_t count, handoffs;
        double t0, t1;
        int bad;
    } proc[2];
} value_shared;

typedef struct value_job {
    value_shared *sh;
    mproc_value *value;
} value_job;

static int child(void *arg, int me) {
    value_job *job = arg;
    value_shared *sh = job->sh;
    mproc_value *value = job->value;
    int *counter = mproc_value_ptr(value);
    uint64_t mine = 0, handoffs = 0;
    int bad = 0;
    alarm(CHILD_ALARM_S);
    double t0 = bench_now();
    for (;;) {
        if (mproc_value_acquire(value, MPROC_FOREVER) != 0) {
            bad = 1;
            break;
        }
        if (*counter >= sh->target) {
            bad |= mproc_value_release(value) != 0;
            break;
        }
        ++*counter;
        if (sh->last != (uint32_t)me + 1) {
            sh->last = (uint32_t)me + 1;
            handoffs++;
        }
        if (mproc_value_release(value) != 0) {
            bad = 1;
            break;
        }
        mine++;
    }
    sh->proc[me].t1 = bench_now();
    sh->proc[me].t0 = t0;
    sh->proc[me].count = mine;
    sh->proc[me].handoffs = handoffs;
    sh->proc[me].bad = bad;
    return bad;
}

static int run_counter(const bench_ctx *ctx, uint64_t n, bench_run *out, value_job *job) {
    value_shared *sh = job->sh;
    sh->target = (int)n;
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
    int final = *(int *)mproc_value_ptr(job->value);
    uint64_t sum = sh->proc[0].count + sh->proc[1].count;
    if (sh->proc[0].bad || sh->proc[1].bad || final != (int)n || sum != n || joined != 0) {
        bench_error(ctx, "Value %d, per process %llu + %llu, want %llu%s%s", final,
                    (unsigned long long)sh->proc[0].count,
                    (unsigned long long)sh->proc[1].count, (unsigned long long)n,
                    sh->proc[0].bad || sh->proc[1].bad ? " (a lock call failed)" : "",
                    joined != 0 ? " (a child exited abnormally)" : "");
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
    if (n >= INT_MAX) {
        bench_error(ctx, "%llu increments overflow an int", (unsigned long long)n);
        return -1;
    }
    value_job job = {bench_shared_alloc(sizeof *job.sh), NULL};
    int rc = job.sh == NULL ? ENOMEM : mproc_value_create(&job.value, MPROC_TYPE_INT, NULL, NULL,
                                                          NULL, NULL),
        result = -1;
    if (rc != 0)
        bench_error(ctx, "setup: %s", mproc_strerror(rc));
    else
        result = run_counter(ctx, n, out, &job);
    if (job.value != NULL)
        mproc_value_close(job.value);
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

/* Python's idiom for a shared counter: Value('i') (its own RLock) and
 * `with v.get_lock(): v.value += 1`; the same stop-at-target loop and gate. */
static const char python_value[] =
    "import signal\n"
    "def _worker(me, value, res, target, gate):\n"
    "    signal.alarm(120)\n"
    "    gate_pass(gate)\n"
    "    lock, mine = value.get_lock(), 0\n"
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
    "        value, res = ctx.Value('i', 0), ctx.RawArray('d', 6)\n"
    "        procs = run_gated(_worker, (value, res, n))\n"
    "        counts = [int(res[2]), int(res[5])]\n"
    "        if [p.exitcode for p in procs] != [0, 0] or value.value != n or sum(counts) != n:\n"
    "            raise BenchError('Value %d, per process %s, want %d, exit codes %s'\n"
    "                             % (value.value, counts, n, [p.exitcode for p in procs]))\n"
    "        shares.append(counts[0] / n)\n"
    "        return n, max(res[1], res[4]) - min(res[0], res[3])\n"
    "    measure(run, 1000)\n"
    "    note('with v.get_lock(): v.value += 1 (Value i, its own RLock); Value exact in '\n"
    "         'every rep; process 0 share per rep (%%): %s'\n"
    "         % '/'.join('%.0f' % (100 * s) for s in shares[-REPS:]))\n";

static void report(const bench_def *def, const bench_result *res, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (res[i].status != BENCH_OK || res[i].nruns == 0)
            continue; /* the Python impl notes its own shares */
        char shares[1024] = "";
        size_t len = 0;
        for (size_t r = 0; r < res[i].nruns && len < sizeof shares - 8; r++)
            len += (size_t)snprintf(shares + len, sizeof shares - len, "%s%.0f", r ? "/" : "",
                                    100 * res[i].runs[r].extra[0]);
        const bench_run *last = &res[i].runs[res[i].nruns - 1];
        bench_note(def, res[i].impl->name,
                   "acquire; ++*(int *)mproc_value_ptr; release (own RLock); Value exact in every "
                   "rep; process 0 share per rep (%%): %s; last rep %.0f lock handoffs (%.1f "
                   "increments per handoff)",
                   shares, last->extra[1], (double)last->ops / (last->extra[1] + 1));
    }
}

static const bench_def value_counter_2proc = {
    .name = "value_counter_2proc",
    .what = "2 processes increment a shared Value('i') under its own lock to a target",
    .kind = BENCH_RATE,
    .unit = "ops/s",
    .scale = 1,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 1000},
            {.name = "python_mp", .python = python_value},
        },
    .targets =
        {
            {"mproc", BENCH_AT_LEAST, 15.0, "python_mp"},
        },
    .report = report,
};

BENCH_REGISTER(value_counter_2proc)
