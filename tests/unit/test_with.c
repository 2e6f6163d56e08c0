/* SPDX-License-Identifier: MIT */
/* MPROC_WITH / MPROC_WITH_RC / MPROC_GUARD release on every exit path. */
#include <criterion/criterion.h>
#include <pthread.h>

#include <mproc.h>

static bool is_free(mproc_lock *lock) {
    /* Held by this thread -> EDEADLK; free -> 0 (then release). */
    int rc = mproc_lock_acquire(lock, 0);
    if (rc == 0)
        mproc_lock_release(lock);
    return rc == 0;
}

static int body_runs;

static int return_from_inside(mproc_lock *lock) {
    MPROC_WITH(lock) {
        body_runs++;
        return 42;
    }
    return -1;
}

Test(with, return_inside_releases) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    body_runs = 0;
    cr_assert_eq(return_from_inside(lock), 42);
    cr_assert_eq(body_runs, 1);
    cr_assert(is_free(lock));
    mproc_lock_close(lock);
}

Test(with, body_runs_once_and_falls_through_releasing) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    int runs = 0;
    MPROC_WITH(lock) {
        runs++;
        cr_assert_not(is_free(lock));
    }
    cr_assert_eq(runs, 1);
    cr_assert(is_free(lock));
    mproc_lock_close(lock);
}

Test(with, break_and_continue_inside_release) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    int after = 0;
    MPROC_WITH(lock) {
        break;
        after = 1; /* never reached */
    }
    cr_assert_eq(after, 0);
    cr_assert(is_free(lock));
    MPROC_WITH(lock) {
        continue;
    }
    cr_assert(is_free(lock));
    mproc_lock_close(lock);
}

Test(with, goto_out_releases) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    MPROC_WITH(lock) {
        goto out;
    }
    cr_assert_fail("goto skipped");
out:
    cr_assert(is_free(lock));
    mproc_lock_close(lock);
}

Test(with, guard_holds_to_the_end_of_the_block_and_break_leaves_the_loop) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    int iterations = 0;
    for (int i = 0; i < 10; i++) {
        MPROC_GUARD(lock);
        iterations++;
        cr_assert_not(is_free(lock));
        if (i == 2)
            break; /* leaves the for loop, releasing */
    }
    cr_assert_eq(iterations, 3);
    cr_assert(is_free(lock));
    mproc_lock_close(lock);
}

Test(with, nested_with_on_an_rlock_counts_levels) {
    mproc_rlock *rlock;
    cr_assert_eq(mproc_rlock_create(&rlock, NULL), 0);
    unsigned count = 99;
    MPROC_WITH(rlock) {
        MPROC_WITH(rlock) {
            mproc_rlock_count(rlock, &count);
            cr_assert_eq(count, 2);
        }
        mproc_rlock_count(rlock, &count);
        cr_assert_eq(count, 1);
    }
    mproc_rlock_count(rlock, &count);
    cr_assert_eq(count, 0);
    mproc_rlock_close(rlock);
}

Test(with, a_failed_acquire_skips_the_body_and_reports_the_code) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    cr_assert_eq(mproc_lock_acquire(lock, 0), 0);
    int rc = -1, runs = 0;
    MPROC_WITH_RC(lock, rc) {
        runs++;
    }
    cr_assert_eq(runs, 0);
    cr_assert_eq(rc, EDEADLK);
    cr_assert_eq(mproc_lock_release(lock), 0); /* still ours, released once */
    cr_assert_eq(mproc_lock_release(lock), EPERM);
    mproc_lock_close(lock);
}

static void *exit_holding(void *arg) {
    mproc_lock_acquire(arg, MPROC_FOREVER);
    return NULL;
}

Test(with, with_rc_reports_eownerdead_and_runs_the_body) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    pthread_t th;
    pthread_create(&th, NULL, exit_holding, lock);
    pthread_join(th, NULL);
    int rc = -1, runs = 0;
    MPROC_WITH_RC(lock, rc) {
        runs++;
        cr_assert_eq(rc, EOWNERDEAD);
    }
    cr_assert_eq(runs, 1);
    cr_assert(is_free(lock));
    mproc_lock_close(lock);
}
