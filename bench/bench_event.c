/* SPDX-License-Identifier: MIT */
/*
 * event_pingpong: two processes hand a turn back and forth through two
 * events, the way an Event is used as a "your turn" / "done" signal:
 *
 *   A: set(e1); wait(e2); clear(e2)        B: wait(e1); clear(e1); set(e2)
 *
 * The figure is microseconds per round trip (two hops).  Every impl runs
 * the same loop through the same small table of set/wait/clear calls, so
 * only the event differs (an indirect call costs a few ns, far below one
 * hop).  The peers:
 *   futex         a bare FUTEX_WAIT / FUTEX_WAKE pair on a shared word that
 *                 wakes on every hop and never spins: the kernel's cost.
 *   pthread_cond  what a C programmer writes: a flag guarded by a
 *                 process-shared mutex and condition variable (this is also
 *                 how Python builds its Event).
 *   python_mp     multiprocessing.Event.
 *
 * Children are forked before the clock starts (bench_gate), play a few
 * untimed warm-up rounds, then stamp their own start and end; the run lasts
 * from the first start to the last end.  A shared "ball" is bumped by A
 * before each set(e1) and by B before each set(e2); each side checks after
 * its wait that the other's bump is there, so a wait that returned early
 * fails the run, and the ball and both turn counters must come out exact.
 * Each child also reports its context switches: a voluntary one is a sleep
 * in the kernel, so (voluntary switches / round trips) shows how often a
 * wait slept instead of catching the hand-off while spinning.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mproc.h>

#include "harness.h"
#include "pingpong.h"


/* A C programmer's event: a flag under a process-shared mutex + condvar. */
typedef struct pcond_event {
    _Alignas(64) pthread_mutex_t mutex;
    pthread_cond_t cond;
    int flag; /* guarded by mutex */
} pcond_event;

/* Shared by the parent and both children (MAP_SHARED, inherited by fork). */
typedef struct event_shared {
    struct {
        _Alignas(64) _Atomic uint32_t word; /* the futex impl: 1 set, 0 clear */
    } futex[2];
    pcond_event pcond[2];
    pingpong_state pp; /* ball, rounds, per-process figures */
} event_shared;

typedef struct event_job event_job;

/* Each returns 0 on success; e is 0 (e1) or 1 (e2). */
typedef struct event_ops {
    int (*set)(event_job *job, int e);
    int (*wait)(event_job *job, int e);
    int (*clear)(event_job *job, int e);
} event_ops;

struct event_job {
    event_shared *sh;
    const event_ops *ops;
    mproc_event *ev[2]; /* the mproc impl */
};

/* ---- the impls' set / wait / clear ---- */

static int mproc_set(event_job *job, int e) { return mproc_event_set(job->ev[e]); }
static int mproc_wait(event_job *job, int e) { return mproc_event_wait(job->ev[e], MPROC_FOREVER); }
static int mproc_clear(event_job *job, int e) { return mproc_event_clear(job->ev[e]); }

static const event_ops mproc_ops = {mproc_set, mproc_wait, mproc_clear};

/* Shared (not FUTEX_PRIVATE_FLAG) futex ops: the two processes are
 * different address spaces. */
static long futex(_Atomic uint32_t *word, int op, uint32_t val) {
    return syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

static int futex_set(event_job *job, int e) {
    _Atomic uint32_t *word = &job->sh->futex[e].word;
    /* release: the ball's bump is visible to the waiter that sees 1. */
    atomic_store_explicit(word, 1, memory_order_release);
    return futex(word, FUTEX_WAKE, INT_MAX) < 0 ? -1 : 0;
}

static int futex_wait(event_job *job, int e) {
    _Atomic uint32_t *word = &job->sh->futex[e].word;
    /* acquire: pairs with futex_set's release. */
    while (atomic_load_explicit(word, memory_order_acquire) == 0)
        if (futex(word, FUTEX_WAIT, 0) < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
    return 0;
}

static int futex_clear(event_job *job, int e) {
    /* relaxed: the protocol orders clear before the next set by other means. */
    atomic_store_explicit(&job->sh->futex[e].word, 0, memory_order_relaxed);
    return 0;
}

static const event_ops futex_ops = {futex_set, futex_wait, futex_clear};

static int pcond_set(event_job *job, int e) {
    pcond_event *ev = &job->sh->pcond[e];
    int rc = pthread_mutex_lock(&ev->mutex);
    if (rc != 0)
        return rc;
    ev->flag = 1;
    rc = pthread_cond_broadcast(&ev->cond);
    return pthread_mutex_unlock(&ev->mutex) | rc;
}

static int pcond_wait(event_job *job, int e) {
    pcond_event *ev = &job->sh->pcond[e];
    int rc = pthread_mutex_lock(&ev->mutex);
    while (rc == 0 && !ev->flag)
        rc = pthread_cond_wait(&ev->cond, &ev->mutex);
    return rc != 0 ? rc : pthread_mutex_unlock(&ev->mutex);
}

static int pcond_clear(event_job *job, int e) {
    pcond_event *ev = &job->sh->pcond[e];
    int rc = pthread_mutex_lock(&ev->mutex);
    if (rc != 0)
        return rc;
    ev->flag = 0;
    return pthread_mutex_unlock(&ev->mutex);
}

static const event_ops pcond_ops = {pcond_set, pcond_wait, pcond_clear};

/* ---- the two sides ---- */

/* Rounds [from, to).  Returns 0 or BAD_* bits. */
static int side_a(void *arg, uint64_t from, uint64_t to) {
    event_job *job = arg;
    const event_ops *ops = job->ops;
    event_shared *sh = job->sh;
    int bad = 0;
    for (uint64_t i = from; i < to; i++) {
        sh->pp.ball++; /* 2i + 1: B's to check */
        if (ops->set(job, 0) != 0 || ops->wait(job, 1) != 0 || ops->clear(job, 1) != 0)
            return bad | PINGPONG_BAD_CALL;
        if (sh->pp.ball != 2 * i + 2)
            bad = PINGPONG_BAD_BALL;
        sh->pp.proc[0].turns++;
    }
    return bad;
}

static int side_b(void *arg, uint64_t from, uint64_t to) {
    event_job *job = arg;
    const event_ops *ops = job->ops;
    event_shared *sh = job->sh;
    int bad = 0;
    for (uint64_t i = from; i < to; i++) {
        if (ops->wait(job, 0) != 0 || ops->clear(job, 0) != 0)
            return bad | PINGPONG_BAD_CALL;
        if (sh->pp.ball != 2 * i + 1)
            bad = PINGPONG_BAD_BALL;
        sh->pp.ball++;
        if (ops->set(job, 1) != 0)
            return bad | PINGPONG_BAD_CALL;
        sh->pp.proc[1].turns++;
    }
    return bad;
}

static int run_pingpong(const bench_ctx *ctx, uint64_t n, bench_run *out, event_job *job) {
    pingpong pp = {&job->sh->pp, job, {side_a, side_b}, "a wait returned early", NULL};
    return pingpong_run(ctx, n, out, &pp);
}

/* ---- per-impl setup ---- */

static int run_mproc(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    event_job job = {bench_shared_alloc(sizeof *job.sh), &mproc_ops, {NULL, NULL}};
    int rc = job.sh == NULL ? ENOMEM : mproc_event_create(&job.ev[0], NULL), result = -1;
    if (rc == 0)
        rc = mproc_event_create(&job.ev[1], NULL);
    if (rc != 0)
        bench_error(ctx, "setup: %s", mproc_strerror(rc));
    else
        result = run_pingpong(ctx, n, out, &job);
    for (int e = 0; e < 2; e++)
        if (job.ev[e] != NULL)
            mproc_event_close(job.ev[e]);
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

static int run_futex(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    event_job job = {bench_shared_alloc(sizeof *job.sh), &futex_ops, {NULL, NULL}};
    if (job.sh == NULL) {
        bench_error(ctx, "mmap failed");
        return -1;
    }
    int result = run_pingpong(ctx, n, out, &job);
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

static int run_pthread_cond(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    event_job job = {bench_shared_alloc(sizeof *job.sh), &pcond_ops, {NULL, NULL}};
    if (job.sh == NULL) {
        bench_error(ctx, "mmap failed");
        return -1;
    }
    pthread_mutexattr_t mattr;
    pthread_condattr_t cattr;
    pthread_mutexattr_init(&mattr);
    pthread_mutexattr_setpshared(&mattr, PTHREAD_PROCESS_SHARED);
    pthread_condattr_init(&cattr);
    pthread_condattr_setpshared(&cattr, PTHREAD_PROCESS_SHARED);
    int rc = 0, result = -1;
    for (int e = 0; e < 2 && rc == 0; e++) {
        rc = pthread_mutex_init(&job.sh->pcond[e].mutex, &mattr);
        if (rc == 0)
            rc = pthread_cond_init(&job.sh->pcond[e].cond, &cattr);
    }
    pthread_mutexattr_destroy(&mattr);
    pthread_condattr_destroy(&cattr);
    if (rc != 0)
        bench_error(ctx, "pthread init: error %d", rc);
    else
        result = run_pingpong(ctx, n, out, &job);
    /* Not destroyed: the memory goes, and a child may have died mid-wait. */
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

/* multiprocessing.Event as written, the same protocol, ball check and gate
 * (two pipes) as the C impls; SIGALRM ends a hung side. */
static const char python_event[] =
    "import signal\n"
    "def _side_a(e1, e2, ball, lo, hi):\n"
    "    bad = 0\n"
    "    for i in range(lo, hi):\n"
    "        ball.value += 1\n"
    "        e1.set()\n"
    "        e2.wait()\n"
    "        e2.clear()\n"
    "        bad |= ball.value != 2 * i + 2\n"
    "    return bad\n"
    "def _side_b(e1, e2, ball, lo, hi):\n"
    "    bad = 0\n"
    "    for i in range(lo, hi):\n"
    "        e1.wait()\n"
    "        e1.clear()\n"
    "        bad |= ball.value != 2 * i + 1\n"
    "        ball.value += 1\n"
    "        e2.set()\n"
    "    return bad\n"
    "def _worker(me, e1, e2, ball, res, warm, n, gate):\n"
    "    signal.alarm(120)\n"
    "    gate_pass(gate)\n"
    "    side = _side_a if me == 0 else _side_b\n"
    "    bad = side(e1, e2, ball, 0, warm)\n"
    "    t0 = perf_counter()\n"
    "    bad |= side(e1, e2, ball, warm, warm + n)\n"
    "    res[3 * me:3 * me + 3] = [t0, perf_counter(), float(bad)]\n"
    "def main():\n"
    "    warm = 10\n"
    "    def run(n):\n"
    "        e1, e2 = ctx.Event(), ctx.Event()\n"
    "        ball, res = ctx.RawValue('q', 0), ctx.RawArray('d', 6)\n"
    "        procs = run_gated(_worker, (e1, e2, ball, res, warm, n))\n"
    "        codes = [p.exitcode for p in procs]\n"
    "        if codes != [0, 0] or ball.value != 2 * (warm + n) or res[2] or res[5]:\n"
    "            raise BenchError('ball %d, want %d; exit codes %s; early wake %s'\n"
    "                             % (ball.value, 2 * (warm + n), codes, [res[2], res[5]]))\n"
    "        return n, max(res[1], res[4]) - min(res[0], res[3])\n"
    "    measure(run, 100)\n"
    "    note('Python %s; multiprocessing.Event set/wait/clear, %d untimed warm-up rounds; '\n"
    "         'ball exact in every rep' % (sys.version.split()[0], warm))\n";

static void report(const bench_def *def, const bench_result *res, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (res[i].status != BENCH_OK || res[i].nruns == 0)
            continue; /* the Python impl notes its own */
        bench_note(def, res[i].impl->name,
                   "ball and turns exact in every rep; context switches per round trip (both "
                   "processes, median of reps): %.2f voluntary (sleeps; 2 = every wait slept), "
                   "%.2f involuntary",
                   bench_extra_median(&res[i], 0), bench_extra_median(&res[i], 1));
    }
}

static const bench_def event_pingpong = {
    .name = "event_pingpong",
    .what = "2 processes pass a turn: A set(e1) wait(e2) clear(e2), B wait(e1) clear(e1) set(e2)",
    .kind = BENCH_PER_OP,
    .unit = "us",
    .scale = 1e6,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 100},
            {.name = "futex", .run = run_futex, .n0 = 100},
            {.name = "pthread_cond", .run = run_pthread_cond, .n0 = 100},
            {.name = "python_mp", .python = python_event},
        },
    .targets =
        {
            {"mproc", BENCH_AT_MOST, 5.0, NULL},
            {"python_mp", BENCH_AT_LEAST, 20.0, "mproc"},
        },
    .report = report,
};

BENCH_REGISTER(event_pingpong)
