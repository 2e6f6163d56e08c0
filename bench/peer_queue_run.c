/* SPDX-License-Identifier: MIT */
/*
 * One repetition of a queue bench (queue_run, peer_queue.h) over any channel
 * of peer_queue.c.  In this file, in order: the shapes of the benches, the
 * messages, the loops, one child from attach to detach, and a run.
 *
 * Every impl runs the same loops, instantiated per channel so that the
 * put/get calls are direct.  Children are forked before the clock starts
 * (bench_gate), attach their end, pass untimed warm-up messages (zmq
 * connects, pages and caches warm up), meet at a barrier, then stamp their
 * own start and end; a run lasts from the first start to the last end.  A
 * second barrier keeps every end attached until all messages arrived.
 *
 * Checking.  A message carries (seq, producer, magic) at its start and
 * seq ^ TAIL_KEY in its last 8 bytes, so a torn or stale message shows.  A
 * consumer checks each producer's sequence: exactly the next one with one
 * consumer, strictly increasing with two (a FIFO hands each consumer a
 * subsequence).  Each producer ends with one STOP message and a consumer
 * stops at its first, so with as many consumers as producers every
 * consumer gets exactly one.  The parent requires the counts and the sums
 * of the seqs to come out exact.  Ping-pong: B echoes A's message and A
 * checks that the seq it gets back is the one it sent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mproc.h>

#include "harness.h"
#include "peer_queue.h"

#define WARMUP 200        /* untimed messages per producer / round trips */
#define CHILD_ALARM_S 120 /* a lost wake-up kills the child instead of hanging the bench */
#define MAX_PROCS 4
#define MAX_SIZE 4096

#define MAGIC_TIMED 0x454d4954u /* "TIME" */
#define MAGIC_WARM 0x4d524157u  /* "WARM" */
#define MAGIC_STOP 0x504f5453u  /* "STOP" */
#define TAIL_KEY 0x5a5a5a5a5a5a5a5aull

/* What a bench asks of its processes. */
typedef struct q_shape {
    const char *bench;
    size_t size;
    int nprod, ncons; /* equal: one STOP per consumer */
    int pingpong;
} q_shape;

static const q_shape shapes[] = {
    {"queue_1p1c_64", 64, 1, 1, 0},
    {"queue_1p1c_4k", 4096, 1, 1, 0},
    {"queue_2p2c_64", 64, 2, 2, 0},
    {"queue_pingpong", 64, 1, 1, 1},
};

#define BAD_CALL 1  /* a put or get failed: the loop stopped */
#define BAD_MSG 2   /* a message was wrong: the loop went on */
#define BAD_SETUP 4 /* attach failed */

/* Shared by the parent and the children (MAP_SHARED, inherited by fork). */
typedef struct q_shared {
    qpeer peer;
    q_shape shape;
    uint64_t per_producer; /* timed messages per producer (ping-pong: rounds) */
    _Alignas(64) _Atomic int64_t warm_left; /* warm-up messages left to take */
    _Alignas(64) _Atomic int arrived;       /* barriers: after warm-up, before detach */
    /* Each written only by its own process, read by the parent after join. */
    struct {
        _Alignas(64) double t0, t1;
        uint64_t count, sum;
        long nvcsw, nivcsw;
        double cpu; /* user + system seconds in the timed loop */
        int bad, err; /* BAD_* bits; errno after a failed call */
    } proc[MAX_PROCS];
} q_shared;

typedef int (*put_fn)(qend *end, int ch, const void *msg, size_t len);
typedef int (*get_fn)(qend *end, int ch, void *buf, size_t len);

#define INLINE static inline __attribute__((always_inline))

/* ---- messages ---- */

typedef struct q_head {
    uint64_t seq;
    uint32_t producer;
    uint32_t magic;
} q_head;

INLINE void stamp(unsigned char *msg, size_t size, uint64_t seq, int producer, uint32_t magic) {
    q_head h = {seq, (uint32_t)producer, magic};
    uint64_t tail = seq ^ TAIL_KEY;
    memcpy(msg, &h, sizeof h);
    memcpy(msg + size - sizeof tail, &tail, sizeof tail);
}

/* The message's head, or a head with magic 0 when its tail disagrees. */
INLINE q_head read_head(const unsigned char *msg, size_t size) {
    q_head h;
    uint64_t tail;
    memcpy(&h, msg, sizeof h);
    memcpy(&tail, msg + size - sizeof tail, sizeof tail);
    if (tail != (h.seq ^ TAIL_KEY))
        h.magic = 0;
    return h;
}

/* ---- the loops ---- */

INLINE int produce(qend *end, const q_shared *sh, int me, unsigned char *msg, uint64_t from,
                   uint64_t to, uint32_t magic, put_fn put) {
    size_t size = sh->shape.size;
    for (uint64_t seq = from; seq < to; seq++) {
        stamp(msg, size, seq, me, magic);
        if (put(end, 0, msg, size) != 0)
            return BAD_CALL;
    }
    return 0;
}

/* Takes warm-up messages until the shared count of them runs out. */
INLINE int consume_warm(qend *end, q_shared *sh, unsigned char *buf, get_fn get) {
    int bad = 0;
    while (atomic_fetch_sub_explicit(&sh->warm_left, 1, memory_order_relaxed) > 0) {
        if (get(end, 0, buf, sh->shape.size) != 0)
            return bad | BAD_CALL;
        if (read_head(buf, sh->shape.size).magic != MAGIC_WARM)
            bad = BAD_MSG;
    }
    return bad;
}

/* Takes timed messages until a STOP; counts and sums them into proc[me]. */
INLINE int consume(qend *end, q_shared *sh, int me, unsigned char *buf, get_fn get) {
    size_t size = sh->shape.size;
    int nprod = sh->shape.nprod, exact = sh->shape.ncons == 1, bad = 0;
    uint64_t next[MAX_PROCS] = {0}, count = 0, sum = 0;
    for (;;) {
        if (get(end, 0, buf, size) != 0)
            return bad | BAD_CALL;
        q_head h = read_head(buf, size);
        if (h.magic == MAGIC_STOP)
            break;
        if (h.magic != MAGIC_TIMED || h.producer >= (uint32_t)nprod ||
            (exact ? h.seq != next[h.producer] : h.seq < next[h.producer]))
            bad = BAD_MSG;
        else
            next[h.producer] = h.seq + 1;
        count++;
        sum += h.seq;
    }
    sh->proc[me].count = count;
    sh->proc[me].sum = sum;
    return bad;
}

/* Ping-pong rounds [from, to): A sends seq, B echoes it back. */
INLINE int pingpong(qend *end, const q_shared *sh, int me, unsigned char *buf, uint64_t from,
                    uint64_t to, put_fn put, get_fn get) {
    size_t size = sh->shape.size;
    int bad = 0;
    for (uint64_t seq = from; seq < to; seq++) {
        if (me == 0) {
            stamp(buf, size, seq, 0, MAGIC_TIMED);
            if (put(end, 0, buf, size) != 0 || get(end, 1, buf, size) != 0)
                return bad | BAD_CALL;
        } else if (get(end, 0, buf, size) != 0) {
            return bad | BAD_CALL;
        }
        q_head h = read_head(buf, size);
        if (h.magic != MAGIC_TIMED || h.seq != seq)
            bad = BAD_MSG;
        if (me == 1 && put(end, 1, buf, size) != 0)
            return bad | BAD_CALL;
    }
    return bad;
}

/* Barrier `round` (1, 2, ...) of all the processes.  Yields, then naps, so
 * that a producer done early does not take CPU time from a consumer still
 * at work; bounded by the alarm. */
static void barrier(q_shared *sh, int round) {
    int nproc = sh->shape.nprod + sh->shape.ncons;
    atomic_fetch_add_explicit(&sh->arrived, 1, memory_order_acq_rel);
    for (int i = 0; atomic_load_explicit(&sh->arrived, memory_order_acquire) < round * nproc; i++)
        if (i < 100)
            sched_yield();
        else
            usleep(50);
}

static double tv_seconds(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* One child from attach to detach: warm-up, barrier, the timed loop. */
INLINE int child_main(q_shared *sh, int me, put_fn put, get_fn get) {
    alarm(CHILD_ALARM_S);
    _Alignas(64) unsigned char buf[MAX_SIZE];
    memset(buf, 0xa5, sizeof buf);
    const q_shape *shape = &sh->shape;
    int consumer = !shape->pingpong && me >= shape->nprod;
    int side = shape->pingpong ? me : consumer;
    qend end;
    int bad = qpeer_attach(&sh->peer, &end, side) != 0 ? BAD_SETUP : 0;
    if (bad == 0 && shape->pingpong)
        bad = pingpong(&end, sh, me, buf, 0, WARMUP, put, get);
    else if (bad == 0)
        bad = consumer ? consume_warm(&end, sh, buf, get)
                       : produce(&end, sh, me, buf, 0, WARMUP, MAGIC_WARM, put);
    barrier(sh, 1); /* even after a failure, so that the others do not wait for us */
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = bench_now();
    uint64_t n = sh->per_producer;
    if (bad & (BAD_CALL | BAD_SETUP))
        ; /* the others hang until their alarm: the run fails either way */
    else if (shape->pingpong)
        bad |= pingpong(&end, sh, me, buf, WARMUP, WARMUP + n, put, get);
    else if (consumer)
        bad |= consume(&end, sh, me, buf, get);
    else if ((bad |= produce(&end, sh, me, buf, 0, n, MAGIC_TIMED, put)) == 0)
        bad |= produce(&end, sh, me, buf, n, n + 1, MAGIC_STOP, put);
    int err = errno; /* a failed put/get returns at once: still its errno */
    double t1 = bench_now();
    getrusage(RUSAGE_SELF, &r1);
    sh->proc[me].t0 = t0;
    sh->proc[me].t1 = t1;
    sh->proc[me].nvcsw = r1.ru_nvcsw - r0.ru_nvcsw;
    sh->proc[me].nivcsw = r1.ru_nivcsw - r0.ru_nivcsw;
    sh->proc[me].cpu = tv_seconds(r1.ru_utime) + tv_seconds(r1.ru_stime) -
                       tv_seconds(r0.ru_utime) - tv_seconds(r0.ru_stime);
    sh->proc[me].bad = bad;
    sh->proc[me].err = bad & BAD_CALL ? err : 0;
    /* Nobody lets go of its end before every message arrived: libzmq 4.3
     * loses queued messages of an ipc:// socket closed at once, whatever
     * ZMQ_LINGER says (libzmq issue 4660). */
    barrier(sh, 2);
    qpeer_detach(&end);
    return bad != 0;
}

#define QUEUE_CHILD(NAME, PUT, GET)                                                        \
    static int NAME(void *arg, int me) { return child_main(arg, me, PUT, GET); }

QUEUE_CHILD(child_mproc, qp_mproc_put, qp_mproc_get)
QUEUE_CHILD(child_pipe, qp_pipe_put, qp_pipe_get)
QUEUE_CHILD(child_posix_mq, qp_posix_mq_put, qp_posix_mq_get)
QUEUE_CHILD(child_boost, qp_boost_put, qp_boost_get)
QUEUE_CHILD(child_zmq, qp_zmq_put, qp_zmq_get)
QUEUE_CHILD(child_spsc, qp_spsc_put, qp_spsc_get)

static int (*const children[])(void *, int) = {
    [QP_MPROC] = child_mproc, [QP_PIPE] = child_pipe,   [QP_POSIX_MQ] = child_posix_mq,
    [QP_BOOST_MQ] = child_boost, [QP_ZMQ] = child_zmq, [QP_SPSC] = child_spsc,
};

/* ---- a run ---- */

static int check(const bench_ctx *ctx, const q_shared *sh, int nproc) {
    const q_shape *shape = &sh->shape;
    uint64_t m = sh->per_producer, count = 0, sum = 0;
    int bad = 0, err = 0;
    for (int i = 0; i < nproc; i++) {
        bad |= sh->proc[i].bad;
        err = sh->proc[i].err != 0 ? sh->proc[i].err : err;
        count += sh->proc[i].count;
        sum += sh->proc[i].sum;
    }
    uint64_t want_count = shape->pingpong ? 0 : (uint64_t)shape->nprod * m;
    uint64_t want_sum = shape->pingpong ? 0 : (uint64_t)shape->nprod * (m * (m - 1) / 2);
    if (bad == 0 && count == want_count && sum == want_sum)
        return 0;
    bench_error(ctx, "%llu messages (want %llu), seq sum %llu (want %llu)%s%s%s%s",
                (unsigned long long)count, (unsigned long long)want_count,
                (unsigned long long)sum, (unsigned long long)want_sum,
                bad & BAD_SETUP ? "; a child could not attach" : "",
                bad & BAD_CALL ? "; a put or get failed: " : "",
                bad & BAD_CALL ? strerror(err) : "",
                bad & BAD_MSG ? "; a message was wrong, torn or out of order" : "");
    return -1;
}

static const q_shape *shape_of(const bench_def *def) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].bench, def->name) == 0)
            return &shapes[i];
    return NULL;
}

size_t queue_mproc_capacity(void) {
    const char *env = getenv("MPROC_BENCH_QUEUE_CAPACITY");
    return env != NULL ? (size_t)strtoull(env, NULL, 0) : 0;
}

int queue_run(const bench_ctx *ctx, uint64_t n, bench_run *out, qpeer_kind kind) {
    const q_shape *shape = shape_of(ctx->def);
    q_shared *sh = bench_shared_alloc(sizeof *sh);
    char why[160] = "";
    if (shape == NULL || sh == NULL) {
        bench_error(ctx, "%s", sh == NULL ? "mmap failed" : "no shape for this bench");
        bench_shared_free(sh, sizeof *sh);
        return -1;
    }
    sh->shape = *shape;
    sh->per_producer = shape->pingpong ? n : (n + (uint64_t)shape->nprod - 1) / shape->nprod;
    atomic_store(&sh->warm_left, (int64_t)shape->nprod * WARMUP);
    sh->peer.capacity = kind == QP_MPROC ? queue_mproc_capacity() : 0;
    if (qpeer_setup(&sh->peer, kind, shape->size, shape->pingpong ? 2 : 1, why, sizeof why) != 0) {
        bench_error(ctx, "setup: %s", why);
        bench_shared_free(sh, sizeof *sh);
        return -1;
    }
    int nproc = shape->pingpong ? 2 : shape->nprod + shape->ncons, result = -1;
    bench_gate gate;
    if (bench_gate_start(&gate, nproc, children[kind], sh) != 0) {
        bench_error(ctx, "fork failed");
    } else {
        int opened = bench_gate_open(&gate);
        int joined = bench_gate_join(&gate);
        if (opened != 0)
            bench_error(ctx, "the children never got ready");
        else if (check(ctx, sh, nproc) == 0 && joined != 0)
            bench_error(ctx, "a child exited abnormally");
        else if (joined == 0)
            result = 0;
    }
    if (result == 0) {
        double t0 = sh->proc[0].t0, t1 = sh->proc[0].t1;
        long vcsw = 0, ivcsw = 0;
        double cpu = 0;
        for (int i = 0; i < nproc; i++) {
            t0 = sh->proc[i].t0 < t0 ? sh->proc[i].t0 : t0;
            t1 = sh->proc[i].t1 > t1 ? sh->proc[i].t1 : t1;
            vcsw += sh->proc[i].nvcsw;
            ivcsw += sh->proc[i].nivcsw;
            cpu += sh->proc[i].cpu;
        }
        out->ops = shape->pingpong ? n : sh->per_producer * (uint64_t)shape->nprod;
        out->seconds = t1 - t0;
        out->extra[0] = (double)vcsw / (double)out->ops;
        out->extra[1] = (double)ivcsw / (double)out->ops;
        out->extra[2] = (double)sh->peer.depth;
        out->extra[3] = cpu / out->seconds; /* CPUs busy on average */
    }
    qpeer_teardown(&sh->peer);
    bench_shared_free(sh, sizeof *sh);
    return result;
}
