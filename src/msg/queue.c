/* SPDX-License-Identifier: MIT */
/*
 * mproc_queue: a byte ring with length-prefixed records, one robust lock per
 * side and single-store commits (reliability.md §3; layout in shm/layout.h).
 *
 *   put: lock put_lock; wait (holding it) for room and count < maxsize;
 *        copy the record in (a PAD record first when it would wrap);
 *        commit: tail = {put_seq + 1, tpos + bytes}; unlock; wake a waiting
 *        consumer if not_empty_waiters says one may sleep.
 *   get: lock get_lock; wait (holding it) for tail != head; validate the
 *        record against the handle's geometry; copy it out; commit:
 *        head = {get_seq + 1, hpos + bytes}; unlock; wake a waiting producer.
 *
 * Memory order.  A commit is a seq_cst store; it releases the record's bytes
 * (put) or the consumer's reads of them (get) to the other side, whose
 * acquire load of tail / head comes before it reads (get) or overwrites (put)
 * the bytes.  The wake-up is Dekker's pattern: a waiter stores *_waiters = 1
 * then loads the other side's word; a committer stores its word then loads
 * *_waiters; both seq_cst, so at least one of them sees the other.
 *
 * Death.  Everything before a commit is invisible (bytes outside
 * [head, tail) belong to nobody), so a SIGKILL anywhere leaves a valid queue:
 * the robust lock hands the side to the next process with EOWNERDEAD, which
 * needs no repair (joinable queues settle a pending get, see joinable.c).  A
 * waker killed between its commit and its wake-up costs the sleeper one
 * 50 ms slice.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "msg/queue_internal.h"
#include "sync/futex.h"
#include "sync/robust_mutex.h"

#define RESERVE_STEP ((size_t)1 << 20) /* named queues reserve the ring 1 MiB at a time */
#define NOWAIT_SLICE 0.001            /* see side_lock */
/* Early wrap (see put): with at most HOT_WINDOW / 4 bytes queued, a producer
 * past HOT_WINDOW goes back to offset 0, looking every HOT_CHECK bytes.  A
 * ring much larger than the caches otherwise streams every message through
 * memory: 4 KiB messages ran at 3.3 GB/s with a 64 MiB ring and 9-12 GB/s
 * with this (bench queue_1p1c_4k).  Only rings of 4 windows or more. */
#define HOT_WINDOW ((uint32_t)1 << 20)
#define HOT_CHECK ((uint32_t)1 << 18)
#define NOWAIT_MAX 1.0

static inline size_t record_bytes(size_t len) {
    return sizeof(struct mproc__queue_record) + ((len + 7) & ~(size_t)7);
}

/* ---- creation and validation ---- */

typedef struct queue_init {
    uint64_t capacity;
    uint64_t maxsize;
    uint32_t max_consumers;
    uint32_t kind;
} queue_init;

/* The ring starts page-aligned in the file, after the body and records. */
static uint64_t ring_offset_for(uint32_t max_consumers) {
    uint64_t end = MPROC__HEADER_SIZE + sizeof(struct mproc__queue_body) +
                   (uint64_t)max_consumers * sizeof(struct mproc__queue_consumer);
    return ((end + 4095) & ~(uint64_t)4095) - MPROC__HEADER_SIZE;
}

static size_t extra_for(const queue_init *init) {
    return (size_t)(ring_offset_for(init->max_consumers) - sizeof(struct mproc__queue_body) +
                    init->capacity);
}

static size_t queue_eager_bytes(size_t extra, const void *arg) {
    (void)extra;
    return MPROC__HEADER_SIZE + ring_offset_for(((const queue_init *)arg)->max_consumers);
}

static int queue_body_init(void *body, size_t extra, const void *arg) {
    (void)extra;
    const queue_init *init = arg;
    struct mproc__queue_body *qb = body;
    qb->capacity = init->capacity;
    qb->maxsize = init->maxsize;
    qb->max_consumers = init->max_consumers;
    qb->flavour = init->kind;
    qb->ring_offset = ring_offset_for(init->max_consumers);
    int rc = mproc__rmutex_init(&qb->put_lock);
    if (rc == 0)
        rc = mproc__rmutex_init(&qb->get_lock);
    if (rc == 0)
        rc = mproc__rmutex_init(&qb->registry);
    return rc; /* everything else, records included, is zero: free, empty */
}

static bool capacity_ok(uint64_t capacity) {
    return capacity >= MPROC_QUEUE_MIN_CAPACITY && capacity <= MPROC_QUEUE_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

static int queue_body_check(const void *body, size_t extra, uint32_t kind) {
    const struct mproc__queue_body *qb = body;
    bool joinable = kind == MPROC__KIND_JOINABLE_QUEUE;
    if (qb->flavour != kind || !capacity_ok(qb->capacity) || qb->maxsize > qb->capacity / 8 ||
        qb->max_consumers > MPROC_QUEUE_MAX_CONSUMERS ||
        (joinable ? qb->max_consumers == 0 : qb->max_consumers != 0) ||
        (kind == MPROC__KIND_SIMPLE_QUEUE && qb->maxsize != 0) ||
        qb->ring_offset != ring_offset_for(qb->max_consumers))
        return MPROC_E_CORRUPT;
    queue_init geometry = {.capacity = qb->capacity, .max_consumers = qb->max_consumers};
    if (extra != extra_for(&geometry))
        return MPROC_E_CORRUPT;
    if (mproc__rmutex_check(&qb->put_lock) != 0 || mproc__rmutex_check(&qb->get_lock) != 0 ||
        mproc__rmutex_check(&qb->registry) != 0)
        return MPROC_E_CORRUPT;
    return 0;
}

static int check_plain(const void *body, size_t extra) {
    return queue_body_check(body, extra, MPROC__KIND_QUEUE);
}
static int check_joinable(const void *body, size_t extra) {
    return queue_body_check(body, extra, MPROC__KIND_JOINABLE_QUEUE);
}
static int check_simple(const void *body, size_t extra) {
    return queue_body_check(body, extra, MPROC__KIND_SIMPLE_QUEUE);
}

static const mproc__kind_spec queue_kinds[3] = {
    {MPROC__KIND_QUEUE, sizeof(struct mproc__queue_body), queue_body_init, check_plain,
     queue_eager_bytes},
    {MPROC__KIND_JOINABLE_QUEUE, sizeof(struct mproc__queue_body), queue_body_init,
     check_joinable, queue_eager_bytes},
    {MPROC__KIND_SIMPLE_QUEUE, sizeof(struct mproc__queue_body), queue_body_init, check_simple,
     queue_eager_bytes},
};

static int make(mproc_queue **out, const char *name, int flags, size_t maxsize,
                const mproc_queue_options *opts) {
    if (out == NULL || !MPROC__OPTIONS_OK(opts) || (opts != NULL && opts->reserved0 != 0))
        return EINVAL;
    unsigned qflags = opts != NULL ? opts->flags : 0;
    if (qflags & ~(MPROC_QUEUE_JOINABLE | MPROC_QUEUE_SIMPLE) ||
        qflags == (MPROC_QUEUE_JOINABLE | MPROC_QUEUE_SIMPLE))
        return EINVAL;
    bool joinable = qflags & MPROC_QUEUE_JOINABLE;
    bool simple = qflags & MPROC_QUEUE_SIMPLE;
    size_t capacity = opts != NULL && opts->capacity != 0 ? opts->capacity
                                                          : MPROC_QUEUE_DEFAULT_CAPACITY;
    unsigned consumers = opts != NULL ? opts->max_consumers : 0;
    if (consumers != 0 && !joinable)
        return EINVAL;
    if (joinable && consumers == 0)
        consumers = MPROC_QUEUE_DEFAULT_CONSUMERS;
    if (!capacity_ok(capacity) || consumers > MPROC_QUEUE_MAX_CONSUMERS ||
        maxsize > capacity / 8 || (simple && maxsize != 0))
        return EINVAL;
    queue_init init = {
        .capacity = capacity,
        .maxsize = maxsize,
        .max_consumers = consumers,
        .kind = joinable ? MPROC__KIND_JOINABLE_QUEUE
                : simple ? MPROC__KIND_SIMPLE_QUEUE
                         : MPROC__KIND_QUEUE,
    };
    const mproc__kind_spec *spec = &queue_kinds[joinable ? 1 : simple ? 2 : 0];

    mproc_queue *queue = calloc(1, sizeof *queue);
    if (queue == NULL)
        return ENOMEM;
    unsigned mode = opts != NULL ? opts->mode : 0;
    int rc = name == NULL
                 ? mproc__segment_create(&queue->seg, spec, extra_for(&init), &init)
                 : mproc__segment_open(&queue->seg, spec, name, flags, mode, extra_for(&init),
                                       &init);
    if (rc != 0) {
        free(queue);
        return rc;
    }
    struct mproc__queue_body *body = mproc__segment_body(&queue->seg);
    /* The geometry is the validated body's (an opened queue may be older than
     * our arguments); an explicit maxsize or capacity must match it. */
    if (name != NULL && ((maxsize != 0 && maxsize != body->maxsize) ||
                         (opts != NULL && opts->capacity != 0 &&
                          opts->capacity != body->capacity) ||
                         (opts != NULL && opts->max_consumers != 0 &&
                          opts->max_consumers != body->max_consumers))) {
        mproc__segment_close(&queue->seg);
        free(queue);
        return EINVAL;
    }
    queue->body = body;
    queue->kind = body->flavour;
    queue->capacity = body->capacity;
    queue->mask = (uint32_t)(body->capacity - 1);
    queue->maxsize = body->maxsize;
    queue->max_message = (size_t)(body->capacity / 2 - sizeof(struct mproc__queue_record));
    queue->max_consumers = body->max_consumers;
    queue->consumers = (struct mproc__queue_consumer *)(body + 1);
    queue->ring = (unsigned char *)body + body->ring_offset;
    queue->ring_file_offset = MPROC__HEADER_SIZE + (size_t)body->ring_offset;
    *out = queue;
    return 0;
}

int mproc_queue_create(mproc_queue **out, size_t maxsize, const mproc_queue_options *opts) {
    return make(out, NULL, 0, maxsize, opts);
}

int mproc_queue_open(mproc_queue **out, const char *name, int flags, size_t maxsize,
                     const mproc_queue_options *opts) {
    return name == NULL ? EINVAL : make(out, name, flags, maxsize, opts);
}

static int with_flag(mproc_queue **out, size_t maxsize, const mproc_queue_options *opts,
                     unsigned flag) {
    mproc_queue_options copy = {0};
    if (opts != NULL)
        copy = *opts;
    copy.flags |= flag;
    return make(out, NULL, 0, maxsize, &copy);
}

int mproc_simple_queue_create(mproc_queue **out, const mproc_queue_options *opts) {
    return with_flag(out, 0, opts, MPROC_QUEUE_SIMPLE);
}

int mproc_joinable_queue_create(mproc_queue **out, size_t maxsize,
                                const mproc_queue_options *opts) {
    return with_flag(out, maxsize, opts, MPROC_QUEUE_JOINABLE);
}

int mproc_queue_close(mproc_queue *queue) {
    if (queue == NULL)
        return EINVAL;
    mproc__segment_close(&queue->seg);
    free(queue);
    return 0;
}

/* ---- locks and waits ---- */

/* Takes a side's lock within the deadline.  0 (EOWNERDEAD folded in: no
 * repair is needed, see above; *owner_died tells joinable gets), ETIMEDOUT,
 * or another code from the mutex.
 *
 * With a deadline of "now" (put_nowait, get_nowait) a busy lock is not an
 * answer by itself: a holder that waits for the other side (holder_waiting)
 * means the queue is full / empty now, but one that is only copying will
 * be done in a moment, so we wait for it, a NOWAIT_SLICE at a time, looking
 * again at holder_waiting between slices (it may begin to wait meanwhile),
 * NOWAIT_MAX at most in all.  See put_waiting in shm/layout.h. */
static int side_lock(pthread_mutex_t *mutex, _Atomic uint32_t *holder_waiting,
                     const mproc__deadline *deadline, bool *owner_died) {
    int rc = pthread_mutex_trylock(mutex);
    if (MPROC__LIKELY(rc == 0))
        return 0;
    if (!deadline->now || rc == EOWNERDEAD) {
        /* EOWNERDEAD: ours already; acquire_slow makes it consistent (an
         * unlock without that would leave it ENOTRECOVERABLE for good). */
        rc = mproc__rmutex_acquire_slow(mutex, rc, mproc__deadline_remaining(deadline));
    } else {
        mproc__deadline cap;
        mproc__deadline_init(&cap, NOWAIT_MAX);
        while (rc == EBUSY) {
            if (atomic_load_explicit(holder_waiting, memory_order_acquire) != 0 ||
                mproc__deadline_expired(&cap))
                return ETIMEDOUT;
            rc = mproc__rmutex_acquire_slow(mutex, EBUSY, NOWAIT_SLICE);
            if (rc == ETIMEDOUT)
                rc = EBUSY;
        }
        if (rc != 0 && rc != EOWNERDEAD)
            rc = mproc__rmutex_acquire_slow(mutex, rc, 0.0);
    }
    if (rc == EOWNERDEAD) {
        /* The dead holder may have died waiting: its flag is ours to clear. */
        atomic_store_explicit(holder_waiting, 0, memory_order_relaxed);
        if (owner_died != NULL)
            *owner_died = true;
        return 0;
    }
    return rc;
}

/*
 * Waits, holding a side's lock, until `*word` (the other side's tail or
 * head) differs from `seen`, the queue is shut down, or the deadline passes.
 * Returns 0 (look again) or ETIMEDOUT.  Spins first, then sleeps on the
 * eventcount `ec` in liveness slices, having announced itself in `waiters`.
 */
static int wait_for_other_side(struct mproc__queue_body *body, _Atomic uint64_t *word,
                               uint64_t seen, _Atomic uint32_t *ec, _Atomic uint32_t *waiters,
                               const mproc__deadline *deadline) {
    if (deadline->now)
        return ETIMEDOUT;
    mproc__spin spin;
    for (mproc__spin_start(&spin, deadline); mproc__spin_more(&spin);)
        if (atomic_load_explicit(word, memory_order_acquire) != seen)
            return 0;
    for (;;) {
        uint32_t count = atomic_load_explicit(ec, memory_order_acquire);
        atomic_store_explicit(waiters, 1, memory_order_seq_cst);
        if (atomic_load_explicit(word, memory_order_seq_cst) != seen ||
            (atomic_load_explicit(&body->state, memory_order_acquire) & MPROC__QUEUE_SHUTDOWN))
            return 0;
        struct timespec slice;
        mproc__slice_end(deadline, MPROC_QUEUE_LIVENESS_MS, &slice);
        int rc = mproc__futex_wait(ec, count, &slice);
        if (atomic_load_explicit(word, memory_order_acquire) != seen)
            return 0;
        if (rc == ETIMEDOUT && mproc__deadline_expired(deadline))
            return ETIMEDOUT;
        /* A slice ended or we were woken without change: announce again (a
         * committer may have cleared `waiters` for an earlier wake). */
    }
}

/* After a commit: wakes the other side's lock holder if it may sleep. */
static inline void wake_other_side(_Atomic uint32_t *ec, _Atomic uint32_t *waiters) {
    if (MPROC__UNLIKELY(atomic_load_explicit(waiters, memory_order_seq_cst) != 0) &&
        atomic_exchange_explicit(waiters, 0, memory_order_acq_rel) != 0) {
        atomic_fetch_add_explicit(ec, 1, memory_order_release);
        mproc__futex_wake(ec, 1);
    }
}

static inline bool is_shut(const struct mproc__queue_body *body) {
    return atomic_load_explicit(&((struct mproc__queue_body *)body)->state,
                                memory_order_acquire) &
           MPROC__QUEUE_SHUTDOWN;
}

/* Gets answer CLOSED only once nothing is left to drain. */
static bool shut_and_drained(struct mproc__queue_body *body) {
    return is_shut(body) && (uint32_t)atomic_load_explicit(&body->tail, memory_order_acquire) ==
                                (uint32_t)atomic_load_explicit(&body->head, memory_order_acquire);
}

/* ---- put ---- */

/* Reserves ring bytes [0, high) in the file of a named queue (put lock held). */
static int reserve_ring(mproc_queue *queue, uint64_t high) {
    struct mproc__queue_body *body = queue->body;
    uint64_t committed = body->committed;
    if (MPROC__LIKELY(high <= committed || queue->seg.fd < 0))
        return 0;
    if (committed > queue->capacity)
        committed = 0; /* a corrupt value only costs reserving again */
    uint64_t target = (high + RESERVE_STEP - 1) & ~(uint64_t)(RESERVE_STEP - 1);
    if (target > queue->capacity)
        target = queue->capacity;
    int rc = mproc__segment_reserve(&queue->seg, queue->ring_file_offset + committed,
                                    target - committed);
    if (rc == 0)
        body->committed = target;
    return rc;
}

int mproc_queue_put(mproc_queue *queue, const void *msg, size_t len, double timeout) {
    return mproc__queue_put2(queue, msg, len, NULL, 0, timeout);
}

int mproc__queue_put2(mproc_queue *queue, const void *msg, size_t len, const void *more,
                      size_t more_len, double timeout) {
    if (MPROC__UNLIKELY(queue == NULL || (msg == NULL && len != 0) ||
                        (more == NULL && more_len != 0)))
        return EINVAL;
    if (MPROC__UNLIKELY(more_len > queue->max_message || len > queue->max_message - more_len))
        return EMSGSIZE;
    size_t first_len = len;
    len += more_len;
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    struct mproc__queue_body *body = queue->body;
    if (is_shut(body))
        return MPROC_E_CLOSED;
    int rc = side_lock(&body->put_lock, &body->put_waiting, &deadline, NULL);
    if (rc != 0)
        return rc != ETIMEDOUT ? rc : is_shut(body) ? MPROC_E_CLOSED : MPROC_E_FULL;

    uint32_t need = (uint32_t)record_bytes(len);
    uint64_t tail = atomic_load_explicit(&body->tail, memory_order_relaxed); /* ours */
    uint32_t tpos = (uint32_t)tail, put_seq = (uint32_t)(tail >> 32);
    uint32_t off = tpos & queue->mask;
    uint32_t to_end = (uint32_t)queue->capacity - off;
    uint32_t total = need <= to_end ? need : to_end + need; /* PAD to the end, then at 0 */
    uint64_t head = body->cached_head;
    if (queue->capacity >= 4 * HOT_WINDOW && off >= HOT_WINDOW && total == need &&
        (off & ~(HOT_CHECK - 1)) != ((off + need - 1) & ~(HOT_CHECK - 1))) {
        /* Early wrap: consumers keep up (little is queued), so go back to
         * offset 0 now and keep the bytes in use within a cache-sized
         * window, instead of streaming through the whole capacity. */
        head = body->cached_head = atomic_load_explicit(&body->head, memory_order_acquire);
        uint32_t used = tpos - (uint32_t)head;
        if (used <= queue->capacity && used + need <= HOT_WINDOW / 4 && used + need <= off)
            total = to_end + need;
    }
    for (;;) {
        uint32_t used = tpos - (uint32_t)head;
        uint32_t count = put_seq - (uint32_t)(head >> 32);
        if (MPROC__UNLIKELY(used > queue->capacity)) {
            /* a stale or corrupt view: read the real head, then judge */
            uint64_t real = atomic_load_explicit(&body->head, memory_order_acquire);
            if (real == head) {
                rc = MPROC_E_CORRUPT;
                goto out;
            }
            head = body->cached_head = real;
            continue;
        }
        if (MPROC__LIKELY(queue->capacity - used >= total &&
                          (queue->maxsize == 0 || count < queue->maxsize)))
            break;
        uint64_t real = atomic_load_explicit(&body->head, memory_order_acquire);
        if (real != head) {
            head = body->cached_head = real;
            continue;
        }
        if (is_shut(body)) {
            rc = MPROC_E_CLOSED;
            goto out;
        }
        atomic_store_explicit(&body->put_waiting, 1, memory_order_relaxed);
        int waited = wait_for_other_side(body, &body->head, head, &body->not_full,
                                         &body->not_full_waiters, &deadline);
        atomic_store_explicit(&body->put_waiting, 0, memory_order_relaxed);
        if (waited == ETIMEDOUT && atomic_load_explicit(&body->head, memory_order_acquire) == head) {
            rc = MPROC_E_FULL;
            goto out;
        }
        head = body->cached_head = atomic_load_explicit(&body->head, memory_order_acquire);
    }
    if (MPROC__UNLIKELY(is_shut(body))) {
        rc = MPROC_E_CLOSED;
        goto out;
    }
    /* A PAD needs only its header reserved: the message goes to [0, need),
     * which the first lap reserved already (need <= off). */
    rc = reserve_ring(queue, (uint64_t)off + (total == need ? need : sizeof(struct mproc__queue_record)));
    if (rc != 0)
        goto out;

    unsigned char *at = queue->ring + off;
    if (total != need) {
        struct mproc__queue_record pad = {.len = to_end, .kind = MPROC__QUEUE_PAD};
        memcpy(at, &pad, sizeof pad);
        at = queue->ring;
    }
    struct mproc__queue_record rec = {.len = (uint32_t)len, .kind = MPROC__QUEUE_DATA};
    memcpy(at, &rec, sizeof rec);
    if (first_len != 0)
        memcpy(at + sizeof rec, msg, first_len);
    if (more_len != 0)
        memcpy(at + sizeof rec + first_len, more, more_len);
    /* The commit (see the top of the file). */
    atomic_store_explicit(&body->tail, (uint64_t)(put_seq + 1) << 32 | (uint32_t)(tpos + total),
                          memory_order_seq_cst);
out:
    pthread_mutex_unlock(&body->put_lock);
    if (rc == 0)
        wake_other_side(&body->not_empty, &body->not_empty_waiters);
    return rc;
}

int mproc_queue_put_nowait(mproc_queue *queue, const void *msg, size_t len) {
    return mproc_queue_put(queue, msg, len, 0.0);
}

/* ---- get ---- */

/* Where the message at head starts, validated: its record header (after
 * skipping a PAD) and the bytes to commit.  MPROC_E_CORRUPT when the ring's
 * contents contradict the geometry. */
static int locate(const mproc_queue *queue, uint32_t hpos, uint32_t used,
                  const unsigned char **payload, uint32_t *len, uint32_t *consumed) {
    uint32_t off = hpos & queue->mask;
    uint32_t skip = 0;
    struct mproc__queue_record rec;
    memcpy(&rec, queue->ring + off, sizeof rec);
    if (rec.kind == MPROC__QUEUE_PAD) {
        if (rec.len != (uint32_t)queue->capacity - off || rec.len >= used)
            return MPROC_E_CORRUPT;
        skip = rec.len;
        off = 0;
        memcpy(&rec, queue->ring, sizeof rec);
    }
    if (rec.kind != MPROC__QUEUE_DATA || rec.len > queue->max_message)
        return MPROC_E_CORRUPT;
    uint32_t bytes = (uint32_t)record_bytes(rec.len);
    if (bytes > used - skip || bytes > (uint32_t)queue->capacity - off)
        return MPROC_E_CORRUPT;
    *payload = queue->ring + off + sizeof rec;
    *len = rec.len;
    *consumed = skip + bytes;
    return 0;
}

/* The get behind every form: into `buf` (cap bytes), or, with `alloc`, into
 * a fresh malloc'd buffer stored in *alloc. */
static int get_impl(mproc_queue *queue, void *buf, size_t cap, size_t *len, void **alloc,
                    double timeout) {
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    struct mproc__queue_body *body = queue->body;
    bool owner_died = false;
    int rc = side_lock(&body->get_lock, &body->get_waiting, &deadline, &owner_died);
    if (rc != 0)
        return rc != ETIMEDOUT ? rc : shut_and_drained(body) ? MPROC_E_CLOSED : MPROC_E_EMPTY;
    struct mproc__queue_consumer *rec = NULL;
    if (MPROC__UNLIKELY(owner_died) && queue->kind == MPROC__KIND_JOINABLE_QUEUE)
        mproc__queue_settle_pending(queue);

    uint64_t head = atomic_load_explicit(&body->head, memory_order_relaxed); /* ours */
    uint32_t hpos = (uint32_t)head, get_seq = (uint32_t)(head >> 32);
    uint64_t tail = body->cached_tail;
    while ((uint32_t)tail == hpos) {
        uint64_t real = atomic_load_explicit(&body->tail, memory_order_acquire);
        if ((uint32_t)real != hpos) {
            tail = real;
            break;
        }
        if (is_shut(body)) {
            rc = MPROC_E_CLOSED;
            goto out;
        }
        atomic_store_explicit(&body->get_waiting, 1, memory_order_relaxed);
        int waited = wait_for_other_side(body, &body->tail, real, &body->not_empty,
                                         &body->not_empty_waiters, &deadline);
        atomic_store_explicit(&body->get_waiting, 0, memory_order_relaxed);
        if (waited == ETIMEDOUT) {
            tail = atomic_load_explicit(&body->tail, memory_order_acquire);
            if ((uint32_t)tail != hpos)
                break;
            rc = is_shut(body) ? MPROC_E_CLOSED : MPROC_E_EMPTY;
            goto out;
        }
        tail = real;
    }
    body->cached_tail = tail;
    uint32_t used = (uint32_t)tail - hpos;
    if (MPROC__UNLIKELY(used > queue->capacity || (used & 7) != 0)) {
        rc = MPROC_E_CORRUPT;
        goto out;
    }
    const unsigned char *payload;
    uint32_t msg_len, consumed;
    rc = locate(queue, hpos, used, &payload, &msg_len, &consumed);
    if (rc != 0)
        goto out;
    *len = msg_len;
    if (queue->kind == MPROC__KIND_JOINABLE_QUEUE) {
        /* Claimed only now: a process that never takes a message holds no
         * record.  EAGAIN leaves the message queued. */
        rc = mproc__queue_my_record(queue, &rec);
        if (rc != 0)
            goto out;
        atomic_store_explicit(&body->get_holder, queue->rec_index + 1, memory_order_relaxed);
    }
    if (alloc != NULL) {
        buf = malloc(msg_len != 0 ? msg_len : 1);
        if (buf == NULL) {
            rc = ENOMEM;
            goto out;
        }
        *alloc = buf;
    } else if (msg_len > cap) {
        rc = ENOBUFS;
        goto out;
    }
    if (msg_len != 0)
        memcpy(buf, payload, msg_len);
    uint64_t taken = 0;
    if (rec != NULL) {
        /* pending first: a death between the commit and the store after it
         * is settled from head (joinable.c). */
        taken = atomic_load_explicit(&rec->taken, memory_order_relaxed) & ~(uint64_t)UINT32_MAX;
        atomic_store_explicit(&rec->taken,
                              taken | MPROC__QUEUE_PENDING | (get_seq & 0x7fffffffu),
                              memory_order_relaxed);
    }
    /* The commit (see the top of the file); it also releases `pending`. */
    atomic_store_explicit(&body->head, (uint64_t)(get_seq + 1) << 32 | (uint32_t)(hpos + consumed),
                          memory_order_seq_cst);
    if (rec != NULL)
        atomic_store_explicit(&rec->taken, taken + ((uint64_t)1 << 32), memory_order_release);
out:
    if (rec != NULL)
        atomic_store_explicit(&body->get_holder, 0, memory_order_relaxed);
    pthread_mutex_unlock(&body->get_lock);
    if (rc == 0)
        wake_other_side(&body->not_full, &body->not_full_waiters);
    return rc;
}

int mproc_queue_get(mproc_queue *queue, void *buf, size_t cap, size_t *len, double timeout) {
    if (MPROC__UNLIKELY(queue == NULL || len == NULL || (buf == NULL && cap != 0)))
        return EINVAL;
    return get_impl(queue, buf, cap, len, NULL, timeout);
}

int mproc_queue_get_nowait(mproc_queue *queue, void *buf, size_t cap, size_t *len) {
    return mproc_queue_get(queue, buf, cap, len, 0.0);
}

int mproc_queue_get_alloc(mproc_queue *queue, void **msg, size_t *len, double timeout) {
    if (queue == NULL || msg == NULL || len == NULL)
        return EINVAL;
    return get_impl(queue, NULL, 0, len, msg, timeout);
}

/* ---- state ---- */

/* head and tail at one instant: head is re-read until it did not move while
 * tail was read, so qsize is a count the queue really had. */
static void snapshot(const mproc_queue *queue, uint64_t *head, uint64_t *tail) {
    struct mproc__queue_body *body = queue->body;
    uint64_t h = atomic_load_explicit(&body->head, memory_order_acquire), again;
    for (;;) {
        *tail = atomic_load_explicit(&body->tail, memory_order_acquire);
        again = atomic_load_explicit(&body->head, memory_order_acquire);
        if (again == h)
            break;
        h = again;
    }
    *head = h;
}

int mproc_queue_qsize(const mproc_queue *queue, size_t *count) {
    if (queue == NULL || count == NULL)
        return EINVAL;
    uint64_t head, tail;
    snapshot(queue, &head, &tail);
    *count = (uint32_t)((uint32_t)(tail >> 32) - (uint32_t)(head >> 32));
    return 0;
}

int mproc_queue_empty(const mproc_queue *queue, int *empty) {
    size_t count;
    if (empty == NULL || mproc_queue_qsize(queue, &count) != 0)
        return EINVAL;
    *empty = count == 0;
    return 0;
}

int mproc_queue_full(const mproc_queue *queue, int *full) {
    if (queue == NULL || full == NULL)
        return EINVAL;
    uint64_t head, tail;
    snapshot(queue, &head, &tail);
    uint32_t count = (uint32_t)(tail >> 32) - (uint32_t)(head >> 32);
    uint32_t used = (uint32_t)tail - (uint32_t)head;
    *full = (queue->maxsize != 0 && count >= queue->maxsize) ||
            queue->capacity - used < sizeof(struct mproc__queue_record);
    return 0;
}

size_t mproc_queue_maxsize(const mproc_queue *queue) {
    return queue != NULL ? (size_t)queue->maxsize : 0;
}

size_t mproc_queue_max_message(const mproc_queue *queue) {
    return queue != NULL ? queue->max_message : 0;
}

int mproc_queue_shutdown(mproc_queue *queue) {
    if (queue == NULL)
        return EINVAL;
    struct mproc__queue_body *body = queue->body;
    atomic_fetch_or_explicit(&body->state, MPROC__QUEUE_SHUTDOWN, memory_order_seq_cst);
    /* Sleepers re-check the state after any change of their eventcount. */
    atomic_fetch_add_explicit(&body->not_empty, 1, memory_order_release);
    atomic_fetch_add_explicit(&body->not_full, 1, memory_order_release);
    mproc__futex_wake(&body->not_empty, INT_MAX);
    mproc__futex_wake(&body->not_full, INT_MAX);
    return 0;
}
