/* SPDX-License-Identifier: MIT */
/*
 * process_start_join: start a child process whose work returns at once,
 * then wait for it to end.  The figure is microseconds per start + join.
 *
 *   mproc         mproc_process_create + start + join(FOREVER) + close, the
 *                 exit code checked (0).
 *   fork_waitpid  the floor: a bare fork(), the child _exit(0)s, the parent
 *                 waitpid()s.
 * Both run in mproc-bench-lean (lean_process.c), a small program linked with
 * libmproc alone, so the fork copies what a user's program's would, not this
 * bench's peer libraries; both pay the same.
 *   python_mp     multiprocessing.Process(target=f).start(); join(), with the
 *                 interpreter's default start method (noted in the output).
 *
 * Every impl checks each child's exit code, so a child that crashed fails
 * the run instead of looking fast.
 *
 * A fork's cost is mostly copying and tearing down the parent's address
 * space, then copy-on-write faults: the report notes the minor page faults
 * per start in the child and in the parent (after fork every page is
 * write-protected, so each page either side writes costs a fault), and the
 * number of mappings of this bench process, which the fork copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#include "harness.h"

/* Runs `mode` n times in mproc-bench-lean (next to this program; see
 * lean_process.c for why) and reads its figures. */
static int run_lean(const bench_ctx *ctx, const char *mode, uint64_t n, bench_run *out) {
    double figures[3];
    if (bench_lean(ctx, mode, n, figures) != 0)
        return -1;
    out->seconds = figures[0];
    out->ops = n;
    out->extra[0] = figures[1]; /* child page faults */
    out->extra[1] = figures[2]; /* parent page faults */
    return 0;
}

static int run_mproc(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_lean(ctx, "mproc", n, out);
}

static int run_fork_waitpid(const bench_ctx *ctx, uint64_t n, bench_run *out) {
    return run_lean(ctx, "fork_waitpid", n, out);
}

/* The default context on purpose (not the prelude's `ctx`, which is "fork"):
 * what a user's plain multiprocessing.Process gets. */
static const char python_start_join[] =
    "import multiprocessing\n"
    "def _f():\n"
    "    pass\n"
    "def main():\n"
    "    def run(n):\n"
    "        t0 = perf_counter()\n"
    "        for _ in range(n):\n"
    "            p = multiprocessing.Process(target=_f)\n"
    "            p.start()\n"
    "            p.join()\n"
    "            if p.exitcode != 0:\n"
    "                raise BenchError('exit code %r' % (p.exitcode,))\n"
    "        return n, perf_counter() - t0\n"
    "    measure(run, 10)\n"
    "    note('multiprocessing.Process(target=f).start(); join(); default start method %r '\n"
    "         '(Python %s)' % (multiprocessing.get_start_method(), sys.version.split()[0]))\n";

static int mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    int lines = 0, c;
    while (f != NULL && (c = getc(f)) != EOF)
        lines += c == '\n';
    if (f != NULL)
        fclose(f);
    return lines;
}

static void report(const bench_def *def, const bench_result *res, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (res[i].status == BENCH_OK && res[i].nruns > 0)
            bench_note(def, res[i].impl->name,
                       "minor page faults per start (medians): child %.1f, parent %.1f",
                       bench_extra_median(&res[i], 0), bench_extra_median(&res[i], 1));
    bench_note(def, NULL,
               "mproc and fork_waitpid run in mproc-bench-lean (libmproc and libc only); this "
               "bench process has %d mappings, which would make each fork about twice as dear",
               mappings());
}

static const bench_def process_start_join = {
    .name = "process_start_join",
    .what = "start a child whose target returns at once, then join it",
    .kind = BENCH_PER_OP,
    .unit = "us",
    .scale = 1e6,
    .impls =
        {
            {.name = "mproc", .run = run_mproc, .n0 = 100},
            {.name = "fork_waitpid", .run = run_fork_waitpid, .n0 = 100},
            {.name = "python_mp", .python = python_start_join},
        },
    .targets =
        {
            /* The targets: <= 1.3x the bare fork, >= 10x faster than Python. */
            {"mproc", BENCH_AT_MOST, 1.3, "fork_waitpid"},
            {"python_mp", BENCH_AT_LEAST, 10.0, "mproc"},
        },
    .report = report,
};

BENCH_REGISTER(process_start_join)
