/* SPDX-License-Identifier: MIT */
/*
 * The pool's parts and what they share.
 *
 *   caller threads --submit (inbox + KICK)-->  scheduler thread
 *   scheduler --chunks, per-slot task queue-->  worker process of that slot
 *   workers --RESULT--> one result queue <--DEATH-- watcher thread
 *   scheduler --spawn / kill commands (eventfd)--> watcher thread
 *
 * Threads (in the creating process):
 *   - the scheduler (scheduler.c) owns the work: it reads the result queue,
 *     where results, deaths and kicks arrive in one order, cuts jobs into
 *     chunks and sends a chunk only to a slot's own task queue.  So it always
 *     knows which chunks each worker holds (see handle_death).
 *   - the watcher (watcher.c) forks the workers, so their PR_SET_PDEATHSIG is
 *     tied to a thread that lives as long as the pool, and waits on their
 *     pidfds; it reports each death on the result queue, behind every
 *     result the dead worker committed (a commit precedes the death).
 * Workers (worker.c) run chunks from their slot's queue and write each
 * item's output and code into their slot's shared area, then publish
 * `done`, so after a death the scheduler knows exactly which item was
 * running: only that one fails (or is retried).
 */
#ifndef MPROC_POOL_INTERNAL_H
#define MPROC_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Message types on the queues (the first word of every message). */
enum {
    MSG_TASK = 0x6b736174,   /* scheduler -> worker: a chunk */
    MSG_STOP = 0x706f7473,   /* scheduler -> worker: exit */
    MSG_RESULT = 0x746c7372, /* worker -> scheduler: a finished chunk (the slot area) */
    MSG_DEATH = 0x68746564,  /* watcher -> scheduler: a worker ended */
    MSG_KICK = 0x6b63696b,   /* caller -> scheduler: look at the inbox and the state */
};

/* The header of every message; 64 bytes so that the items after it keep
 * the alignment of the buffer (malloc's, or the slot area's). */
struct pool_msg {
    uint32_t type;
    uint32_t slot;
    uint64_t gen;      /* the slot's worker generation (RESULT, DEATH, TASK) */
    uint64_t chunk_id; /* TASK, RESULT */
    uint64_t fn;       /* TASK: the task function's address */
    uint32_t count;    /* TASK, RESULT: items */
    uint32_t in_size;  /* TASK */
    uint32_t out_size; /* TASK, RESULT */
    int32_t exitcode;  /* DEATH */
    uint64_t busy_ns;  /* RESULT: time spent in the task functions */
    uint64_t pad;
};
_Static_assert(sizeof(struct pool_msg) == 64, "pool message header is 64 bytes");

/* Items per chunk, at most (the codes of a chunk fit the slot area). */
#define POOL_CHUNK_ITEMS 65536u

/* A slot's shared area, written by its worker and read by the scheduler
 * after the worker died.  64 bytes of control words, then `msg`: the RESULT
 * message of the chunk being run, put on the result queue as it stands:
 * its header, at 64 the `count` int32 codes, at pool_outputs_offset(count)
 * the outputs.  `running` names the chunk being run, stored (release) after
 * `done` is reset; `done` (release, after each item's output and code)
 * counts its items finished.  A dead worker's words are stable; they are
 * validated before use. */
struct pool_slot_area {
    _Atomic uint64_t running;     /* chunk_id being run, 0 before the first */
    _Atomic uint32_t done;
    _Atomic uint32_t initialized; /* 1 once the initializer succeeded */
    _Atomic int32_t init_error;   /* the initializer's nonzero code */
    uint32_t pad[11];
    struct pool_msg msg;
};
_Static_assert(sizeof(struct pool_slot_area) == 128, "slot area header");

/* Where the outputs of a chunk of `count` items start in a RESULT message. */
static inline size_t pool_outputs_offset(uint32_t count) {
    return (sizeof(struct pool_msg) + (size_t)count * sizeof(int32_t) + 63) & ~(size_t)63;
}

/* The largest RESULT message, and a slot area's stride. */
#define POOL_RESULT_MAX (pool_outputs_offset(POOL_CHUNK_ITEMS) + MPROC_POOL_ITEM_MAX)
#define POOL_AREA_BYTES ((64 + POOL_RESULT_MAX + 4095) & ~(size_t)4095)

/* A job: one map / apply / imap.  Refcounted: the user's handle and the
 * scheduler (until every item finished). */
struct pool_job {
    _Atomic int refs;
    struct mproc_pool *pool;
    mproc_task_fn fn;
    unsigned char *in; /* a copy of the inputs */
    size_t in_size, out_size, n, chunksize;
    unsigned char *out;     /* caller's (map) or own (imap) */
    bool own_out;
    int *codes;             /* n */
    /* scheduler only */
    size_t next;            /* first item not yet cut into a chunk */
    struct pool_job *link;  /* inbox / dispatch list */
    /* under pool->lock */
    size_t unfinished;
    size_t first_failed;    /* SIZE_MAX: none */
    int first_code;
    bool detached;          /* the user freed the handle: outputs are dropped */
    _Atomic bool ready;
    /* imap */
    bool unordered;
    size_t *order;          /* completion order of items (unordered) */
    unsigned char *finished;/* per item: 1 once finished (ordered) */
    size_t order_len, delivered;
};

/* A chunk: items [start, start + count) of a job. */
struct pool_chunk {
    struct pool_job *job;
    uint64_t id;
    size_t start;
    uint32_t count;
    uint32_t tries; /* runs after the first, of its one item (retries) */
};

#define POOL_DEPTH_MAX 64

enum { SLOT_DEAD, SLOT_LIVE };

/* A worker slot, as the scheduler sees it. */
struct pool_slot {
    unsigned index;
    int state;
    uint64_t gen;
    uint64_t sent;          /* chunks sent to this generation */
    struct pool_chunk out[POOL_DEPTH_MAX]; /* sent, not yet resulted, in order */
    unsigned out_head, out_count;
    size_t out_bytes;
    bool retiring;          /* sent max_tasks_per_child chunks */
};

/* The watcher's commands, under pool->lock. */
struct pool_spawn {
    unsigned slot;
    uint64_t gen;
};

/* The worker's argument: one per slot, in the pool (valid in the child). */
struct pool_worker_arg {
    struct mproc_pool *pool;
    unsigned slot;
    uint64_t gen;
};

enum { POOL_RUNNING, POOL_CLOSED, POOL_TERMINATED };

struct mproc_pool {
    int owner; /* pid of the creating process */
    unsigned nworkers;
    mproc_pool_options opts;
    mproc_queue *results;
    mproc_queue **tasks;        /* per slot */
    unsigned char *areas;       /* shared: nworkers * POOL_AREA_BYTES */
    struct pool_slot *slots;    /* scheduler's */
    pthread_t scheduler, watcher;
    bool threads_started;
    int evfd;                   /* wakes the watcher */

    pthread_mutex_t lock;
    pthread_cond_t cv;          /* job readiness, imap progress, finished */
    /* under lock */
    int state;                  /* POOL_RUNNING / CLOSED / TERMINATED */
    bool broken;                /* an initializer failed: INIT_FAILED */
    bool finished;              /* scheduler and watcher done, workers reaped */
    bool kick_pending;
    struct pool_job *inbox_head, *inbox_tail;
    struct pool_spawn *spawns;  /* pending spawn requests (nworkers max) */
    unsigned nspawns;
    bool kill_all, watcher_exit;
    bool first_forks_done;      /* the watcher tried every first worker once */
    unsigned waiters;           /* threads waiting on cv */
    mproc_pool_stats stats;
    _Atomic int *pids;          /* per slot */
    struct pool_worker_arg *wargs; /* per slot: the worker's argument */
    struct mproc_pool *next_pool, *prev_pool; /* every open pool, for exit */
};

static inline struct pool_slot_area *pool_area(struct mproc_pool *pool, unsigned slot) {
    return (struct pool_slot_area *)(void *)(pool->areas + (size_t)slot * POOL_AREA_BYTES);
}

/* Threads and the worker's main. */
void *mproc__pool_scheduler(void *pool);
void *mproc__pool_watcher(void *pool);
int mproc__pool_worker_main(void *slot_arg);

/* Puts a small control message on the result queue, retrying through
 * transient errors; returns the queue's code. */
int mproc__pool_post(struct mproc_pool *pool, const struct pool_msg *msg);

/* Wakes the watcher. */
void mproc__pool_wake_watcher(struct mproc_pool *pool);

/* Drops a reference; the last frees the job. */
void mproc__pool_job_unref(struct pool_job *job);

#endif
