/* SPDX-License-Identifier: MIT */
/*
 * mproc_lock: Python's multiprocessing.Lock, robust against its owner dying.
 *
 * A non-recursive mutual-exclusion lock that works between the threads of one
 * process and between processes.  If the thread holding it dies (SIGKILL at
 * any instruction, thread exit, execve), the next acquirer — one already
 * asleep or the next to arrive — gets the lock with EOWNERDEAD at once (the
 * kernel's robust-futex list, no polling), and the lock works normally after
 * that.  PID reuse cannot fool it.  A process that dies while *waiting*
 * leaves nothing behind.
 *
 * Acquire and release make no system call when nobody has to wait.
 *
 * Differences from Python, by design:
 *   - release by a thread that does not hold the lock is EPERM (Python lets
 *     any thread release).  Use a semaphore for cross-thread hand-off.
 *   - acquire by the thread that already holds it is EDEADLK at once
 *     (Python waits out the timeout, or forever).
 *
 * Handles: a handle belongs to one process; after fork() the child's copy
 * reaches the same lock.  Close a handle only when no thread of this process
 * is inside an acquire or release on it.  A child does not own the locks its
 * parent held at fork().
 */
#ifndef MPROC_LOCK_H
#define MPROC_LOCK_H

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

typedef struct mproc_lock mproc_lock;

/* Options for creating a lock; a zeroed struct (or NULL) means defaults. */
typedef struct mproc_lock_options {
    unsigned mode;         /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned reserved[7];  /* must be zero */
} mproc_lock_options;

/* Creates an anonymous lock, free.  Returns 0, EINVAL, ENOMEM. */
MPROC_API int mproc_lock_create(mproc_lock **out, const mproc_lock_options *opts);

/*
 * Opens the named lock `name` (see mproc/object.h for flags and names).
 * A lock it creates starts free.  Returns 0, EINVAL, ENOENT, EEXIST,
 * MPROC_E_BADNAME, ENAMETOOLONG, MPROC_E_FOREIGN, MPROC_E_TRUNCATED,
 * MPROC_E_CORRUPT, MPROC_E_VERSION, MPROC_E_KIND, MPROC_E_ABI, or an OS error.
 */
MPROC_API int mproc_lock_open(mproc_lock **out, const char *name, int flags,
                              const mproc_lock_options *opts);

/*
 * Acquires the lock, waiting at most `timeout` seconds (MPROC_FOREVER: no
 * bound; 0: try once).  Returns
 *   0            acquired;
 *   EOWNERDEAD   acquired; the previous owner died holding it;
 *   ETIMEDOUT    not acquired in time;
 *   EDEADLK      the calling thread already holds it;
 *   EINVAL       NULL lock or NaN timeout;
 *   ENOTRECOVERABLE  a non-mproc user left the lock unusable.
 */
MPROC_API int mproc_lock_acquire(mproc_lock *lock, double timeout);

/* Releases the lock.  Returns 0, EPERM if the caller does not hold it
 * (released twice, never acquired, or held by another thread), EINVAL. */
MPROC_API int mproc_lock_release(mproc_lock *lock);

/* Drops this handle (the lock itself lives on while other handles or the
 * name remain).  Returns 0 or EINVAL.  Do not close a held lock's handle if
 * other processes still need it: they would see EOWNERDEAD only when this
 * thread exits. */
MPROC_API int mproc_lock_close(mproc_lock *lock);

MPROC_EXTERN_C_END

#endif
