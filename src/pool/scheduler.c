/* SPDX-License-Identifier: MIT */
/*
 * The pool's scheduler thread: the only reader of the result queue and the
 * only writer of the task queues, so it alone knows where every chunk is.
 *
 * Invariants, per slot (one worker generation at a time):
 *   - slot->out[] lists the chunks sent to the slot's task queue and not yet
 *     resulted, in the order sent.  The worker takes them in that order and
 *     its RESULTs arrive in that order, so a RESULT always matches out[head]
 *     (anything else is stale: a terminated pool's, or a dead generation's).
 *   - A DEATH is posted by the watcher after the worker was reaped, so every
 *     RESULT the worker committed precedes it on the queue.  At the DEATH,
 *     out[] holds chunks never taken (still in the task queue: drained and
 *     sent again) and at most one taken chunk, the one it was running; its
 *     slot area says which of its items finished (kept), which one was
 *     running (fails with MPROC_E_WORKER_DIED, or runs again if retries
 *     allow) and which were not begun (sent again).
 * So every item finishes exactly once: with its worker's result, WORKER_DIED,
 * TERMINATED or INIT_FAILED.
 *
 * Depth: a slot gets several chunks ahead (so a worker rarely waits for this
 * thread), as many as fill about 100 µs of work by the measured chunk time,
 * between 2 and POOL_DEPTH_MAX, given out breadth first after each batch of
 * messages.  A chunk queued behind a slow one waits for it (no stealing
 * back from a busy worker's queue).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "msg/queue_internal.h"
#include "pool/pool_internal.h"

#define DEPTH_TARGET_NS 100000.0
#define TASK_QUEUE_BUDGET ((size_t)12 << 20) /* bytes queued per slot, < capacity / 2 */
#define INIT_DEATHS_MAX 10 /* replacements dying in their initializer before the pool breaks */
#define BATCH 64           /* messages handled before dispatching to every slot */

struct sched {
    struct mproc_pool *pool;
    unsigned char *buf;
    size_t cap;
    struct pool_job *jobs_head, *jobs_tail; /* jobs with items not yet cut into chunks */
    struct pool_chunk *redo;                /* chunks to send again, FIFO */
    size_t redo_head, redo_len, redo_cap;
    uint64_t next_id;
    double chunk_ns; /* moving average of a chunk's busy time */
    unsigned live;   /* slots LIVE */
    unsigned init_deaths;
    bool stopping;   /* STOPs sent or workers killed: no replacements */
    bool terminated; /* a terminate was handled */
    bool killed;     /* the watcher was told to SIGKILL every worker */
    bool failed;     /* the result queue failed: behave as terminated */
};

/* ---- finishing items ---- */

/* Items [start, start + count) of `job` finished: with `codes` and
 * `outputs` from a worker, or all with `code` (outputs left zero). */
static void finish_items(struct sched *s, struct pool_job *job, size_t start, size_t count,
                         const int32_t *codes, const unsigned char *outputs, int code) {
    if (count == 0)
        return;
    struct mproc_pool *pool = s->pool;
    pthread_mutex_lock(&pool->lock);
    if (!job->detached && outputs != NULL && job->out_size != 0)
        memcpy(job->out + start * job->out_size, outputs, count * job->out_size);
    for (size_t i = 0; i < count; i++) {
        int c = codes != NULL ? codes[i] : code;
        job->codes[start + i] = c;
        if (c != 0 && start + i < job->first_failed) {
            job->first_failed = start + i;
            job->first_code = c;
        }
        if (job->order != NULL)
            job->order[job->order_len++] = start + i;
        else if (job->finished != NULL)
            job->finished[start + i] = 1;
    }
    job->unfinished -= count;
    bool done = job->unfinished == 0;
    if (done)
        atomic_store_explicit(&job->ready, true, memory_order_release);
    if (pool->waiters != 0 && (done || job->own_out))
        pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->lock);
    if (done)
        mproc__pool_job_unref(job);
}

/* ---- chunks to send ---- */

static bool redo_push(struct sched *s, struct pool_chunk c) {
    if (s->redo_len == s->redo_cap) {
        size_t cap = s->redo_cap != 0 ? s->redo_cap * 2 : 64;
        struct pool_chunk *r = malloc(cap * sizeof *r);
        if (r == NULL)
            return false;
        for (size_t i = 0; i < s->redo_len; i++)
            r[i] = s->redo[(s->redo_head + i) % s->redo_cap];
        free(s->redo);
        s->redo = r;
        s->redo_cap = cap;
        s->redo_head = 0;
    }
    s->redo[(s->redo_head + s->redo_len++) % s->redo_cap] = c;
    return true;
}

/* A chunk to send again; if memory runs out its items fail rather than
 * vanish. */
static void resend(struct sched *s, struct pool_chunk c) {
    if (c.count != 0 && !redo_push(s, c))
        finish_items(s, c.job, c.start, c.count, NULL, NULL, ENOMEM);
}

/* The next chunk to send: a redo chunk first, else the next cut of the
 * oldest job.  Nothing is consumed until take_chunk. */
static bool peek_chunk(const struct sched *s, struct pool_chunk *c, bool *redo) {
    *redo = s->redo_len != 0;
    if (*redo) {
        *c = s->redo[s->redo_head];
        return true;
    }
    struct pool_job *job = s->jobs_head;
    if (job == NULL)
        return false;
    size_t left = job->n - job->next;
    *c = (struct pool_chunk){.job = job,
                             .start = job->next,
                             .count = (uint32_t)(left < job->chunksize ? left : job->chunksize)};
    return true;
}

static void take_chunk(struct sched *s, const struct pool_chunk *c, bool redo) {
    if (redo) {
        s->redo_head = (s->redo_head + 1) % s->redo_cap;
        s->redo_len--;
        return;
    }
    struct pool_job *job = c->job;
    job->next += c->count;
    if (job->next == job->n) {
        s->jobs_head = job->link;
        if (s->jobs_head == NULL)
            s->jobs_tail = NULL;
    }
}

static bool next_chunk(struct sched *s, struct pool_chunk *c) {
    bool redo;
    if (!peek_chunk(s, c, &redo))
        return false;
    take_chunk(s, c, redo);
    return true;
}

static size_t chunk_bytes(const struct pool_chunk *c) {
    return sizeof(struct pool_msg) + (size_t)c->count * c->job->in_size;
}

static unsigned depth(const struct sched *s) {
    if (s->chunk_ns <= 0)
        return 2;
    double d = DEPTH_TARGET_NS / s->chunk_ns;
    return d >= POOL_DEPTH_MAX ? POOL_DEPTH_MAX : d <= 2 ? 2 : (unsigned)d;
}

/* Sends chunks to a live slot until it has `want` of them. */
static void refill(struct sched *s, struct pool_slot *slot, unsigned want) {
    struct mproc_pool *pool = s->pool;
    if (slot->state != SLOT_LIVE || s->stopping)
        return;
    unsigned max_tasks = pool->opts.max_tasks_per_child;
    struct pool_chunk c;
    bool redo;
    while (slot->out_count < want && (max_tasks == 0 || slot->sent < max_tasks) &&
           peek_chunk(s, &c, &redo)) {
        size_t bytes = chunk_bytes(&c);
        if (slot->out_count != 0 && slot->out_bytes + bytes > TASK_QUEUE_BUDGET)
            break;
        c.id = ++s->next_id;
        struct pool_msg msg = {.type = MSG_TASK,
                               .slot = slot->index,
                               .gen = slot->gen,
                               .chunk_id = c.id,
                               .fn = (uint64_t)(uintptr_t)c.job->fn,
                               .count = c.count,
                               .in_size = (uint32_t)c.job->in_size,
                               .out_size = (uint32_t)c.job->out_size};
        int rc = mproc__queue_put2(pool->tasks[slot->index], &msg, sizeof msg,
                                   c.job->in + c.start * c.job->in_size,
                                   (size_t)c.count * c.job->in_size, 0);
        if (rc != 0)
            break;
        take_chunk(s, &c, redo);
        slot->out[(slot->out_head + slot->out_count++) % POOL_DEPTH_MAX] = c;
        slot->out_bytes += bytes;
        slot->sent++;
    }
    slot->retiring = max_tasks != 0 && slot->sent >= max_tasks;
}

static bool work_waiting(const struct sched *s) {
    return s->redo_len != 0 || s->jobs_head != NULL;
}

/* Breadth first: pass `level` gives each live slot with fewer than `level`
 * chunks one more, so work spreads over idle workers before any worker gets
 * a second chunk queued behind its first (found by the tests: two
 * apply_async on two idle workers ran one after the other). */
static void refill_all(struct sched *s) {
    unsigned want = depth(s);
    for (unsigned level = 1; level <= want && work_waiting(s); level++)
        for (unsigned i = 0; i < s->pool->nworkers && work_waiting(s); i++)
            refill(s, &s->pool->slots[i], level);
}

/* ---- messages ---- */

static void on_result(struct sched *s, const struct pool_msg *msg, size_t len) {
    struct mproc_pool *pool = s->pool;
    if (msg->slot >= pool->nworkers)
        return;
    struct pool_slot *slot = &pool->slots[msg->slot];
    if (slot->state != SLOT_LIVE || msg->gen != slot->gen || slot->out_count == 0)
        return; /* stale */
    struct pool_chunk c = slot->out[slot->out_head];
    if (msg->chunk_id != c.id || msg->count != c.count || msg->out_size != c.job->out_size ||
        len != pool_outputs_offset(c.count) + (size_t)c.count * c.job->out_size)
        return;
    slot->out_head = (slot->out_head + 1) % POOL_DEPTH_MAX;
    slot->out_count--;
    slot->out_bytes -= chunk_bytes(&c);
    double ns = (double)msg->busy_ns;
    s->chunk_ns = s->chunk_ns <= 0 ? ns : s->chunk_ns * 0.75 + ns * 0.25;
    if (s->chunk_ns < 1)
        s->chunk_ns = 1;
    const unsigned char *base = (const unsigned char *)msg;
    finish_items(s, c.job, c.start, c.count, (const int32_t *)(const void *)(base + sizeof *msg),
                 base + pool_outputs_offset(c.count), 0);
}

/* Fails every item not finished: in the slots, the redo list, the jobs
 * being cut and the inbox. */
static void fail_everything(struct sched *s, int code) {
    struct mproc_pool *pool = s->pool;
    for (unsigned i = 0; i < pool->nworkers; i++) {
        struct pool_slot *slot = &pool->slots[i];
        while (slot->out_count != 0) {
            struct pool_chunk c = slot->out[slot->out_head];
            slot->out_head = (slot->out_head + 1) % POOL_DEPTH_MAX;
            slot->out_count--;
            finish_items(s, c.job, c.start, c.count, NULL, NULL, code);
        }
        slot->out_bytes = 0;
    }
    struct pool_chunk c;
    while (next_chunk(s, &c))
        finish_items(s, c.job, c.start, c.count, NULL, NULL, code);
    pthread_mutex_lock(&pool->lock);
    struct pool_job *inbox = pool->inbox_head;
    pool->inbox_head = pool->inbox_tail = NULL;
    pthread_mutex_unlock(&pool->lock);
    while (inbox != NULL) {
        struct pool_job *job = inbox;
        inbox = job->link;
        finish_items(s, job, 0, job->n, NULL, NULL, code);
    }
}

/* Stops every worker now: SIGKILL by the watcher (which also turns spawns
 * still pending into deaths). */
static void kill_workers(struct sched *s) {
    struct mproc_pool *pool = s->pool;
    s->stopping = true;
    s->killed = true;
    pthread_mutex_lock(&pool->lock);
    pool->kill_all = true;
    pthread_mutex_unlock(&pool->lock);
    mproc__pool_wake_watcher(pool);
}

static void request_spawn(struct sched *s, struct pool_slot *slot) {
    struct mproc_pool *pool = s->pool;
    pthread_mutex_lock(&pool->lock);
    pool->spawns[pool->nspawns++] = (struct pool_spawn){.slot = slot->index, .gen = slot->gen};
    pthread_mutex_unlock(&pool->lock);
    mproc__pool_wake_watcher(pool);
}

/* Empties a dead worker's task queue: the chunks it never took.  Returns
 * how many there were. */
static unsigned drain_untaken(struct sched *s, struct pool_slot *slot) {
    mproc_queue *q = s->pool->tasks[slot->index];
    unsigned n = 0;
    for (;;) {
        size_t len;
        int rc = mproc_queue_get_nowait(q, s->buf, s->cap, &len);
        if (rc == ENOBUFS) {
            unsigned char *b = realloc(s->buf, len);
            if (b == NULL)
                return n; /* left in the queue: its next worker runs them */
            s->buf = b;
            s->cap = len;
            continue;
        }
        if (rc != 0)
            return n;
        const struct pool_msg *msg = (const struct pool_msg *)(const void *)s->buf;
        if (len >= sizeof *msg && msg->type == MSG_TASK)
            n++;
    }
}

static void on_death(struct sched *s, const struct pool_msg *msg) {
    struct mproc_pool *pool = s->pool;
    if (msg->slot >= pool->nworkers)
        return;
    struct pool_slot *slot = &pool->slots[msg->slot];
    if (slot->state != SLOT_LIVE || msg->gen != slot->gen)
        return;
    int exitcode = msg->exitcode;
    struct pool_slot_area *area = pool_area(pool, slot->index);

    /* The chunks it held: the last `untaken` were never taken; before them
     * at most one was taken and not resulted: the one it was running. */
    unsigned untaken = drain_untaken(s, slot);
    if (untaken > slot->out_count)
        untaken = slot->out_count;
    unsigned taken = slot->out_count - untaken;
    bool lost_item = false;
    for (unsigned k = 0; k < slot->out_count; k++) {
        struct pool_chunk c = slot->out[(slot->out_head + k) % POOL_DEPTH_MAX];
        if (k >= taken) {
            resend(s, c);
            continue;
        }
        uint64_t running = atomic_load_explicit(&area->running, memory_order_acquire);
        uint32_t done = atomic_load_explicit(&area->done, memory_order_acquire);
        if (running != c.id || k != taken - 1) {
            resend(s, c); /* taken, never begun */
            continue;
        }
        if (done > c.count)
            done = c.count;
        const unsigned char *res = (const unsigned char *)&area->msg;
        finish_items(s, c.job, c.start, done, (const int32_t *)(const void *)(res + sizeof area->msg),
                     res + pool_outputs_offset(c.count), 0);
        if (done == c.count)
            continue; /* died after its last item, before the RESULT commit */
        lost_item = true;
        struct pool_chunk item = {.job = c.job, .start = c.start + done, .count = 1, .tries = c.tries};
        struct pool_chunk rest = {.job = c.job, .start = c.start + done + 1,
                                  .count = c.count - done - 1, .tries = c.tries};
        if (c.tries < pool->opts.retries) {
            item.tries++;
            resend(s, item);
            pthread_mutex_lock(&pool->lock);
            pool->stats.retried++;
            pthread_mutex_unlock(&pool->lock);
        } else {
            pthread_mutex_lock(&pool->lock);
            pool->stats.lost++;
            pthread_mutex_unlock(&pool->lock);
            finish_items(s, c.job, item.start, 1, NULL, NULL, MPROC_E_WORKER_DIED);
        }
        resend(s, rest);
    }
    slot->out_count = slot->out_head = 0;
    slot->out_bytes = 0;

    bool retired = slot->retiring && exitcode == 0 && !lost_item;
    bool stopped = s->stopping && (exitcode == 0 || s->killed); /* by STOP, or our kill */
    bool initialized = atomic_load_explicit(&area->initialized, memory_order_acquire) != 0;
    int init_error = atomic_load_explicit(&area->init_error, memory_order_acquire);
    /* A worker ending inside its initializer by itself (an exit, a crash)
     * probably always will: after INIT_DEATHS_MAX in a row the pool breaks
     * rather than fork for ever (Python's Pool does).  Killed from outside
     * (SIGKILL, SIGTERM: the OOM killer, an operator) it is just replaced. */
    bool by_itself = exitcode > 0 || (exitcode < 0 && exitcode != -SIGKILL && exitcode != -SIGTERM);
    if (initialized)
        s->init_deaths = 0;
    else if (!s->stopping && init_error == 0 && by_itself && ++s->init_deaths >= INIT_DEATHS_MAX)
        init_error = exitcode;
    bool broken = !initialized && init_error != 0 && !s->stopping;

    pthread_mutex_lock(&pool->lock);
    if (retired)
        pool->stats.retired++;
    else if (!stopped)
        pool->stats.died++;
    if (broken && !pool->broken) {
        pool->broken = true;
        pool->stats.init_error = init_error;
    }
    pthread_mutex_unlock(&pool->lock);

    if (broken) {
        slot->state = SLOT_DEAD;
        s->live--;
        fail_everything(s, MPROC_E_INIT_FAILED);
        kill_workers(s);
        return;
    }
    if (s->stopping) {
        slot->state = SLOT_DEAD;
        s->live--;
        return;
    }
    /* A replacement, in the same slot: a new generation, a clean area. */
    slot->gen++;
    slot->sent = 0;
    slot->retiring = false;
    atomic_store_explicit(&area->running, 0, memory_order_relaxed);
    atomic_store_explicit(&area->done, 0, memory_order_relaxed);
    atomic_store_explicit(&area->initialized, 0, memory_order_relaxed);
    atomic_store_explicit(&area->init_error, 0, memory_order_relaxed);
    request_spawn(s, slot);
}

/* A KICK: new jobs, and maybe a new state. */
static void take_inbox(struct sched *s) {
    struct mproc_pool *pool = s->pool;
    pthread_mutex_lock(&pool->lock);
    struct pool_job *jobs = pool->inbox_head, *last = pool->inbox_tail;
    pool->inbox_head = pool->inbox_tail = NULL;
    pool->kick_pending = false;
    pthread_mutex_unlock(&pool->lock);
    if (jobs == NULL)
        return;
    if (s->jobs_tail != NULL)
        s->jobs_tail->link = jobs;
    else
        s->jobs_head = jobs;
    s->jobs_tail = last;
}

static bool nothing_outstanding(const struct sched *s) {
    if (s->redo_len != 0 || s->jobs_head != NULL)
        return false;
    for (unsigned i = 0; i < s->pool->nworkers; i++)
        if (s->pool->slots[i].out_count != 0)
            return false;
    return true;
}

/* After a batch of messages: act on close / terminate. */
static void follow_state(struct sched *s) {
    struct mproc_pool *pool = s->pool;
    pthread_mutex_lock(&pool->lock);
    int state = pool->state;
    bool inbox_empty = pool->inbox_head == NULL;
    pthread_mutex_unlock(&pool->lock);
    if ((state == POOL_TERMINATED || s->failed) && !s->terminated) {
        s->terminated = true;
        fail_everything(s, MPROC_E_TERMINATED);
        kill_workers(s);
        return;
    }
    if (state == POOL_CLOSED && !s->stopping && inbox_empty && nothing_outstanding(s)) {
        s->stopping = true;
        struct pool_msg stop = {.type = MSG_STOP};
        for (unsigned i = 0; i < pool->nworkers; i++)
            if (pool->slots[i].state == SLOT_LIVE &&
                mproc_queue_put(pool->tasks[i], &stop, sizeof stop, 0) != 0) {
                kill_workers(s); /* cannot happen (room for a STOP is kept); be sure */
                break;
            }
    }
}

static void handle(struct sched *s, size_t len) {
    const struct pool_msg *msg = (const struct pool_msg *)(const void *)s->buf;
    if (len < sizeof *msg)
        return;
    switch (msg->type) {
    case MSG_RESULT:
        on_result(s, msg, len);
        break;
    case MSG_DEATH:
        on_death(s, msg);
        break;
    case MSG_KICK:
        take_inbox(s);
        break;
    default:
        break;
    }
}

static int receive(struct sched *s, size_t *len, double timeout) {
    for (;;) {
        int rc = mproc_queue_get(s->pool->results, s->buf, s->cap, len, timeout);
        if (rc != ENOBUFS)
            return rc;
        unsigned char *b = realloc(s->buf, *len);
        if (b == NULL)
            return ENOMEM;
        s->buf = b;
        s->cap = *len;
    }
}

void *mproc__pool_scheduler(void *arg) {
    struct sched s = {.pool = arg, .live = ((struct mproc_pool *)arg)->nworkers};
    s.cap = 1 << 16;
    s.buf = malloc(s.cap);
    if (s.buf == NULL)
        s.failed = true;
    while (s.live != 0) {
        size_t len;
        int rc = s.failed ? ENOMEM : receive(&s, &len, MPROC_FOREVER);
        if (rc == 0) {
            handle(&s, len);
            for (int i = 1; i < BATCH && receive(&s, &len, 0) == 0; i++)
                handle(&s, len);
            refill_all(&s);
        } else if (rc != MPROC_E_EMPTY) {
            /* The result queue failed (corrupt, or no memory to receive):
             * stop the workers and take the deaths as they come, 10 ms
             * apart at worst. */
            s.failed = true;
            if (s.buf != NULL && receive(&s, &len, 0.01) == 0)
                handle(&s, len);
            else if (s.buf == NULL)
                nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        }
        follow_state(&s);
    }
    struct mproc_pool *pool = s.pool;
    pthread_mutex_lock(&pool->lock);
    pool->watcher_exit = true;
    pthread_mutex_unlock(&pool->lock);
    mproc__pool_wake_watcher(pool);
    pthread_join(pool->watcher, NULL);
    pthread_mutex_lock(&pool->lock);
    pool->finished = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->lock);
    free(s.buf);
    free(s.redo);
    return NULL;
}
