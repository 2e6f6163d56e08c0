/* SPDX-License-Identifier: MIT */
/*
 * The message channels bench_queue.c compares, behind one small interface:
 *
 *   mproc      mproc_queue with default options (one per direction)
 *   pipe       write/read of whole fixed-size records on a pipe
 *   posix_mq   mq_send/mq_receive, as deep as this machine permits
 *   boost_mq   boost::interprocess::message_queue (peer_boost_mq.cpp)
 *   zmq_ipc    ZeroMQ over ipc://: PUSH/PULL one way, PAIR for ping-pong
 *   spsc_ring  a bare single-producer single-consumer ring of fixed slots in
 *              shared memory, spinning, no locks and no sleeps: the limit
 *
 * Channel 0 carries producer -> consumer (ping-pong: A -> B), channel 1 the
 * replies B -> A.  The parent sets a peer up before forking (the qpeer lives
 * in MAP_SHARED memory, so what the children write in it, such as zmq's
 * "bound" flag, is seen by all), each child attaches its own end after the
 * fork (sockets and named queues are per process), and the parent tears the
 * peer down after the children are reaped.
 *
 * Every put/get moves exactly one message of `size` bytes and returns 0, or
 * -1 when the call failed or the message came back with another length.
 */
#ifndef MPROC_BENCH_PEER_QUEUE_H
#define MPROC_BENCH_PEER_QUEUE_H

#include <mqueue.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <mproc.h>

#include "harness.h"

typedef enum qpeer_kind {
    QP_MPROC,
    QP_PIPE,
    QP_POSIX_MQ,
    QP_BOOST_MQ,
    QP_ZMQ,
    QP_SPSC,
} qpeer_kind;

/* Messages the bounded peers are asked to hold (posix_mq may get fewer). */
#define QPEER_DEPTH 4096

struct spsc_ring;

typedef struct qpeer {
    qpeer_kind kind;
    size_t size;       /* bytes per message */
    int channels;      /* 1, or 2 for ping-pong */
    long depth;        /* posix_mq / boost_mq: messages each channel holds */
    size_t capacity;   /* mproc: ring bytes (0: the default) */
    char name[2][64];  /* posix_mq / boost_mq names, zmq endpoint */
    mproc_queue *queue[2];
    int fd[2][2];      /* pipe: [channel][read, write] */
    mqd_t mq[2];
    struct spsc_ring *ring[2];
    size_t ring_bytes;
    _Atomic int bound; /* zmq: the binding side is listening */
} qpeer;

typedef struct qend {
    qpeer *peer;
    int side; /* 0: producer / A (connects), 1: consumer / B (binds) */
    void *zctx, *zsock;
    void *boost[2];
} qend;

/* Parent, before the fork.  Returns 0, or -1 with `why` filled in. */
int qpeer_setup(qpeer *peer, qpeer_kind kind, size_t size, int channels, char *why,
                size_t whylen);
/* Parent, after the children are reaped. */
void qpeer_teardown(qpeer *peer);

/* Child, after the fork.  Returns 0 or -1. */
int qpeer_attach(qpeer *peer, qend *end, int side);
void qpeer_detach(qend *end);

int qp_mproc_put(qend *end, int ch, const void *msg, size_t len);
int qp_mproc_get(qend *end, int ch, void *buf, size_t len);
int qp_pipe_put(qend *end, int ch, const void *msg, size_t len);
int qp_pipe_get(qend *end, int ch, void *buf, size_t len);
int qp_posix_mq_put(qend *end, int ch, const void *msg, size_t len);
int qp_posix_mq_get(qend *end, int ch, void *buf, size_t len);
int qp_boost_put(qend *end, int ch, const void *msg, size_t len);
int qp_boost_get(qend *end, int ch, void *buf, size_t len);
int qp_zmq_put(qend *end, int ch, const void *msg, size_t len);
int qp_zmq_get(qend *end, int ch, void *buf, size_t len);
int qp_spsc_put(qend *end, int ch, const void *msg, size_t len);
int qp_spsc_get(qend *end, int ch, void *buf, size_t len);

/* One repetition of the queue bench ctx->def over `kind`: forks, runs,
 * checks (peer_queue_run.c).  Returns 0, or -1 after bench_error(). */
int queue_run(const bench_ctx *ctx, uint64_t n, bench_run *out, qpeer_kind kind);
/* The mproc queue's ring bytes: 0 (the default) unless the environment's
 * MPROC_BENCH_QUEUE_CAPACITY asks for another, to measure its effect. */
size_t queue_mproc_capacity(void);

/* The python_mp impls (peer_queue_python.c). */
extern const char python_queue_1p1c_64[];
extern const char python_queue_1p1c_4k[];
extern const char python_queue_2p2c_64[];
extern const char python_queue_pingpong[];

#endif
