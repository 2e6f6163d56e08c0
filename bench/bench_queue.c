/* SPDX-License-Identifier: MIT */
/*
 * Queue benches: processes pass fixed-size messages through each channel of
 * peer_queue.h and through Python's multiprocessing.Queue.
 *
 *   queue_1p1c_64   1 producer, 1 consumer, 64-byte messages (msgs/s)
 *   queue_1p1c_4k   the same with 4096-byte messages (MB/s, 10^6 bytes)
 *   queue_2p2c_64   2 producers, 2 consumers, 64-byte messages (msgs/s)
 *   queue_pingpong  A puts to B, B puts it back: round trips (us)
 *
 * peer_queue_run.c runs and checks a repetition, peer_queue_python.c has the
 * Python impls; this file declares the benches, their targets and notes.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#include "harness.h"
#include "peer_queue.h"

#define QUEUE_RUN(NAME, KIND)                                                              \
    static int NAME(const bench_ctx *ctx, uint64_t n, bench_run *out) {                    \
        return queue_run(ctx, n, out, KIND);                                               \
    }

QUEUE_RUN(run_mproc, QP_MPROC)
QUEUE_RUN(run_pipe, QP_PIPE)
QUEUE_RUN(run_posix_mq, QP_POSIX_MQ)
QUEUE_RUN(run_spsc, QP_SPSC)
#ifdef MPROC_BENCH_HAVE_BOOST
QUEUE_RUN(run_boost, QP_BOOST_MQ)
#endif
#ifdef MPROC_BENCH_HAVE_ZMQ
QUEUE_RUN(run_zmq, QP_ZMQ)
#endif

/* An optional peer missing from this build is reported as skipped: the
 * harness skips only Python impls, so a one-line snippet says why. */
#define SKIP_SNIPPET(why) "def main():\n    _out('skip', '" why "')\n"
#ifdef MPROC_BENCH_HAVE_BOOST
#define IMPL_BOOST {.name = "boost_mq", .run = run_boost, .n0 = 1000}
#else
#define IMPL_BOOST                                                                         \
    {.name = "boost_mq",                                                                   \
     .python = SKIP_SNIPPET("built without Boost.Interprocess (libboost-dev; make bench "  \
                            "installs it)")}
#endif
#ifdef MPROC_BENCH_HAVE_ZMQ
#define IMPL_ZMQ {.name = "zmq_ipc", .run = run_zmq, .n0 = 1000}
#else
#define IMPL_ZMQ                                                                           \
    {.name = "zmq_ipc",                                                                    \
     .python = SKIP_SNIPPET("built without ZeroMQ (libzmq3-dev; make bench installs it)")}
#endif

/* ---- reports ----
 *
 * "CPUs busy" is the processes' CPU time over the run's length: near 2 they
 * ran side by side on two CPUs (every hand-off crosses between caches), near
 * 1 the scheduler had them take turns on one (hand-offs stay in one cache
 * and come in batches).  Channels with a deep buffer and a cheap operation
 * (boost_mq, spsc_ring) run much faster taking turns, so on a small, busy
 * machine their figures, and the ratios against them, follow the placement
 * more than the code. */

static void report(const bench_def *def, const bench_result *res, size_t n) {
    size_t capacity = queue_mproc_capacity();
    for (size_t i = 0; i < n; i++) {
        if (res[i].status != BENCH_OK || res[i].nruns == 0)
            continue; /* Python impls note their own */
        const char *name = res[i].impl->name;
        char what[160] = "";
        if (strcmp(name, "mproc") == 0)
            snprintf(what, sizeof what, "mproc_queue_create(maxsize 0), capacity %zu KiB%s; ",
                     (capacity != 0 ? capacity : MPROC_QUEUE_DEFAULT_CAPACITY) >> 10,
                     capacity != 0 ? " (MPROC_BENCH_QUEUE_CAPACITY)" : " (default)");
        else if (strcmp(name, "boost_mq") == 0)
            snprintf(what, sizeof what, "depth %.0f messages; ", bench_extra_median(&res[i], 2));
        else if (strcmp(name, "posix_mq") == 0 && bench_extra_median(&res[i], 2) < QPEER_DEPTH)
            snprintf(what, sizeof what,
                     "depth %.0f messages (fs.mqueue.msg_max; %d needs CAP_SYS_RESOURCE or a "
                     "higher msg_max); ",
                     bench_extra_median(&res[i], 2), QPEER_DEPTH);
        else if (strcmp(name, "posix_mq") == 0)
            snprintf(what, sizeof what, "depth %.0f messages; ", bench_extra_median(&res[i], 2));
        else if (strcmp(name, "spsc_ring") == 0)
            snprintf(what, sizeof what, "1024 slots of 64 bytes, spinning; ");
        else if (strcmp(name, "zmq_ipc") == 0)
            snprintf(what, sizeof what, "%s, default high-water marks; ",
                     strcmp(def->name, "queue_pingpong") == 0 ? "PAIR" : "PUSH/PULL");
        else if (strcmp(name, "pipe") == 0)
            snprintf(what, sizeof what, "default pipe size; ");
        bench_note(def, name,
                   "%smessages exact in every rep; medians of reps, all processes: context "
                   "switches per %s %.3f voluntary (sleeps), %.3f involuntary; CPUs busy %.2f",
                   what, def->kind == BENCH_PER_OP ? "round trip" : "message",
                   bench_extra_median(&res[i], 0), bench_extra_median(&res[i], 1),
                   bench_extra_median(&res[i], 3));
    }
}

/* The fifth target of queue_1p1c_64 (harness.h allows four per bench). */
static void report_1p1c_64(const bench_def *def, const bench_result *res, size_t n) {
    report(def, res, n);
    const bench_result *a = bench_find(res, n, "mproc"), *b = bench_find(res, n, "spsc_ring");
    if (a != NULL && b != NULL && a->status == BENCH_OK && b->status == BENCH_OK) {
        char got[64];
        snprintf(got, sizeof got, "%.3fx (medians)", a->median / b->median);
        bench_check(def, "mproc >= 0.40x spsc_ring", got, a->median >= 0.4 * b->median);
    }
}

/* ---- the benches ---- */

static const bench_def queue_1p1c_64 = {
    .name = "queue_1p1c_64",
    .what = "1 producer process, 1 consumer process, 64-byte messages",
    .kind = BENCH_RATE,
    .unit = "msgs/s",
    .scale = 1,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 1000},
            {.name = "pipe", .run = run_pipe, .n0 = 1000},
            {.name = "posix_mq", .run = run_posix_mq, .n0 = 1000},
            IMPL_BOOST,
            IMPL_ZMQ,
            {.name = "spsc_ring", .run = run_spsc, .n0 = 1000},
            {.name = "python_mp", .python = python_queue_1p1c_64},
        },
    .targets =
        {
            {"mproc", BENCH_AT_LEAST, 10e6, NULL},
            {"mproc", BENCH_AT_LEAST, 50.0, "python_mp"},
            {"mproc", BENCH_AT_LEAST, 2.0, "boost_mq"},
            {"mproc", BENCH_AT_LEAST, 2.5, "zmq_ipc"},
        },
    .report = report_1p1c_64,
};

static const bench_def queue_1p1c_4k = {
    .name = "queue_1p1c_4k",
    .what = "1 producer process, 1 consumer process, 4096-byte messages",
    .kind = BENCH_RATE,
    .unit = "MB/s",
    .scale = 4096 / 1e6,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 1000},
            {.name = "pipe", .run = run_pipe, .n0 = 1000},
            IMPL_ZMQ,
            {.name = "python_mp", .python = python_queue_1p1c_4k},
        },
    .targets =
        {
            {"mproc", BENCH_AT_LEAST, 5000, NULL},
            {"mproc", BENCH_AT_LEAST, 4.0, "zmq_ipc"},
        },
    .report = report,
};

static const bench_def queue_2p2c_64 = {
    .name = "queue_2p2c_64",
    .what = "2 producer processes, 2 consumer processes, one queue, 64-byte messages",
    .kind = BENCH_RATE,
    .unit = "msgs/s",
    .scale = 1,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 1000},
            IMPL_BOOST,
            {.name = "python_mp", .python = python_queue_2p2c_64},
        },
    .targets =
        {
            {"mproc", BENCH_AT_LEAST, 50.0, "python_mp"},
        },
    .report = report,
};

static const bench_def queue_pingpong = {
    .name = "queue_pingpong",
    .what = "A puts a 64-byte message to B on one channel, B puts it back on another",
    .kind = BENCH_PER_OP,
    .unit = "us",
    .scale = 1e6,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 100},
            {.name = "pipe", .run = run_pipe, .n0 = 100},
            IMPL_ZMQ,
            {.name = "python_mp", .python = python_queue_pingpong},
        },
    .targets =
        {
            {"mproc", BENCH_AT_MOST, 5.0, NULL},
        },
    .report = report,
};

BENCH_REGISTER(queue_1p1c_64)
BENCH_REGISTER(queue_1p1c_4k)
BENCH_REGISTER(queue_2p2c_64)
BENCH_REGISTER(queue_pingpong)
