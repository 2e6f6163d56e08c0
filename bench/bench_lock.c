/* SPDX-License-Identifier: MIT */
/*
 * lock_uncontended: the cost of acquire + release when nobody else wants
 * the lock, one thread — the path every lock user pays on every use.
 *
 * Every C impl runs the same critical section (one volatile increment) in
 * the same loop shape, so the lock calls are the only difference.  The
 * increments are counted and must equal n: an acquire that failed silently
 * (MPROC_WITH skips its body then) fails the run instead of looking fast.
 * Each run makes a fresh lock, outside the timed loop.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include <mproc.h>

#include "harness.h"

/* The critical section; volatile, so the compiler keeps one load and store
 * per iteration and cannot merge or hoist them across the lock calls. */
static volatile uint64_t sink;

static int finish(const bench_ctx *ctx, uint64_t n, uint64_t done, int bad, double seconds,
                  bench_run *out) {
    if (done != n || bad) {
        bench_error(ctx, "%llu of %llu critical sections ran%s", (unsigned long long)done,
                    (unsigned long long)n, bad ? "; a release failed" : "");
        return -1;
    }
    out->ops = n;
    out->seconds = seconds;
    return 0;
}

/* The timed loop of the function-call impls; ACQUIRE and RELEASE return 0
 * on success, and `result` receives finish()'s verdict. */
#define UNCONTENDED(ctx, n, out, result, ACQUIRE, RELEASE)                                 \
    do {                                                                                   \
        uint64_t before_ = sink;                                                           \
        int bad_ = 0;                                                                      \
        double t0_ = bench_now();                                                          \
        for (uint64_t i_ = 0; i_ < (n); i_++) {                                            \
            if ((ACQUIRE) != 0)                                                            \
                break;                                                                     \
            sink++;                                                                        \
            bad_ |= (RELEASE);                                                             \
        }                                                                                  \
        double t1_ = bench_now();                                                          \
        (result) = finish(ctx, n, sink - before_, bad_, t1_ - t0_, out);                   \
    } while (0)

static int run_mproc(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    mproc_lock *lock;
    int rc = mproc_lock_create(&lock, NULL), result;
    if (rc != 0) {
        bench_error(ctx, "mproc_lock_create: %s", mproc_strerror(rc));
        return -1;
    }
    UNCONTENDED(ctx, n, out, result, mproc_lock_acquire(lock, MPROC_FOREVER),
                mproc_lock_release(lock));
    mproc_lock_close(lock);
    return result;
}

static int run_mproc_with(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    mproc_lock *lock;
    int rc = mproc_lock_create(&lock, NULL);
    if (rc != 0) {
        bench_error(ctx, "mproc_lock_create: %s", mproc_strerror(rc));
        return -1;
    }
    uint64_t before = sink;
    double t0 = bench_now();
    for (uint64_t i = 0; i < n; i++)
        MPROC_WITH(lock) {
            sink++;
        }
    double t1 = bench_now();
    /* MPROC_WITH drops release's code by design: the count proves that
     * every acquire succeeded, and a lock left free proves the releases. */
    int bad = mproc_lock_acquire(lock, 0) != 0 || mproc_lock_release(lock) != 0;
    mproc_lock_close(lock);
    return finish(ctx, n, sink - before, bad, t1 - t0, out);
}

static int run_mproc_rlock(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    mproc_rlock *rlock;
    int rc = mproc_rlock_create(&rlock, NULL), result;
    if (rc != 0) {
        bench_error(ctx, "mproc_rlock_create: %s", mproc_strerror(rc));
        return -1;
    }
    UNCONTENDED(ctx, n, out, result, mproc_rlock_acquire(rlock, MPROC_FOREVER),
                mproc_rlock_release(rlock));
    mproc_rlock_close(rlock);
    return result;
}

/* A glibc mutex the way a C programmer shares one between processes: in
 * MAP_SHARED|MAP_ANONYMOUS memory, PTHREAD_PROCESS_SHARED. */
static int run_pthread_common(const bench_ctx *ctx, uint64_t n, bench_run *out, int robust) {
    pthread_mutex_t *mutex = bench_shared_alloc(sizeof *mutex);
    pthread_mutexattr_t attr;
    int result = -1;
    if (mutex == NULL) {
        bench_error(ctx, "mmap failed");
        return -1;
    }
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (robust)
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        bench_error(ctx, "pthread_mutex_init: error %d", rc);
    } else {
        UNCONTENDED(ctx, n, out, result, pthread_mutex_lock(mutex), pthread_mutex_unlock(mutex));
        pthread_mutex_destroy(mutex);
    }
    bench_shared_free(mutex, sizeof *mutex);
    return result;
}

static int run_pthread_robust(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_pthread_common(ctx, n, out, 1);
}

static int run_pthread(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_pthread_common(ctx, n, out, 0);
}

/* Python's idiom as written, attribute lookups included: that is what a
 * Python user pays.  The loop's own cost is measured and reported, never
 * subtracted, so the comparison errs in Python's disfavour by that much. */
static const char python_lock[] =
    "def main():\n"
    "    lock = ctx.Lock()\n"
    "    def run(n):\n"
    "        t0 = perf_counter()\n"
    "        for _ in range(n):\n"
    "            lock.acquire()\n"
    "            lock.release()\n"
    "        return n, perf_counter() - t0\n"
    "    measure(run)\n"
    "    loop = min(_empty_loop(1000000) for _ in range(3))\n"
    "    note('Python %s; lock.acquire(); lock.release() on multiprocessing.Lock, '\n"
    "         'timed with time.perf_counter; loop overhead NOT subtracted '\n"
    "         '(an empty for loop costs %.1f ns per iteration here)'\n"
    "         % (sys.version.split()[0], loop * 1e9))\n"
    "def _empty_loop(n):\n"
    "    t0 = perf_counter()\n"
    "    for _ in range(n):\n"
    "        pass\n"
    "    return (perf_counter() - t0) / n\n";

static const bench_def lock_uncontended = {
    .name = "lock_uncontended",
    .what = "acquire+release of a free lock, one thread, same volatile-increment body",
    .kind = BENCH_PER_OP,
    .unit = "ns",
    .scale = 1e9,
    .impls =
        {
            {.name = "mproc", .run = run_mproc},
            {.name = "mproc_with", .run = run_mproc_with},
            {.name = "mproc_rlock", .run = run_mproc_rlock},
            {.name = "pthread_robust", .run = run_pthread_robust},
            {.name = "pthread", .run = run_pthread},
            {.name = "python_mp", .python = python_lock},
        },
    .targets =
        {
            {"mproc", BENCH_AT_MOST, 1.0, "pthread_robust"},
            {"mproc_with", BENCH_AT_MOST, 1.05, "mproc"},
        },
};

BENCH_REGISTER(lock_uncontended)
