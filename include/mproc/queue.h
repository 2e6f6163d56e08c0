/* SPDX-License-Identifier: MIT */
/*
 * mproc_queue: Python's Queue, SimpleQueue and JoinableQueue, for byte
 * messages, between threads and processes, and crash-safe.
 *
 * A message is any byte string of 0 to mproc_queue_max_message() bytes.  The
 * queue is a ring of bytes in shared memory: put copies the message in and
 * returns only once it is there (no feeder thread, so qsize/empty/full are
 * exact and a put never "returns before the data is sent" as in Python).
 * Order is one global FIFO, which also keeps each producer's order.
 *
 * Capacity.  maxsize > 0 bounds the number of messages (Python's maxsize);
 * maxsize 0 means unbounded in practice.  Either way the ring has a byte
 * capacity (opts->capacity, default MPROC_QUEUE_DEFAULT_CAPACITY, a power of
 * two) whose pages are committed lazily, as messages first reach them: a
 * large capacity costs address space, not memory, until it is used.  A named
 * queue reserves each new stretch in /dev/shm before writing to it, so a full
 * /dev/shm is ENOSPC from put, never a SIGBUS.  The largest message is
 * capacity / 2 - 8 bytes.
 *
 * Codes.  A put that finds no room, at once (timeout 0, mproc_queue_put_nowait)
 * or within its timeout, returns MPROC_E_FULL; a get that finds nothing returns
 * MPROC_E_EMPTY (Python's queue.Full / queue.Empty).  A get whose buffer is too
 * small returns ENOBUFS, stores the message's length in *len and leaves the
 * message at the head of the queue.
 *
 * Shutdown (Python 3.13's Queue.shutdown; the "close"): once a
 * process calls mproc_queue_shutdown(), every put returns MPROC_E_CLOSED and
 * gets drain what is left, then return MPROC_E_CLOSED; sleepers wake at once.
 * mproc_queue_close() only drops a handle, like every mproc_<noun>_close().
 *
 * Crash safety.  Producers take a robust put lock, consumers a robust get
 * lock; each side publishes its work with one atomic store (the commit), so a
 * process SIGKILLed at any instruction:
 *   - never corrupts the queue or blocks the others beyond one 50 ms liveness
 *     slice (MPROC_QUEUE_LIVENESS_MS);
 *   - inside put: delivered the whole message or nothing;
 *   - inside get: leaves the message queued, unless it died after the commit
 *     (then it counts as received by the dead process, as if it died just
 *     after get returned);
 *   - never causes a duplicate or a torn message.
 * A message whose put returned 0 is delivered exactly once (or received by a
 * consumer that died after taking it).
 *
 * JoinableQueue (MPROC_QUEUE_JOINABLE, or mproc_joinable_queue_create):
 * every put adds an unfinished task, every task_done removes one; join waits
 * until none is left.  task_done must be called by the process that got the
 * item (any of its threads): each consumer process has a record of how many
 * items it took and finished (opts->max_consumers records).  task_done past
 * what the process took is EOVERFLOW, nothing changed.  When a consumer
 * process dies between get and task_done, its unfinished items can never be
 * finished: they are counted as abandoned, and join returns
 * MPROC_E_ABANDONED instead of waiting forever once every other task is done.
 * The abandoned count is cumulative and sticky (every later join reports it)
 * until mproc_queue_forgive() is called.
 *
 * A consumer is waiting whenever it holds the get lock with nothing to take,
 * so a non-blocking get while another consumer waits returns MPROC_E_EMPTY
 * (as Python's get_nowait behind a blocked get); likewise a non-blocking put
 * behind a producer waiting for room returns MPROC_E_FULL.  A non-blocking
 * call that meets a holder merely copying a message waits for it (up to 1 s,
 * a big message's copy) rather than report a state the queue is not in.
 */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

#define MPROC_QUEUE_DEFAULT_CAPACITY ((size_t)64 << 20) /* 64 MiB, committed lazily */
#define MPROC_QUEUE_MIN_CAPACITY ((size_t)4096)
#define MPROC_QUEUE_MAX_CAPACITY ((size_t)1 << 30)
#define MPROC_QUEUE_DEFAULT_CONSUMERS 64 /* JoinableQueue consumer processes */
#define MPROC_QUEUE_MAX_CONSUMERS 4096
#define MPROC_QUEUE_LIVENESS_MS 50

/* Option flags. */
#define MPROC_QUEUE_JOINABLE 1u /* task_done / join */
#define MPROC_QUEUE_SIMPLE 2u   /* SimpleQueue: maxsize must be 0 */

typedef struct mproc_queue mproc_queue;

typedef struct mproc_queue_options {
    unsigned mode;          /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned flags;         /* MPROC_QUEUE_JOINABLE or MPROC_QUEUE_SIMPLE, or 0 */
    unsigned max_consumers; /* joinable: 0 = MPROC_QUEUE_DEFAULT_CONSUMERS */
    unsigned reserved0;     /* must be zero */
    size_t capacity;        /* ring bytes, a power of two; 0 = the default */
    unsigned reserved[4];   /* must be zero */
} mproc_queue_options;

/*
 * Creates an anonymous queue holding at most `maxsize` messages (0: bounded
 * only by the byte capacity).  The flavour (plain, joinable, simple) is a
 * kind: a named queue opened as another flavour is MPROC_E_KIND.
 * Returns 0, EINVAL (capacity not a power of two in [MIN, MAX], maxsize with
 * MPROC_QUEUE_SIMPLE, maxsize over capacity / 8, max_consumers without
 * MPROC_QUEUE_JOINABLE, bad options), ENOMEM.
 */
MPROC_API int mproc_queue_create(mproc_queue **out, size_t maxsize,
                                 const mproc_queue_options *opts);

/* Opens the named queue `name`; maxsize and capacity apply when it is
 * created, and must match (or be 0 and 0) when it exists, else EINVAL.
 * Codes as mproc_queue_create() and mproc_lock_open(). */
MPROC_API int mproc_queue_open(mproc_queue **out, const char *name, int flags, size_t maxsize,
                               const mproc_queue_options *opts);

/* Shorthands: opts->flags |= MPROC_QUEUE_SIMPLE / MPROC_QUEUE_JOINABLE. */
MPROC_API int mproc_simple_queue_create(mproc_queue **out, const mproc_queue_options *opts);
MPROC_API int mproc_joinable_queue_create(mproc_queue **out, size_t maxsize,
                                          const mproc_queue_options *opts);

/*
 * Appends the `len` bytes at `msg` (msg may be NULL when len is 0).  Waits
 * up to `timeout` seconds for room (MPROC_FOREVER; 0 tries once).
 * Returns 0, MPROC_E_FULL, MPROC_E_CLOSED, EMSGSIZE, ENOSPC, EINVAL,
 * MPROC_E_CORRUPT.
 */
MPROC_API int mproc_queue_put(mproc_queue *queue, const void *msg, size_t len, double timeout);
MPROC_API int mproc_queue_put_nowait(mproc_queue *queue, const void *msg, size_t len);

/*
 * Takes the oldest message into `buf` (`cap` bytes; buf may be NULL when cap
 * is 0) and stores its length in *len.  Waits up to `timeout` seconds.
 * Returns 0, MPROC_E_EMPTY, MPROC_E_CLOSED (shut down and drained), ENOBUFS
 * (message left queued, *len = its length), EINVAL, MPROC_E_CORRUPT; for a
 * JoinableQueue also EAGAIN (every consumer record is held by a live process
 * other than this one: the message stays queued; returned at once).
 */
MPROC_API int mproc_queue_get(mproc_queue *queue, void *buf, size_t cap, size_t *len,
                              double timeout);
MPROC_API int mproc_queue_get_nowait(mproc_queue *queue, void *buf, size_t cap, size_t *len);

/* As mproc_queue_get, into a buffer it allocates (free() it; never NULL on
 * success, even for an empty message).  Also ENOMEM (message left queued). */
MPROC_API int mproc_queue_get_alloc(mproc_queue *queue, void **msg, size_t *len, double timeout);

/* Messages queued now (exact at the moment of the call); empty / full as
 * 0 or 1.  Return 0 or EINVAL. */
MPROC_API int mproc_queue_qsize(const mproc_queue *queue, size_t *count);
MPROC_API int mproc_queue_empty(const mproc_queue *queue, int *empty);
MPROC_API int mproc_queue_full(const mproc_queue *queue, int *full);

/* maxsize (0: unbounded) and the largest message accepted. */
MPROC_API size_t mproc_queue_maxsize(const mproc_queue *queue);
MPROC_API size_t mproc_queue_max_message(const mproc_queue *queue);

/* Shuts the queue down for everyone (see above).  Idempotent.  Returns 0 or
 * EINVAL. */
MPROC_API int mproc_queue_shutdown(mproc_queue *queue);

/* JoinableQueue: marks one item got by this process as done.  Returns 0,
 * EOVERFLOW (more task_done calls than items this process got, including
 * none at all), EINVAL (not a joinable queue). */
MPROC_API int mproc_queue_task_done(mproc_queue *queue);

/* JoinableQueue: waits up to `timeout` seconds until every task put is done.
 * Returns 0, ETIMEDOUT, MPROC_E_ABANDONED (every task is done or abandoned,
 * and some were abandoned), EINVAL. */
MPROC_API int mproc_queue_join(mproc_queue *queue, double timeout);

/* JoinableQueue: tasks put and not yet done or abandoned; tasks abandoned by
 * dead consumers so far (dead consumers found by this call included).
 * Return 0 or EINVAL. */
MPROC_API int mproc_queue_unfinished(mproc_queue *queue, uint64_t *count);
MPROC_API int mproc_queue_abandoned(mproc_queue *queue, uint64_t *count);

/* JoinableQueue: forgets `count` abandoned tasks (after the caller re-queued
 * or gave up on them), so join can return 0 again.  EINVAL if more than the
 * abandoned count. */
MPROC_API int mproc_queue_forgive(mproc_queue *queue, uint64_t count);

/* Drops this handle.  Returns 0 or EINVAL. */
MPROC_API int mproc_queue_close(mproc_queue *queue);

MPROC_EXTERN_C_END

#endif
