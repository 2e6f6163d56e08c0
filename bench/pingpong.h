/* SPDX-License-Identifier: MIT */
/*
 * The two-process ping-pong that event_pingpong and semaphore_pingpong
 * time: the children are forked before the clock starts (bench_gate), play
 * PINGPONG_WARMUP untimed rounds, then `rounds` timed ones.  A shared ball,
 * bumped by the side holding the turn, proves that no wait returned early;
 * ball and turn counts must be exact.  The figure is the span from the
 * earlier start to the later end; extra[0] / extra[1] are voluntary /
 * involuntary context switches per round trip.
 */
#ifndef MPROC_BENCH_PINGPONG_H
#define MPROC_BENCH_PINGPONG_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define PINGPONG_WARMUP 10         /* untimed rounds before the clock starts */
#define PINGPONG_CHILD_ALARM_S 120 /* a lost wake-up kills the child instead of hanging */

/* What went wrong in a side, as bits: a failed call stops the loop (the
 * other side then hangs until its alarm); a wrong ball does not, so that the
 * other side finishes. */
#define PINGPONG_BAD_CALL 1
#define PINGPONG_BAD_BALL 2

/* In MAP_SHARED memory, inherited by fork. */
typedef struct pingpong_state {
    /* Written only by the side that holds the turn; the primitive orders it. */
    _Alignas(64) uint64_t ball;
    uint64_t rounds; /* timed rounds; read-only once the children run */
    /* Each written only by its own process, read by the parent after join. */
    struct {
        _Alignas(64) uint64_t turns;
        double t0, t1;
        long nvcsw, nivcsw;
        int bad;
    } proc[2];
} pingpong_state;

typedef struct pingpong {
    pingpong_state *st;
    void *job;
    /* Side A (index 0) and B (1): rounds [from, to); 0 or PINGPONG_BAD_* bits. */
    int (*side[2])(void *job, uint64_t from, uint64_t to);
    const char *early; /* what a wrong ball means, e.g. "a wait returned early" */
    /* Optional, after both ended: 0, or nonzero with a reason in why. */
    int (*check)(void *job, char *why, size_t len);
} pingpong;

/* Runs n timed rounds and fills out.  0, or -1 after bench_error. */
int pingpong_run(const bench_ctx *ctx, uint64_t n, bench_run *out, const pingpong *pp);

#endif
