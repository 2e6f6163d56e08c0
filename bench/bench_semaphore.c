/* SPDX-License-Identifier: MIT */
/*
 * semaphore_pingpong: two processes hand a turn back and forth through two
 * semaphores that start at 0:
 *
 *   A: release(s1); acquire(s2)            B: acquire(s1); release(s2)
 *
 * The figure is microseconds per round trip (two hops).  Both C impls run
 * the same loop through the same small table of calls.  The peers:
 *   posix_sem  glibc's sem_t, sem_init(pshared = 1) in shared memory.
 *   python_mp  multiprocessing.Semaphore (a POSIX semaphore underneath).
 *
 * As in event_pingpong (bench_event.c): children are forked before the
 * clock starts (bench_gate) and play a few untimed warm-up rounds; a shared
 * ball, bumped before each release, proves that no acquire returned early;
 * ball, turn counts and both semaphores' final counts (0) must be exact; the
 * context switches per round trip show how often an acquire slept.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <unistd.h>

#include <mproc.h>

#include "harness.h"
#include "pingpong.h"


/* Shared by the parent and both children (MAP_SHARED, inherited by fork). */
typedef struct sem_shared {
    struct {
        _Alignas(64) sem_t sem; /* the posix_sem impl */
    } posix[2];
    pingpong_state pp; /* ball, rounds, per-process figures */
} sem_shared;

typedef struct sem_job sem_job;

/* Each returns 0 on success; s is 0 (s1) or 1 (s2). */
typedef struct sem_ops {
    int (*release)(sem_job *job, int s);
    int (*acquire)(sem_job *job, int s);
    int (*value)(sem_job *job, int s, int *value);
} sem_ops;

struct sem_job {
    sem_shared *sh;
    const sem_ops *ops;
    mproc_semaphore *sem[2]; /* the mproc impl */
};

/* ---- the impls' calls ---- */

static int mproc_release(sem_job *job, int s) { return mproc_semaphore_release(job->sem[s], 1); }

static int mproc_acquire(sem_job *job, int s) {
    return mproc_semaphore_acquire(job->sem[s], MPROC_FOREVER);
}

static int sem_value_of(sem_job *job, int s, int *value) {
    return mproc_semaphore_value(job->sem[s], value);
}

static const sem_ops mproc_ops = {mproc_release, mproc_acquire, sem_value_of};

static int posix_release(sem_job *job, int s) { return sem_post(&job->sh->posix[s].sem); }

static int posix_acquire(sem_job *job, int s) {
    int rc;
    while ((rc = sem_wait(&job->sh->posix[s].sem)) != 0 && errno == EINTR)
        ;
    return rc;
}

static int posix_value(sem_job *job, int s, int *value) {
    return sem_getvalue(&job->sh->posix[s].sem, value);
}

static const sem_ops posix_ops = {posix_release, posix_acquire, posix_value};

/* ---- the two sides ---- */

/* Rounds [from, to).  Returns 0 or BAD_* bits. */
static int side_a(void *arg, uint64_t from, uint64_t to) {
    sem_job *job = arg;
    const sem_ops *ops = job->ops;
    sem_shared *sh = job->sh;
    int bad = 0;
    for (uint64_t i = from; i < to; i++) {
        sh->pp.ball++; /* 2i + 1: B's to check */
        if (ops->release(job, 0) != 0 || ops->acquire(job, 1) != 0)
            return bad | PINGPONG_BAD_CALL;
        if (sh->pp.ball != 2 * i + 2)
            bad = PINGPONG_BAD_BALL;
        sh->pp.proc[0].turns++;
    }
    return bad;
}

static int side_b(void *arg, uint64_t from, uint64_t to) {
    sem_job *job = arg;
    const sem_ops *ops = job->ops;
    sem_shared *sh = job->sh;
    int bad = 0;
    for (uint64_t i = from; i < to; i++) {
        if (ops->acquire(job, 0) != 0)
            return bad | PINGPONG_BAD_CALL;
        if (sh->pp.ball != 2 * i + 1)
            bad = PINGPONG_BAD_BALL;
        sh->pp.ball++;
        if (ops->release(job, 1) != 0)
            return bad | PINGPONG_BAD_CALL;
        sh->pp.proc[1].turns++;
    }
    return bad;
}

/* Both semaphores must end at 0: no permit made up or lost. */
static int check_counts(void *arg, char *why, size_t len) {
    sem_job *job = arg;
    int left[2] = {-1, -1};
    for (int s = 0; s < 2; s++)
        if (job->ops->value(job, s, &left[s]) != 0)
            left[s] = -1;
    if (left[0] == 0 && left[1] == 0)
        return 0;
    snprintf(why, len, "counts left %d/%d (want 0/0)", left[0], left[1]);
    return -1;
}

static int run_pingpong(const bench_ctx *ctx, uint64_t n, bench_run *out, sem_job *job) {
    pingpong pp = {&job->sh->pp, job, {side_a, side_b}, "an acquire returned early", check_counts};
    return pingpong_run(ctx, n, out, &pp);
}

/* ---- per-impl setup ---- */

static int run_mproc(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    sem_job job = {bench_shared_alloc(sizeof *job.sh), &mproc_ops, {NULL, NULL}};
    int rc = job.sh == NULL ? ENOMEM : mproc_semaphore_create(&job.sem[0], 0, NULL), result = -1;
    if (rc == 0)
        rc = mproc_semaphore_create(&job.sem[1], 0, NULL);
    if (rc != 0)
        bench_error(ctx, "setup: %s", mproc_strerror(rc));
    else
        result = run_pingpong(ctx, n, out, &job);
    for (int s = 0; s < 2; s++)
        if (job.sem[s] != NULL)
            mproc_semaphore_close(job.sem[s]);
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

static int run_posix_sem(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    sem_job job = {bench_shared_alloc(sizeof *job.sh), &posix_ops, {NULL, NULL}};
    if (job.sh == NULL) {
        bench_error(ctx, "mmap failed");
        return -1;
    }
    int result = -1;
    if (sem_init(&job.sh->posix[0].sem, 1, 0) != 0 || sem_init(&job.sh->posix[1].sem, 1, 0) != 0)
        bench_error(ctx, "sem_init: error %d", errno);
    else
        result = run_pingpong(ctx, n, out, &job);
    bench_shared_free(job.sh, sizeof *job.sh);
    return result;
}

/* multiprocessing.Semaphore as written: the same protocol, ball check and
 * gate (two pipes) as the C impls; SIGALRM ends a hung side. */
static const char python_semaphore[] =
    "import signal\n"
    "def _side_a(s1, s2, ball, lo, hi):\n"
    "    bad = 0\n"
    "    for i in range(lo, hi):\n"
    "        ball.value += 1\n"
    "        s1.release()\n"
    "        s2.acquire()\n"
    "        bad |= ball.value != 2 * i + 2\n"
    "    return bad\n"
    "def _side_b(s1, s2, ball, lo, hi):\n"
    "    bad = 0\n"
    "    for i in range(lo, hi):\n"
    "        s1.acquire()\n"
    "        bad |= ball.value != 2 * i + 1\n"
    "        ball.value += 1\n"
    "        s2.release()\n"
    "    return bad\n"
    "def _worker(me, s1, s2, ball, res, warm, n, gate):\n"
    "    signal.alarm(120)\n"
    "    gate_pass(gate)\n"
    "    side = _side_a if me == 0 else _side_b\n"
    "    bad = side(s1, s2, ball, 0, warm)\n"
    "    t0 = perf_counter()\n"
    "    bad |= side(s1, s2, ball, warm, warm + n)\n"
    "    res[3 * me:3 * me + 3] = [t0, perf_counter(), float(bad)]\n"
    "def main():\n"
    "    warm = 10\n"
    "    def run(n):\n"
    "        s1, s2 = ctx.Semaphore(0), ctx.Semaphore(0)\n"
    "        ball, res = ctx.RawValue('q', 0), ctx.RawArray('d', 6)\n"
    "        procs = run_gated(_worker, (s1, s2, ball, res, warm, n))\n"
    "        codes = [p.exitcode for p in procs]\n"
    "        left = [s1.get_value(), s2.get_value()]\n"
    "        if (codes != [0, 0] or ball.value != 2 * (warm + n) or res[2] or res[5]\n"
    "                or left != [0, 0]):\n"
    "            raise BenchError('ball %d, want %d; exit codes %s; early wake %s; left %s'\n"
    "                             % (ball.value, 2 * (warm + n), codes, [res[2], res[5]], left))\n"
    "        return n, max(res[1], res[4]) - min(res[0], res[3])\n"
    "    measure(run, 100)\n"
    "    note('Python %s; multiprocessing.Semaphore release/acquire, %d untimed warm-up '\n"
    "         'rounds; ball and final counts exact in every rep'\n"
    "         % (sys.version.split()[0], warm))\n";

static void report(const bench_def *def, const bench_result *res, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (res[i].status != BENCH_OK || res[i].nruns == 0)
            continue; /* the Python impl notes its own */
        bench_note(def, res[i].impl->name,
                   "ball, turns and final counts exact in every rep; context switches per round "
                   "trip (both processes, median of reps): %.2f voluntary (sleeps; 2 = every "
                   "acquire slept), %.2f involuntary",
                   bench_extra_median(&res[i], 0), bench_extra_median(&res[i], 1));
    }
}

static const bench_def semaphore_pingpong = {
    .name = "semaphore_pingpong",
    .what = "2 processes pass a turn: A release(s1) acquire(s2), B acquire(s1) release(s2)",
    .kind = BENCH_PER_OP,
    .unit = "us",
    .scale = 1e6,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 100},
            {.name = "posix_sem", .run = run_posix_sem, .n0 = 100},
            {.name = "python_mp", .python = python_semaphore},
        },
    .targets =
        {
            {"mproc", BENCH_AT_MOST, 1.0, "posix_sem"},
        },
    .report = report,
};

BENCH_REGISTER(semaphore_pingpong)
