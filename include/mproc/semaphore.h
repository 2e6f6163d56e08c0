/* SPDX-License-Identifier: MIT */
/*
 * mproc_semaphore: Python's Semaphore and BoundedSemaphore, between threads
 * and processes.
 *
 * A counter of permits: acquire takes one (waiting while there is none),
 * release gives n back.  A bounded semaphore refuses a release that would
 * lift the count above its initial value (EOVERFLOW, nothing changed), as
 * Python's BoundedSemaphore raises ValueError.
 *
 * Acquire and release make no system call when nobody sleeps.  A waiter
 * spins for up to ~5 us before it sleeps (see mproc/event.h for why).
 *
 * Death: permits are not owned (any thread may release), so a process that
 * dies holding a permit takes it with it, as with POSIX sem_t and Python:
 * the count stays one lower.  Pair a semaphore with a Lock when a permit's
 * holder must be known.  A process that dies while *waiting* leaves nothing
 * that could swallow a release meant for the living: releases wake the
 * kernel's list of sleepers, from which the dead are gone (later releases
 * make one spare wake-up call each).  One killed in the microseconds between
 * being woken and taking its permit takes the wake-up, not the permit: a
 * living sleeper finds the permit within MPROC_SEMAPHORE_LIVENESS_MS.
 */
#ifndef MPROC_SEMAPHORE_H
#define MPROC_SEMAPHORE_H

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

/* The largest count a semaphore holds (Linux's SEM_VALUE_MAX). */
#define MPROC_SEMAPHORE_VALUE_MAX 2147483647
/* Sleepers look for a permit at least this often (see Death above). */
#define MPROC_SEMAPHORE_LIVENESS_MS 50

typedef struct mproc_semaphore mproc_semaphore;

typedef struct mproc_semaphore_options {
    unsigned mode;         /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned reserved[7];  /* must be zero */
} mproc_semaphore_options;

/* Creates an anonymous semaphore holding `value` permits, 0 to
 * MPROC_SEMAPHORE_VALUE_MAX.  Returns 0, EINVAL (value out of range), ENOMEM. */
MPROC_API int mproc_semaphore_create(mproc_semaphore **out, int value,
                                     const mproc_semaphore_options *opts);

/* The same, bounded: its count may never exceed `value`. */
MPROC_API int mproc_bounded_semaphore_create(mproc_semaphore **out, int value,
                                             const mproc_semaphore_options *opts);

/*
 * Opens the named semaphore `name`; `value` is used only when this call
 * creates it (and is validated always).  A bounded and an unbounded
 * semaphore are different kinds: opening one as the other is MPROC_E_KIND.
 * Other codes as mproc_lock_open().
 */
MPROC_API int mproc_semaphore_open(mproc_semaphore **out, const char *name, int flags,
                                   int value, const mproc_semaphore_options *opts);
MPROC_API int mproc_bounded_semaphore_open(mproc_semaphore **out, const char *name,
                                           int flags, int value,
                                           const mproc_semaphore_options *opts);

/* Takes one permit, waiting at most `timeout` seconds (MPROC_FOREVER; 0 tries
 * once).  Returns 0, ETIMEDOUT, EINVAL (NULL, NaN timeout). */
MPROC_API int mproc_semaphore_acquire(mproc_semaphore *sem, double timeout);

/* Gives back `n` permits (n >= 1), waking up to n waiters.  Returns 0,
 * EINVAL (NULL or n == 0), EOVERFLOW (the count would pass the bound:
 * nothing is released). */
MPROC_API int mproc_semaphore_release(mproc_semaphore *sem, unsigned n);

/* The count now: a snapshot that may be stale as soon as it is read
 * (Python's get_value()).  Returns 0 or EINVAL. */
MPROC_API int mproc_semaphore_value(const mproc_semaphore *sem, int *value);

/* The bound: the initial value of a bounded semaphore, else
 * MPROC_SEMAPHORE_VALUE_MAX.  Returns 0 or EINVAL. */
MPROC_API int mproc_semaphore_max(const mproc_semaphore *sem, int *max);

/* Drops this handle.  Returns 0 or EINVAL. */
MPROC_API int mproc_semaphore_close(mproc_semaphore *sem);

MPROC_EXTERN_C_END

#endif
