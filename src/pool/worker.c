/* SPDX-License-Identifier: MIT */
/*
 * A pool worker: the target of a daemon process forked by the watcher.
 *
 * It runs its initializer, then chunks from its slot's task queue until a
 * STOP (or max_tasks_per_child chunks).  Each chunk is run in place in the
 * slot's shared area, which is laid out as the RESULT message, and put on
 * the result queue from there with one copy.  Per item: zero the output,
 * call the task, store its code, then publish `done` (release), so a
 * scheduler reading the area after this process died knows exactly which
 * items finished and which one was running.
 *
 * Exit codes: 0 after STOP or max_tasks_per_child; 1 when the initializer
 * failed (its code is in the area); 2 when a queue failed; 3 for a message
 * that does not validate.  Only the scheduler writes our task queue, but
 * everything read from shared memory is checked before use.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "pool/pool_internal.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool task_ok(const struct pool_msg *msg, size_t len) {
    return msg->count >= 1 && msg->count <= POOL_CHUNK_ITEMS &&
           msg->in_size <= MPROC_POOL_ITEM_MAX && msg->out_size <= MPROC_POOL_ITEM_MAX &&
           msg->fn != 0 && len == sizeof *msg + (size_t)msg->count * msg->in_size &&
           pool_outputs_offset(msg->count) + (size_t)msg->count * msg->out_size <= POOL_RESULT_MAX;
}

/* Runs one chunk and puts its RESULT.  Returns the put's code. */
static int run_chunk(struct mproc_pool *pool, const struct pool_worker_arg *me,
                     struct pool_slot_area *area, const struct pool_msg *task) {
    uint32_t count = task->count;
    size_t in_size = task->in_size, out_size = task->out_size;
    mproc_task_fn fn = (mproc_task_fn)(uintptr_t)task->fn;
    const unsigned char *in = (const unsigned char *)(task + 1);
    unsigned char *res = (unsigned char *)&area->msg;
    int32_t *codes = (int32_t *)(void *)(res + sizeof area->msg);
    unsigned char *outputs = res + pool_outputs_offset(count);

    atomic_store_explicit(&area->done, 0, memory_order_relaxed);
    atomic_store_explicit(&area->running, task->chunk_id, memory_order_release);
    uint64_t start = now_ns();
    for (uint32_t i = 0; i < count; i++) {
        unsigned char *out = outputs + (size_t)i * out_size;
        memset(out, 0, out_size);
        codes[i] = fn(in + (size_t)i * in_size, out);
        atomic_store_explicit(&area->done, i + 1, memory_order_release);
    }
    area->msg = (struct pool_msg){.type = MSG_RESULT,
                                  .slot = me->slot,
                                  .gen = me->gen,
                                  .chunk_id = task->chunk_id,
                                  .count = count,
                                  .out_size = (uint32_t)out_size,
                                  .busy_ns = now_ns() - start};
    return mproc_queue_put(pool->results, res, pool_outputs_offset(count) + count * out_size,
                           MPROC_FOREVER);
}

int mproc__pool_worker_main(void *arg) {
    const struct pool_worker_arg *me = arg;
    struct mproc_pool *pool = me->pool;
    struct pool_slot_area *area = pool_area(pool, me->slot);
    mproc_queue *tasks = pool->tasks[me->slot];
    /* Output another thread of the parent buffered after the watcher's
     * fflush and before the fork is the parent's to write, not ours too. */
    __fpurge(stdout);
    __fpurge(stderr);
    if (pool->opts.initializer != NULL) {
        int rc = pool->opts.initializer(pool->opts.initarg);
        if (rc != 0) {
            atomic_store_explicit(&area->init_error, rc, memory_order_release);
            return 1;
        }
    }
    atomic_store_explicit(&area->initialized, 1, memory_order_release);

    /* No malloc after the fork: another thread of the parent may have held
     * an allocator lock at the fork (GCC 12's ASan does not take its locks
     * around fork; glibc's malloc does).  The largest task fits; pages are
     * touched only as used. */
    size_t cap = sizeof(struct pool_msg) + MPROC_POOL_ITEM_MAX;
    unsigned char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buf == MAP_FAILED)
        return 2;
    unsigned max_tasks = pool->opts.max_tasks_per_child;
    unsigned long long ran = 0;
    for (;;) {
        size_t len;
        int rc = mproc_queue_get(tasks, buf, cap, &len, MPROC_FOREVER);
        if (rc == ENOBUFS)
            return 3; /* larger than any valid task */
        if (rc != 0)
            return 2;
        const struct pool_msg *msg = (const struct pool_msg *)(const void *)buf;
        if (len < sizeof *msg)
            return 3;
        if (msg->type == MSG_STOP)
            return 0;
        if (msg->type != MSG_TASK || !task_ok(msg, len))
            return 3;
        if (run_chunk(pool, me, area, msg) != 0)
            return 2;
        if (max_tasks != 0 && ++ran >= max_tasks)
            return 0;
    }
}
