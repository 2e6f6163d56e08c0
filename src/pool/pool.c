/* SPDX-License-Identifier: MIT */
/*
 * mproc_pool: creation, submitting work, waiting for it, and the lifecycle
 * (close / terminate / join / free).  The pool's threads are in
 * scheduler.c and watcher.c, the worker's loop in worker.c; the whole
 * design is at the top of pool_internal.h.
 *
 * Callers and the scheduler share the jobs under pool->lock: a caller puts
 * a job in the inbox and posts one KICK (kick_pending keeps it to one
 * outstanding); the scheduler writes outputs and codes under the lock and
 * sets `ready` (release) when the last item finished, so a caller that
 * reads ready (acquire) sees every output without the lock.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool/pool_internal.h"

/* Ring sizes: a task queue holds the largest chunk message (one item of
 * MPROC_POOL_ITEM_MAX) twice over; the result queue the largest RESULT. */
#define TASK_QUEUE_CAPACITY ((size_t)32 << 20)
#define RESULT_QUEUE_CAPACITY ((size_t)64 << 20)

/* ---- every open pool, for the exit handler ---- */

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mproc_pool *pools;
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

/* A forked child owns none of its parent's pools (and another thread may
 * have held the lock at the fork). */
static void pools_after_fork_child(void) {
    pthread_mutex_init(&pools_lock, NULL);
    pools = NULL;
}

static void pools_setup(void) {
    pthread_atfork(NULL, NULL, pools_after_fork_child);
}

static void pools_add(struct mproc_pool *pool) {
    pthread_mutex_lock(&pools_lock);
    pool->prev_pool = NULL;
    pool->next_pool = pools;
    if (pools != NULL)
        pools->prev_pool = pool;
    pools = pool;
    pthread_mutex_unlock(&pools_lock);
}

static void pools_remove(struct mproc_pool *pool) {
    pthread_mutex_lock(&pools_lock);
    if (pool->prev_pool != NULL)
        pool->prev_pool->next_pool = pool->next_pool;
    else if (pools == pool)
        pools = pool->next_pool;
    if (pool->next_pool != NULL)
        pool->next_pool->prev_pool = pool->prev_pool;
    pool->next_pool = pool->prev_pool = NULL;
    pthread_mutex_unlock(&pools_lock);
}

/* Called first by the process module's exit handler: pools still open are
 * terminated (their workers would otherwise be killed under a scheduler
 * that replaces them).  Not freed: the program may still hold handles. */
void mproc__pools_at_exit(void) {
    for (;;) {
        pthread_mutex_lock(&pools_lock);
        struct mproc_pool *pool = pools;
        if (pool != NULL)
            pools = pool->next_pool;
        if (pools != NULL)
            pools->prev_pool = NULL;
        if (pool != NULL)
            pool->next_pool = pool->prev_pool = NULL;
        pthread_mutex_unlock(&pools_lock);
        if (pool == NULL)
            return;
        mproc_pool_terminate(pool);
        mproc_pool_join(pool, MPROC_FOREVER);
    }
}

/* ---- small shared helpers ---- */

int mproc__pool_post(struct mproc_pool *pool, const struct pool_msg *msg) {
    return mproc_queue_put(pool->results, msg, sizeof *msg, MPROC_FOREVER);
}

void mproc__pool_wake_watcher(struct mproc_pool *pool) {
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(pool->evfd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

void mproc__pool_job_unref(struct pool_job *job) {
    if (atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(job->in);
    free(job->codes);
    if (job->own_out)
        free(job->out);
    free(job->order);
    free(job->finished);
    free(job);
}

static bool mine(const struct mproc_pool *pool) {
    return pool->owner == mproc__self_pid();
}

/* Waits on pool->cv until *ready or the deadline; called with the lock. */
static int wait_locked(struct mproc_pool *pool, const mproc__deadline *deadline) {
    if (deadline->now)
        return ETIMEDOUT;
    pool->waiters++;
    int rc = deadline->forever ? pthread_cond_wait(&pool->cv, &pool->lock)
                               : pthread_cond_timedwait(&pool->cv, &pool->lock, &deadline->at);
    pool->waiters--;
    return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

/* ---- create ---- */

static void destroy(struct mproc_pool *pool) {
    if (pool->results != NULL)
        mproc_queue_close(pool->results);
    if (pool->tasks != NULL)
        for (unsigned i = 0; i < pool->nworkers; i++)
            if (pool->tasks[i] != NULL)
                mproc_queue_close(pool->tasks[i]);
    if (pool->areas != NULL)
        munmap(pool->areas, (size_t)pool->nworkers * POOL_AREA_BYTES);
    if (pool->evfd >= 0)
        close(pool->evfd);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->cv);
    free(pool->tasks);
    free(pool->slots);
    free(pool->spawns);
    free((void *)pool->pids);
    free(pool->wargs);
    free(pool);
}

static bool options_ok(const mproc_pool_options *opts) {
    return mproc__options_ok(0, opts->reserved, sizeof opts->reserved / sizeof opts->reserved[0]) &&
           opts->workers <= MPROC_POOL_MAX_WORKERS;
}

int mproc_pool_create(mproc_pool **out, const mproc_pool_options *opts) {
    if (out == NULL)
        return EINVAL;
    *out = NULL;
    mproc_pool_options o = {0};
    if (opts != NULL) {
        if (!options_ok(opts))
            return EINVAL;
        o = *opts;
    }
    if (mproc_current_process_daemon())
        return EPERM; /* its workers could not be started */
    if (o.workers == 0) {
        int cpus = mproc_cpu_count();
        o.workers = cpus > MPROC_POOL_MAX_WORKERS ? MPROC_POOL_MAX_WORKERS : (unsigned)cpus;
    }
    pthread_once(&pools_once, pools_setup);
    mproc__process_setup(); /* its exit handler terminates our pools first */

    struct mproc_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return ENOMEM;
    pool->evfd = -1;
    pool->owner = mproc__self_pid();
    pool->nworkers = o.workers;
    pool->opts = o;
    pool->stats.workers = o.workers;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->cv, &attr);
    pthread_condattr_destroy(&attr);

    int rc = ENOMEM;
    unsigned n = o.workers;
    pool->tasks = calloc(n, sizeof *pool->tasks);
    pool->slots = calloc(n, sizeof *pool->slots);
    pool->spawns = calloc(n, sizeof *pool->spawns);
    pool->pids = calloc(n, sizeof *pool->pids);
    pool->wargs = calloc(n, sizeof *pool->wargs);
    if (pool->tasks == NULL || pool->slots == NULL || pool->spawns == NULL ||
        pool->pids == NULL || pool->wargs == NULL)
        goto fail;
    /* The slot areas: address space only until a worker writes outputs. */
    void *areas = mmap(NULL, (size_t)n * POOL_AREA_BYTES, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (areas == MAP_FAILED)
        goto fail;
    pool->areas = areas;
    mproc_queue_options qo = {.capacity = RESULT_QUEUE_CAPACITY};
    if ((rc = mproc_queue_create(&pool->results, 0, &qo)) != 0)
        goto fail;
    qo.capacity = TASK_QUEUE_CAPACITY;
    for (unsigned i = 0; i < n; i++)
        if ((rc = mproc_queue_create(&pool->tasks[i], 0, &qo)) != 0)
            goto fail;
    pool->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pool->evfd < 0) {
        rc = errno;
        goto fail;
    }
    /* Every slot starts live, its first worker asked of the watcher. */
    for (unsigned i = 0; i < n; i++) {
        pool->slots[i].index = i;
        pool->slots[i].state = SLOT_LIVE;
        pool->slots[i].gen = 1;
        pool->spawns[i] = (struct pool_spawn){.slot = i, .gen = 1};
    }
    pool->nspawns = n;

    if ((rc = pthread_create(&pool->watcher, NULL, mproc__pool_watcher, pool)) != 0)
        goto fail;
    if ((rc = pthread_create(&pool->scheduler, NULL, mproc__pool_scheduler, pool)) != 0) {
        pthread_mutex_lock(&pool->lock);
        pool->nspawns = 0;
        pool->kill_all = pool->watcher_exit = true;
        pthread_mutex_unlock(&pool->lock);
        mproc__pool_wake_watcher(pool);
        pthread_join(pool->watcher, NULL);
        goto fail;
    }
    pool->threads_started = true;
    pthread_mutex_lock(&pool->lock);
    while (!pool->first_forks_done)
        pthread_cond_wait(&pool->cv, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pools_add(pool);
    *out = pool;
    return 0;
fail:
    destroy(pool);
    return rc;
}

/* ---- submitting ---- */

static size_t default_chunksize(const struct mproc_pool *pool, size_t n, bool imap) {
    if (imap)
        return 1;
    size_t parts = (size_t)pool->nworkers * 4;
    return n / parts + (n % parts != 0);
}

/* Cut chunks no larger than MPROC_POOL_CHUNK_BYTES of input or output. */
static size_t capped_chunksize(size_t chunksize, size_t in_size, size_t out_size) {
    size_t item = in_size > out_size ? in_size : out_size;
    size_t cap = item == 0 ? POOL_CHUNK_ITEMS : MPROC_POOL_CHUNK_BYTES / item;
    if (cap == 0)
        cap = 1;
    if (cap > POOL_CHUNK_ITEMS)
        cap = POOL_CHUNK_ITEMS;
    return chunksize > cap ? cap : chunksize;
}

static int submit(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t in_size, void *out,
                  size_t out_size, size_t n, size_t chunksize, bool imap, unsigned flags,
                  struct pool_job **jobp) {
    *jobp = NULL;
    if (pool == NULL || fn == NULL)
        return EINVAL;
    if (!mine(pool))
        return ECHILD;
    if (in_size > MPROC_POOL_ITEM_MAX || out_size > MPROC_POOL_ITEM_MAX)
        return EMSGSIZE;
    if (n != 0 && ((in == NULL && in_size != 0) || (!imap && out == NULL && out_size != 0)))
        return EINVAL;
    if ((in_size != 0 && n > SIZE_MAX / in_size) || (out_size != 0 && n > SIZE_MAX / out_size) ||
        n > SIZE_MAX / sizeof(size_t))
        return ENOMEM;

    struct pool_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return ENOMEM;
    job->pool = pool;
    job->fn = fn;
    job->in_size = in_size;
    job->out_size = out_size;
    job->n = n;
    job->first_failed = SIZE_MAX;
    job->unordered = (flags & MPROC_IMAP_UNORDERED) != 0;
    if (chunksize == 0)
        chunksize = default_chunksize(pool, n, imap);
    job->chunksize = capped_chunksize(chunksize == 0 ? 1 : chunksize, in_size, out_size);
    job->codes = calloc(n != 0 ? n : 1, sizeof *job->codes);
    job->in = malloc(n * in_size != 0 ? n * in_size : 1);
    bool ok = job->codes != NULL && job->in != NULL;
    if (imap) {
        job->own_out = true;
        job->out = calloc(n * out_size != 0 ? n * out_size : 1, 1); /* failed items: zero */
        if (job->unordered)
            job->order = malloc((n != 0 ? n : 1) * sizeof *job->order);
        else
            job->finished = calloc(n != 0 ? n : 1, 1);
        ok = ok && job->out != NULL && (job->order != NULL || job->finished != NULL);
    } else {
        job->out = out;
    }
    atomic_init(&job->refs, 1);
    if (!ok) {
        mproc__pool_job_unref(job);
        return ENOMEM;
    }
    if (n * in_size != 0)
        memcpy(job->in, in, n * in_size);
    job->unfinished = n;

    pthread_mutex_lock(&pool->lock);
    int rc = pool->broken ? MPROC_E_INIT_FAILED : pool->state != POOL_RUNNING ? MPROC_E_CLOSED : 0;
    bool kick = false;
    if (rc == 0 && n == 0) {
        atomic_store_explicit(&job->ready, true, memory_order_release);
    } else if (rc == 0) {
        atomic_store_explicit(&job->refs, 2, memory_order_relaxed); /* + the scheduler's */
        job->link = NULL;
        if (pool->inbox_tail != NULL)
            pool->inbox_tail->link = job;
        else
            pool->inbox_head = job;
        pool->inbox_tail = job;
        kick = !pool->kick_pending;
        pool->kick_pending = true;
    }
    pthread_mutex_unlock(&pool->lock);
    if (rc != 0) {
        mproc__pool_job_unref(job);
        return rc;
    }
    if (kick) {
        struct pool_msg msg = {.type = MSG_KICK};
        mproc__pool_post(pool, &msg);
    }
    *jobp = job;
    return 0;
}

int mproc_pool_map_async(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t in_size,
                         void *out, size_t out_size, size_t n, size_t chunksize,
                         mproc_result **result) {
    if (result == NULL)
        return EINVAL;
    *result = NULL;
    struct pool_job *job;
    int rc = submit(pool, fn, in, in_size, out, out_size, n, chunksize, false, 0, &job);
    if (rc == 0)
        *result = (mproc_result *)job;
    return rc;
}

int mproc_pool_map(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t in_size, void *out,
                   size_t out_size, size_t n, size_t chunksize, size_t *failed_index) {
    if (failed_index != NULL)
        *failed_index = SIZE_MAX;
    mproc_result *result;
    int rc = mproc_pool_map_async(pool, fn, in, in_size, out, out_size, n, chunksize, &result);
    if (rc != 0)
        return rc;
    rc = mproc_result_get(result, MPROC_FOREVER, failed_index);
    mproc_result_free(result);
    return rc;
}

int mproc_pool_apply_async(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t in_size,
                           void *out, size_t out_size, mproc_result **result) {
    return mproc_pool_map_async(pool, fn, in, in_size, out, out_size, 1, 1, result);
}

int mproc_pool_apply(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t in_size,
                     void *out, size_t out_size) {
    return mproc_pool_map(pool, fn, in, in_size, out, out_size, 1, 1, NULL);
}

/* ---- results ---- */

static bool job_ready(const struct pool_job *job) {
    return atomic_load_explicit(&job->ready, memory_order_acquire);
}

int mproc_result_wait(mproc_result *result, double timeout) {
    struct pool_job *job = (struct pool_job *)result;
    mproc__deadline deadline;
    if (job == NULL || mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (job_ready(job))
        return 0; /* the pool may be gone: every job of a freed pool is ready */
    struct mproc_pool *pool = job->pool;
    if (!mine(pool))
        return ECHILD;
    int rc = 0;
    pthread_mutex_lock(&pool->lock);
    while (!job_ready(job) && rc == 0)
        rc = wait_locked(pool, &deadline);
    pthread_mutex_unlock(&pool->lock);
    return job_ready(job) ? 0 : rc;
}

int mproc_result_get(mproc_result *result, double timeout, size_t *failed_index) {
    if (failed_index != NULL)
        *failed_index = SIZE_MAX;
    int rc = mproc_result_wait(result, timeout);
    if (rc != 0)
        return rc;
    struct pool_job *job = (struct pool_job *)result;
    if (job->first_failed == SIZE_MAX)
        return 0;
    if (failed_index != NULL)
        *failed_index = job->first_failed;
    return job->first_code;
}

int mproc_result_ready(const mproc_result *result) {
    return result != NULL && job_ready((const struct pool_job *)result);
}

int mproc_result_successful(const mproc_result *result, int *successful) {
    const struct pool_job *job = (const struct pool_job *)result;
    if (job == NULL || successful == NULL)
        return EINVAL;
    if (!job_ready(job))
        return EINPROGRESS;
    *successful = job->first_failed == SIZE_MAX;
    return 0;
}

int mproc_result_code(const mproc_result *result, size_t index, int *code) {
    const struct pool_job *job = (const struct pool_job *)result;
    if (job == NULL || code == NULL)
        return EINVAL;
    if (!job_ready(job))
        return EINPROGRESS;
    if (index >= job->n)
        return ERANGE;
    *code = job->codes[index];
    return 0;
}

/* The user lets go: if work still runs, the scheduler must stop writing to
 * the caller's `out` (it checks `detached` under the lock). */
static void job_release(struct pool_job *job) {
    if (!job_ready(job)) {
        struct mproc_pool *pool = job->pool;
        pthread_mutex_lock(&pool->lock);
        job->detached = true;
        pthread_mutex_unlock(&pool->lock);
    }
    mproc__pool_job_unref(job);
}

void mproc_result_free(mproc_result *result) {
    if (result != NULL)
        job_release((struct pool_job *)result);
}

/* ---- imap ---- */

int mproc_pool_imap(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t in_size,
                    size_t out_size, size_t n, size_t chunksize, unsigned flags,
                    mproc_pool_iter **iter) {
    if (iter == NULL)
        return EINVAL;
    *iter = NULL;
    if ((flags & ~MPROC_IMAP_UNORDERED) != 0)
        return EINVAL;
    struct pool_job *job;
    int rc = submit(pool, fn, in, in_size, NULL, out_size, n, chunksize, true, flags, &job);
    if (rc == 0)
        *iter = (mproc_pool_iter *)job;
    return rc;
}

/* Which item is next to deliver, if it finished: SIZE_MAX if none yet. */
static size_t deliverable(const struct pool_job *job) {
    if (job->unordered)
        return job->delivered < job->order_len ? job->order[job->delivered] : SIZE_MAX;
    return job->finished[job->delivered] ? job->delivered : SIZE_MAX;
}

int mproc_pool_iter_next(mproc_pool_iter *iter, void *out, size_t *index, int *code,
                         double timeout) {
    struct pool_job *job = (struct pool_job *)iter;
    mproc__deadline deadline;
    if (job == NULL || mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (job->delivered == job->n)
        return ENODATA;
    /* Once ready the pool may be gone and nothing changes any more. */
    bool ready = job_ready(job);
    struct mproc_pool *pool = job->pool;
    if (!ready && !mine(pool))
        return ECHILD;
    if (!ready)
        pthread_mutex_lock(&pool->lock);
    size_t item;
    int rc = 0;
    while ((item = deliverable(job)) == SIZE_MAX && rc == 0)
        rc = wait_locked(pool, &deadline); /* never reached when ready */
    if (item != SIZE_MAX) {
        if (out != NULL && job->out_size != 0)
            memcpy(out, job->out + item * job->out_size, job->out_size);
        if (index != NULL)
            *index = item;
        if (code != NULL)
            *code = job->codes[item];
        job->delivered++;
        rc = 0;
    }
    if (!ready)
        pthread_mutex_unlock(&pool->lock);
    return rc;
}

void mproc_pool_iter_free(mproc_pool_iter *iter) {
    if (iter != NULL)
        job_release((struct pool_job *)iter);
}

/* ---- lifecycle ---- */

static int set_state(mproc_pool *pool, int state) {
    if (pool == NULL)
        return EINVAL;
    if (!mine(pool))
        return ECHILD;
    pthread_mutex_lock(&pool->lock);
    bool kick = false;
    if (pool->state < state) {
        pool->state = state;
        kick = !pool->kick_pending && !pool->finished;
        pool->kick_pending = pool->kick_pending || kick;
    }
    pthread_mutex_unlock(&pool->lock);
    if (kick) {
        struct pool_msg msg = {.type = MSG_KICK};
        mproc__pool_post(pool, &msg);
    }
    return 0;
}

int mproc_pool_close(mproc_pool *pool) {
    return set_state(pool, POOL_CLOSED);
}

int mproc_pool_terminate(mproc_pool *pool) {
    return set_state(pool, POOL_TERMINATED);
}

int mproc_pool_join(mproc_pool *pool, double timeout) {
    mproc__deadline deadline;
    if (pool == NULL || mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (!mine(pool))
        return ECHILD;
    pthread_mutex_lock(&pool->lock);
    if (pool->state == POOL_RUNNING && !pool->broken) {
        pthread_mutex_unlock(&pool->lock);
        return EBUSY;
    }
    int rc = 0;
    while (!pool->finished && rc == 0)
        rc = wait_locked(pool, &deadline);
    bool join_threads = pool->finished && pool->threads_started;
    if (join_threads)
        pool->threads_started = false; /* one joiner joins them */
    pthread_mutex_unlock(&pool->lock);
    if (!join_threads)
        return pool->finished ? 0 : ETIMEDOUT;
    pthread_join(pool->scheduler, NULL); /* which joined the watcher */
    return 0;
}

void mproc_pool_free(mproc_pool *pool) {
    if (pool == NULL)
        return;
    if (mine(pool)) {
        mproc_pool_terminate(pool);
        mproc_pool_join(pool, MPROC_FOREVER);
        pools_remove(pool);
    } else {
        /* A forked child's copy: no threads or workers of its own here.
         * Its jobs stay allocated (the parent's memory, copied). */
        pool->threads_started = false;
    }
    destroy(pool);
}

/* ---- introspection ---- */

unsigned mproc_pool_workers(const mproc_pool *pool) {
    return pool != NULL ? pool->nworkers : 0;
}

int mproc_pool_worker_pids(mproc_pool *pool, int *pids, unsigned cap, unsigned *count) {
    if (pool == NULL || count == NULL || (pids == NULL && cap != 0))
        return EINVAL;
    if (!mine(pool))
        return ECHILD;
    for (unsigned i = 0; i < cap && i < pool->nworkers; i++)
        pids[i] = atomic_load_explicit(&pool->pids[i], memory_order_relaxed);
    *count = pool->nworkers;
    return 0;
}

int mproc_pool_get_stats(mproc_pool *pool, mproc_pool_stats *stats) {
    if (pool == NULL || stats == NULL)
        return EINVAL;
    if (!mine(pool))
        return ECHILD;
    pthread_mutex_lock(&pool->lock);
    *stats = pool->stats;
    pthread_mutex_unlock(&pool->lock);
    return 0;
}
