/* SPDX-License-Identifier: MIT */
/*
 * The process-private handles of Lock and RLock, for the kinds built on them
 * (Condition uses a given lock, or embeds an RLock handle on its own lock).
 */
#ifndef MPROC_SYNC_HANDLES_H
#define MPROC_SYNC_HANDLES_H

#include "internal.h"
#include "shm/segment.h"

struct mproc_lock {
    pthread_mutex_t *mutex; /* first: the fast paths load nothing else */
    mproc__segment seg;
};

struct mproc_rlock {
    struct mproc__rlock_body *body; /* first: the fast paths load nothing else */
    mproc__segment seg;             /* base == NULL: embedded, not closed */
};

/* Bits of the robust futex word that hold the owner's TID (linux/futex.h). */
#define MPROC__ROBUST_TID_MASK 0x3fffffffu

/* True when the calling thread holds the Lock.  relaxed: only the owner can
 * find its own TID in the word. */
static inline bool mproc__lock_held(const struct mproc_lock *lock) {
    uint32_t word = __atomic_load_n((const uint32_t *)&lock->mutex->__data.__lock,
                                    __ATOMIC_RELAXED);
    return (word & MPROC__ROBUST_TID_MASK) == (uint32_t)mproc__self_tid();
}

/* Initialises a free RLock body (in memory nobody else sees yet). */
int mproc__rlock_body_init(struct mproc__rlock_body *body);

#endif
