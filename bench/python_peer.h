/* SPDX-License-Identifier: MIT */
/*
 * Python peers: runs a bench impl's Python snippet under python3 (or
 * $MPROC_BENCH_PYTHON) with `python3 -c`, and reads its figures back.
 *
 * The snippet defines main(), which calls measure(run, n0=1): run(n) does n
 * operations and returns (ops, seconds) timed with time.perf_counter.
 * measure() calibrates and prints one figure per repetition in the bench's
 * unit.  The snippet may call note(text), and raise BenchError(text) for a
 * wrong result (the impl then fails).  `ctx` is multiprocessing's "fork"
 * context, `perf_counter` and `os` are imported.
 *
 * Protocol on the child's stdout, one line each:
 *   value <float> | note <text> | skip <text> | error <text>
 */
#ifndef MPROC_BENCH_PYTHON_PEER_H
#define MPROC_BENCH_PYTHON_PEER_H

#include <stddef.h>

#include "harness.h"

/* Fills values[0..cfg->reps) and *nvalues.  Returns BENCH_OK, BENCH_SKIPPED
 * (why says why: no python3, no usable multiprocessing) or BENCH_FAILED. */
bench_status python_peer_run(const bench_def *def, const bench_impl *impl,
                             const bench_config *cfg, double *values, size_t *nvalues,
                             char *why, size_t whylen);

#endif
