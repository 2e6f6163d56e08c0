/* SPDX-License-Identifier: MIT */
/*
 * Semaphore and BoundedSemaphore between the threads of one process,
 * anonymous and named: argument codes, timeouts, exact counts, release(n)
 * waking exactly n sleepers, the bound, kinds on attach, MPROC_WITH, and
 * two stress tests whose totals must come out exact.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

enum kind { UNBOUNDED, BOUNDED };

typedef struct fixture {
    mproc_semaphore *sem;
    const char *name; /* NULL: anonymous */
} fixture;

static void make(fixture *f, enum kind kind, bool named, int value) {
    f->name = named ? t_name("semth") : NULL;
    int flags = MPROC_CREATE | MPROC_EXCL;
    int rc;
    if (kind == BOUNDED)
        rc = named ? mproc_bounded_semaphore_open(&f->sem, f->name, flags, value, NULL)
                   : mproc_bounded_semaphore_create(&f->sem, value, NULL);
    else
        rc = named ? mproc_semaphore_open(&f->sem, f->name, flags, value, NULL)
                   : mproc_semaphore_create(&f->sem, value, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
}

static void unmake(fixture *f) {
    cr_assert_eq(mproc_semaphore_close(f->sem), 0);
    if (f->name != NULL)
        cr_assert_eq(mproc_unlink(f->name), 0);
}

static int value_of(const mproc_semaphore *sem) {
    int value = -1;
    cr_assert_eq(mproc_semaphore_value(sem, &value), 0);
    return value;
}

static int max_of(const mproc_semaphore *sem) {
    int max = -1;
    cr_assert_eq(mproc_semaphore_max(sem, &max), 0);
    return max;
}

/* Lets time pass; used only where a test proves that nothing happens. */
static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- arguments ---- */

Test(semaphore_threads, bad_arguments_are_einval) {
    mproc_semaphore *sem = NULL;
    const char *name = t_name("semarg");
    mproc_semaphore_options reserved = {.reserved = {[3] = 1}};
    /* Negative value, both kinds, both constructors; nothing is created. */
    cr_assert_eq(mproc_semaphore_create(&sem, -1, NULL), EINVAL);
    cr_assert_eq(mproc_bounded_semaphore_create(&sem, -1, NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_create(&sem, INT_MIN, NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_open(&sem, name, MPROC_CREATE, -1, NULL), EINVAL);
    cr_assert_eq(mproc_bounded_semaphore_open(&sem, name, MPROC_CREATE, -1, NULL), EINVAL);
    cr_assert_eq(mproc_unlink(name), ENOENT);
    /* NULL out, NULL name, reserved options. */
    cr_assert_eq(mproc_semaphore_create(NULL, 1, NULL), EINVAL);
    cr_assert_eq(mproc_bounded_semaphore_create(NULL, 1, NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_open(NULL, name, MPROC_CREATE, 1, NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_open(&sem, NULL, MPROC_CREATE, 1, NULL), EINVAL);
    cr_assert_eq(mproc_bounded_semaphore_open(&sem, NULL, MPROC_CREATE, 1, NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_create(&sem, 1, &reserved), EINVAL);
    cr_assert_eq(mproc_bounded_semaphore_create(&sem, 1, &reserved), EINVAL);
    cr_assert_eq(mproc_semaphore_open(&sem, name, MPROC_CREATE, 1, &reserved), EINVAL);
    cr_assert_eq(mproc_unlink(name), ENOENT);
    cr_assert_null(sem);
    /* NULL handles. */
    int out;
    cr_assert_eq(mproc_semaphore_acquire(NULL, 0), EINVAL);
    cr_assert_eq(mproc_semaphore_acquire(NULL, MPROC_FOREVER), EINVAL);
    cr_assert_eq(mproc_semaphore_release(NULL, 1), EINVAL);
    cr_assert_eq(mproc_semaphore_value(NULL, &out), EINVAL);
    cr_assert_eq(mproc_semaphore_max(NULL, &out), EINVAL);
    cr_assert_eq(mproc_semaphore_close(NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_create(&sem, 1, NULL), 0);
    cr_assert_eq(mproc_semaphore_value(sem, NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_max(sem, NULL), EINVAL);
    cr_assert_eq(mproc_semaphore_close(sem), 0);
}

static void check_nan_and_release_zero(enum kind kind, bool named) {
    fixture f;
    make(&f, kind, named, 1);
    /* NaN is EINVAL even when a permit is there, and takes nothing. */
    cr_assert_eq(mproc_semaphore_acquire(f.sem, NAN), EINVAL);
    cr_assert_eq(value_of(f.sem), 1);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, NAN), EINVAL);
    /* release(0) is EINVAL and gives nothing. */
    cr_assert_eq(mproc_semaphore_release(f.sem, 0), EINVAL);
    cr_assert_eq(value_of(f.sem), 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, 0), EINVAL);
    cr_assert_eq(value_of(f.sem), 1);
    unmake(&f);
}

Test(semaphore_threads, nan_timeout_and_release_zero_are_einval_and_change_nothing) {
    check_nan_and_release_zero(UNBOUNDED, false);
    check_nan_and_release_zero(UNBOUNDED, true);
    check_nan_and_release_zero(BOUNDED, false);
    check_nan_and_release_zero(BOUNDED, true);
}

/* ---- timeouts and counts ---- */

static void check_timeouts(enum kind kind, bool named) {
    fixture f;
    make(&f, kind, named, 1); /* bound 1 when bounded: room for a release */
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    double t0 = t_now();
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), ETIMEDOUT);
    cr_assert_lt(t_now() - t0, 0.05, "acquire(0) must not wait");
    t0 = t_now();
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0.1), ETIMEDOUT);
    double waited = t_now() - t0;
    cr_assert_geq(waited, 0.1);
    cr_assert_lt(waited, 1.0); /* loose: a loaded 2-vCPU machine */
    /* The timed-out waiter withdrew: the next permit stays for whoever asks. */
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), 0);
    cr_assert_eq(value_of(f.sem), 1);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    cr_assert_eq(value_of(f.sem), 0);
    unmake(&f);
}

Test(semaphore_threads, empty_acquire_times_out_at_once_or_after_its_timeout_anonymous) {
    check_timeouts(UNBOUNDED, false);
    check_timeouts(BOUNDED, false);
}
Test(semaphore_threads, empty_acquire_times_out_at_once_or_after_its_timeout_named) {
    check_timeouts(UNBOUNDED, true);
    check_timeouts(BOUNDED, true);
}

static void check_value_snapshots(enum kind kind, bool named) {
    fixture f;
    make(&f, kind, named, 3);
    cr_assert_eq(value_of(f.sem), 3);
    cr_assert_eq(max_of(f.sem), kind == BOUNDED ? 3 : MPROC_SEMAPHORE_VALUE_MAX);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, MPROC_FOREVER), 0);
    cr_assert_eq(value_of(f.sem), 1);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0.5), 0);
    cr_assert_eq(value_of(f.sem), 0);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), ETIMEDOUT);
    cr_assert_eq(value_of(f.sem), 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, 2), 0);
    cr_assert_eq(value_of(f.sem), 2);
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), 0);
    cr_assert_eq(value_of(f.sem), 3);
    for (int i = 3; i > 0; i--)
        cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    cr_assert_eq(value_of(f.sem), 0);
    unmake(&f);
}

Test(semaphore_threads, value_snapshot_is_exact_after_acquires_and_releases) {
    check_value_snapshots(UNBOUNDED, false);
    check_value_snapshots(UNBOUNDED, true);
    check_value_snapshots(BOUNDED, false);
    check_value_snapshots(BOUNDED, true);
}

/* ---- waking ---- */

struct waiter {
    mproc_semaphore *sem;
    double timeout;
    _Atomic pid_t tid; /* 0 until the thread runs */
    _Atomic int rc;    /* -1 until its acquire returns */
};

static void *wait_for_permit(void *arg) {
    struct waiter *w = arg;
    atomic_store(&w->tid, gettid());
    atomic_store(&w->rc, mproc_semaphore_acquire(w->sem, w->timeout));
    return NULL;
}

/* Starts a thread blocked in acquire, and returns once it sleeps in the
 * kernel (so a release must wake it, not merely be seen by a spinner). */
static void start_sleeper(struct waiter *w, pthread_t *th, mproc_semaphore *sem,
                          double timeout) {
    w->sem = sem;
    w->timeout = timeout;
    atomic_init(&w->tid, 0);
    atomic_init(&w->rc, -1);
    cr_assert_eq(pthread_create(th, NULL, wait_for_permit, w), 0);
    double end = t_now() + BOUND;
    while (atomic_load(&w->tid) == 0 && t_now() < end)
        sched_yield();
    cr_assert_neq(atomic_load(&w->tid), 0);
    cr_assert(t_wait_sleeping(atomic_load(&w->tid), BOUND), "waiter never went to sleep");
}

static int returned(struct waiter *w, int n) {
    int count = 0;
    for (int i = 0; i < n; i++)
        count += atomic_load(&w[i].rc) != -1;
    return count;
}

/* Waits (bounded) until `want` of the waiters returned; the count seen. */
static int await_returned(struct waiter *w, int n, int want) {
    double end = t_now() + BOUND;
    while (returned(w, n) < want && t_now() < end)
        sched_yield();
    return returned(w, n);
}

#define SLEEPERS 5

static void check_release_n_wakes_n(bool named) {
    fixture f;
    make(&f, UNBOUNDED, named, 0);
    struct waiter w[SLEEPERS];
    pthread_t th[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        start_sleeper(&w[i], &th[i], f.sem, BOUND);
    double t0 = t_now();
    cr_assert_eq(mproc_semaphore_release(f.sem, 2), 0);
    cr_assert_eq(await_returned(w, SLEEPERS, 2), 2);
    /* Wake-up latency is tens of microseconds; 0.5 s leaves room for load. */
    cr_assert_lt(t_now() - t0, 0.5);
    /* Exactly two: the other three stay asleep and the count stays 0. */
    nap(0.05);
    cr_assert_eq(returned(w, SLEEPERS), 2);
    cr_assert_eq(value_of(f.sem), 0);
    for (int i = 0; i < SLEEPERS; i++) {
        if (atomic_load(&w[i].rc) == -1)
            cr_assert(t_wait_sleeping(atomic_load(&w[i].tid), BOUND));
        else
            cr_assert_eq(atomic_load(&w[i].rc), 0);
    }
    /* release(3) frees the rest, each with one permit. */
    cr_assert_eq(mproc_semaphore_release(f.sem, 3), 0);
    cr_assert_eq(await_returned(w, SLEEPERS, SLEEPERS), SLEEPERS);
    for (int i = 0; i < SLEEPERS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(atomic_load(&w[i].rc), 0);
    }
    cr_assert_eq(value_of(f.sem), 0);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), ETIMEDOUT);
    unmake(&f);
}

Test(semaphore_threads, release_n_wakes_exactly_n_sleepers_anonymous) {
    check_release_n_wakes_n(false);
}
Test(semaphore_threads, release_n_wakes_exactly_n_sleepers_named) {
    check_release_n_wakes_n(true);
}

Test(semaphore_threads, a_sleeper_that_timed_out_claims_no_later_permit) {
    fixture f;
    make(&f, UNBOUNDED, false, 0);
    /* A sleeper that times out withdraws: its ETIMEDOUT comes in bound. */
    struct waiter timed, live;
    pthread_t th_timed, th_live;
    double t0 = t_now();
    start_sleeper(&timed, &th_timed, f.sem, 0.5);
    pthread_join(th_timed, NULL);
    double waited = t_now() - t0;
    cr_assert_eq(atomic_load(&timed.rc), ETIMEDOUT);
    cr_assert_geq(waited, 0.5);
    cr_assert_lt(waited, 1.5); /* loose: a loaded 2-vCPU machine */
    /* A release reaches the next real sleeper, not the one that left. */
    start_sleeper(&live, &th_live, f.sem, BOUND);
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), 0);
    cr_assert_eq(await_returned(&live, 1, 1), 1);
    pthread_join(th_live, NULL);
    cr_assert_eq(atomic_load(&live.rc), 0);
    /* Nobody waits now: a permit released stays in the count. */
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), 0);
    cr_assert_eq(value_of(f.sem), 1);
    unmake(&f);
}

/* ---- the bound ---- */

static void check_bounded_over_release(bool named) {
    fixture f;
    make(&f, BOUNDED, named, 2);
    cr_assert_eq(max_of(f.sem), 2);
    /* At the bound: one more is EOVERFLOW and the count stays. */
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), EOVERFLOW);
    cr_assert_eq(value_of(f.sem), 2);
    /* One below: release(2) would pass it, so nothing at all is released. */
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, 2), EOVERFLOW);
    cr_assert_eq(value_of(f.sem), 1);
    cr_assert_eq(mproc_semaphore_release(f.sem, UINT_MAX), EOVERFLOW);
    cr_assert_eq(value_of(f.sem), 1);
    /* Back to the bound exactly is fine. */
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, 2), 0);
    cr_assert_eq(value_of(f.sem), 2);
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), EOVERFLOW);
    unmake(&f);
}

Test(semaphore_threads, bounded_over_release_is_eoverflow_and_changes_nothing) {
    check_bounded_over_release(false);
    check_bounded_over_release(true);
}

Test(semaphore_threads, bounded_semaphore_of_zero_is_allowed_and_never_releases) {
    fixture f;
    make(&f, BOUNDED, false, 0);
    cr_assert_eq(value_of(f.sem), 0);
    cr_assert_eq(max_of(f.sem), 0);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), ETIMEDOUT);
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), EOVERFLOW);
    cr_assert_eq(value_of(f.sem), 0);
    unmake(&f);
}

Test(semaphore_threads, unbounded_release_past_value_max_is_eoverflow) {
    fixture f;
    make(&f, UNBOUNDED, false, MPROC_SEMAPHORE_VALUE_MAX);
    cr_assert_eq(max_of(f.sem), MPROC_SEMAPHORE_VALUE_MAX);
    cr_assert_eq(value_of(f.sem), MPROC_SEMAPHORE_VALUE_MAX);
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), EOVERFLOW);
    cr_assert_eq(value_of(f.sem), MPROC_SEMAPHORE_VALUE_MAX);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, 2), EOVERFLOW);
    cr_assert_eq(value_of(f.sem), MPROC_SEMAPHORE_VALUE_MAX - 1);
    cr_assert_eq(mproc_semaphore_release(f.sem, 1), 0);
    cr_assert_eq(value_of(f.sem), MPROC_SEMAPHORE_VALUE_MAX);
    unmake(&f);

    /* From 0: a huge n is refused whole; exactly the maximum is accepted. */
    make(&f, UNBOUNDED, false, 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, UINT_MAX), EOVERFLOW);
    unsigned past_max = (unsigned)MPROC_SEMAPHORE_VALUE_MAX + 1;
    cr_assert_eq(mproc_semaphore_release(f.sem, past_max), EOVERFLOW);
    cr_assert_eq(value_of(f.sem), 0);
    cr_assert_eq(mproc_semaphore_release(f.sem, MPROC_SEMAPHORE_VALUE_MAX), 0);
    cr_assert_eq(value_of(f.sem), MPROC_SEMAPHORE_VALUE_MAX);
    unmake(&f);
}

/* ---- names ---- */

Test(semaphore_threads, opening_one_kind_as_the_other_is_mproc_e_kind) {
    const char *bounded = t_name("semkb");
    const char *plain = t_name("semkp");
    mproc_semaphore *a, *b;
    cr_assert_eq(mproc_bounded_semaphore_open(&a, bounded, MPROC_CREATE | MPROC_EXCL, 1, NULL), 0);
    cr_assert_eq(mproc_semaphore_open(&b, bounded, MPROC_ATTACH, 1, NULL), MPROC_E_KIND);
    cr_assert_eq(mproc_semaphore_open(&b, bounded, MPROC_CREATE, 1, NULL), MPROC_E_KIND);
    cr_assert_eq(mproc_semaphore_close(a), 0);
    cr_assert_eq(mproc_semaphore_open(&a, plain, MPROC_CREATE | MPROC_EXCL, 1, NULL), 0);
    cr_assert_eq(mproc_bounded_semaphore_open(&b, plain, MPROC_ATTACH, 1, NULL), MPROC_E_KIND);
    cr_assert_eq(mproc_semaphore_close(a), 0);
    cr_assert_eq(mproc_unlink(bounded), 0);
    cr_assert_eq(mproc_unlink(plain), 0);
}

Test(semaphore_threads, value_is_ignored_on_attach_but_still_validated) {
    const char *name = t_name("semat");
    mproc_semaphore *a, *b, *c;
    cr_assert_eq(mproc_semaphore_open(&a, name, MPROC_CREATE | MPROC_EXCL, 3, NULL), 0);
    cr_assert_eq(mproc_semaphore_open(&b, name, MPROC_ATTACH, 7, NULL), 0);
    cr_assert_eq(mproc_semaphore_open(&c, name, MPROC_CREATE, 9, NULL), 0);
    cr_assert_eq(value_of(b), 3);
    cr_assert_eq(value_of(c), 3);
    mproc_semaphore *bad = NULL;
    cr_assert_eq(mproc_semaphore_open(&bad, name, MPROC_ATTACH, -1, NULL), EINVAL);
    cr_assert_null(bad);
    cr_assert_eq(mproc_semaphore_close(a), 0);
    cr_assert_eq(mproc_semaphore_close(b), 0);
    cr_assert_eq(mproc_semaphore_close(c), 0);
    cr_assert_eq(mproc_unlink(name), 0);

    /* Bounded: the bound is the creator's value, whatever the attacher says. */
    name = t_name("semab");
    cr_assert_eq(mproc_bounded_semaphore_open(&a, name, MPROC_CREATE | MPROC_EXCL, 2, NULL), 0);
    cr_assert_eq(mproc_bounded_semaphore_open(&b, name, MPROC_ATTACH, 5, NULL), 0);
    cr_assert_eq(max_of(b), 2);
    cr_assert_eq(value_of(b), 2);
    cr_assert_eq(mproc_semaphore_release(b, 1), EOVERFLOW);
    cr_assert_eq(mproc_semaphore_close(a), 0);
    cr_assert_eq(mproc_semaphore_close(b), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

Test(semaphore_threads, two_handles_on_one_name_share_the_count) {
    const char *name = t_name("sem2h");
    mproc_semaphore *a, *b;
    cr_assert_eq(mproc_semaphore_open(&a, name, MPROC_CREATE | MPROC_EXCL, 0, NULL), 0);
    cr_assert_eq(mproc_semaphore_open(&b, name, MPROC_ATTACH, 0, NULL), 0);
    cr_assert_eq(mproc_semaphore_release(a, 2), 0);
    cr_assert_eq(value_of(b), 2);
    cr_assert_eq(mproc_semaphore_acquire(b, 0), 0);
    cr_assert_eq(value_of(a), 1);
    /* A sleeper on one handle is woken by a release on the other. */
    cr_assert_eq(mproc_semaphore_acquire(a, 0), 0);
    struct waiter w;
    pthread_t th;
    start_sleeper(&w, &th, b, BOUND);
    cr_assert_eq(mproc_semaphore_release(a, 1), 0);
    cr_assert_eq(await_returned(&w, 1, 1), 1);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&w.rc), 0);
    cr_assert_eq(value_of(a), 0);
    cr_assert_eq(mproc_semaphore_close(a), 0);
    cr_assert_eq(mproc_semaphore_close(b), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

/* ---- MPROC_WITH ---- */

Test(semaphore_threads, with_block_takes_one_permit_and_returns_it_on_every_exit) {
    fixture f;
    make(&f, BOUNDED, false, 2);
    int inside = -1;
    MPROC_WITH(f.sem) {
        inside = value_of(f.sem);
    }
    cr_assert_eq(inside, 1);
    cr_assert_eq(value_of(f.sem), 2);
    /* break leaves the block and returns the permit (no EOVERFLOW on a
     * bounded semaphore: exactly one permit went in and out). */
    for (int i = 0; i < 3; i++) {
        MPROC_WITH(f.sem) {
            if (i == 1)
                break;
            inside = value_of(f.sem);
        }
        cr_assert_eq(value_of(f.sem), 2);
    }
    {
        MPROC_GUARD(f.sem);
        MPROC_GUARD(f.sem);
        cr_assert_eq(value_of(f.sem), 0);
    }
    cr_assert_eq(value_of(f.sem), 2);
    unmake(&f);
}

/* ---- stress ---- */

#define THREADS 4
#define ITERATIONS 20000

struct counting {
    mproc_semaphore *sem;
    long counter; /* plain: only the semaphore protects it */
    _Atomic int errors;
};

static void *count(void *arg) {
    struct counting *c = arg;
    for (int i = 0; i < ITERATIONS; i++) {
        if (mproc_semaphore_acquire(c->sem, BOUND) != 0) {
            atomic_fetch_add(&c->errors, 1);
            continue;
        }
        long v = c->counter;
        if ((i & 63) == 0)
            sched_yield(); /* widen the window a broken semaphore would lose updates in */
        c->counter = v + 1;
        if (mproc_semaphore_release(c->sem, 1) != 0)
            atomic_fetch_add(&c->errors, 1);
    }
    return NULL;
}

static void check_exclusion(enum kind kind, bool named) {
    fixture f;
    make(&f, kind, named, 1);
    struct counting c = {.sem = f.sem};
    atomic_init(&c.errors, 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, count, &c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&c.errors), 0);
    cr_assert_eq(c.counter, (long)THREADS * ITERATIONS);
    cr_assert_eq(value_of(f.sem), 1);
    unmake(&f);
}

Test(semaphore_threads, semaphore_of_one_excludes_exact_count_anonymous) {
    check_exclusion(UNBOUNDED, false);
}
Test(semaphore_threads, semaphore_of_one_excludes_exact_count_named_bounded) {
    check_exclusion(BOUNDED, true);
}

#define PRODUCERS 2
#define CONSUMERS 3
#define PER_PRODUCER 30000
#define TOTAL ((long)PRODUCERS * PER_PRODUCER)

struct handoff {
    mproc_semaphore *sem;
    _Atomic long claimed;  /* consumers claim a permit to take before taking it */
    _Atomic long consumed;
    _Atomic int errors;
};

static void *produce(void *arg) {
    struct handoff *h = arg;
    /* Batches of 1, 2 and 3: release(n) must hand out all n. */
    for (long sent = 0; sent < PER_PRODUCER;) {
        unsigned n = 1 + (unsigned)(sent % 3);
        if (n > PER_PRODUCER - sent)
            n = (unsigned)(PER_PRODUCER - sent);
        if (mproc_semaphore_release(h->sem, n) != 0)
            atomic_fetch_add(&h->errors, 1);
        sent += n;
    }
    return NULL;
}

static void *consume(void *arg) {
    struct handoff *h = arg;
    while (atomic_fetch_add(&h->claimed, 1) < TOTAL) {
        if (mproc_semaphore_acquire(h->sem, BOUND) == 0)
            atomic_fetch_add(&h->consumed, 1);
        else
            atomic_fetch_add(&h->errors, 1);
    }
    return NULL;
}

static void check_handoff(bool named) {
    fixture f;
    make(&f, UNBOUNDED, named, 0);
    struct handoff h = {.sem = f.sem};
    atomic_init(&h.claimed, 0);
    atomic_init(&h.consumed, 0);
    atomic_init(&h.errors, 0);
    pthread_t consumers[CONSUMERS], producers[PRODUCERS];
    for (int i = 0; i < CONSUMERS; i++)
        cr_assert_eq(pthread_create(&consumers[i], NULL, consume, &h), 0);
    for (int i = 0; i < PRODUCERS; i++)
        cr_assert_eq(pthread_create(&producers[i], NULL, produce, &h), 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(producers[i], NULL);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(consumers[i], NULL);
    /* Every permit released was taken exactly once, none is left over. */
    cr_assert_eq(atomic_load(&h.errors), 0);
    cr_assert_eq(atomic_load(&h.consumed), TOTAL);
    cr_assert_eq(value_of(f.sem), 0);
    cr_assert_eq(mproc_semaphore_acquire(f.sem, 0), ETIMEDOUT);
    unmake(&f);
}

Test(semaphore_threads, producers_and_consumers_every_release_consumed_once_anonymous) {
    check_handoff(false);
}
Test(semaphore_threads, producers_and_consumers_every_release_consumed_once_named) {
    check_handoff(true);
}
