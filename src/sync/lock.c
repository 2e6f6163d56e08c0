/* SPDX-License-Identifier: MIT */
/* mproc_lock: the robust mutex of shm/layout.h's Lock body, nothing more. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "shm/segment.h"
#include "sync/handles.h"
#include "sync/robust_mutex.h"

static int lock_init(void *body, size_t extra, const void *arg) {
    (void)extra;
    (void)arg;
    return mproc__rmutex_init(&((struct mproc__lock_body *)body)->mutex);
}

static int lock_check(const void *body, size_t extra) {
    if (extra != 0)
        return MPROC_E_CORRUPT;
    return mproc__rmutex_check(&((const struct mproc__lock_body *)body)->mutex);
}

static const mproc__kind_spec lock_kind = {
    .kind = MPROC__KIND_LOCK,
    .body_size = sizeof(struct mproc__lock_body),
    .init = lock_init,
    .check = lock_check,
};

static int finish(mproc_lock **out, mproc_lock *lock, int rc) {
    if (rc != 0) {
        free(lock);
        return rc;
    }
    lock->mutex = &((struct mproc__lock_body *)mproc__segment_body(&lock->seg))->mutex;
    *out = lock;
    return 0;
}

int mproc_lock_create(mproc_lock **out, const mproc_lock_options *opts) {
    if (out == NULL || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    mproc_lock *lock = calloc(1, sizeof *lock);
    if (lock == NULL)
        return ENOMEM;
    return finish(out, lock, mproc__segment_create(&lock->seg, &lock_kind, 0, NULL));
}

int mproc_lock_open(mproc_lock **out, const char *name, int flags,
                    const mproc_lock_options *opts) {
    if (out == NULL || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    mproc_lock *lock = calloc(1, sizeof *lock);
    if (lock == NULL)
        return ENOMEM;
    unsigned mode = opts != NULL ? opts->mode : 0;
    return finish(out, lock,
                  mproc__segment_open(&lock->seg, &lock_kind, name, flags, mode, 0, NULL));
}

int mproc_lock_acquire(mproc_lock *lock, double timeout) {
    if (MPROC__UNLIKELY(lock == NULL || isnan(timeout)))
        return EINVAL;
    /* Without a bound, lock directly: under contention a trylock first
     * would pull the contended cache line over one extra time. */
    int rc = timeout < 0 ? pthread_mutex_lock(lock->mutex) : pthread_mutex_trylock(lock->mutex);
    if (MPROC__LIKELY(rc == 0))
        return 0;
    return mproc__rmutex_acquire_slow(lock->mutex, rc, timeout);
}

int mproc_lock_release(mproc_lock *lock) {
    if (MPROC__UNLIKELY(lock == NULL))
        return EINVAL;
#ifdef MPROC_TSAN
    /* glibc answers a release by a non-owner with EPERM (robust mutexes
     * always check the owner), and so does this check; it exists only so
     * that ThreadSanitizer's interceptor is never handed the misuse, which it
     * would report.  It costs ~1 ns, so release builds leave it to glibc. */
    if (!mproc__lock_held(lock))
        return EPERM;
#endif
    return pthread_mutex_unlock(lock->mutex);
}

int mproc_lock_close(mproc_lock *lock) {
    if (lock == NULL)
        return EINVAL;
    mproc__segment_close(&lock->seg);
    free(lock);
    return 0;
}
