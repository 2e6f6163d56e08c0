/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <string.h>

#include "internal.h"
#include "sync/futex.h"
#include "sync/robust_mutex.h"

#define MPROC__LOCK_LIVENESS_MS 50

#ifdef MPROC_TSAN
#include <sanitizer/tsan_interface.h>
#endif

static int init_attr(pthread_mutexattr_t *attr) {
    int rc = pthread_mutexattr_init(attr);
    if (rc == 0)
        rc = pthread_mutexattr_setpshared(attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutexattr_settype(attr, PTHREAD_MUTEX_ERRORCHECK);
    return rc;
}

int mproc__rmutex_init(pthread_mutex_t *mutex) {
    pthread_mutexattr_t attr;
    int rc = init_attr(&attr);
    if (rc == 0)
        rc = pthread_mutex_init(mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

int mproc__rmutex_check(const pthread_mutex_t *mutex) {
    /* glibc keeps type, robustness and sharing in __data.__kind, which is
     * written by pthread_mutex_init only; compare it with a fresh mutex made
     * the same way.  (The segment's lock_abi already pinned the layout.) */
    pthread_mutex_t reference;
    if (mproc__rmutex_init(&reference) != 0)
        return ENOMEM;
    int kind = __atomic_load_n(&mutex->__data.__kind, __ATOMIC_RELAXED);
    return kind == reference.__data.__kind ? 0 : MPROC_E_CORRUPT;
}

/* pthread_mutex_clocklock is not intercepted by ThreadSanitizer (it is by
 * glibc only since 2.30); tell TSan it is a lock operation on this mutex so
 * that it sees the happens-before edge from the previous unlock. */
static int clocklock(pthread_mutex_t *mutex, const struct timespec *at) {
#ifdef MPROC_TSAN
    __tsan_mutex_pre_lock(mutex, __tsan_mutex_try_lock);
#endif
    int rc = pthread_mutex_clocklock(mutex, CLOCK_MONOTONIC, at);
#ifdef MPROC_TSAN
    __tsan_mutex_post_lock(mutex,
                           rc == 0 || rc == EOWNERDEAD
                               ? __tsan_mutex_try_lock
                               : __tsan_mutex_try_lock | __tsan_mutex_try_lock_failed,
                           0);
#endif
    return rc;
}

/*
 * No spinning before the sleep, deliberately.  A bounded read-only spin
 * (an "adaptive" mutex) was measured on the 2-vCPU CI machine: two processes
 * incrementing a counter under the lock ran 3x slower with it (the owner
 * changed every 2.7 increments instead of every 6, so the line ping-pongs).
 * A sleeping waiter lets the holder run long batches; glibc's robust mutex
 * makes the same choice.  See docs/design/robust-locks.md.
 *
 * wait_busy: waits for a mutex that trylock found busy, until the deadline.
 * glibc retries EINTR inside, with the same absolute deadline.
 */
static int wait_busy(pthread_mutex_t *mutex, double timeout) {
    mproc__deadline deadline;
    int rc = mproc__deadline_init(&deadline, timeout);
    if (rc != 0)
        return rc;
    if (deadline.now)
        return ETIMEDOUT;
    /* In liveness slices, never one long sleep.  The kernel's robust-futex
     * cleanup wakes one waiter when an owner dies (or a waiter dies between
     * an unlock's wake and its own retry while the word is 0), but not when
     * that woken waiter is itself killed before it takes the word marked
     * OWNER_DIED: the word is then neither 0 nor the dead thread's, and the
     * kernel wakes nobody.  Found by the Value kill test (an acquire slept to
     * its 2 s bound, about one run in six).  Each slice's retry takes such a
     * lock with EOWNERDEAD, so the loss costs at most one slice. */
    for (;;) {
        struct timespec slice;
        mproc__slice_end(&deadline, MPROC__LOCK_LIVENESS_MS, &slice);
        rc = clocklock(mutex, &slice);
        if (rc != ETIMEDOUT || mproc__deadline_expired(&deadline))
            return rc;
    }
}

int mproc__rmutex_acquire_slow(pthread_mutex_t *mutex, int rc, double timeout) {
    if (rc == EBUSY)
        rc = wait_busy(mutex, timeout);
    if (rc == EOWNERDEAD) {
        /* We hold it.  Python-style users cannot repair, and mproc's own
         * structures are built to need no repair, so the lock is usable at
         * once; the code tells the caller its data may be inconsistent. */
        pthread_mutex_consistent(mutex);
        return EOWNERDEAD;
    }
    if (rc == EAGAIN) /* glibc: another robust-list limit; never expected */
        return ENOTRECOVERABLE;
    return rc;
}

bool mproc__rmutex_holder_alive(pthread_mutex_t *mutex) {
    /* The kernel replaces a dead holder's TID with FUTEX_OWNER_DIED when it
     * walks the dead thread's robust list.  relaxed: a stale "alive" is
     * answered again at the next probe; "dead" is confirmed by the trylock. */
    uint32_t word = __atomic_load_n((uint32_t *)&mutex->__data.__lock, __ATOMIC_RELAXED);
    if ((word & FUTEX_TID_MASK) != 0 && !(word & FUTEX_OWNER_DIED))
        return true;
    int rc = pthread_mutex_trylock(mutex);
    if (rc == EBUSY || rc == EDEADLK)
        return true;
    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(mutex);
    if (rc == 0 || rc == EOWNERDEAD)
        pthread_mutex_unlock(mutex);
    return false;
}
