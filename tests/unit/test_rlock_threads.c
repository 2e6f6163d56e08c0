/* SPDX-License-Identifier: MIT */
/* RLock between the threads of one process, anonymous and named. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>

#include <mproc.h>

#include "shm/layout.h"
#include "support.h"

static mproc_rlock *make(bool named, const char **name) {
    mproc_rlock *rlock;
    *name = named ? t_name("rlockth") : NULL;
    int rc = named ? mproc_rlock_open(&rlock, *name, MPROC_CREATE | MPROC_EXCL, NULL)
                   : mproc_rlock_create(&rlock, NULL);
    cr_assert_eq(rc, 0);
    return rlock;
}

static void unmake(mproc_rlock *rlock, const char *name) {
    cr_assert_eq(mproc_rlock_close(rlock), 0);
    if (name != NULL)
        cr_assert_eq(mproc_unlink(name), 0);
}

static unsigned count_of(mproc_rlock *rlock) {
    unsigned n = 12345;
    cr_assert_eq(mproc_rlock_count(rlock, &n), 0);
    return n;
}

static void check_reentry(bool named) {
    const char *name;
    mproc_rlock *rlock = make(named, &name);
    cr_assert_eq(count_of(rlock), 0);
    for (unsigned i = 1; i <= 5; i++) {
        cr_assert_eq(mproc_rlock_acquire(rlock, i % 2 ? 0 : MPROC_FOREVER), 0);
        cr_assert_eq(count_of(rlock), i);
    }
    for (unsigned i = 5; i >= 1; i--) {
        cr_assert_eq(mproc_rlock_release(rlock), 0);
        cr_assert_eq(count_of(rlock), i - 1);
    }
    cr_assert_eq(mproc_rlock_release(rlock), EPERM);
    unmake(rlock, name);
}

Test(rlock_threads, reentry_counts_per_owner_anonymous) { check_reentry(false); }
Test(rlock_threads, reentry_counts_per_owner_named) { check_reentry(true); }

Test(rlock_threads, bad_arguments_are_einval) {
    mproc_rlock *rlock;
    unsigned n;
    cr_assert_eq(mproc_rlock_create(&rlock, NULL), 0);
    cr_assert_eq(mproc_rlock_acquire(NULL, 0), EINVAL);
    cr_assert_eq(mproc_rlock_acquire(rlock, NAN), EINVAL);
    cr_assert_eq(mproc_rlock_release(NULL), EINVAL);
    cr_assert_eq(mproc_rlock_count(NULL, &n), EINVAL);
    cr_assert_eq(mproc_rlock_count(rlock, NULL), EINVAL);
    cr_assert_eq(mproc_rlock_close(NULL), EINVAL);
    cr_assert_eq(mproc_rlock_create(NULL, NULL), EINVAL);
    mproc_rlock_close(rlock);
}

Test(rlock_threads, recursion_count_overflow_is_eagain) {
    mproc_rlock *rlock;
    cr_assert_eq(mproc_rlock_create(&rlock, NULL), 0);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), 0);
    /* White-box: jump to the edge instead of 4 billion acquires.  The
     * handle's first member points at the shared body. */
    struct mproc__rlock_body *body = *(struct mproc__rlock_body **)rlock;
    body->depth = UINT32_MAX - 1;
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), 0);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), EAGAIN);
    cr_assert_eq(count_of(rlock), UINT32_MAX);
    body->depth = 1;
    cr_assert_eq(mproc_rlock_release(rlock), 0);
    cr_assert_eq(count_of(rlock), 0);
    mproc_rlock_close(rlock);
}

struct other {
    mproc_rlock *rlock;
    int acquire_rc, release_rc;
    unsigned count;
    double waited;
    bool hold_and_exit;
};

static void *other_thread(void *arg) {
    struct other *o = arg;
    if (o->hold_and_exit) {
        mproc_rlock_acquire(o->rlock, 0);
        mproc_rlock_acquire(o->rlock, 0);
        return NULL; /* ends holding, depth 2 */
    }
    mproc_rlock_count(o->rlock, &o->count);
    o->release_rc = mproc_rlock_release(o->rlock);
    double t0 = t_now();
    o->acquire_rc = mproc_rlock_acquire(o->rlock, 0.1);
    o->waited = t_now() - t0;
    return NULL;
}

static void check_non_owner(bool named) {
    const char *name;
    mproc_rlock *rlock = make(named, &name);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), 0);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), 0);
    struct other o = {.rlock = rlock};
    pthread_t th;
    pthread_create(&th, NULL, other_thread, &o);
    pthread_join(th, NULL);
    cr_assert_eq(o.count, 0);
    cr_assert_eq(o.release_rc, EPERM);
    cr_assert_eq(o.acquire_rc, ETIMEDOUT);
    cr_assert_geq(o.waited, 0.1);
    cr_assert_lt(o.waited, 0.5);
    cr_assert_eq(count_of(rlock), 2); /* untouched by the other thread */
    cr_assert_eq(mproc_rlock_release(rlock), 0);
    cr_assert_eq(mproc_rlock_release(rlock), 0);
    unmake(rlock, name);
}

Test(rlock_threads, a_non_owner_cannot_release_or_enter_anonymous) { check_non_owner(false); }
Test(rlock_threads, a_non_owner_cannot_release_or_enter_named) { check_non_owner(true); }

static void check_owner_exit(bool named) {
    const char *name;
    mproc_rlock *rlock = make(named, &name);
    struct other o = {.rlock = rlock, .hold_and_exit = true};
    pthread_t th;
    pthread_create(&th, NULL, other_thread, &o);
    pthread_join(th, NULL);
    cr_assert_eq(count_of(rlock), 0);
    cr_assert_eq(mproc_rlock_release(rlock), EPERM);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), EOWNERDEAD);
    cr_assert_eq(count_of(rlock), 1);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), 0);
    cr_assert_eq(count_of(rlock), 2);
    cr_assert_eq(mproc_rlock_release(rlock), 0);
    cr_assert_eq(mproc_rlock_release(rlock), 0);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), 0); /* normal again */
    cr_assert_eq(mproc_rlock_release(rlock), 0);
    unmake(rlock, name);
}

Test(rlock_threads, owner_thread_exit_gives_eownerdead_at_depth_one_anonymous) {
    check_owner_exit(false);
}
Test(rlock_threads, owner_thread_exit_gives_eownerdead_at_depth_one_named) {
    check_owner_exit(true);
}

#define THREADS 4
#define ITERATIONS 10000

struct counting {
    mproc_rlock *rlock;
    long counter;
    int errors;
};

static void *count_nested(void *arg) {
    struct counting *c = arg;
    for (int i = 0; i < ITERATIONS; i++) {
        if (mproc_rlock_acquire(c->rlock, 10) != 0 || mproc_rlock_acquire(c->rlock, 0) != 0) {
            __atomic_fetch_add(&c->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        long v = c->counter;
        if ((i & 63) == 0)
            sched_yield();
        c->counter = v + 1;
        mproc_rlock_release(c->rlock);
        if (mproc_rlock_release(c->rlock) != 0)
            __atomic_fetch_add(&c->errors, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

Test(rlock_threads, mutual_exclusion_with_nesting_exact_count) {
    const char *name;
    mproc_rlock *rlock = make(true, &name);
    struct counting c = {.rlock = rlock};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, count_nested, &c);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.counter, (long)THREADS * ITERATIONS);
    unmake(rlock, name);
}
