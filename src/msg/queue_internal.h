/* SPDX-License-Identifier: MIT */
/*
 * The queue's process-private handle, shared by queue.c (the ring: put, get,
 * shutdown) and joinable.c (consumer records, task_done, join).
 */
#ifndef MPROC_MSG_QUEUE_INTERNAL_H
#define MPROC_MSG_QUEUE_INTERNAL_H

#include "internal.h"
#include "shm/segment.h"

struct mproc_queue {
    struct mproc__queue_body *body; /* first: the fast paths start here */
    unsigned char *ring;
    uint32_t mask;        /* capacity - 1 */
    uint32_t kind;        /* MPROC__KIND_QUEUE / _JOINABLE_QUEUE / _SIMPLE_QUEUE */
    uint64_t capacity;
    uint64_t maxsize;     /* 0: unbounded */
    size_t max_message;
    size_t ring_file_offset; /* for mproc__segment_reserve */
    struct mproc__queue_consumer *consumers; /* joinable: max_consumers records */
    uint32_t max_consumers;
    /* joinable: this process's record, valid while rec_pid == our PID (a
     * forked child has another PID and looks its own record up). */
    int32_t rec_pid;
    uint32_t rec_index;
    mproc__segment seg;
};

/* mproc_queue_put of one message made of two parts, msg then more (the
 * pool sends a header and a caller's items without joining them first). */
int mproc__queue_put2(struct mproc_queue *queue, const void *msg, size_t len, const void *more,
                      size_t more_len, double timeout);

/* Joinable queues (joinable.c). */

/* This process's consumer record, claimed on first use.  Returns 0 or
 * EAGAIN (all records taken by live processes). */
int mproc__queue_my_record(struct mproc_queue *queue, struct mproc__queue_consumer **rec);

/* Called by a get lock holder that got EOWNERDEAD: settles the dead holder's
 * pending get (taken or not, from head's get_seq). */
void mproc__queue_settle_pending(struct mproc_queue *queue);

#endif
