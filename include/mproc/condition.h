/* SPDX-License-Identifier: MIT */
/*
 * mproc_condition: Python's Condition, between threads and processes.
 *
 * A condition variable bound to a lock: an mproc_lock, an mproc_rlock, or
 * (by default) an RLock of its own that lives in the condition's segment.
 * MPROC_WITH(cond) and mproc_condition_acquire/release take that lock.
 *
 *   MPROC_WITH(cond) {
 *       while (!ready)                        // or mproc_condition_wait_for()
 *           mproc_condition_wait(cond, MPROC_FOREVER);
 *       consume();
 *   }
 *
 * wait() releases the lock completely (every level of an RLock), sleeps
 * until notified or timed out, and re-acquires the lock (restoring the RLock's
 * depth) before it returns, whatever it returns.  notify(n) wakes exactly
 * min(n, number of waiters) waiters, longest-waiting first; notify_all() wakes
 * all of them.  A notify never waits for the woken (unlike
 * multiprocessing.Condition, whose notify would hang on a dead waiter).
 * A wait returns 0 only when notified: no spurious wake-ups.
 *
 * Waiters are recorded in the condition's segment, at most `max_waiters` at
 * once (option; default MPROC_CONDITION_DEFAULT_WAITERS).  Each holds a robust
 * token while it waits, so a waiter killed at any instruction is recognised as
 * dead and skipped: it never swallows a notify meant for the living.
 *
 * Death of the lock's holder: the next thread to take the lock — an
 * acquirer, or a waiter coming back from wait() — gets EOWNERDEAD with the
 * lock held, exactly as with mproc_lock.  A waiter does not wait for a notify
 * that the dead holder can no longer send: sleeping waiters look every
 * MPROC_CONDITION_LIVENESS_MS, and one of them returns EOWNERDEAD holding the
 * lock.
 *
 * Death of a notified waiter: a notification belongs to a waiter once wait()
 * returns.  A waiter killed after a notify chose it but before it took the
 * lock back passes its notification on: a living waiter finds it within
 * MPROC_CONDITION_LIVENESS_MS and returns 0 in its place.
 */
#ifndef MPROC_CONDITION_H
#define MPROC_CONDITION_H

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>
#include <mproc/lock.h>
#include <mproc/rlock.h>

MPROC_EXTERN_C_BEGIN

#define MPROC_CONDITION_DEFAULT_WAITERS 128
#define MPROC_CONDITION_MAX_WAITERS 65536
#define MPROC_CONDITION_LIVENESS_MS 50

typedef struct mproc_condition mproc_condition;

typedef struct mproc_condition_options {
    unsigned mode;         /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned max_waiters;  /* 0 = MPROC_CONDITION_DEFAULT_WAITERS; at most
                              MPROC_CONDITION_MAX_WAITERS; fixed at creation */
    unsigned reserved[6];  /* must be zero */
} mproc_condition_options;

/*
 * Creates an anonymous condition over `lock` or `rlock` (at most one of them
 * non-NULL; both NULL: its own RLock).  The given lock must outlive the
 * condition and be reachable by every process that uses the condition.
 * Returns 0, EINVAL (both locks given, bad options), ENOMEM.
 */
MPROC_API int mproc_condition_create(mproc_condition **out, mproc_lock *lock, mproc_rlock *rlock,
                                     const mproc_condition_options *opts);

/*
 * Opens the named condition `name`.  The lock arguments must match what the
 * condition was created with: the same lock object (by identity, through any
 * handle on it), or none for a condition with its own RLock; a mismatch is
 * EINVAL.  Other codes as mproc_lock_open().
 */
MPROC_API int mproc_condition_open(mproc_condition **out, const char *name, int flags,
                                   mproc_lock *lock, mproc_rlock *rlock,
                                   const mproc_condition_options *opts);

/* Acquires / releases the condition's lock: codes as mproc_lock_acquire()
 * or mproc_rlock_acquire(), whichever the lock is. */
MPROC_API int mproc_condition_acquire(mproc_condition *cond, double timeout);
MPROC_API int mproc_condition_release(mproc_condition *cond);

/*
 * Waits to be notified, at most `timeout` seconds; the caller must hold the
 * lock.  Returns, always holding the lock again (except EPERM/EINVAL/EAGAIN):
 *   0           notified;
 *   ETIMEDOUT   not notified in time (timeout 0: released and re-took the lock);
 *   EOWNERDEAD  the lock's previous holder died holding it; notified or not,
 *               re-check the predicate and repair what the lock protects;
 *   EPERM       the caller does not hold the lock (nothing happened);
 *   EAGAIN      max_waiters threads already wait (nothing happened);
 *   EINVAL      NULL or NaN timeout.
 */
MPROC_API int mproc_condition_wait(mproc_condition *cond, double timeout);

/*
 * Python's wait_for(): evaluates predicate(arg) and waits until it returns
 * nonzero, at most `timeout` seconds in all.  *result (if not NULL) receives
 * the predicate's last value.  Returns 0 (predicate true), ETIMEDOUT (still
 * false at the deadline), EOWNERDEAD (the lock's previous holder died; the
 * predicate was evaluated again after it), EPERM, EAGAIN, EINVAL.
 */
MPROC_API int mproc_condition_wait_for(mproc_condition *cond, int (*predicate)(void *arg),
                                       void *arg, double timeout, int *result);

/* Wakes min(n, waiters) waiters; the caller must hold the lock.  n == 0 does
 * nothing.  Returns 0, EPERM (lock not held), EINVAL. */
MPROC_API int mproc_condition_notify(mproc_condition *cond, unsigned n);

/* Wakes every waiter.  Returns 0, EPERM, EINVAL. */
MPROC_API int mproc_condition_notify_all(mproc_condition *cond);

/* Drops this handle (not the lock it was given).  Returns 0 or EINVAL. */
MPROC_API int mproc_condition_close(mproc_condition *cond);

MPROC_EXTERN_C_END

#endif
