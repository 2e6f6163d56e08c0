/* SPDX-License-Identifier: MIT */
/* The shared two-process ping-pong skeleton: see pingpong.h. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pingpong.h"

static int child(void *arg, int me) {
    const pingpong *pp = arg;
    pingpong_state *st = pp->st;
    alarm(PINGPONG_CHILD_ALARM_S);
    int bad = pp->side[me](pp->job, 0, PINGPONG_WARMUP);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = bench_now();
    if (!(bad & PINGPONG_BAD_CALL))
        bad |= pp->side[me](pp->job, PINGPONG_WARMUP, PINGPONG_WARMUP + st->rounds);
    double t1 = bench_now();
    getrusage(RUSAGE_SELF, &r1);
    st->proc[me].t0 = t0;
    st->proc[me].t1 = t1;
    st->proc[me].nvcsw = r1.ru_nvcsw - r0.ru_nvcsw;
    st->proc[me].nivcsw = r1.ru_nivcsw - r0.ru_nivcsw;
    st->proc[me].bad = bad;
    return bad != 0;
}

int pingpong_run(const bench_ctx *ctx, uint64_t n, bench_run *out, const pingpong *pp) {
    pingpong_state *st = pp->st;
    st->rounds = n;
    bench_gate gate;
    if (bench_gate_start(&gate, 2, child, (void *)pp) != 0) {
        bench_error(ctx, "fork failed");
        return -1;
    }
    int opened = bench_gate_open(&gate);
    int joined = bench_gate_join(&gate);
    if (opened != 0) {
        bench_error(ctx, "the children never got ready");
        return -1;
    }
    uint64_t want = PINGPONG_WARMUP + n;
    char why[160] = "";
    int checked = pp->check != NULL ? pp->check(pp->job, why, sizeof why) : 0;
    if (joined != 0 || st->ball != 2 * want || st->proc[0].turns != want ||
        st->proc[1].turns != want || checked != 0) {
        bool early = (st->proc[0].bad | st->proc[1].bad) & PINGPONG_BAD_BALL;
        bench_error(ctx, "ball %llu (want %llu), turns %llu + %llu (want %llu each)%s%s%s%s%s",
                    (unsigned long long)st->ball, (unsigned long long)(2 * want),
                    (unsigned long long)st->proc[0].turns,
                    (unsigned long long)st->proc[1].turns, (unsigned long long)want,
                    checked != 0 ? ", " : "", why, early ? "; " : "", early ? pp->early : "",
                    joined != 0 ? "; a child failed" : "");
        return -1;
    }
    double t0 = st->proc[0].t0 < st->proc[1].t0 ? st->proc[0].t0 : st->proc[1].t0;
    double t1 = st->proc[0].t1 > st->proc[1].t1 ? st->proc[0].t1 : st->proc[1].t1;
    out->ops = n;
    out->seconds = t1 - t0;
    out->extra[0] = (double)(st->proc[0].nvcsw + st->proc[1].nvcsw) / (double)n;
    out->extra[1] = (double)(st->proc[0].nivcsw + st->proc[1].nivcsw) / (double)n;
    return 0;
}
