/* SPDX-License-Identifier: MIT */
/*
 * JoinableQueue: task accounting that survives dead consumers.
 *
 * Every task is, at any instant, exactly one of: queued (counted by
 * put_seq - get_seq), taken by a consumer process and not done (its record's
 * taken - done), or finished (done, or folded into `abandoned` when its
 * process died).  So
 *
 *   unfinished = queued + sum over claimed records of (taken - done)
 *
 * with no global "done" counter that a death between two stores could
 * desynchronise.  A get moves a task from queued to its record with two
 * stores around the commit (pending, then taken + 1); a reader that loads
 * head first and the records after sees each task at least once, and counts
 * a pending get whose commit it saw (see unfinished_now).
 *
 * Dead consumers are found by process identity (pid + start time), under the
 * robust `registry` mutex: their outstanding tasks are added to `abandoned`
 * with one store that also names the record (fold), and the record is
 * freed.  A reaper killed in between is recognised by the fold's name: the
 * next registry holder frees that record without counting it again.
 *
 * join() waits in 50 ms slices (reaping at each) on the `joined` eventcount,
 * which task_done bumps when joiners announced themselves.
 */
#include <limits.h>

#include "msg/queue_internal.h"
#include "sync/futex.h"
#include "sync/robust_mutex.h"

#define PID_OF(owner) ((int32_t)(uint32_t)(owner))
#define GEN_OF(owner) ((uint32_t)((owner) >> 32))
#define FOLD_TAG(index, gen) ((((uint64_t)(gen) & 0xffff) << 16) | ((uint64_t)(index) + 1))
#define SEQ31(x) ((uint32_t)(x) & 0x7fffffffu)

static inline uint32_t taken_count(uint64_t taken) {
    return (uint32_t)(taken >> 32);
}

/* ---- the get side's pending marker ---- */

/* Settles `rec`'s pending get, if any, against head (get lock held). */
static void settle(struct mproc__queue_body *body, struct mproc__queue_consumer *rec) {
    uint64_t taken = atomic_load_explicit(&rec->taken, memory_order_acquire);
    if (!(taken & MPROC__QUEUE_PENDING))
        return;
    uint32_t get_seq = (uint32_t)(atomic_load_explicit(&body->head, memory_order_acquire) >> 32);
    uint64_t count = taken & ~(uint64_t)UINT32_MAX;
    /* Committed iff head moved past the pending seq (nobody else can have
     * moved it: we hold the get lock, which the dead owner held). */
    if (SEQ31(get_seq) != SEQ31(taken))
        count += (uint64_t)1 << 32;
    atomic_store_explicit(&rec->taken, count, memory_order_release);
}

void mproc__queue_settle_pending(struct mproc_queue *queue) {
    struct mproc__queue_body *body = queue->body;
    uint32_t holder = atomic_load_explicit(&body->get_holder, memory_order_relaxed);
    if (holder != 0 && holder <= queue->max_consumers)
        settle(body, &queue->consumers[holder - 1]);
    atomic_store_explicit(&body->get_holder, 0, memory_order_relaxed);
}

/* ---- the registry ---- */

/* Recovery after a registry holder died: if it folded a record and died
 * before freeing it, free it now (its tasks are already in `abandoned`). */
static void registry_recover(struct mproc_queue *queue) {
    struct mproc__queue_body *body = queue->body;
    uint64_t fold = atomic_load_explicit(&body->fold, memory_order_relaxed);
    uint32_t index = (uint32_t)(fold & 0xffff);
    if (index == 0 || index > queue->max_consumers)
        return;
    struct mproc__queue_consumer *rec = &queue->consumers[index - 1];
    uint64_t owner = atomic_load_explicit(&rec->owner, memory_order_relaxed);
    if (PID_OF(owner) != 0 && FOLD_TAG(index - 1, GEN_OF(owner)) == (fold & UINT32_MAX))
        atomic_store_explicit(&rec->owner, owner & ~(uint64_t)UINT32_MAX, memory_order_release);
}

static int registry_lock(struct mproc_queue *queue, const mproc__deadline *deadline) {
    pthread_mutex_t *mutex = &queue->body->registry;
    int rc = pthread_mutex_trylock(mutex);
    if (rc != 0)
        rc = mproc__rmutex_acquire_slow(
            mutex, rc, deadline == NULL ? -1.0 : mproc__deadline_remaining(deadline));
    if (rc == EOWNERDEAD) {
        registry_recover(queue);
        rc = 0;
    }
    return rc;
}

/* Folds and frees the records of dead processes (registry held). */
static void reap_locked(struct mproc_queue *queue) {
    struct mproc__queue_body *body = queue->body;
    for (uint32_t i = 0; i < queue->max_consumers; i++) {
        struct mproc__queue_consumer *rec = &queue->consumers[i];
        uint64_t owner = atomic_load_explicit(&rec->owner, memory_order_acquire);
        if (PID_OF(owner) == 0 || mproc__process_alive(PID_OF(owner), rec->owner_start))
            continue;
        if (atomic_load_explicit(&rec->taken, memory_order_acquire) & MPROC__QUEUE_PENDING) {
            /* It died inside a get, holding the get lock: settle that first.
             * Busy means a live consumer recovered the lock and is settling. */
            int rc = pthread_mutex_trylock(&body->get_lock);
            if (rc == EOWNERDEAD) {
                pthread_mutex_consistent(&body->get_lock);
                mproc__queue_settle_pending(queue);
            } else if (rc == 0) {
                settle(body, rec);
            } else {
                continue; /* next time */
            }
            pthread_mutex_unlock(&body->get_lock);
        }
        uint32_t outstanding = taken_count(atomic_load_explicit(&rec->taken, memory_order_acquire)) -
                               (uint32_t)atomic_load_explicit(&rec->done, memory_order_acquire);
        uint64_t tag = FOLD_TAG(i, GEN_OF(owner));
        uint64_t fold = atomic_load_explicit(&body->fold, memory_order_relaxed);
        uint64_t abandoned = (uint32_t)((fold >> 32) + outstanding);
        atomic_store_explicit(&body->fold, abandoned << 32 | tag, memory_order_release);
        atomic_store_explicit(&rec->owner, owner & ~(uint64_t)UINT32_MAX, memory_order_release);
    }
}

static int find_own(const struct mproc_queue *queue, int32_t pid, uint64_t start) {
    for (uint32_t i = 0; i < queue->max_consumers; i++) {
        const struct mproc__queue_consumer *rec = &queue->consumers[i];
        if (PID_OF(atomic_load_explicit(&rec->owner, memory_order_acquire)) == pid &&
            rec->owner_start == start)
            return (int)i;
    }
    return -1;
}

static int claim_free(struct mproc_queue *queue, int32_t pid, uint64_t start) {
    for (uint32_t i = 0; i < queue->max_consumers; i++) {
        struct mproc__queue_consumer *rec = &queue->consumers[i];
        uint64_t owner = atomic_load_explicit(&rec->owner, memory_order_acquire);
        if (PID_OF(owner) != 0)
            continue;
        atomic_store_explicit(&rec->taken, 0, memory_order_relaxed);
        atomic_store_explicit(&rec->done, 0, memory_order_relaxed);
        rec->owner_start = start;
        atomic_store_explicit(&rec->owner, (uint64_t)(GEN_OF(owner) + 1) << 32 | (uint32_t)pid,
                              memory_order_release);
        return (int)i;
    }
    return -1;
}

/* Looks this process's record up (claiming one when `claim`).  Returns 0,
 * ENOENT (none and !claim), EAGAIN (none free). */
static int lookup(struct mproc_queue *queue, bool claim, struct mproc__queue_consumer **out) {
    int32_t pid = mproc__self_pid();
    if (__atomic_load_n(&queue->rec_pid, __ATOMIC_ACQUIRE) == pid) {
        *out = &queue->consumers[__atomic_load_n(&queue->rec_index, __ATOMIC_RELAXED)];
        return 0;
    }
    uint64_t start = mproc__process_start(pid);
    int rc = registry_lock(queue, NULL);
    if (rc != 0)
        return rc;
    int index = find_own(queue, pid, start);
    if (index < 0 && claim) {
        index = claim_free(queue, pid, start);
        if (index < 0) {
            reap_locked(queue);
            index = claim_free(queue, pid, start);
        }
    }
    pthread_mutex_unlock(&queue->body->registry);
    if (index < 0)
        return claim ? EAGAIN : ENOENT;
    __atomic_store_n(&queue->rec_index, (uint32_t)index, __ATOMIC_RELAXED);
    __atomic_store_n(&queue->rec_pid, pid, __ATOMIC_RELEASE);
    *out = &queue->consumers[index];
    return 0;
}

int mproc__queue_my_record(struct mproc_queue *queue, struct mproc__queue_consumer **rec) {
    return lookup(queue, true, rec);
}

/* ---- task_done, join ---- */

int mproc_queue_task_done(mproc_queue *queue) {
    if (queue == NULL || queue->kind != MPROC__KIND_JOINABLE_QUEUE)
        return EINVAL;
    struct mproc__queue_consumer *rec;
    int rc = lookup(queue, false, &rec);
    if (rc == ENOENT)
        return EOVERFLOW; /* this process never got an item */
    if (rc != 0)
        return rc;
    uint64_t done = atomic_load_explicit(&rec->done, memory_order_relaxed);
    do {
        uint64_t taken = atomic_load_explicit(&rec->taken, memory_order_acquire);
        if (taken_count(taken) == (uint32_t)done)
            return EOVERFLOW;
    } while (!atomic_compare_exchange_weak_explicit(&rec->done, &done, (uint32_t)(done + 1),
                                                    memory_order_seq_cst, memory_order_relaxed));
    struct mproc__queue_body *body = queue->body;
    if (atomic_load_explicit(&body->join_waiters, memory_order_seq_cst) != 0) {
        atomic_fetch_add_explicit(&body->joined, 1, memory_order_release);
        mproc__futex_wake(&body->joined, INT_MAX);
    }
    return 0;
}

/* Tasks not yet done or abandoned, now (see the top of the file). */
static uint32_t unfinished_now(const struct mproc_queue *queue) {
    struct mproc__queue_body *body = queue->body;
    uint64_t head = atomic_load_explicit(&body->head, memory_order_seq_cst); /* first */
    uint64_t tail = atomic_load_explicit(&body->tail, memory_order_acquire);
    uint32_t get_seq = (uint32_t)(head >> 32);
    uint32_t sum = (uint32_t)(tail >> 32) - get_seq;
    for (uint32_t i = 0; i < queue->max_consumers; i++) {
        const struct mproc__queue_consumer *rec = &queue->consumers[i];
        if (PID_OF(atomic_load_explicit(&rec->owner, memory_order_acquire)) == 0)
            continue;
        uint64_t taken = atomic_load_explicit(&rec->taken, memory_order_acquire);
        uint32_t done = (uint32_t)atomic_load_explicit(&rec->done, memory_order_acquire);
        sum += taken_count(taken) - done;
        if ((taken & MPROC__QUEUE_PENDING) && SEQ31(get_seq - 1) == SEQ31(taken))
            sum += 1; /* committed before our head load, not yet counted in taken */
    }
    return sum;
}

static uint32_t unforgiven(const struct mproc__queue_body *body) {
    uint64_t fold = atomic_load_explicit(&((struct mproc__queue_body *)body)->fold,
                                         memory_order_acquire);
    uint64_t forgiven = atomic_load_explicit(&((struct mproc__queue_body *)body)->forgiven,
                                             memory_order_acquire);
    return (uint32_t)(fold >> 32) - (uint32_t)forgiven;
}

static int reap(struct mproc_queue *queue, const mproc__deadline *deadline) {
    int rc = registry_lock(queue, deadline);
    if (rc != 0)
        return rc;
    reap_locked(queue);
    pthread_mutex_unlock(&queue->body->registry);
    return 0;
}

int mproc_queue_join(mproc_queue *queue, double timeout) {
    if (queue == NULL || queue->kind != MPROC__KIND_JOINABLE_QUEUE)
        return EINVAL;
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    struct mproc__queue_body *body = queue->body;
    atomic_fetch_add_explicit(&body->join_waiters, 1, memory_order_seq_cst);
    struct timespec next_reap = {0, 0};
    int rc;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next_reap.tv_sec ||
            (now.tv_sec == next_reap.tv_sec && now.tv_nsec >= next_reap.tv_nsec)) {
            /* A busy registry (someone else reaping or claiming) only
             * postpones our reap to the next slice: never a reason to fail. */
            mproc__deadline at_once = {.now = true};
            rc = reap(queue, &at_once);
            if (rc != 0 && rc != ETIMEDOUT)
                break;
            mproc__deadline unbounded = {.forever = true};
            mproc__slice_end(&unbounded, MPROC_QUEUE_LIVENESS_MS, &next_reap);
        }
        uint32_t seen = atomic_load_explicit(&body->joined, memory_order_acquire);
        if (unfinished_now(queue) == 0) {
            rc = unforgiven(body) != 0 ? MPROC_E_ABANDONED : 0;
            break;
        }
        if (mproc__deadline_expired(&deadline)) {
            rc = ETIMEDOUT;
            break;
        }
        struct timespec slice;
        mproc__slice_end(&deadline, MPROC_QUEUE_LIVENESS_MS, &slice);
        mproc__futex_wait(&body->joined, seen, &slice);
    }
    atomic_fetch_sub_explicit(&body->join_waiters, 1, memory_order_relaxed);
    return rc;
}

int mproc_queue_unfinished(mproc_queue *queue, uint64_t *count) {
    if (queue == NULL || count == NULL || queue->kind != MPROC__KIND_JOINABLE_QUEUE)
        return EINVAL;
    int rc = reap(queue, NULL);
    if (rc != 0)
        return rc;
    *count = unfinished_now(queue);
    return 0;
}

int mproc_queue_abandoned(mproc_queue *queue, uint64_t *count) {
    if (queue == NULL || count == NULL || queue->kind != MPROC__KIND_JOINABLE_QUEUE)
        return EINVAL;
    int rc = reap(queue, NULL);
    if (rc != 0)
        return rc;
    *count = unforgiven(queue->body);
    return 0;
}

int mproc_queue_forgive(mproc_queue *queue, uint64_t count) {
    if (queue == NULL || queue->kind != MPROC__KIND_JOINABLE_QUEUE)
        return EINVAL;
    struct mproc__queue_body *body = queue->body;
    uint64_t forgiven = atomic_load_explicit(&body->forgiven, memory_order_relaxed);
    do {
        uint64_t fold = atomic_load_explicit(&body->fold, memory_order_acquire);
        if (count > (uint32_t)((uint32_t)(fold >> 32) - (uint32_t)forgiven))
            return EINVAL;
    } while (!atomic_compare_exchange_weak_explicit(&body->forgiven, &forgiven,
                                                    (uint32_t)(forgiven + count),
                                                    memory_order_release, memory_order_relaxed));
    return 0;
}
