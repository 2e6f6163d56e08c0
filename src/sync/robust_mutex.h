/* SPDX-License-Identifier: MIT */
/*
 * The robust process-shared mutex under Lock and RLock: a glibc mutex with
 * PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST and PTHREAD_MUTEX_ERRORCHECK.
 * Why glibc's and not a futex word of our own: a dead owner must be noticed
 * at once and exactly, which only the kernel's robust list does, and a thread
 * has one robust list, which glibc owns (docs/design/robust-locks.md).
 *
 * The fast paths (pthread_mutex_trylock / pthread_mutex_unlock) stay in the
 * callers; the functions here are the slow, cold parts.
 */
#ifndef MPROC_SYNC_ROBUST_MUTEX_H
#define MPROC_SYNC_ROBUST_MUTEX_H

#include <pthread.h>
#include <stdbool.h>

/* Initialises a mutex in memory nobody else sees yet.  Returns 0 or an OS code. */
int mproc__rmutex_init(pthread_mutex_t *mutex);

/* Checks that a mutex found in an attached segment is one mproc made
 * (robust, shared, error-checking).  Returns 0 or MPROC_E_CORRUPT. */
int mproc__rmutex_check(const pthread_mutex_t *mutex);

/*
 * Finishes an acquire whose trylock returned `trylock_rc` (nonzero): waits
 * with `timeout` if the mutex was busy, and makes it consistent after an
 * owner's death.  Returns 0, EOWNERDEAD (held), ETIMEDOUT, EDEADLK, EINVAL,
 * ENOTRECOVERABLE.
 */
int mproc__rmutex_acquire_slow(pthread_mutex_t *mutex, int trylock_rc, double timeout);

/*
 * For robust mutexes used as liveness tokens (a thread holds its token for as
 * long as it takes part in a Condition wait or a Barrier round): true when a
 * thread that is not known to be dead holds `mutex`.  Otherwise the mutex is
 * left free (made consistent first if its holder died) and false returned.
 * A plain load answers for a live holder; only a dead or absent one costs a
 * trylock.
 */
bool mproc__rmutex_holder_alive(pthread_mutex_t *mutex);

#endif
