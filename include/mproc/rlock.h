/* SPDX-License-Identifier: MIT */
/*
 * mproc_rlock: Python's multiprocessing.RLock, robust against its owner dying.
 *
 * A recursive lock: its owner thread may acquire it again, and it is free
 * once released as many times as acquired.  Owners are threads identified by
 * a 64-bit random identity that is new in every thread and in every forked
 * child, so ownership is exact across processes and never confused by PID or
 * TID reuse.
 *
 * If the owner dies, the next acquirer gets EOWNERDEAD with the lock held at
 * depth 1, exactly as for mproc_lock.  Release by a thread that does not own
 * it is EPERM.  Handles follow mproc_lock's rules.
 */
#ifndef MPROC_RLOCK_H
#define MPROC_RLOCK_H

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

typedef struct mproc_rlock mproc_rlock;

typedef struct mproc_rlock_options {
    unsigned mode;         /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned reserved[7];  /* must be zero */
} mproc_rlock_options;

/* Creates an anonymous recursive lock, free.  Returns 0, EINVAL, ENOMEM. */
MPROC_API int mproc_rlock_create(mproc_rlock **out, const mproc_rlock_options *opts);

/* Opens the named recursive lock `name`; codes as mproc_lock_open(). */
MPROC_API int mproc_rlock_open(mproc_rlock **out, const char *name, int flags,
                               const mproc_rlock_options *opts);

/*
 * Acquires the lock or, for its owner, adds one level.  Returns 0,
 * EOWNERDEAD (acquired at depth 1; the previous owner died), ETIMEDOUT,
 * EAGAIN (recursion count at its maximum, 2^32-1), EINVAL.
 */
MPROC_API int mproc_rlock_acquire(mproc_rlock *rlock, double timeout);

/* Drops one level; the lock is free when the count reaches 0.  Returns 0,
 * EPERM (the caller does not own it), EINVAL. */
MPROC_API int mproc_rlock_release(mproc_rlock *rlock);

/* The calling thread's recursion count: 0 unless it owns the lock (Python's
 * _recursion_count()).  Returns 0 or EINVAL. */
MPROC_API int mproc_rlock_count(const mproc_rlock *rlock, unsigned *count);

/* Drops this handle.  Returns 0 or EINVAL. */
MPROC_API int mproc_rlock_close(mproc_rlock *rlock);

MPROC_EXTERN_C_END

#endif
