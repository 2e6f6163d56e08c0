/* SPDX-License-Identifier: MIT */
/* Lock between the threads of one process, anonymous and named. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

typedef struct fixture {
    mproc_lock *lock;
    const char *name; /* NULL: anonymous */
} fixture;

static void make(fixture *f, bool named) {
    f->name = named ? t_name("lockth") : NULL;
    int rc = named ? mproc_lock_open(&f->lock, f->name, MPROC_CREATE | MPROC_EXCL, NULL)
                   : mproc_lock_create(&f->lock, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
}

static void unmake(fixture *f) {
    cr_assert_eq(mproc_lock_close(f->lock), 0);
    if (f->name != NULL)
        cr_assert_eq(mproc_unlink(f->name), 0);
}

static void check_basic_semantics(bool named) {
    fixture f;
    make(&f, named);
    cr_assert_eq(mproc_lock_acquire(f.lock, MPROC_FOREVER), 0);
    cr_assert_eq(mproc_lock_acquire(f.lock, 0), EDEADLK);
    cr_assert_eq(mproc_lock_acquire(f.lock, 0.05), EDEADLK);
    cr_assert_eq(mproc_lock_release(f.lock), 0);
    cr_assert_eq(mproc_lock_release(f.lock), EPERM);
    cr_assert_eq(mproc_lock_acquire(f.lock, 0), 0);
    cr_assert_eq(mproc_lock_release(f.lock), 0);
    unmake(&f);
}

Test(lock_threads, acquire_release_and_misuse_codes_anonymous) { check_basic_semantics(false); }
Test(lock_threads, acquire_release_and_misuse_codes_named) { check_basic_semantics(true); }

Test(lock_threads, releasing_a_never_acquired_lock_is_eperm) {
    fixture f;
    make(&f, false);
    cr_assert_eq(mproc_lock_release(f.lock), EPERM);
    unmake(&f);
}

Test(lock_threads, null_and_nan_are_einval) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    cr_assert_eq(mproc_lock_acquire(NULL, 0), EINVAL);
    cr_assert_eq(mproc_lock_release(NULL), EINVAL);
    cr_assert_eq(mproc_lock_close(NULL), EINVAL);
    cr_assert_eq(mproc_lock_acquire(lock, NAN), EINVAL);
    cr_assert_eq(mproc_lock_release(lock), EPERM); /* NaN acquired nothing */
    mproc_lock_close(lock);
}

struct holder {
    mproc_lock *lock;
    t_pipe held, release;
    int release_rc;
    bool exit_holding;
};

static void *hold(void *arg) {
    struct holder *h = arg;
    cr_assert_eq(mproc_lock_acquire(h->lock, MPROC_FOREVER), 0);
    t_signal(&h->held, 'h');
    if (h->exit_holding)
        return NULL; /* the thread ends holding the lock */
    t_await(&h->release, 10);
    h->release_rc = mproc_lock_release(h->lock);
    return NULL;
}

static void start_holder(struct holder *h, mproc_lock *lock, bool exit_holding, pthread_t *th) {
    h->lock = lock;
    h->exit_holding = exit_holding;
    t_pipe_open(&h->held);
    t_pipe_open(&h->release);
    cr_assert_eq(pthread_create(th, NULL, hold, h), 0);
    cr_assert_eq(t_await(&h->held, 10), 'h');
}

static void check_timeouts(bool named) {
    fixture f;
    make(&f, named);
    struct holder h;
    pthread_t th;
    start_holder(&h, f.lock, false, &th);
    /* Held by another thread: 0 tries once; 0.1 s waits >= 0.1 s, < 0.5 s. */
    double t0 = t_now();
    cr_assert_eq(mproc_lock_acquire(f.lock, 0), ETIMEDOUT);
    cr_assert_lt(t_now() - t0, 0.05);
    t0 = t_now();
    cr_assert_eq(mproc_lock_acquire(f.lock, 0.1), ETIMEDOUT);
    double waited = t_now() - t0;
    cr_assert_geq(waited, 0.1);
    cr_assert_lt(waited, 0.5);
    /* A non-owner may not release it. */
    cr_assert_eq(mproc_lock_release(f.lock), EPERM);
    t_signal(&h.release, 'r');
    pthread_join(th, NULL);
    cr_assert_eq(h.release_rc, 0);
    cr_assert_eq(mproc_lock_acquire(f.lock, 0), 0);
    cr_assert_eq(mproc_lock_release(f.lock), 0);
    t_pipe_close(&h.held);
    t_pipe_close(&h.release);
    unmake(&f);
}

Test(lock_threads, timeouts_are_honoured_anonymous) { check_timeouts(false); }
Test(lock_threads, timeouts_are_honoured_named) { check_timeouts(true); }

Test(lock_threads, a_blocked_acquire_gets_the_lock_when_released) {
    fixture f;
    make(&f, false);
    struct holder h;
    pthread_t th;
    start_holder(&h, f.lock, false, &th);
    t_signal(&h.release, 'r');
    cr_assert_eq(mproc_lock_acquire(f.lock, 10), 0);
    pthread_join(th, NULL);
    cr_assert_eq(mproc_lock_release(f.lock), 0);
    t_pipe_close(&h.held);
    t_pipe_close(&h.release);
    unmake(&f);
}

static void check_thread_exit_holding(bool named) {
    fixture f;
    make(&f, named);
    struct holder h;
    pthread_t th;
    start_holder(&h, f.lock, true, &th);
    pthread_join(th, NULL);
    cr_assert_eq(mproc_lock_acquire(f.lock, 0), EOWNERDEAD);
    cr_assert_eq(mproc_lock_release(f.lock), 0);
    /* Normal again afterwards. */
    cr_assert_eq(mproc_lock_acquire(f.lock, 0), 0);
    cr_assert_eq(mproc_lock_release(f.lock), 0);
    t_pipe_close(&h.held);
    t_pipe_close(&h.release);
    unmake(&f);
}

Test(lock_threads, a_thread_that_exits_holding_gives_eownerdead_anonymous) {
    check_thread_exit_holding(false);
}
Test(lock_threads, a_thread_that_exits_holding_gives_eownerdead_named) {
    check_thread_exit_holding(true);
}

#define THREADS 4
#define ITERATIONS 20000

struct counting {
    mproc_lock *lock;
    long counter;  /* plain: only the lock protects it */
    int errors;
};

static void *count(void *arg) {
    struct counting *c = arg;
    for (int i = 0; i < ITERATIONS; i++) {
        if (mproc_lock_acquire(c->lock, 10) != 0) {
            __atomic_fetch_add(&c->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        long v = c->counter;
        if ((i & 63) == 0)
            sched_yield(); /* widen the window a broken lock would lose updates in */
        c->counter = v + 1;
        mproc_lock_release(c->lock);
    }
    return NULL;
}

static void check_exclusion(bool named) {
    fixture f;
    make(&f, named);
    struct counting c = {.lock = f.lock};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, count, &c);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.counter, (long)THREADS * ITERATIONS);
    unmake(&f);
}

Test(lock_threads, mutual_exclusion_exact_count_anonymous) { check_exclusion(false); }
Test(lock_threads, mutual_exclusion_exact_count_named) { check_exclusion(true); }

Test(lock_threads, two_handles_on_one_name_in_one_process_share_the_lock) {
    const char *name = t_name("twoh");
    mproc_lock *a, *b;
    cr_assert_eq(mproc_lock_open(&a, name, MPROC_CREATE, NULL), 0);
    cr_assert_eq(mproc_lock_open(&b, name, MPROC_ATTACH, NULL), 0);
    struct holder h;
    pthread_t th;
    start_holder(&h, a, false, &th);
    cr_assert_eq(mproc_lock_acquire(b, 0), ETIMEDOUT);
    t_signal(&h.release, 'r');
    cr_assert_eq(mproc_lock_acquire(b, 10), 0);
    pthread_join(th, NULL);
    cr_assert_eq(mproc_lock_release(b), 0);
    t_pipe_close(&h.held);
    t_pipe_close(&h.release);
    mproc_lock_close(a);
    mproc_lock_close(b);
    mproc_unlink(name);
}
