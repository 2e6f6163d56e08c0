/* SPDX-License-Identifier: MIT */
/*
 * mproc_condition: a condition variable whose waiters are records in shared
 * memory (shm/layout.h: condition body and waiter records), one futex word
 * per waiter.  Never a pthread_cond_t: since glibc 2.25 its broadcast can
 * block forever after a waiter process dies (glibc BZ 21422).
 *
 *   wait:   (lock held) take a FREE record and its token, ticket it, set
 *           WAITING; release the lock completely; spin, then CAS WAITING ->
 *           SLEEPING and FUTEX_WAIT on the record until NOTIFIED or the
 *           deadline; re-take the lock; NOTIFIED means notified, anything
 *           else timed out (a notify that lands before the lock is re-taken
 *           still counts, so no notify is ever lost or double-counted);
 *           free the record.
 *   notify: (lock held) pick the smallest tickets among WAITING/SLEEPING
 *           records whose token is held by a live thread, exchange them to
 *           NOTIFIED, FUTEX_WAKE those that were SLEEPING.
 *
 * Exactly n: only records are counted, each once, under the lock.  No
 * phantom: a dead waiter's token is found dead (robust mutex) and its record
 * freed instead of being notified.
 */
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "shm/segment.h"
#include "sync/futex.h"
#include "sync/handles.h"
#include "sync/robust_mutex.h"

struct mproc_condition {
    struct mproc__condition_body *body;
    struct mproc__condition_waiter *waiters;
    uint32_t max_waiters;   /* from the segment's size: bounds every index */
    uint32_t lock_kind;     /* enum mproc__condition_lock */
    struct mproc_lock *lock;   /* MPROC__COND_LOCK */
    struct mproc_rlock *rlock; /* otherwise: given, or &own */
    struct mproc_rlock own;
    mproc__segment seg;
};

struct cond_init_arg {
    uint32_t lock_kind, max_waiters;
    uint64_t lock_uuid;
};

static int cond_init(void *body, size_t extra, const void *arg) {
    const struct cond_init_arg *init = arg;
    struct mproc__condition_body *cbody = body;
    cbody->lock_kind = init->lock_kind;
    cbody->max_waiters = init->max_waiters;
    cbody->lock_uuid = init->lock_uuid;
    cbody->hiwater = 0;
    cbody->ticket = 0;
    int rc = mproc__rlock_body_init(&cbody->own_lock);
    struct mproc__condition_waiter *waiters = (void *)(cbody + 1);
    for (size_t i = 0; rc == 0 && i < extra / sizeof *waiters; i++) {
        atomic_init(&waiters[i].state, MPROC__WAITER_FREE);
        waiters[i].ticket = 0;
        rc = mproc__rmutex_init(&waiters[i].token);
    }
    return rc;
}

static int cond_check(const void *body, size_t extra) {
    const struct mproc__condition_body *cbody = body;
    const struct mproc__condition_waiter *waiters = (const void *)(cbody + 1);
    if (extra % sizeof *waiters != 0 || extra / sizeof *waiters != cbody->max_waiters ||
        cbody->max_waiters == 0 || cbody->max_waiters > MPROC_CONDITION_MAX_WAITERS ||
        cbody->lock_kind > MPROC__COND_RLOCK)
        return MPROC_E_CORRUPT;
    int rc = mproc__rmutex_check(&cbody->own_lock.mutex);
    for (uint32_t i = 0; rc == 0 && i < cbody->max_waiters; i++)
        rc = mproc__rmutex_check(&waiters[i].token);
    return rc;
}

static const mproc__kind_spec condition_kind = {
    .kind = MPROC__KIND_CONDITION,
    .body_size = sizeof(struct mproc__condition_body),
    .init = cond_init,
    .check = cond_check,
};

static int make(mproc_condition **out, const char *name, int flags, mproc_lock *lock,
                mproc_rlock *rlock, const mproc_condition_options *opts) {
    if (out == NULL || (lock != NULL && rlock != NULL) || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    struct cond_init_arg init = {
        .lock_kind = lock != NULL    ? MPROC__COND_LOCK
                     : rlock != NULL ? MPROC__COND_RLOCK
                                     : MPROC__COND_OWN_RLOCK,
        .max_waiters = opts != NULL && opts->max_waiters != 0 ? opts->max_waiters
                                                              : MPROC_CONDITION_DEFAULT_WAITERS,
        .lock_uuid = lock != NULL ? lock->seg.uuid : rlock != NULL ? rlock->seg.uuid : 0,
    };
    if (init.max_waiters > MPROC_CONDITION_MAX_WAITERS)
        return EINVAL;
    mproc_condition *cond = calloc(1, sizeof *cond);
    if (cond == NULL)
        return ENOMEM;
    size_t extra = (size_t)init.max_waiters * sizeof(struct mproc__condition_waiter);
    unsigned mode = opts != NULL ? opts->mode : 0;
    int rc = name == NULL ? mproc__segment_create(&cond->seg, &condition_kind, extra, &init)
                          : mproc__segment_open(&cond->seg, &condition_kind, name, flags, mode,
                                                extra, &init);
    if (rc != 0) {
        free(cond);
        return rc;
    }
    cond->body = mproc__segment_body(&cond->seg);
    cond->waiters = (void *)(cond->body + 1);
    cond->max_waiters = (uint32_t)((cond->seg.size - MPROC__HEADER_SIZE - sizeof *cond->body) /
                                   sizeof(struct mproc__condition_waiter));
    /* An attached condition must be over the lock it was made with. */
    if (cond->body->lock_kind != init.lock_kind || cond->body->lock_uuid != init.lock_uuid) {
        mproc__segment_close(&cond->seg);
        free(cond);
        return EINVAL;
    }
    cond->lock_kind = init.lock_kind;
    cond->lock = lock;
    cond->own.body = &cond->body->own_lock;
    cond->rlock = rlock != NULL ? rlock : &cond->own;
    *out = cond;
    return 0;
}

int mproc_condition_create(mproc_condition **out, mproc_lock *lock, mproc_rlock *rlock,
                           const mproc_condition_options *opts) {
    return make(out, NULL, 0, lock, rlock, opts);
}

int mproc_condition_open(mproc_condition **out, const char *name, int flags, mproc_lock *lock,
                         mproc_rlock *rlock, const mproc_condition_options *opts) {
    return name == NULL ? EINVAL : make(out, name, flags, lock, rlock, opts);
}

/* ---- the lock ---- */

int mproc_condition_acquire(mproc_condition *cond, double timeout) {
    if (cond == NULL)
        return EINVAL;
    return cond->lock_kind == MPROC__COND_LOCK ? mproc_lock_acquire(cond->lock, timeout)
                                               : mproc_rlock_acquire(cond->rlock, timeout);
}

int mproc_condition_release(mproc_condition *cond) {
    if (cond == NULL)
        return EINVAL;
    return cond->lock_kind == MPROC__COND_LOCK ? mproc_lock_release(cond->lock)
                                               : mproc_rlock_release(cond->rlock);
}

static bool lock_held(const mproc_condition *cond) {
    if (cond->lock_kind == MPROC__COND_LOCK)
        return mproc__lock_held(cond->lock);
    /* relaxed: see the RLock body's comment on `owner`. */
    return atomic_load_explicit(&cond->rlock->body->owner, memory_order_relaxed) == mproc__self();
}

/* Releases every level; returns the depth to restore. */
static uint32_t release_all(mproc_condition *cond) {
    if (cond->lock_kind == MPROC__COND_LOCK) {
        mproc_lock_release(cond->lock);
        return 1;
    }
    uint32_t depth = cond->rlock->body->depth;
    cond->rlock->body->depth = 1;
    mproc_rlock_release(cond->rlock);
    return depth;
}

/* Takes the lock back without a bound and restores the depth.  0 or
 * EOWNERDEAD (held either way), or a code for a lock gone unusable. */
static int reacquire(mproc_condition *cond, uint32_t depth) {
    int rc = mproc_condition_acquire(cond, MPROC_FOREVER);
    if (cond->lock_kind != MPROC__COND_LOCK && (rc == 0 || rc == EOWNERDEAD))
        cond->rlock->body->depth = depth;
    return rc;
}

/* ---- waiter records (all under the lock) ---- */

/* hiwater is written only under the lock, but lost_notification() peeks at
 * it without the lock, so every access is atomic.  relaxed: the peek is a
 * hint that rescue() confirms under the lock; it needs an untorn value, no
 * ordering (the lock orders the writers). */
static uint32_t hiwater(const mproc_condition *cond) {
    uint32_t hw = __atomic_load_n(&cond->body->hiwater, __ATOMIC_RELAXED);
    return hw < cond->max_waiters ? hw : cond->max_waiters;
}

static void set_hiwater(mproc_condition *cond, uint32_t hw) {
    __atomic_store_n(&cond->body->hiwater, hw, __ATOMIC_RELAXED);
}

static void free_record(mproc_condition *cond, uint32_t index) {
    atomic_store_explicit(&cond->waiters[index].state, MPROC__WAITER_FREE, memory_order_relaxed);
    uint32_t hw = hiwater(cond);
    while (hw > 0 && atomic_load_explicit(&cond->waiters[hw - 1].state, memory_order_relaxed) ==
                         MPROC__WAITER_FREE)
        hw--;
    set_hiwater(cond, hw);
}

static bool is_waiting(uint32_t state) {
    return state == MPROC__WAITER_WAITING || state == MPROC__WAITER_SLEEPING;
}

/* Frees the records of dead waiters; true if any was freed. */
static bool reap(mproc_condition *cond) {
    bool freed = false;
    for (uint32_t i = 0, hw = hiwater(cond); i < hw; i++) {
        struct mproc__condition_waiter *w = &cond->waiters[i];
        if (atomic_load_explicit(&w->state, memory_order_relaxed) != MPROC__WAITER_FREE &&
            !mproc__rmutex_holder_alive(&w->token)) {
            free_record(cond, i);
            freed = true;
        }
    }
    return freed;
}

/* Fills a FREE record for the calling thread; returns its index, or
 * UINT32_MAX when every record is taken by a live waiter. */
static uint32_t take_record(mproc_condition *cond) {
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < cond->max_waiters; i++) {
            struct mproc__condition_waiter *w = &cond->waiters[i];
            if (atomic_load_explicit(&w->state, memory_order_relaxed) != MPROC__WAITER_FREE)
                continue;
            int rc = pthread_mutex_trylock(&w->token);
            if (rc == EOWNERDEAD) /* its last waiter died while freeing it */
                rc = pthread_mutex_consistent(&w->token);
            if (rc != 0)
                continue;
            w->ticket = cond->body->ticket++;
            atomic_store_explicit(&w->state, MPROC__WAITER_WAITING, memory_order_relaxed);
            if (i >= hiwater(cond))
                set_hiwater(cond, i + 1);
            return i;
        }
        if (!reap(cond))
            break;
    }
    return UINT32_MAX;
}

static void drop_record(mproc_condition *cond, uint32_t index) {
    free_record(cond, index);
    pthread_mutex_unlock(&cond->waiters[index].token);
}

/* ---- wait and notify ---- */

/* The robust futex word of the condition's lock. */
static uint32_t lock_word(const mproc_condition *cond) {
    const pthread_mutex_t *mutex =
        cond->lock_kind == MPROC__COND_LOCK ? cond->lock->mutex : &cond->rlock->body->mutex;
    return __atomic_load_n((const uint32_t *)&mutex->__data.__lock, __ATOMIC_RELAXED);
}

/* A peek (no lock, no writes): was some waiter chosen by a notify and then
 * died before it could take the lock back?  Its notification is lost unless
 * a living waiter takes it over. */
static bool lost_notification(const mproc_condition *cond, uint32_t self) {
    for (uint32_t i = 0, hw = hiwater(cond); i < hw; i++) {
        const struct mproc__condition_waiter *w = &cond->waiters[i];
        if (i == self ||
            atomic_load_explicit(&w->state, memory_order_relaxed) != MPROC__WAITER_NOTIFIED)
            continue;
        uint32_t token = __atomic_load_n((const uint32_t *)&w->token.__data.__lock,
                                         __ATOMIC_RELAXED);
        if ((token & MPROC__ROBUST_TID_MASK) == 0 || (token & FUTEX_OWNER_DIED))
            return true;
    }
    return false;
}

/*
 * Between two slices of sleep, a waiter repairs what dead peers left:
 *   - the lock's holder died (OWNER_DIED in its word): take the lock, and
 *     return EOWNERDEAD at once, so the waiter can repair the data;
 *   - a notified waiter died before taking the lock back: take the lock,
 *     free its record and take its notification over (return 0).
 * Only a trylock: if a live thread holds the lock, it will notify or
 * release, and the next slice looks again.  Returns true when the waiter now
 * holds the lock, with *rc its wait's result.
 */
static bool rescue(mproc_condition *cond, uint32_t self, uint32_t depth, int *rc) {
    if (!(lock_word(cond) & FUTEX_OWNER_DIED) && !lost_notification(cond, self))
        return false;
    int got = mproc_condition_acquire(cond, 0);
    if (got != 0 && got != EOWNERDEAD)
        return false;
    if (cond->lock_kind != MPROC__COND_LOCK)
        cond->rlock->body->depth = depth;
    if (got == EOWNERDEAD) {
        *rc = EOWNERDEAD;
        return true;
    }
    bool took_over = false;
    for (uint32_t i = 0, hw = hiwater(cond); i < hw; i++) {
        struct mproc__condition_waiter *w = &cond->waiters[i];
        if (i != self &&
            atomic_load_explicit(&w->state, memory_order_relaxed) == MPROC__WAITER_NOTIFIED &&
            !mproc__rmutex_holder_alive(&w->token)) {
            free_record(cond, i);
            took_over = true;
        }
    }
    if (!took_over) {
        release_all(cond); /* a false alarm: the peer was alive after all */
        return false;
    }
    *rc = 0;
    return true;
}

/*
 * Waits on record `self` until NOTIFIED or the deadline, in liveness slices.
 * Returns true if a rescue left the lock held (result in *rc); false when
 * the caller must take the lock back itself.
 */
static bool await_notify(mproc_condition *cond, uint32_t self, uint32_t depth,
                         const mproc__deadline *deadline, int *rc) {
    _Atomic uint32_t *state = &cond->waiters[self].state;
    mproc__spin spin;
    /* acquire: pairs with the notifier's release exchange. */
    for (mproc__spin_start(&spin, deadline); mproc__spin_more(&spin);)
        if (atomic_load_explicit(state, memory_order_acquire) == MPROC__WAITER_NOTIFIED)
            return false;
    uint32_t expected = MPROC__WAITER_WAITING;
    if (!atomic_compare_exchange_strong_explicit(state, &expected, MPROC__WAITER_SLEEPING,
                                                 memory_order_acquire, memory_order_acquire))
        return false; /* NOTIFIED meanwhile */
    while (atomic_load_explicit(state, memory_order_acquire) == MPROC__WAITER_SLEEPING) {
        struct timespec at;
        mproc__slice_end(deadline, MPROC_CONDITION_LIVENESS_MS, &at);
        if (mproc__futex_wait(state, MPROC__WAITER_SLEEPING, &at) != ETIMEDOUT)
            continue;
        if (mproc__deadline_expired(deadline))
            return false;
        if (rescue(cond, self, depth, rc))
            return true;
    }
    return false;
}

static int wait_until(mproc_condition *cond, const mproc__deadline *deadline) {
    if (!lock_held(cond))
        return EPERM;
    uint32_t index = take_record(cond);
    if (index == UINT32_MAX)
        return EAGAIN;
    _Atomic uint32_t *state = &cond->waiters[index].state;
    uint32_t depth = release_all(cond);
    int rc = 0;
    bool rescued = await_notify(cond, index, depth, deadline, &rc);
    if (!rescued)
        rc = reacquire(cond, depth);
    bool notified =
        rescued || atomic_load_explicit(state, memory_order_acquire) == MPROC__WAITER_NOTIFIED;
    drop_record(cond, index);
    if (rc != 0)
        return rc; /* EOWNERDEAD: held, notified or not */
    return notified ? 0 : ETIMEDOUT;
}

int mproc_condition_wait(mproc_condition *cond, double timeout) {
    mproc__deadline deadline;
    if (cond == NULL || mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    return wait_until(cond, &deadline);
}

int mproc_condition_wait_for(mproc_condition *cond, int (*predicate)(void *arg), void *arg,
                             double timeout, int *result) {
    mproc__deadline deadline;
    if (cond == NULL || predicate == NULL || mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (!lock_held(cond))
        return EPERM;
    int value = predicate(arg);
    int rc = 0;
    while (!value) {
        if (mproc__deadline_expired(&deadline)) {
            rc = ETIMEDOUT;
            break;
        }
        rc = wait_until(cond, &deadline);
        if (rc != 0 && rc != ETIMEDOUT && rc != EOWNERDEAD)
            break; /* EAGAIN, or the lock became unusable */
        value = predicate(arg);
        if (rc == EOWNERDEAD)
            break;
        rc = value ? 0 : rc;
    }
    if (result != NULL)
        *result = value;
    return rc;
}

/* Notifies record `index` if its waiter lives; false for a dead one (its
 * record is freed instead). */
static bool notify_one(mproc_condition *cond, uint32_t index) {
    struct mproc__condition_waiter *w = &cond->waiters[index];
    if (!mproc__rmutex_holder_alive(&w->token)) {
        free_record(cond, index); /* a dead waiter: skip it, for good */
        return false;
    }
    /* release: the notifier's writes under the lock reach the woken, which
     * also re-takes the lock before it returns. */
    uint32_t was =
        atomic_exchange_explicit(&w->state, MPROC__WAITER_NOTIFIED, memory_order_release);
    if (was == MPROC__WAITER_SLEEPING)
        mproc__futex_wake(&w->state, 1);
    return true;
}

static int notify(mproc_condition *cond, unsigned n) {
    if (cond == NULL)
        return EINVAL;
    if (!lock_held(cond))
        return EPERM;
    if (n >= hiwater(cond)) {
        /* Everyone: order does not matter, one pass. */
        for (uint32_t i = 0, hw = hiwater(cond); i < hw; i++)
            if (is_waiting(atomic_load_explicit(&cond->waiters[i].state, memory_order_relaxed)))
                notify_one(cond, i);
        return 0;
    }
    for (unsigned woken = 0; woken < n;) {
        /* The longest waiter: smallest ticket among live WAITING/SLEEPING. */
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0, hw = hiwater(cond); i < hw; i++) {
            uint32_t state = atomic_load_explicit(&cond->waiters[i].state, memory_order_relaxed);
            if (is_waiting(state) &&
                (best == UINT32_MAX || cond->waiters[i].ticket < cond->waiters[best].ticket))
                best = i;
        }
        if (best == UINT32_MAX)
            break;
        if (notify_one(cond, best))
            woken++;
    }
    return 0;
}

int mproc_condition_notify(mproc_condition *cond, unsigned n) {
    return notify(cond, n);
}

int mproc_condition_notify_all(mproc_condition *cond) {
    return notify(cond, UINT_MAX);
}

int mproc_condition_close(mproc_condition *cond) {
    if (cond == NULL)
        return EINVAL;
    mproc__segment_close(&cond->seg);
    free(cond);
    return 0;
}
