/* SPDX-License-Identifier: MIT */
/*
 * mproc_pool: Python's multiprocessing.Pool for C functions over fixed-size
 * items, and a pool that survives its workers being killed.
 *
 *   static int twice(const void *in, void *out) {
 *       *(long *)out = *(const long *)in * 2;
 *       return 0;                       // or an error code for this item
 *   }
 *   mproc_pool *pool;
 *   mproc_pool_create(&pool, NULL);     // mproc_cpu_count() workers
 *   long in[100], out[100];
 *   size_t bad;
 *   int rc = mproc_pool_map(pool, twice, in, sizeof *in, out, sizeof *out, 100, 0, &bad);
 *   mproc_pool_close(pool);
 *   mproc_pool_join(pool, MPROC_FOREVER);
 *   mproc_pool_free(pool);
 *
 * Workers are daemon processes forked by a thread of the pool, so they see
 * the program's memory as it was when they were forked: a task function (and
 * anything it reads) must exist before the pool is created, as Python's
 * fork-started pool needs functions defined before Pool().  Input items are
 * copied into the pool when the work is submitted; outputs are written to
 * the caller's `out` by the time the work is ready.
 *
 * Work is cut into chunks of `chunksize` items (map's default is Python's
 * ceil(n / (4 * workers)); imap's is 1), and a chunk never carries more
 * than MPROC_POOL_CHUNK_BYTES of input or output (it is cut smaller).  A
 * chunk is a "task" for max_tasks_per_child, as in Python.
 *
 * Codes.  A task returns 0 or any nonzero code of its own for its item; map
 * and result_get return the code of the first failing item (lowest index)
 * and its index, after every item has finished (as Python's map, which
 * raises only once all chunks are done).  The pool adds three codes:
 *   MPROC_E_WORKER_DIED   the worker running this item died (killed, crashed,
 *                         _exit) before the item's function returned;
 *   MPROC_E_TERMINATED    the pool was terminated before the item ran;
 *   MPROC_E_INIT_FAILED   a worker's initializer failed (returned nonzero, or
 *                         a replacement worker kept dying in it), so the pool
 *                         runs nothing more; mproc_pool_get_stats() has its code.
 *                         Work submitted after that is refused with this code
 *                         (no failed index); work already submitted fails
 *                         item by item.
 * Work on a closed or terminated pool is refused with MPROC_E_CLOSED.
 *
 * Dead workers.  A worker that dies is replaced at once.  Of its work, only
 * the item whose function was running fails (MPROC_E_WORKER_DIED), or runs
 * again on another worker when `retries` allows (the default, 0, assumes
 * tasks are not idempotent); items it finished keep their results, and items
 * it had not begun run elsewhere.  Nothing waits for the dead: Python's Pool
 * loses the task and map() hangs forever.
 *
 * Handles are for the creating process only (ECHILD elsewhere).  Submitting
 * and waiting are safe from any of its threads at once; a result or an
 * iterator is for one thread at a time.
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include <stddef.h>

#include <mproc/export.h>
#include <mproc/error.h>

MPROC_EXTERN_C_BEGIN

#define MPROC_POOL_MAX_WORKERS 1024
#define MPROC_POOL_CHUNK_BYTES ((size_t)1 << 20) /* a chunk's input or output, at most */
#define MPROC_POOL_ITEM_MAX ((size_t)8 << 20)    /* one item's input or output, at most */

/* A task: reads one input item, writes one output item (zeroed before the
 * call), returns 0 or a nonzero code for this item. */
typedef int (*mproc_task_fn)(const void *in, void *out);

typedef struct mproc_pool mproc_pool;
typedef struct mproc_result mproc_result;
typedef struct mproc_pool_iter mproc_pool_iter;

typedef struct mproc_pool_options {
    unsigned workers;                /* 0: mproc_cpu_count(); at most MPROC_POOL_MAX_WORKERS */
    unsigned max_tasks_per_child;    /* 0: unlimited; else a worker exits after that many chunks */
    int (*initializer)(void *arg);   /* NULL, or run by each worker first; nonzero: see above */
    void *initarg;                   /* its argument (memory as at pool creation) */
    unsigned retries;                /* runs after the first of an item whose worker died */
    unsigned reserved[5];            /* must be zero */
} mproc_pool_options;

typedef struct mproc_pool_stats {
    unsigned workers;        /* the pool's size */
    unsigned long long started;  /* worker processes started, replacements included */
    unsigned long long died;     /* workers that died by a signal or a nonzero exit */
    unsigned long long retired;  /* workers that ended after max_tasks_per_child */
    unsigned long long lost;     /* items failed with MPROC_E_WORKER_DIED */
    unsigned long long retried;  /* items run again after their worker died */
    int init_error;          /* the failing initializer's code (INIT_FAILED), else 0 */
    int reserved[5];
} mproc_pool_stats;

/* Starts the pool's threads and workers.  Returns 0, EINVAL (bad options,
 * too many workers), ENOMEM, EAGAIN (threads or processes), EPERM (called in
 * a daemon process, which may not have children). */
MPROC_API int mproc_pool_create(mproc_pool **out, const mproc_pool_options *opts);

/* ---- work ---- */

/* Runs fn over n items: in[i] (in_size bytes each) to out[i] (out_size
 * bytes each; either size may be 0), in order, and waits for all.  chunksize
 * 0: Python's default.  Returns 0 when every item succeeded; else the code
 * of the lowest failing item, whose index goes to *failed_index (may be NULL;
 * SIZE_MAX when nothing failed).  EINVAL (NULL fn, NULL in or out with a
 * nonzero size and n), EMSGSIZE (an item over MPROC_POOL_ITEM_MAX),
 * MPROC_E_CLOSED, ECHILD, ENOMEM.  n == 0 returns 0 at once. */
MPROC_API int mproc_pool_map(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t in_size,
                             void *out, size_t out_size, size_t n, size_t chunksize,
                             size_t *failed_index);

/* map without waiting: *result is ready once every item finished; `out`
 * must stay valid until then, or until the result is freed. */
MPROC_API int mproc_pool_map_async(mproc_pool *pool, mproc_task_fn fn, const void *in,
                                   size_t in_size, void *out, size_t out_size, size_t n,
                                   size_t chunksize, mproc_result **result);

/* One item: fn(in, out) in a worker.  Returns fn's code or a pool code. */
MPROC_API int mproc_pool_apply(mproc_pool *pool, mproc_task_fn fn, const void *in,
                               size_t in_size, void *out, size_t out_size);
MPROC_API int mproc_pool_apply_async(mproc_pool *pool, mproc_task_fn fn, const void *in,
                                     size_t in_size, void *out, size_t out_size,
                                     mproc_result **result);

/* ---- results (AsyncResult) ---- */

/* Waits up to `timeout` for the result.  Returns ETIMEDOUT while not
 * ready; then the work's outcome: 0, or the lowest failing item's code with
 * its index in *failed_index (may be NULL).  A task that itself returns
 * ETIMEDOUT is told apart by mproc_result_ready(). */
MPROC_API int mproc_result_get(mproc_result *result, double timeout, size_t *failed_index);

/* 0 once ready, ETIMEDOUT if not within `timeout`; EINVAL. */
MPROC_API int mproc_result_wait(mproc_result *result, double timeout);

/* 1 once every item finished, else 0 (0 for NULL). */
MPROC_API int mproc_result_ready(const mproc_result *result);

/* *successful = 1 when every item returned 0.  EINPROGRESS while not ready
 * (Python's ValueError), EINVAL. */
MPROC_API int mproc_result_successful(const mproc_result *result, int *successful);

/* Item `index`'s code.  EINPROGRESS while not ready, ERANGE, EINVAL. */
MPROC_API int mproc_result_code(const mproc_result *result, size_t index, int *code);

/* Frees the handle.  Work still running goes on; its outputs are then not
 * written to `out`. */
MPROC_API void mproc_result_free(mproc_result *result);

/* ---- imap / imap_unordered ---- */

#define MPROC_IMAP_UNORDERED 1u /* results in completion order (imap_unordered) */

/* Starts fn over n items (chunksize 0: 1) and returns an iterator over the
 * results: in order, or in completion order with MPROC_IMAP_UNORDERED.
 * Returns as map_async, EINVAL for unknown flags. */
MPROC_API int mproc_pool_imap(mproc_pool *pool, mproc_task_fn fn, const void *in,
                              size_t in_size, size_t out_size, size_t n, size_t chunksize,
                              unsigned flags, mproc_pool_iter **iter);

/* The next result: copies its output to out (out_size bytes; out may be NULL
 * to skip it), its index to *index and its task's code to *code (either may
 * be NULL).  Returns 0, ETIMEDOUT (not within timeout; try again), ENODATA
 * (all n delivered: Python's StopIteration), EINVAL. */
MPROC_API int mproc_pool_iter_next(mproc_pool_iter *iter, void *out, size_t *index, int *code,
                                   double timeout);

/* Frees the iterator; work still running goes on and is discarded. */
MPROC_API void mproc_pool_iter_free(mproc_pool_iter *iter);

/* ---- lifecycle ---- */

/* No new work: the workers finish what was submitted, then exit.
 * Returns 0 (also when already closed or terminated), ECHILD, EINVAL. */
MPROC_API int mproc_pool_close(mproc_pool *pool);

/* Stops now: workers are SIGKILLed, every item not finished fails with
 * MPROC_E_TERMINATED (results become ready: nothing hangs, unlike Python).
 * Returns 0 (also when already terminated), ECHILD, EINVAL. */
MPROC_API int mproc_pool_terminate(mproc_pool *pool);

/* Waits up to `timeout` for the workers to exit after close or terminate.
 * Returns 0, ETIMEDOUT, EBUSY (neither closed nor terminated: Python's
 * "Pool is still running"), ECHILD, EINVAL. */
MPROC_API int mproc_pool_join(mproc_pool *pool, double timeout);

/* Terminates the pool if it still runs (as Python's `with Pool()` exit),
 * joins it and frees it.  Results and iterators stay usable.  Pools still
 * open when the program exits are terminated first. */
MPROC_API void mproc_pool_free(mproc_pool *pool);

/* ---- introspection ---- */

/* The pool's size. */
MPROC_API unsigned mproc_pool_workers(const mproc_pool *pool);

/* Fills pids[0, cap) with the running workers' pids and stores the pool's
 * size in *count.  Every first worker is forked before create returns; a
 * slot between a death and its replacement (or whose fork failed and is
 * retried) reads 0. */
MPROC_API int mproc_pool_worker_pids(mproc_pool *pool, int *pids, unsigned cap, unsigned *count);

/* Counters since creation. */
MPROC_API int mproc_pool_get_stats(mproc_pool *pool, mproc_pool_stats *stats);

MPROC_EXTERN_C_END

#endif
