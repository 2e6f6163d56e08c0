/* SPDX-License-Identifier: MIT */
/*
 * mproc_barrier: Python's Barrier, between threads and processes.
 *
 * `parties` threads call wait(); when the last arrives, all are released
 * together and each gets a distinct index 0..parties-1 (the order of
 * arrival).  The barrier can be used again at once: a thread arriving while
 * the previous round's parties are still leaving waits for them to leave.
 *
 * Action: the last arriver runs the handle's action (if any) before anyone is
 * released; a nonzero return breaks the barrier and is returned to that
 * party, the others get MPROC_E_BROKEN.  The action and the default timeout
 * belong to the handle (each process passes its own).
 *
 * Broken: abort(), a wait's timeout, a failing action, or a party's death
 * puts the barrier in the broken state.  Every waiter, present and future,
 * then gets MPROC_E_BROKEN, until reset().  reset() returns the barrier to
 * empty; parties waiting at that moment get MPROC_E_BROKEN.
 *
 * Death: a party holds a robust token for its whole wait() call (up to
 * `parties` concurrent callers; more than that are not covered until they
 * arrive).
 * Waiters check their peers' tokens every MPROC_BARRIER_LIVENESS_MS, so a
 * party killed inside wait() (waiting, running the action, or at any
 * instruction) breaks the barrier for the others within that interval,
 * instead of leaving them waiting for a round that cannot complete.  A round
 * that already completed stands: a party killed while leaving it, or while
 * waiting for it to drain, makes the *next* round open broken.  A party that
 * dies outside wait() cannot be told from a slow one: only timeouts cover it.
 */
#ifndef MPROC_BARRIER_H
#define MPROC_BARRIER_H

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

#define MPROC_BARRIER_MAX_PARTIES 65536
#define MPROC_BARRIER_LIVENESS_MS 50

typedef struct mproc_barrier mproc_barrier;

/* The action: runs in the last arriver, once per round; 0 or an error code. */
typedef int (*mproc_barrier_action)(void *arg);

typedef struct mproc_barrier_options {
    unsigned mode;         /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned reserved[7];  /* must be zero */
} mproc_barrier_options;

/*
 * Creates an anonymous barrier for `parties` (1 to MPROC_BARRIER_MAX_PARTIES)
 * parties.  `action` may be NULL.  `timeout` is this handle's default for
 * mproc_barrier_wait() (MPROC_FOREVER: none).  Returns 0, EINVAL, ENOMEM.
 */
MPROC_API int mproc_barrier_create(mproc_barrier **out, unsigned parties,
                                   mproc_barrier_action action, void *arg, double timeout,
                                   const mproc_barrier_options *opts);

/* Opens the named barrier `name`.  `parties` must equal the barrier's, or be
 * 0 to accept it when attaching (EINVAL otherwise).  Other codes as
 * mproc_lock_open(). */
MPROC_API int mproc_barrier_open(mproc_barrier **out, const char *name, int flags,
                                 unsigned parties, mproc_barrier_action action, void *arg,
                                 double timeout, const mproc_barrier_options *opts);

/*
 * Waits for all parties, with the handle's default timeout.  *index (if not
 * NULL) receives this party's arrival index.  Returns
 *   0               released with the others;
 *   MPROC_E_BROKEN  the barrier is, or became, broken (aborted, reset, another
 *                   party's timeout or death, a failing action);
 *   ETIMEDOUT       this party's timeout expired: it broke the barrier;
 *   the action's code when this party ran a failing action (barrier broken);
 *   EINVAL.
 */
MPROC_API int mproc_barrier_wait(mproc_barrier *barrier, unsigned *index);

/* The same with an explicit timeout (MPROC_FOREVER; 0: only the last
 * arriver can succeed). */
MPROC_API int mproc_barrier_wait_timeout(mproc_barrier *barrier, double timeout,
                                         unsigned *index);

/* Breaks the barrier: current and future waiters get MPROC_E_BROKEN. */
MPROC_API int mproc_barrier_abort(mproc_barrier *barrier);

/* Returns the barrier to empty and unbroken; current waiters get
 * MPROC_E_BROKEN. */
MPROC_API int mproc_barrier_reset(mproc_barrier *barrier);

/* Snapshots: parties, parties waiting in the current round (0 while the
 * previous round leaves), broken (1 or 0).  Each returns 0 or EINVAL. */
MPROC_API int mproc_barrier_parties(const mproc_barrier *barrier, unsigned *parties);
MPROC_API int mproc_barrier_n_waiting(mproc_barrier *barrier, unsigned *n_waiting);
MPROC_API int mproc_barrier_broken(mproc_barrier *barrier, int *broken);

/* Drops this handle.  Returns 0 or EINVAL. */
MPROC_API int mproc_barrier_close(mproc_barrier *barrier);

MPROC_EXTERN_C_END

#endif
