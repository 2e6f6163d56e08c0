/* SPDX-License-Identifier: MIT */
/*
 * mproc_event: Python's Event, between threads and processes.
 *
 * A flag, initially clear.  set() raises it and wakes every waiter; clear()
 * lowers it; wait() returns 0 once it is set.  A waiter that was waiting when
 * set() happened returns 0 even if clear() follows at once (the set is
 * recorded as a new generation, not only as the flag).
 *
 * Cost: set, clear, is_set and a wait on a set event are one atomic
 * operation, with no system call unless someone sleeps.  A waiter spins for up
 * to ~5 us before it sleeps in the kernel: a futex wake-up across CPUs costs
 * 30-70 us on the reference machine, while the hand-offs these objects serve
 * (ping-pong, ready flags) usually arrive within a few microseconds.  With one
 * CPU online there is no spinning.
 *
 * Death: every operation is a single atomic update, so a process killed at
 * any instruction leaves a valid event.  A waiter that dies leaves nothing
 * that could swallow a set (at most one spare wake-up call by the next set).
 */
#ifndef MPROC_EVENT_H
#define MPROC_EVENT_H

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

typedef struct mproc_event mproc_event;

typedef struct mproc_event_options {
    unsigned mode;         /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned reserved[7];  /* must be zero */
} mproc_event_options;

/* Creates an anonymous event, clear.  Returns 0, EINVAL, ENOMEM. */
MPROC_API int mproc_event_create(mproc_event **out, const mproc_event_options *opts);

/* Opens the named event `name` (created clear).  Codes as mproc_lock_open(). */
MPROC_API int mproc_event_open(mproc_event **out, const char *name, int flags,
                               const mproc_event_options *opts);

/* Sets the flag and wakes all waiters.  Returns 0 or EINVAL. */
MPROC_API int mproc_event_set(mproc_event *event);

/* Clears the flag.  Returns 0 or EINVAL. */
MPROC_API int mproc_event_clear(mproc_event *event);

/* *set = 1 if the flag is set, else 0.  Returns 0 or EINVAL. */
MPROC_API int mproc_event_is_set(const mproc_event *event, int *set);

/* Waits until the flag is set, at most `timeout` seconds (MPROC_FOREVER; 0
 * checks once).  Returns 0 (set, or set while we waited), ETIMEDOUT, EINVAL. */
MPROC_API int mproc_event_wait(mproc_event *event, double timeout);

/* Drops this handle.  Returns 0 or EINVAL. */
MPROC_API int mproc_event_close(mproc_event *event);

MPROC_EXTERN_C_END

#endif
