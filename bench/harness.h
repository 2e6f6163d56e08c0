/* SPDX-License-Identifier: MIT */
/*
 * The benchmark harness: a registry of benches, calibration, repetitions,
 * statistics, table/JSON output, targets, and a fork gate.
 *
 * A bench is one file (bench_<topic>.c) that defines a bench_def and passes
 * it to BENCH_REGISTER.  Each implementation ("impl") of a bench is either
 * native — a run function that does n operations and times them itself — or
 * a Python snippet that python_peer.c runs under python3.  The harness
 * calibrates n so that one repetition lasts about the target time, runs the
 * native impls' repetitions interleaved (so slow drift of a noisy VM hits
 * all of them alike), and reports median, min and max per impl.
 */
#ifndef MPROC_BENCH_HARNESS_H
#define MPROC_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_IMPL_MAX 8
#define BENCH_TARGET_MAX 4
#define BENCH_EXTRA_MAX 4
#define BENCH_GATE_MAX 8

/* How a repetition's (ops, seconds) becomes its figure:
 *   BENCH_PER_OP: seconds / ops * scale   (lower is better; "ns" has scale 1e9)
 *   BENCH_RATE:   ops / seconds * scale   (higher is better; "ops/s" has scale 1) */
typedef enum bench_kind { BENCH_PER_OP, BENCH_RATE } bench_kind;

/* One repetition's outcome as a native run function reports it.  `extra`
 * holds bench-defined per-repetition figures (a process's share, a count of
 * handoffs) for the bench's report hook; the harness only keeps them. */
typedef struct bench_run {
    uint64_t ops;
    double seconds;
    double extra[BENCH_EXTRA_MAX];
} bench_run;

struct bench_def;
struct bench_impl;

typedef struct bench_ctx {
    const struct bench_def *def;
    const struct bench_impl *impl;
    int rep; /* -1 while calibrating */
} bench_ctx;

/* Does n operations and times only them.  Returns 0, or -1 after
 * bench_error() when the run failed or its result was wrong. */
typedef int (*bench_run_fn)(const bench_ctx *ctx, uint64_t n, bench_run *out);

typedef struct bench_impl {
    const char *name;   /* [a-z0-9_]; the table's and the JSON's "impl" */
    bench_run_fn run;   /* native impls */
    const char *python; /* Python impls: a snippet for python_peer.c */
    uint64_t n0;        /* first n tried by calibration; 0 means 1 */
} bench_impl;

typedef enum bench_cmp { BENCH_AT_MOST, BENCH_AT_LEAST } bench_cmp;

/* "impl's median is at most/at least factor × versus's median"; with versus
 * NULL, "impl's median is at most/at least factor" in the bench's unit. */
typedef struct bench_target {
    const char *impl;
    bench_cmp cmp;
    double factor;
    const char *versus; /* NULL: factor is an absolute figure */
} bench_target;

typedef enum bench_status { BENCH_OK, BENCH_SKIPPED, BENCH_FAILED } bench_status;

typedef struct bench_result {
    const bench_impl *impl;
    bench_status status;
    double median, min, max;
    size_t nruns;    /* native impls: the repetitions, in order */
    bench_run *runs; /* NULL for Python impls */
    char why[160];   /* why it was skipped */
} bench_result;

typedef struct bench_def {
    const char *name; /* [a-z0-9_]; selected by prefix on the command line */
    const char *what; /* one line for the table and --list */
    bench_kind kind;
    const char *unit;
    double scale;
    bench_impl impls[BENCH_IMPL_MAX];       /* ends at the first NULL name */
    bench_target targets[BENCH_TARGET_MAX]; /* ends at the first NULL impl */
    /* Optional: called after the figures are printed, to add notes and
     * targets that need more than two medians (bench_note, bench_check). */
    void (*report)(const struct bench_def *def, const bench_result *results, size_t n);
} bench_def;

typedef struct bench_config {
    int reps;
    double target_s; /* wanted length of one repetition */
    int json;
} bench_config;

/* ---- registry ---- */

void bench_register(const bench_def *def);
size_t bench_count(void);
const bench_def *bench_at(size_t i); /* sorted by name */

#define BENCH_REGISTER(def)                                                                \
    static void __attribute__((constructor)) bench_register_##def(void) {                 \
        bench_register(&(def));                                                            \
    }

/* Runs and prints one bench.  Returns 0, or -1 if an impl failed. */
int bench_execute(const bench_def *def, const bench_config *cfg);

/* Prints the closing summary of targets; call after the last bench. */
void bench_summary(const bench_config *cfg);

/* ---- for bench files ---- */

/* CLOCK_MONOTONIC in seconds: comparable across processes. */
double bench_now(void);

/* The figure of one repetition, in the bench's unit. */
double bench_value(const bench_def *def, double ops, double seconds);

/* A human-readable note printed under the bench's figures (stderr with --json). */
void bench_note(const bench_def *def, const char *impl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A target line of the bench's own making: `what` and `got` in words. */
void bench_check(const bench_def *def, const char *what, const char *got, int pass);

/* Reports a failure of the run in progress (to stderr, at once). */
void bench_error(const bench_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The result of the impl named `name`, or NULL. */
const bench_result *bench_find(const bench_result *results, size_t n, const char *name);

/* The median over a native result's repetitions of runs[].extra[k]; 0 when
 * it has none.  For report hooks. */
double bench_extra_median(const bench_result *res, int k);

/* Zeroed MAP_SHARED|MAP_ANONYMOUS memory that forked children share; NULL on failure. */
void *bench_shared_alloc(size_t size);
void bench_shared_free(void *mem, size_t size);

/* ---- the gate: fork and exit stay outside the timed region ----
 *
 * bench_gate_start() forks nproc children; each reports ready and waits.
 * bench_gate_open() waits for all of them to be ready, then lets them all
 * run fn(arg, index); a child exits with fn's return value.  The children
 * time themselves (bench_now() into shared memory).  bench_gate_join() reaps
 * them.  If the parent never opens the gate, the children see EOF and exit
 * without running fn. */
typedef struct bench_gate {
    int nproc;
    pid_t pid[BENCH_GATE_MAX];
    int ready_fd; /* read end: one byte per ready child */
    int go_fd;    /* write end: one byte per child let go */
} bench_gate;

int bench_gate_start(bench_gate *gate, int nproc, int (*fn)(void *arg, int index), void *arg);
int bench_gate_open(bench_gate *gate);
/* Returns 0 if every child exited with status 0. */
int bench_gate_join(bench_gate *gate);

/* lean.c: runs `mode` with n in mproc-bench-lean (next to this program,
 * linked with libmproc alone, for benches that fork) and reads the three
 * figures it prints: seconds, then two that depend on the mode.  Returns 0,
 * or -1 after bench_error. */
int bench_lean(const bench_ctx *ctx, const char *mode, uint64_t n, double figures[3]);

#endif
