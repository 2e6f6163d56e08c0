/* SPDX-License-Identifier: MIT */
/*
 * mproc_barrier: threading.Barrier's state machine (filling, draining,
 * resetting, broken) under an internal robust mutex, plus a robust token per
 * arrived party so that a dead party is noticed (shm/layout.h, barrier body).
 *
 *   wait:  lock; while draining/resetting: sleep; broken -> MPROC_E_BROKEN.
 *          index = count++; take slot[index]'s token.
 *          Last arriver: probe the peers' tokens (a party may have died
 *          with nobody asleep to notice), run the action, state = draining,
 *          wake all.
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
#include <linux/futex.h>
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
    bbody->doomed = 0;
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
    if (extra % sizeof *slots != 0 || extra / sizeof *slots != 2 * (size_t)bbody->parties ||
        bbody->parties == 0 || bbody->parties > MPROC_BARRIER_MAX_PARTIES ||
        bbody->state > MPROC__BARRIER_BROKEN || bbody->count > bbody->parties)
        return MPROC_E_CORRUPT;
    int rc = mproc__rmutex_check(&bbody->mutex);
    for (uint32_t i = 0; rc == 0 && i < 2 * bbody->parties; i++)
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
    size_t extra = 2 * (size_t)parties * sizeof(struct mproc__barrier_slot);
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
                                  (2 * sizeof(struct mproc__barrier_slot)));
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
        (body->state == MPROC__BARRIER_DRAINING || body->state == MPROC__BARRIER_RESETTING)) {
        set_state(body, body->doomed ? MPROC__BARRIER_BROKEN : MPROC__BARRIER_FILLING);
        body->doomed = 0;
    }
}

/*
 * Entry tokens (the second half of the slots): a party takes one, without
 * the internal mutex, as the first thing wait() does, and drops it as the
 * last.  A dead party's entry token shows FUTEX_OWNER_DIED, so a death
 * anywhere inside wait() — blocked on the internal mutex, waiting for a
 * round to drain, arrived — is seen by reap().  More concurrent callers than
 * parties: the extra ones wait without one, and their death before arriving
 * looks like a slow party's.
 */
static uint32_t take_entry(mproc_barrier *b, bool *found_dead) {
    for (uint32_t i = b->parties; i < 2 * b->parties; i++) {
        pthread_mutex_t *token = &b->slots[i].token;
        int rc = pthread_mutex_trylock(token);
        if (rc == EOWNERDEAD) {
            /* A dead entrant nobody has reaped yet: its token is ours now,
             * and its death is reported under the mutex (party_died). */
            pthread_mutex_consistent(token);
            *found_dead = true;
            return i;
        }
        if (rc == 0)
            return i;
    }
    return NO_SLOT;
}

static void leave_entry(mproc_barrier *b, uint32_t index) {
    if (index != NO_SLOT)
        pthread_mutex_unlock(&b->slots[index].token);
}

/* True if the entry token's holder died; the token is then freed. */
static bool entrant_died(pthread_mutex_t *token) {
    uint32_t word = __atomic_load_n((uint32_t *)&token->__data.__lock, __ATOMIC_RELAXED);
    if (!(word & FUTEX_OWNER_DIED))
        return false;
    int rc = pthread_mutex_trylock(token);
    if (rc != EOWNERDEAD)
        return rc == 0 ? (pthread_mutex_unlock(token), false) : false;
    pthread_mutex_consistent(token);
    pthread_mutex_unlock(token);
    return true;
}

/* Some party died inside wait(); its slots are already freed. */
static void party_died(mproc_barrier *b) {
    struct mproc__barrier_body *body = b->body;
    if (body->state == MPROC__BARRIER_FILLING)
        set_state(body, MPROC__BARRIER_BROKEN);
    else if (body->state != MPROC__BARRIER_BROKEN)
        body->doomed = 1;
    after_leave(body);
}

/*
 * Frees the slots of dead parties.  Any death inside wait() breaks the
 * barrier at the first moment that falsifies no completed round: at once
 * while filling (the round cannot complete); while the previous round
 * drains or resets (the dead party was leaving it, or pending for the next),
 * that round stands, and the next one opens broken (`doomed`).
 */
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
    for (uint32_t i = b->parties; i < 2 * b->parties; i++)
        dead |= entrant_died(&b->slots[i].token);
    if (dead)
        party_died(b);
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
    for (uint32_t i = b->parties; i < 2 * b->parties; i++)
        entrant_died(&b->slots[i].token);
    body->count = count;
    body->doomed = 0;
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
    mproc__slice_end(deadline, MPROC_BARRIER_LIVENESS_MS, &at);
    unlock_body(b);
    int slept = mproc__futex_wait(&b->body->seq, seen, &at);
    int rc = lock_body(b);
    if (rc == 0 && slept == ETIMEDOUT)
        reap(b);
    return rc;
}

/* ---- wait ---- */

/* Takes arrival slot `index`'s token for the calling thread.  The slot is
 * free (the invariant of a filling barrier), so only a dead earlier holder
 * can be in the way. */
static bool take_token(mproc_barrier *b, uint32_t index) {
    int rc = pthread_mutex_trylock(&b->slots[index].token);
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&b->slots[index].token);
    if (rc != 0)
        return false;
    b->slots[index].occupied = 1;
    return true;
}

static bool take_slot(mproc_barrier *b, uint32_t index) {
    if (!take_token(b, index))
        return false;
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
        /* A party that died while no peer slept to probe it still counts
         * in `count`: probe before completing the round with it. */
        reap(b);
        if (body->state != MPROC__BARRIER_FILLING)
            rc = MPROC_E_BROKEN; /* reap() found a dead party and broke it */
        else if ((rc = b->action != NULL ? b->action(b->arg) : 0) != 0)
            set_state(body, MPROC__BARRIER_BROKEN);
        else
            set_state(body, MPROC__BARRIER_DRAINING);
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
    bool found_dead = false;
    uint32_t entry = take_entry(b, &found_dead);
    int rc = lock_body(b);
    if (rc == 0 && found_dead)
        party_died(b);
    if (rc == 0) {
        rc = wait_locked(b, &deadline, index);
        unlock_body(b);
    }
    leave_entry(b, entry);
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
    body->doomed = 0;
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
