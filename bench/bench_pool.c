/* SPDX-License-Identifier: MIT */
/*
 * The Pool benches.
 *
 * pool_map_tiny: maps of 100 000 items (x * 2, one long in, one long out)
 * on a pool of 2 workers; the figure is items (tasks) per second.
 *   mproc             mproc_pool_map at the default chunksize (0: Python's
 *                     ceil(n / (4 * workers)), 12 500 here)
 *   mproc_chunk1      the same at chunksize 1: a chunk per item, so this
 *                     measures the pool's per-chunk round trip
 *   python_mp         Pool(2).map(f, range(100000)), default chunksize
 *   python_mp_chunk1  the same with chunksize=1
 * The pool is made (and warmed up by one map) outside the clock, and only
 * the maps are timed, each alone: every map's outputs are checked after its
 * clock stops, on both sides.  A Python repetition at chunksize 1 takes a
 * whole map, several seconds: that impl dominates the bench's run time.
 * A note gives mproc's CPU time per item, in the calling process (caller,
 * scheduler and watcher threads) and in the workers: on a 2-vCPU machine
 * the caller's side and two workers share two CPUs, so CPU per item bounds
 * the rate.  It includes the bounded spins before futex sleeps, so it grows
 * when CPUs are idle and is a ceiling, not the work's own cost.
 *
 * pool_create_teardown: a pool of 2 workers that runs nothing; the figure is
 * microseconds per pool.
 *   mproc             mproc_pool_create + close + join(FOREVER) + free; the
 *                     stats must show both workers started and none died
 *   python_mp         Pool(2); close(); join(); every worker's exit code 0
 *
 * The mproc impls run in mproc-bench-lean (lean_process.c), as
 * process_start_join's do: the pool forks its workers, and a fork copies
 * the forking process's mappings, ~120 in mproc-bench (every peer's
 * libraries) against ~40 in the lean program.  Measured both ways on the
 * 2-vCPU VM, interleaved, five runs: pool_create_teardown took 15-30% less
 * in the lean program (median 500-770 us against 670-1130 us in-process);
 * pool_map_tiny showed no difference beyond its noise (the workers are
 * forked before the clock starts), and runs there too so that its workers
 * are those of a program like a user's.
 * Python uses multiprocessing's "fork" context (Linux's default up to 3.13):
 * the cheapest start method, and the one that matches mproc's workers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MAP_ITEMS 100000 /* lean_process.c's POOL_MAP_ITEMS */

/* ---- pool_map_tiny ---- */

/* Whole maps of MAP_ITEMS: the lean program rounds n up the same way. */
static int run_map(const bench_ctx *ctx, const char *mode, uint64_t n, bench_run *out) {
    double figures[3];
    if (bench_lean(ctx, mode, n, figures) != 0)
        return -1;
    out->ops = (n + MAP_ITEMS - 1) / MAP_ITEMS * MAP_ITEMS;
    out->seconds = figures[0];
    out->extra[0] = figures[1]; /* CPU ns per item: the workers */
    out->extra[1] = figures[2]; /* and the calling process */
    return 0;
}

static int run_map_default(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_map(ctx, "pool_map", n, out);
}

static int run_map_chunk1(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_map(ctx, "pool_map_chunk1", n, out);
}

/* CHUNKSIZE: the extra arguments of pool.map. */
#define PYTHON_MAP(CHUNKSIZE)                                                               \
    "def _twice(x):\n"                                                                     \
    "    return x * 2\n"                                                                   \
    "def main():\n"                                                                        \
    "    # A map at chunksize 1 lasts seconds, and a repetition is a whole map:\n"         \
    "    # the prelude's hang guard assumes repetitions of TARGET; widen it.\n"            \
    "    faulthandler.dump_traceback_later(120 + 30 * (REPS + 1), exit=True)\n"            \
    "    items = range(100000)\n"                                                          \
    "    expect = [x * 2 for x in items]\n"                                                \
    "    pool = ctx.Pool(2)\n"                                                             \
    "    pool.map(_twice, items" CHUNKSIZE ")\n"                                           \
    "    def run(n):\n"                                                                    \
    "        seconds = 0.0\n"                                                              \
    "        for _ in range(n):\n"                                                         \
    "            t0 = perf_counter()\n"                                                    \
    "            got = pool.map(_twice, items" CHUNKSIZE ")\n"                             \
    "            seconds += perf_counter() - t0\n"                                         \
    "            if got != expect:\n"                                                      \
    "                raise BenchError('wrong map result')\n"                               \
    "        return n * len(items), seconds\n"                                             \
    "    measure(run, 1)\n"                                                                \
    "    pool.close()\n"                                                                   \
    "    pool.join()\n"                                                                    \
    "    note('ctx.Pool(2).map(f, range(100000)" CHUNKSIZE "), fork context (Python %s)'\n" \
    "         % sys.version.split()[0])\n"

static void report_map(const bench_def *def, const bench_result *res, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (res[i].status == BENCH_OK && res[i].nruns > 0)
            bench_note(def, res[i].impl->name,
                       "CPU ns per item (medians): calling process %.1f, workers %.1f",
                       bench_extra_median(&res[i], 1), bench_extra_median(&res[i], 0));
    bench_note(def, NULL, "mproc impls run in mproc-bench-lean (libmproc and libc only)");
}

static const bench_def pool_map_tiny = {
    .name = "pool_map_tiny",
    .what = "map x*2 over 100000 items on a pool of 2 workers",
    .kind = BENCH_RATE,
    .unit = "tasks/s",
    .scale = 1,
    .impls =
        {
            {.name = "mproc", .run = run_map_default, .n0 = MAP_ITEMS},
            {.name = "mproc_chunk1", .run = run_map_chunk1, .n0 = MAP_ITEMS},
            {.name = "python_mp", .python = PYTHON_MAP("")},
            {.name = "python_mp_chunk1", .python = PYTHON_MAP(", chunksize=1")},
        },
    .targets =
        {
            /* The targets. */
            {"mproc", BENCH_AT_LEAST, 2.0, "python_mp"},
            {"mproc_chunk1", BENCH_AT_LEAST, 10.0, "python_mp_chunk1"},
        },
    .report = report_map,
};

BENCH_REGISTER(pool_map_tiny)

/* ---- pool_create_teardown ---- */

static int run_create(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    double figures[3];
    if (bench_lean(ctx, "pool_create", n, figures) != 0)
        return -1;
    out->ops = n;
    out->seconds = figures[0];
    out->extra[0] = figures[1]; /* CPU us per pool: the workers */
    out->extra[1] = figures[2]; /* and the creating process */
    return 0;
}

static const char python_create[] =
    "def main():\n"
    "    def run(n):\n"
    "        pools = []\n"
    "        t0 = perf_counter()\n"
    "        for _ in range(n):\n"
    "            pool = ctx.Pool(2)\n"
    "            pool.close()\n"
    "            pool.join()\n"
    "            pools.append(pool)\n"
    "        seconds = perf_counter() - t0\n"
    "        # _pool (private): the only handle on a Pool's worker processes.\n"
    "        codes = [p.exitcode for pool in pools for p in pool._pool]\n"
    "        if codes != [0] * (2 * n):\n"
    "            raise BenchError('worker exit codes %r' % (codes,))\n"
    "        return n, seconds\n"
    "    measure(run, 10)\n"
    "    note('ctx.Pool(2); close(); join(), fork context (Python %s)'\n"
    "         % sys.version.split()[0])\n";

/* The CPU time per pool tells a slow pool from a busy machine: the figure is
 * wall time, and on 2 vCPUs another job's load stretches every hand-off of
 * the create/close/join chain (threads, forks, exits, reaps). */
static void report_create(const bench_def *def, const bench_result *res, size_t n) {
    const bench_result *r = bench_find(res, n, "mproc");
    const bench_result *py = bench_find(res, n, "python_mp");
    bool ok = r != NULL && r->status == BENCH_OK && r->nruns > 0;
    if (ok) {
        double workers = bench_extra_median(r, 0), parent = bench_extra_median(r, 1);
        bench_note(def, "mproc", "CPU us per pool (medians): %.0f (parent %.0f, workers %.0f)",
                   workers + parent, parent, workers);
    }
    if (ok && py != NULL && py->status == BENCH_OK)
        bench_note(def, NULL, "python_mp / mproc: %.1fx (medians)", py->median / r->median);
    bench_note(def, NULL, "mproc runs in mproc-bench-lean (libmproc and libc only)");
}

static const bench_def pool_create_teardown = {
    .name = "pool_create_teardown",
    .what = "create a pool of 2 workers, close it, join it (no tasks)",
    .kind = BENCH_PER_OP,
    .unit = "us",
    .scale = 1e6,
    .impls =
        {
            {.name = "mproc", .run = run_create, .n0 = 10},
            {.name = "python_mp", .python = python_create},
        },
    .targets =
        {
            /* The target. */
            {"mproc", BENCH_AT_MOST, 1000.0, NULL},
        },
    .report = report_create,
};

BENCH_REGISTER(pool_create_teardown)
