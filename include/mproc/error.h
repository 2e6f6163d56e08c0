/* SPDX-License-Identifier: MIT */
/*
 * Return codes.  Every fallible mproc function returns 0 on success or a
 * positive code: an errno value where the meaning matches exactly, or one of
 * the MPROC_E_* codes below (all above MPROC_E_BASE, far beyond any errno).
 * errno itself is never used as a channel.
 *
 * errno values mproc uses, with their meaning here:
 *   EINVAL        a bad argument (NULL handle, NaN timeout, bad flags).
 *   ETIMEDOUT     the timeout expired, including a timeout of 0 (tried once).
 *   EOWNERDEAD    success: the lock is now held by the caller, but its previous
 *                 owner died holding it; the data it protects may need repair.
 *   EPERM         release of a lock the caller does not hold (or that is free);
 *                 Condition wait/notify without holding the condition's lock.
 *   EDEADLK       the caller already holds this (non-recursive) Lock.
 *   EAGAIN        an RLock's recursion count would overflow; a Condition
 *                 already has its maximum number of waiters.
 *   ENOTRECOVERABLE  a lock left inconsistent by a foreign (non-mproc) user.
 *   EOVERFLOW     a semaphore release past its bound (BoundedSemaphore's initial
 *                 value, or MPROC_SEMAPHORE_VALUE_MAX); nothing was changed.
 *   ENOENT        no object has that name (attach only, or unlink).
 *   EEXIST        the name exists and MPROC_EXCL was given.
 *   ENAMETOOLONG  the name is longer than MPROC_NAME_MAX.
 *   EMSGSIZE      a message longer than the queue's or pipe's maximum.
 *   ENOBUFS       a receive buffer too small for the next message; the message
 *                 was left where it was and its length reported.
 *   ERANGE        an Array index or slice out of bounds; nothing was touched.
 *   EBADF         a pipe end used against its direction (send on a read-only
 *                 end, recv or poll on a write-only one).
 *   EINPROGRESS   a pool result asked for its outcome before it is ready.
 *   ENODATA       a pool iterator that delivered every result.
 *   ENOMEM, ENOSPC, EMFILE, EACCES: resources and permissions, from the OS.
 */
#ifndef MPROC_ERROR_H
#define MPROC_ERROR_H

#include <mproc/export.h>

#define MPROC_E_BASE 4096

/* X(name, value, message): the single table behind the enum,
 * mproc_strerror() and mproc_errname(). */
#define MPROC_ERROR_MAP(X)                                                                 \
    X(FOREIGN, MPROC_E_BASE + 1,                                                           \
      "not an mproc object (bad magic, not a regular file, or another user's file)")       \
    X(TRUNCATED, MPROC_E_BASE + 2, "mproc object file is shorter than its header says")    \
    X(CORRUPT, MPROC_E_BASE + 3,                                                           \
      "mproc object is corrupted (checksum mismatch or a field out of range)")             \
    X(VERSION, MPROC_E_BASE + 4, "mproc object has a layout version this library does not know") \
    X(KIND, MPROC_E_BASE + 5, "mproc object exists under that name but is of another kind") \
    X(ABI, MPROC_E_BASE + 6,                                                               \
      "mproc object was made by an incompatible C library or architecture")                \
    X(BADNAME, MPROC_E_BASE + 7,                                                           \
      "invalid object name (empty, '.', '..', or a character outside [A-Za-z0-9._-])")     \
    X(BROKEN, MPROC_E_BASE + 8,                                                            \
      "the barrier is broken (aborted, reset, timed out, or a party died while waiting)") \
    X(EMPTY, MPROC_E_BASE + 9, "the queue is empty (nothing arrived within the timeout)")     \
    X(FULL, MPROC_E_BASE + 10, "the queue is full (no room freed within the timeout)")      \
    X(CLOSED, MPROC_E_BASE + 11,                                                           \
      "the queue is shut down (puts refused; gets get this once it is drained), "          \
      "or the pool is closed or terminated (no new work)")                                  \
    X(ABANDONED, MPROC_E_BASE + 12,                                                        \
      "tasks were abandoned: a consumer process died between get and task_done")           \
    X(EOF, MPROC_E_BASE + 13, "end of file: the other end of the pipe was closed or its process died") \
    X(WORKER_DIED, MPROC_E_BASE + 14,                                                      \
      "the pool worker running this item died (killed or crashed) before it finished")     \
    X(TERMINATED, MPROC_E_BASE + 15, "the pool was terminated before this item ran")       \
    X(INIT_FAILED, MPROC_E_BASE + 16,                                                      \
      "a pool worker's initializer failed, so the pool runs no more work")

enum mproc_error {
#define MPROC__ERROR_ENUM(name, value, msg) MPROC_E_##name = (value),
    MPROC_ERROR_MAP(MPROC__ERROR_ENUM)
#undef MPROC__ERROR_ENUM
};

MPROC_EXTERN_C_BEGIN

/* A sentence describing code: any mproc code, errno value or 0.  Never NULL;
 * the string is static.  Thread-safe and async-signal-safe. */
MPROC_API const char *mproc_strerror(int code);

/* The code's symbolic name ("ETIMEDOUT", "MPROC_E_KIND"), or "UNKNOWN". */
MPROC_API const char *mproc_errname(int code);

MPROC_EXTERN_C_END

#endif
