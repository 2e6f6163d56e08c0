/* SPDX-License-Identifier: MIT */
/*
 * mproc_barrier: threading.Barrier's state machine (filling, draining,
 * resetting, broken) under an internal robust mutex, plus a robust token per
 * arrived party so that a dead party is noticed (shm/layout.h, barrier body).
 *
 *   wait:  lock; while draining/resetting: sleep; broken -> MPROC_E_BROKEN.
 *          index = count++; take slot[index]'s token.
 *          Last arriver: run the action, state = draining, wake all.
 *          Others: sleep while filling; the deadline breaks the barrier.
 *          Leave: count--, free the slot; the last to leave a draining or
 *          resetting barrier makes it filling again.
 *
 * Sleeping: unlock, FUTEX_WAIT on `seq` for at most one liveness slice,
 * lock.  After a slice that ended without news the sleeper probes every
 * occupied slot's token (mproc__rmutex_holder_alive); a dead party's slot is
 * freed, and while filling the barrier breaks.  A party dying while it holds
 * the internal mutex is reported by EOWNERDEAD to the next locker, which
 * breaks the barrier and recounts the live slots.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "shm/segment.h"
#include "sync/futex.h"
#include "sync/robust_mutex.h"

struct mproc_barrier {
    struct mproc__barrier_body *body;
    struct mproc__barrier_slot *slots;
    uint32_t parties; /* from the segment's size: bounds every index */
    mproc_barrier_action action;
    void *arg;
    double timeout;
    mproc__segment seg;
};

#define NO_SLOT UINT32_MAX

static int barrier_init(void *body, size_t extra, const void *arg) {
    struct mproc__barrier_body *bbody = body;
    struct mproc__barrier_slot *slots = (void *)(bbody + 1);
    bbody->parties = *(const uint32_t *)arg;
    bbody->state = MPROC__BARRIER_FILLING;
    bbody->count = 0;
    atomic_init(&bbody->seq, 0);
    int rc = mproc__rmutex_init(&bbody->mutex);
    for (size_t i = 0; rc == 0 && i < extra / sizeof *slots; i++) {
        slots[i].occupied = 0;
        rc = mproc__rmutex_init(&slots[i].token);
    }
    return rc;
}

static int barrier_check(const void *body, size_t extra) {
    const struct mproc__barrier_body *bbody = body;
    const struct mproc__barrier_slot *slots = (const void *)(bbody + 1);
    if (extra % sizeof *slots != 0 || extra / sizeof *slots != bbody->parties ||
        bbody->parties == 0 || bbody->parties > MPROC_BARRIER_MAX_PARTIES ||
        bbody->state > MPROC__BARRIER_BROKEN || bbody->count > bbody->parties)
        return MPROC_E_CORRUPT;
    int rc = mproc__rmutex_check(&bbody->mutex);
    for (uint32_t i = 0; rc == 0 && i < bbody->parties; i++)
        rc = mproc__rmutex_check(&slots[i].token);
    return rc;
}

static const mproc__kind_spec barrier_kind = {
    .kind = MPROC__KIND_BARRIER,
    .body_size = sizeof(struct mproc__barrier_body),
    .init = barrier_init,
    .check = barrier_check,
};

static int make(mproc_barrier **out, const char *name, int flags, unsigned parties,
                mproc_barrier_action action, void *arg, double timeout,
                const mproc_barrier_options *opts) {
    if (out == NULL || isnan(timeout) || parties > MPROC_BARRIER_MAX_PARTIES ||
        (parties == 0 && (name == NULL || (flags & MPROC_CREATE))) || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    mproc_barrier *barrier = calloc(1, sizeof *barrier);
    if (barrier == NULL)
        return ENOMEM;
    uint32_t init = parties;
    size_t extra = (size_t)parties * sizeof(struct mproc__barrier_slot);
    unsigned mode = opts != NULL ? opts->mode : 0;
    int rc = name == NULL ? mproc__segment_create(&barrier->seg, &barrier_kind, extra, &init)
                          : mproc__segment_open(&barrier->seg, &barrier_kind, name, flags, mode,
                                                extra, &init);
    if (rc != 0) {
        free(barrier);
        return rc;
    }
    barrier->body = mproc__segment_body(&barrier->seg);
    barrier->slots = (void *)(barrier->body + 1);
    barrier->parties = (uint32_t)((barrier->seg.size - MPROC__HEADER_SIZE - sizeof *barrier->body) /
                                  sizeof(struct mproc__barrier_slot));
    if (parties != 0 && parties != barrier->parties) {
        mproc__segment_close(&barrier->seg);
        free(barrier);
        return EINVAL;
    }
    barrier->action = action;
    barrier->arg = arg;
    barrier->timeout = timeout;
    *out = barrier;
    return 0;
}

int mproc_barrier_create(mproc_barrier **out, unsigned parties, mproc_barrier_action action,
                         void *arg, double timeout, const mproc_barrier_options *opts) {
    return make(out, NULL, 0, parties, action, arg, timeout, opts);
}

int mproc_barrier_open(mproc_barrier **out, const char *name, int flags, unsigned parties,
                       mproc_barrier_action action, void *arg, double timeout,
                       const mproc_barrier_options *opts) {
    return name == NULL ? EINVAL : make(out, name, flags, parties, action, arg, timeout, opts);
}

/* ---- state changes (all under the internal mutex) ---- */

/* Publishes a state change: every sleeper looks again. */
static void announce(struct mproc__barrier_body *body) {
    atomic_fetch_add_explicit(&body->seq, 1, memory_order_release);
    mproc__futex_wake(&body->seq, INT_MAX);
}

static void set_state(struct mproc__barrier_body *body, uint32_t state) {
    body->state = state;
    announce(body);
}

/* A party left: the last one out of a finished or reset round opens the
 * next. */
static void after_leave(struct mproc__barrier_body *body) {
    if (body->count == 0 &&
        (body->state == MPROC__BARRIER_DRAINING || body->state == MPROC__BARRIER_RESETTING))
        set_state(body, MPROC__BARRIER_FILLING);
}

/* Frees the slots of dead parties.  A death while filling breaks the round:
 * it cannot complete. */
static void reap(mproc_barrier *b) {
    struct mproc__barrier_body *body = b->body;
    bool dead = false;
    for (uint32_t i = 0; i < b->parties; i++) {
        if (!b->slots[i].occupied || mproc__rmutex_holder_alive(&b->slots[i].token))
            continue;
        b->slots[i].occupied = 0;
        if (body->count > 0)
            body->count--;
        dead = true;
    }
    if (!dead)
        return;
    if (body->state == MPROC__BARRIER_FILLING)
        set_state(body, MPROC__BARRIER_BROKEN);
    after_leave(body);
}

/* After EOWNERDEAD on the internal mutex: its holder died mid-update, so
 * nothing but the slots' tokens is trusted.  Break, and recount. */
static void recover(mproc_barrier *b) {
    struct mproc__barrier_body *body = b->body;
    uint32_t count = 0;
    for (uint32_t i = 0; i < b->parties; i++) {
        if (b->slots[i].occupied && !mproc__rmutex_holder_alive(&b->slots[i].token))
            b->slots[i].occupied = 0;
        count += b->slots[i].occupied != 0;
    }
    body->count = count;
    set_state(body, MPROC__BARRIER_BROKEN);
}

static int lock_body(mproc_barrier *b) {
    int rc = pthread_mutex_lock(&b->body->mutex);
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&b->body->mutex);
        recover(b);
        rc = 0;
    }
    return rc == EAGAIN ? ENOTRECOVERABLE : rc;
}

static void unlock_body(mproc_barrier *b) {
    pthread_mutex_unlock(&b->body->mutex);
}

/* Sleeps (mutex released) until a state change, the end of a liveness slice
 * or the deadline; then re-locks and, after a quiet slice, reaps the dead.
 * Returns lock_body's code. */
static int sleep_slice(mproc_barrier *b, const mproc__deadline *deadline) {
    uint32_t seen = atomic_load_explicit(&b->body->seq, memory_order_relaxed);
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_nsec += MPROC_BARRIER_LIVENESS_MS * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_nsec -= 1000000000L;
        at.tv_sec++;
    }
    if (!deadline->forever && (deadline->at.tv_sec < at.tv_sec ||
                               (deadline->at.tv_sec == at.tv_sec && deadline->at.tv_nsec < at.tv_nsec)))
        at = deadline->at;
    unlock_body(b);
    int slept = mproc__futex_wait(&b->body->seq, seen, &at);
    int rc = lock_body(b);
    if (rc == 0 && slept == ETIMEDOUT)
        reap(b);
    return rc;
}

/* ---- wait ---- */

/* Takes slot `index`'s token for the calling thread.  The slot is free (the
 * invariant of a filling barrier), so only a dead earlier holder can be in
 * the way. */
static bool take_slot(mproc_barrier *b, uint32_t index) {
    int rc = pthread_mutex_trylock(&b->slots[index].token);
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&b->slots[index].token);
    if (rc != 0)
        return false;
    b->slots[index].occupied = 1;
    b->body->count++;
    return true;
}

static void leave_slot(mproc_barrier *b, uint32_t index) {
    struct mproc__barrier_body *body = b->body;
    if (b->slots[index].occupied) { /* a recovery may have recounted it */
        b->slots[index].occupied = 0;
        if (body->count > 0)
            body->count--;
    }
    pthread_mutex_unlock(&b->slots[index].token);
    after_leave(body);
}

static int wait_locked(mproc_barrier *b, const mproc__deadline *deadline, unsigned *index_out) {
    struct mproc__barrier_body *body = b->body;
    int rc;
    /* Wait for the previous round to drain.  No breaking here on timeout:
     * this party has not arrived, and the round it waits out completed. */
    while (body->state == MPROC__BARRIER_DRAINING || body->state == MPROC__BARRIER_RESETTING) {
        if (mproc__deadline_expired(deadline))
            return ETIMEDOUT;
        if ((rc = sleep_slice(b, deadline)) != 0)
            return rc;
    }
    if (body->state != MPROC__BARRIER_FILLING)
        return MPROC_E_BROKEN;
    uint32_t index = body->count;
    if (index >= b->parties || !take_slot(b, index)) {
        set_state(body, MPROC__BARRIER_BROKEN); /* the slots disagree with count */
        return MPROC_E_BROKEN;
    }
    if (index_out != NULL)
        *index_out = index;
    rc = 0;
    if (index + 1 == b->parties) {
        int arc = b->action != NULL ? b->action(b->arg) : 0;
        if (arc != 0) {
            set_state(body, MPROC__BARRIER_BROKEN);
            rc = arc;
        } else {
            set_state(body, MPROC__BARRIER_DRAINING);
        }
    } else {
        while (body->state == MPROC__BARRIER_FILLING) {
            if (mproc__deadline_expired(deadline)) {
                set_state(body, MPROC__BARRIER_BROKEN);
                rc = ETIMEDOUT;
                break;
            }
            if ((rc = sleep_slice(b, deadline)) != 0)
                return rc; /* internal mutex unusable: not held */
        }
        if (rc == 0 && body->state != MPROC__BARRIER_DRAINING)
            rc = MPROC_E_BROKEN;
    }
    leave_slot(b, index);
    return rc;
}

int mproc_barrier_wait_timeout(mproc_barrier *b, double timeout, unsigned *index) {
    mproc__deadline deadline;
    if (b == NULL || mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    int rc = lock_body(b);
    if (rc != 0)
        return rc;
    rc = wait_locked(b, &deadline, index);
    unlock_body(b);
    return rc;
}

int mproc_barrier_wait(mproc_barrier *b, unsigned *index) {
    if (b == NULL)
        return EINVAL;
    return mproc_barrier_wait_timeout(b, b->timeout, index);
}

/* ---- control and snapshots ---- */

int mproc_barrier_abort(mproc_barrier *b) {
    if (b == NULL)
        return EINVAL;
    int rc = lock_body(b);
    if (rc != 0)
        return rc;
    set_state(b->body, MPROC__BARRIER_BROKEN);
    unlock_body(b);
    return 0;
}

int mproc_barrier_reset(mproc_barrier *b) {
    if (b == NULL)
        return EINVAL;
    int rc = lock_body(b);
    if (rc != 0)
        return rc;
    struct mproc__barrier_body *body = b->body;
    reap(b);
    if (body->count == 0)
        set_state(body, MPROC__BARRIER_FILLING);
    else if (body->state == MPROC__BARRIER_FILLING || body->state == MPROC__BARRIER_BROKEN)
        set_state(body, MPROC__BARRIER_RESETTING); /* the last to leave refills it */
    unlock_body(b);
    return 0;
}

int mproc_barrier_parties(const mproc_barrier *b, unsigned *parties) {
    if (b == NULL || parties == NULL)
        return EINVAL;
    *parties = b->parties;
    return 0;
}

int mproc_barrier_n_waiting(mproc_barrier *b, unsigned *n_waiting) {
    if (b == NULL || n_waiting == NULL)
        return EINVAL;
    int rc = lock_body(b);
    if (rc != 0)
        return rc;
    *n_waiting = b->body->state == MPROC__BARRIER_FILLING ? b->body->count : 0;
    unlock_body(b);
    return 0;
}

int mproc_barrier_broken(mproc_barrier *b, int *broken) {
    if (b == NULL || broken == NULL)
        return EINVAL;
    int rc = lock_body(b);
    if (rc != 0)
        return rc;
    *broken = b->body->state == MPROC__BARRIER_BROKEN;
    unlock_body(b);
    return 0;
}

int mproc_barrier_close(mproc_barrier *b) {
    if (b == NULL)
        return EINVAL;
    mproc__segment_close(&b->seg);
    free(b);
    return 0;
}
