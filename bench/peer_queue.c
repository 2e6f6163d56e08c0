/* SPDX-License-Identifier: MIT */
/*
 * The channels of bench_queue.c (peer_queue.h says what each one is).  In
 * this file, in order: the spsc ring, each peer's put/get, then setup,
 * attach, detach and teardown for all of them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "peer_queue.h"

#ifdef MPROC_BENCH_HAVE_BOOST
#include "peer_boost_mq.h"
#endif
#ifdef MPROC_BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

/* ---- spsc_ring: the limit ----
 *
 * Fixed slots of `size` bytes rounded up to a cache line, head and tail
 * counting slots forever, each written by one side only and 128 bytes apart
 * (adjacent-line prefetch); each side keeps its last view of the other's
 * word on its own line and reads the shared one only when that view says
 * "full" or "empty" (the Lamport ring with cached indices, as in ck_ring).
 * Waiting spins with the CPU's pause hint and yields every 64 pauses (as
 * mproc's own spin does), since two vCPUs may be shared with other work; no
 * futex, so no side ever sleeps or needs a wake-up. */
#define SPSC_SLOTS 1024u /* 64 KiB of 64-byte slots: fits in L2 */

typedef struct spsc_ring {
    _Alignas(128) _Atomic uint64_t head; /* consumer's: next slot to read */
    uint64_t cached_tail;                /* consumer's view of tail */
    _Alignas(128) _Atomic uint64_t tail; /* producer's: next slot to fill */
    uint64_t cached_head;                /* producer's view of head */
    _Alignas(128) unsigned char slots[];
} spsc_ring;

static size_t spsc_slot_bytes(size_t size) { return (size + 63) & ~(size_t)63; }

static void spsc_pause(unsigned *spins) {
    if (++*spins % 64 == 0)
        sched_yield();
    else
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#else
        atomic_signal_fence(memory_order_seq_cst);
#endif
}

int qp_spsc_put(qend *end, int ch, const void *msg, size_t len) {
    spsc_ring *r = end->peer->ring[ch];
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    unsigned spins = 0;
    while (tail - r->cached_head == SPSC_SLOTS) {
        /* acquire: the consumer's reads of the slot happened before it moved head */
        r->cached_head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail - r->cached_head == SPSC_SLOTS)
            spsc_pause(&spins);
    }
    memcpy(r->slots + (tail % SPSC_SLOTS) * spsc_slot_bytes(end->peer->size), msg, len);
    /* release: the slot's bytes before the new tail */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 0;
}

int qp_spsc_get(qend *end, int ch, void *buf, size_t len) {
    spsc_ring *r = end->peer->ring[ch];
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    unsigned spins = 0;
    while (head == r->cached_tail) {
        /* acquire: pairs with the producer's release of tail */
        r->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head == r->cached_tail)
            spsc_pause(&spins);
    }
    memcpy(buf, r->slots + (head % SPSC_SLOTS) * spsc_slot_bytes(end->peer->size), len);
    /* release: our reads of the slot before the producer may reuse it */
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return 0;
}

/* ---- mproc ---- */

int qp_mproc_put(qend *end, int ch, const void *msg, size_t len) {
    return mproc_queue_put(end->peer->queue[ch], msg, len, MPROC_FOREVER) == 0 ? 0 : -1;
}

int qp_mproc_get(qend *end, int ch, void *buf, size_t len) {
    size_t got = 0;
    int rc = mproc_queue_get(end->peer->queue[ch], buf, len, &got, MPROC_FOREVER);
    return rc == 0 && got == len ? 0 : -1;
}

/* ---- pipe: whole records; writes of at most PIPE_BUF bytes are atomic ---- */

int qp_pipe_put(qend *end, int ch, const void *msg, size_t len) {
    const char *p = msg;
    while (len > 0) {
        ssize_t put = write(end->peer->fd[ch][1], p, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return -1;
        p += put;
        len -= (size_t)put;
    }
    return 0;
}

int qp_pipe_get(qend *end, int ch, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t got = read(end->peer->fd[ch][0], p, len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

/* ---- posix_mq ---- */

int qp_posix_mq_put(qend *end, int ch, const void *msg, size_t len) {
    return mq_send(end->peer->mq[ch], msg, len, 0);
}

int qp_posix_mq_get(qend *end, int ch, void *buf, size_t len) {
    /* mq_receive wants a buffer of the queue's mq_msgsize, which is len. */
    return mq_receive(end->peer->mq[ch], buf, len, NULL) == (ssize_t)len ? 0 : -1;
}

/* ---- boost_mq and zmq_ipc: optional ---- */

#ifdef MPROC_BENCH_HAVE_BOOST
int qp_boost_put(qend *end, int ch, const void *msg, size_t len) {
    return boost_mq_send(end->boost[ch], msg, len);
}

int qp_boost_get(qend *end, int ch, void *buf, size_t len) {
    size_t got = 0;
    return boost_mq_receive(end->boost[ch], buf, len, &got) == 0 && got == len ? 0 : -1;
}
#else
int qp_boost_put(qend *end, int ch, const void *msg, size_t len) {
    (void)end, (void)ch, (void)msg, (void)len;
    return -1;
}
int qp_boost_get(qend *end, int ch, void *buf, size_t len) {
    (void)end, (void)ch, (void)buf, (void)len;
    return -1;
}
#endif

#ifdef MPROC_BENCH_HAVE_ZMQ
/* One socket per process: PUSH/PULL carries channel 0 only, PAIR both. */
int qp_zmq_put(qend *end, int ch, const void *msg, size_t len) {
    (void)ch;
    return zmq_send(end->zsock, msg, len, 0) == (int)len ? 0 : -1;
}

int qp_zmq_get(qend *end, int ch, void *buf, size_t len) {
    (void)ch;
    return zmq_recv(end->zsock, buf, len, 0) == (int)len ? 0 : -1;
}
#else
int qp_zmq_put(qend *end, int ch, const void *msg, size_t len) {
    (void)end, (void)ch, (void)msg, (void)len;
    return -1;
}
int qp_zmq_get(qend *end, int ch, void *buf, size_t len) {
    (void)end, (void)ch, (void)buf, (void)len;
    return -1;
}
#endif

/* ---- setup (parent) ---- */

/* The deepest queue this process may create: QPEER_DEPTH when privileged
 * (CAP_SYS_RESOURCE lifts fs.mqueue.msg_max; RLIMIT_MSGQUEUE is raised to
 * fit), else the system's msg_max.  peer->depth says what was used. */
static int posix_mq_make(qpeer *peer, int ch, char *why, size_t whylen) {
    long max = 10;
    FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 10;
        fclose(f);
    }
    long tries[2] = {QPEER_DEPTH > max ? QPEER_DEPTH : max, max};
    for (int t = 0; t < 2; t++) {
        struct mq_attr attr = {.mq_maxmsg = tries[t], .mq_msgsize = (long)peer->size};
        mqd_t mq = mq_open(peer->name[ch], O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
        if (mq == (mqd_t)-1 && errno == EMFILE) {
            /* RLIMIT_MSGQUEUE (bytes over all of the user's queues): raise it if we may */
            struct rlimit lim = {RLIM_INFINITY, RLIM_INFINITY};
            if (setrlimit(RLIMIT_MSGQUEUE, &lim) == 0)
                mq = mq_open(peer->name[ch], O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600,
                             &attr);
        }
        if (mq != (mqd_t)-1) {
            mq_unlink(peer->name[ch]); /* the descriptors keep it; nothing to leak */
            peer->mq[ch] = mq;
            peer->depth = tries[t];
            return 0;
        }
        if (t == 0 && tries[0] == max)
            break;
    }
    snprintf(why, whylen, "mq_open(depth %ld): %s", max, strerror(errno));
    return -1;
}

static int make_channel(qpeer *peer, int ch, char *why, size_t whylen) {
    static unsigned counter;
    snprintf(peer->name[ch], sizeof peer->name[ch], "%smproc-bench-%d-%u-%d",
             peer->kind == QP_POSIX_MQ ? "/" : "", (int)getpid(), counter++, ch);
    switch (peer->kind) {
    case QP_MPROC: {
        mproc_queue_options opts = {.capacity = peer->capacity};
        int rc = mproc_queue_create(&peer->queue[ch], 0, &opts);
        if (rc != 0)
            snprintf(why, whylen, "mproc_queue_create: %s", mproc_strerror(rc));
        return rc == 0 ? 0 : -1;
    }
    case QP_PIPE:
        if (pipe2(peer->fd[ch], O_CLOEXEC) == 0)
            return 0;
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return -1;
    case QP_POSIX_MQ:
        return posix_mq_make(peer, ch, why, whylen);
    case QP_BOOST_MQ:
#ifdef MPROC_BENCH_HAVE_BOOST
        peer->depth = QPEER_DEPTH;
        return boost_mq_create(peer->name[ch], peer->depth, peer->size, why, whylen);
#else
        break;
#endif
    case QP_ZMQ:
        /* one endpoint; the binding child creates it */
        snprintf(peer->name[0], sizeof peer->name[0], "ipc:///tmp/mproc-bench-zmq-%d-%u",
                 (int)getpid(), counter++);
        return 0;
    case QP_SPSC:
        peer->ring_bytes = sizeof(spsc_ring) + SPSC_SLOTS * spsc_slot_bytes(peer->size);
        peer->ring[ch] = bench_shared_alloc(peer->ring_bytes);
        if (peer->ring[ch] != NULL)
            return 0;
        snprintf(why, whylen, "mmap: %s", strerror(errno));
        return -1;
    }
    snprintf(why, whylen, "not built in");
    return -1;
}

int qpeer_setup(qpeer *peer, qpeer_kind kind, size_t size, int channels, char *why,
                size_t whylen) {
    peer->kind = kind;
    peer->size = size;
    peer->channels = channels;
    for (int ch = 0; ch < 2; ch++) {
        peer->fd[ch][0] = peer->fd[ch][1] = -1;
        peer->mq[ch] = (mqd_t)-1;
    }
    atomic_store(&peer->bound, 0);
    int n = kind == QP_ZMQ ? 1 : channels; /* a PAIR socket carries both ways */
    for (int ch = 0; ch < n; ch++)
        if (make_channel(peer, ch, why, whylen) != 0) {
            qpeer_teardown(peer);
            return -1;
        }
    return 0;
}

void qpeer_teardown(qpeer *peer) {
    for (int ch = 0; ch < 2; ch++) {
        if (peer->queue[ch] != NULL)
            mproc_queue_close(peer->queue[ch]);
        peer->queue[ch] = NULL;
        for (int i = 0; i < 2; i++)
            if (peer->fd[ch][i] >= 0)
                close(peer->fd[ch][i]);
        peer->fd[ch][0] = peer->fd[ch][1] = -1;
        if (peer->mq[ch] != (mqd_t)-1)
            mq_close(peer->mq[ch]);
        peer->mq[ch] = (mqd_t)-1;
        bench_shared_free(peer->ring[ch], peer->ring_bytes);
        peer->ring[ch] = NULL;
#ifdef MPROC_BENCH_HAVE_BOOST
        if (peer->kind == QP_BOOST_MQ && peer->name[ch][0] != '\0')
            boost_mq_remove(peer->name[ch]);
#endif
    }
    if (peer->kind == QP_ZMQ && strncmp(peer->name[0], "ipc://", 6) == 0)
        unlink(peer->name[0] + 6); /* zmq removes it too; a dead binder would not */
}

/* ---- attach / detach (child) ---- */

#ifdef MPROC_BENCH_HAVE_ZMQ
/* The consumer (B) binds and says so; the producer (A) connects only then,
 * since a connect that finds no listener retries only after 100 ms. */
static int zmq_attach(qpeer *peer, qend *end, int side) {
    end->zctx = zmq_ctx_new();
    if (end->zctx == NULL)
        return -1;
    int type = peer->channels == 2 ? ZMQ_PAIR : side == 0 ? ZMQ_PUSH : ZMQ_PULL;
    end->zsock = zmq_socket(end->zctx, type);
    if (end->zsock == NULL)
        return -1;
    if (side == 1) {
        if (zmq_bind(end->zsock, peer->name[0]) != 0)
            return -1;
        atomic_store_explicit(&peer->bound, 1, memory_order_release);
        return 0;
    }
    while (!atomic_load_explicit(&peer->bound, memory_order_acquire))
        sched_yield(); /* bounded by the child's alarm */
    return zmq_connect(end->zsock, peer->name[0]);
}
#endif

int qpeer_attach(qpeer *peer, qend *end, int side) {
    memset(end, 0, sizeof *end);
    end->peer = peer;
    end->side = side;
#ifdef MPROC_BENCH_HAVE_ZMQ
    if (peer->kind == QP_ZMQ)
        return zmq_attach(peer, end, side);
#endif
#ifdef MPROC_BENCH_HAVE_BOOST
    if (peer->kind == QP_BOOST_MQ)
        for (int ch = 0; ch < peer->channels; ch++)
            if ((end->boost[ch] = boost_mq_open(peer->name[ch])) == NULL)
                return -1;
#endif
    return 0;
}

void qpeer_detach(qend *end) {
#ifdef MPROC_BENCH_HAVE_ZMQ
    if (end->zsock != NULL)
        zmq_close(end->zsock); /* lingers until what it sent is delivered */
    if (end->zctx != NULL)
        zmq_ctx_term(end->zctx);
#endif
#ifdef MPROC_BENCH_HAVE_BOOST
    for (int ch = 0; ch < 2; ch++)
        if (end->boost[ch] != NULL)
            boost_mq_close(end->boost[ch]);
#endif
    end->zsock = end->zctx = NULL;
    end->boost[0] = end->boost[1] = NULL;
}
