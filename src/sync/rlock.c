/* SPDX-License-Identifier: MIT */
/*
 * mproc_rlock: the robust mutex plus an owner identity and a depth
 * (shm/layout.h, RLock body, states the ownership rules).
 *
 *   free:            owner == 0, depth == 0, mutex unlocked.
 *   held by T:       owner == id(T), depth >= 1, mutex locked by T.
 *   T died holding:  owner == id(T) (dead), mutex OWNER_DIED; the next
 *                    acquirer gets EOWNERDEAD, writes its own id, depth = 1.
 *
 * Recursion touches only `depth` (no atomic RMW, no syscall).
 */
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "shm/segment.h"
#include "sync/handles.h"
#include "sync/robust_mutex.h"

int mproc__rlock_body_init(struct mproc__rlock_body *body) {
    atomic_init(&body->owner, 0);
    body->depth = 0;
    return mproc__rmutex_init(&body->mutex);
}

static int rlock_init(void *body, size_t extra, const void *arg) {
    (void)extra;
    (void)arg;
    return mproc__rlock_body_init(body);
}

static int rlock_check(const void *body, size_t extra) {
    if (extra != 0)
        return MPROC_E_CORRUPT;
    return mproc__rmutex_check(&((const struct mproc__rlock_body *)body)->mutex);
}

static const mproc__kind_spec rlock_kind = {
    .kind = MPROC__KIND_RLOCK,
    .body_size = sizeof(struct mproc__rlock_body),
    .init = rlock_init,
    .check = rlock_check,
};

static int finish(mproc_rlock **out, mproc_rlock *rlock, int rc) {
    if (rc != 0) {
        free(rlock);
        return rc;
    }
    rlock->body = mproc__segment_body(&rlock->seg);
    *out = rlock;
    return 0;
}

int mproc_rlock_create(mproc_rlock **out, const mproc_rlock_options *opts) {
    if (out == NULL || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    mproc_rlock *rlock = calloc(1, sizeof *rlock);
    if (rlock == NULL)
        return ENOMEM;
    return finish(out, rlock, mproc__segment_create(&rlock->seg, &rlock_kind, 0, NULL));
}

int mproc_rlock_open(mproc_rlock **out, const char *name, int flags,
                     const mproc_rlock_options *opts) {
    if (out == NULL || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    mproc_rlock *rlock = calloc(1, sizeof *rlock);
    if (rlock == NULL)
        return ENOMEM;
    unsigned mode = opts != NULL ? opts->mode : 0;
    return finish(out, rlock,
                  mproc__segment_open(&rlock->seg, &rlock_kind, name, flags, mode, 0, NULL));
}

static int take_ownership(struct mproc__rlock_body *body, uint64_t self, int rc) {
    /* relaxed: only this thread ever compares the field with its own id. */
    atomic_store_explicit(&body->owner, self, memory_order_relaxed);
    body->depth = 1;
    return rc;
}

int mproc_rlock_acquire(mproc_rlock *rlock, double timeout) {
    if (MPROC__UNLIKELY(rlock == NULL || isnan(timeout)))
        return EINVAL;
    struct mproc__rlock_body *body = rlock->body;
    uint64_t self = mproc__self();
    if (atomic_load_explicit(&body->owner, memory_order_relaxed) == self) {
        if (MPROC__UNLIKELY(body->depth == UINT32_MAX))
            return EAGAIN;
        body->depth++;
        return 0;
    }
    int rc = timeout < 0 ? pthread_mutex_lock(&body->mutex) : pthread_mutex_trylock(&body->mutex);
    if (MPROC__LIKELY(rc == 0))
        return take_ownership(body, self, 0);
    rc = mproc__rmutex_acquire_slow(&body->mutex, rc, timeout);
    if (rc == 0 || rc == EOWNERDEAD)
        return take_ownership(body, self, rc);
    return rc;
}

int mproc_rlock_release(mproc_rlock *rlock) {
    if (MPROC__UNLIKELY(rlock == NULL))
        return EINVAL;
    struct mproc__rlock_body *body = rlock->body;
    if (atomic_load_explicit(&body->owner, memory_order_relaxed) != mproc__self())
        return EPERM;
    if (--body->depth > 0)
        return 0;
    atomic_store_explicit(&body->owner, 0, memory_order_relaxed);
    return pthread_mutex_unlock(&body->mutex);
}

int mproc_rlock_count(const mproc_rlock *rlock, unsigned *count) {
    if (rlock == NULL || count == NULL)
        return EINVAL;
    const struct mproc__rlock_body *body = rlock->body;
    bool mine = atomic_load_explicit(&body->owner, memory_order_relaxed) == mproc__self();
    *count = mine ? body->depth : 0;
    return 0;
}

int mproc_rlock_close(mproc_rlock *rlock) {
    if (rlock == NULL)
        return EINVAL;
    mproc__segment_close(&rlock->seg);
    free(rlock);
    return 0;
}
