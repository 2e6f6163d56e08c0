/* SPDX-License-Identifier: MIT */
/*
 * condition_handoff: a producer thread and a consumer thread of one process
 * pass items through a one-slot mailbox guarded by one condition:
 *
 *   producer: with cond: while full: wait; put item i; notify
 *   consumer: with cond: while empty: wait; take; notify
 *
 * The figure is hand-offs (items) per second.  Every impl runs the same loop
 * through the same small table of calls.  The impls:
 *   mproc             mproc_condition over its own RLock (the default).
 *   mproc_lock        mproc_condition over an mproc_lock (information only).
 *   pthread_cond      a process-private pthread mutex + condition variable.
 *   python_threading  threading.Condition (the Python peer of a thread-level
 *                     condition; multiprocessing.Condition would only be
 *                     slower).
 *
 * The threads are created before the clock starts, meet at a barrier, then
 * stamp their own start and end; the run lasts from the first start to the
 * last end.  The consumer must take exactly items 1..n in order, or the run
 * fails.  Each thread's voluntary context switches (sleeps in the kernel)
 * and waits are counted and reported per hand-off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mproc.h>

#include "harness.h"

#define RUN_ALARM_S 120 /* a lost wake-up kills the bench instead of hanging it */

typedef struct cond_job cond_job;

/* Each returns 0 on success. */
typedef struct cond_ops {
    int (*lock)(cond_job *job);
    int (*unlock)(cond_job *job);
    int (*wait)(cond_job *job);
    int (*notify)(cond_job *job);
} cond_ops;

typedef struct cond_side {
    double t0, t1;
    uint64_t waits;
    long nvcsw;
    int bad;
} cond_side;

struct cond_job {
    const cond_ops *ops;
    uint64_t n;
    pthread_barrier_t start;
    /* The mailbox: guarded by the condition's lock. */
    uint64_t slot;
    int full;
    /* Written only by the consumer. */
    uint64_t taken, misordered;
    cond_side side[2]; /* [0] producer, [1] consumer: each written by its own thread */
    mproc_condition *cond;
    pthread_mutex_t mutex;
    pthread_cond_t pcond;
};

/* ---- the impls' calls ---- */

static int mproc_lock_cond(cond_job *job) {
    return mproc_condition_acquire(job->cond, MPROC_FOREVER);
}
static int mproc_unlock_cond(cond_job *job) { return mproc_condition_release(job->cond); }
static int mproc_wait(cond_job *job) { return mproc_condition_wait(job->cond, MPROC_FOREVER); }
static int mproc_notify(cond_job *job) { return mproc_condition_notify(job->cond, 1); }

static const cond_ops mproc_ops = {mproc_lock_cond, mproc_unlock_cond, mproc_wait, mproc_notify};

static int pthread_lock(cond_job *job) { return pthread_mutex_lock(&job->mutex); }
static int pthread_unlock(cond_job *job) { return pthread_mutex_unlock(&job->mutex); }
static int pthread_wait(cond_job *job) { return pthread_cond_wait(&job->pcond, &job->mutex); }
static int pthread_notify(cond_job *job) { return pthread_cond_signal(&job->pcond); }

static const cond_ops pthread_ops = {pthread_lock, pthread_unlock, pthread_wait, pthread_notify};

/* ---- the two threads ---- */

static void side_start(cond_job *job, cond_side *me, struct rusage *r0) {
    pthread_barrier_wait(&job->start);
    getrusage(RUSAGE_THREAD, r0);
    me->t0 = bench_now();
}

static void side_end(cond_side *me, const struct rusage *r0) {
    me->t1 = bench_now();
    struct rusage r1;
    getrusage(RUSAGE_THREAD, &r1);
    me->nvcsw = r1.ru_nvcsw - r0->ru_nvcsw;
}

/* A failed call stops the thread; the other one then hangs until the alarm. */
static void *producer(void *arg) {
    cond_job *job = arg;
    const cond_ops *ops = job->ops;
    cond_side *me = &job->side[0];
    struct rusage r0;
    uint64_t waits = 0;
    side_start(job, me, &r0);
    for (uint64_t i = 1; i <= job->n && !me->bad; i++) {
        if (ops->lock(job) != 0) {
            me->bad = 1;
            break;
        }
        while (job->full && !me->bad) {
            waits++;
            me->bad = ops->wait(job) != 0;
        }
        job->slot = i;
        job->full = 1;
        me->bad |= ops->notify(job) != 0;
        me->bad |= ops->unlock(job) != 0;
    }
    side_end(me, &r0);
    me->waits = waits;
    return NULL;
}

static void *consumer(void *arg) {
    cond_job *job = arg;
    const cond_ops *ops = job->ops;
    cond_side *me = &job->side[1];
    struct rusage r0;
    uint64_t waits = 0;
    side_start(job, me, &r0);
    for (uint64_t i = 1; i <= job->n && !me->bad; i++) {
        if (ops->lock(job) != 0) {
            me->bad = 1;
            break;
        }
        while (!job->full && !me->bad) {
            waits++;
            me->bad = ops->wait(job) != 0;
        }
        job->misordered += job->slot != i;
        job->taken++;
        job->full = 0;
        me->bad |= ops->notify(job) != 0;
        me->bad |= ops->unlock(job) != 0;
    }
    side_end(me, &r0);
    me->waits = waits;
    return NULL;
}

static int run_handoff(const bench_ctx *ctx, uint64_t n, bench_run *out, cond_job *job) {
    job->n = n;
    pthread_t threads[2];
    if (pthread_barrier_init(&job->start, NULL, 2) != 0) {
        bench_error(ctx, "pthread_barrier_init failed");
        return -1;
    }
    alarm(RUN_ALARM_S);
    int rc = pthread_create(&threads[0], NULL, producer, job);
    if (rc == 0 && (rc = pthread_create(&threads[1], NULL, consumer, job)) != 0) {
        job->side[0].bad = 1; /* the producer waits at the barrier: only the alarm ends it */
        pthread_join(threads[0], NULL);
    }
    if (rc == 0) {
        pthread_join(threads[0], NULL);
        pthread_join(threads[1], NULL);
    }
    alarm(0);
    pthread_barrier_destroy(&job->start);
    if (rc != 0) {
        bench_error(ctx, "pthread_create: error %d", rc);
        return -1;
    }
    if (job->side[0].bad || job->side[1].bad || job->taken != n || job->misordered != 0 ||
        job->full) {
        bench_error(ctx, "%llu of %llu items taken, %llu out of order%s",
                    (unsigned long long)job->taken, (unsigned long long)n,
                    (unsigned long long)job->misordered,
                    job->side[0].bad || job->side[1].bad ? "; a condition call failed" : "");
        return -1;
    }
    double t0 = job->side[0].t0 < job->side[1].t0 ? job->side[0].t0 : job->side[1].t0;
    double t1 = job->side[0].t1 > job->side[1].t1 ? job->side[0].t1 : job->side[1].t1;
    out->ops = n;
    out->seconds = t1 - t0;
    out->extra[0] = (double)(job->side[0].nvcsw + job->side[1].nvcsw) / (double)n;
    out->extra[1] = (double)(job->side[0].waits + job->side[1].waits) / (double)n;
    return 0;
}

/* ---- per-impl setup ---- */

static int run_mproc_common(const bench_ctx *ctx, uint64_t n, bench_run *out, int over_lock) {
    cond_job *job = calloc(1, sizeof *job);
    mproc_lock *lock = NULL;
    int rc = job == NULL ? ENOMEM : 0, result = -1;
    if (rc == 0 && over_lock)
        rc = mproc_lock_create(&lock, NULL);
    if (rc == 0)
        rc = mproc_condition_create(&job->cond, lock, NULL, NULL);
    if (rc != 0) {
        bench_error(ctx, "setup: %s", mproc_strerror(rc));
    } else {
        job->ops = &mproc_ops;
        result = run_handoff(ctx, n, out, job);
    }
    if (job != NULL && job->cond != NULL)
        mproc_condition_close(job->cond);
    if (lock != NULL)
        mproc_lock_close(lock);
    free(job);
    return result;
}

static int run_mproc(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_mproc_common(ctx, n, out, 0);
}

static int run_mproc_lock(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_mproc_common(ctx, n, out, 1);
}

static int run_pthread_cond(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    cond_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        bench_error(ctx, "out of memory");
        return -1;
    }
    job->ops = &pthread_ops;
    pthread_mutex_init(&job->mutex, NULL);
    pthread_cond_init(&job->pcond, NULL);
    int result = run_handoff(ctx, n, out, job);
    pthread_cond_destroy(&job->pcond);
    pthread_mutex_destroy(&job->mutex);
    free(job);
    return result;
}

/* threading.Condition as written, the same loops and order check. */
static const char python_condition[] =
    "import threading\n"
    "def main():\n"
    "    def run(n):\n"
    "        cond = threading.Condition()\n"
    "        box = [0, False, 0, 0]  # slot, full, taken, misordered\n"
    "        start = threading.Barrier(2)\n"
    "        times = [0.0] * 4\n"
    "        def producer():\n"
    "            start.wait()\n"
    "            times[0] = perf_counter()\n"
    "            for i in range(1, n + 1):\n"
    "                with cond:\n"
    "                    while box[1]:\n"
    "                        cond.wait()\n"
    "                    box[0] = i\n"
    "                    box[1] = True\n"
    "                    cond.notify()\n"
    "            times[1] = perf_counter()\n"
    "        def consumer():\n"
    "            start.wait()\n"
    "            times[2] = perf_counter()\n"
    "            for i in range(1, n + 1):\n"
    "                with cond:\n"
    "                    while not box[1]:\n"
    "                        cond.wait()\n"
    "                    if box[0] != i:\n"
    "                        box[3] += 1\n"
    "                    box[2] += 1\n"
    "                    box[1] = False\n"
    "                    cond.notify()\n"
    "            times[3] = perf_counter()\n"
    "        threads = [threading.Thread(target=f) for f in (producer, consumer)]\n"
    "        for t in threads:\n"
    "            t.start()\n"
    "        for t in threads:\n"
    "            t.join()\n"
    "        if box[2] != n or box[3] or box[1]:\n"
    "            raise BenchError('%d of %d items taken, %d out of order' % (box[2], n, box[3]))\n"
    "        return n, max(times[1], times[3]) - min(times[0], times[2])\n"
    "    measure(run, 1000)\n"
    "    note('Python %s; threading.Condition, two threads; items exact and in order in '\n"
    "         'every rep' % sys.version.split()[0])\n";

static void report(const bench_def *def, const bench_result *res, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (res[i].status != BENCH_OK || res[i].nruns == 0)
            continue; /* the Python impl notes its own */
        bench_note(def, res[i].impl->name,
                   "items exact and in order in every rep; per hand-off (both threads, median "
                   "of reps): %.2f voluntary context switches (sleeps), %.2f waits",
                   bench_extra_median(&res[i], 0), bench_extra_median(&res[i], 1));
    }
}

static const bench_def condition_handoff = {
    .name = "condition_handoff",
    .what = "producer and consumer threads pass items through a one-slot mailbox + condition",
    .kind = BENCH_RATE,
    .unit = "ops/s",
    .scale = 1,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 1000},
            {.name = "mproc_lock", .run = run_mproc_lock, .n0 = 1000},
            {.name = "pthread_cond", .run = run_pthread_cond, .n0 = 1000},
            {.name = "python_threading", .python = python_condition},
        },
    .targets =
        {
            {"mproc", BENCH_AT_LEAST, 1.0, "pthread_cond"},
        },
    .report = report,
};

BENCH_REGISTER(condition_handoff)
