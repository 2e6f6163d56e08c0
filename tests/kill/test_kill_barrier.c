/* SPDX-License-Identifier: MIT */
/*
 * Kill test for Barrier: PARTIES worker processes go through a barrier round
 * after round (with an action that does a little work), and the parent
 * SIGKILLs one of them at a random moment, CYCLES times.  After each kill:
 *   - every survivor must leave its wait within SURVIVOR_BOUND, with
 *     MPROC_E_BROKEN (or ETIMEDOUT when the victim died outside a wait: a
 *     party that never arrives looks slow, so only the timeout covers it);
 *   - when the victim died while waiting (or inside the action), the
 *     survivors must see MPROC_E_BROKEN, not their timeout: a dead party is
 *     detected (MPROC_BARRIER_LIVENESS_MS) instead of waited for;
 *   - reset() then makes the barrier usable: the next cycle's fresh parties
 *     must complete rounds again.
 * Each round's indices are checked: every index 0..PARTIES-1 exactly once.
 *
 * The seed is printed; MPROC_KILL_SEED=N reproduces a run.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define PARTIES 3
#define CYCLES 220            /* kills per run (the issue asks >= 200) */
#define PARTY_TIMEOUT 0.5     /* each wait's timeout */
#define SURVIVOR_BOUND 2.0    /* a survivor still waiting after this fails the test */
#define ROUNDS_MAX 4096

enum phase { OUTSIDE, WAITING, ACTION, NPHASES };
static const char *phase_names[NPHASES] = {"outside", "waiting", "action"};

enum exit_code { EXIT_BROKEN = 10, EXIT_TIMEDOUT = 11, EXIT_OTHER = 12, EXIT_BAD_INDEX = 13 };

struct state {
    _Atomic int phase[PARTIES];
    _Atomic uint64_t rounds[PARTIES]; /* rounds each party completed, this cycle */
    _Atomic uint32_t seen[ROUNDS_MAX]; /* bitmask of indices per round, this cycle */
    _Atomic uint64_t actions;
    _Atomic int in_action; /* the party running the action, + 1 */
};

static struct state *g_state;

static int action(void *arg) {
    int party = *(int *)arg;
    atomic_store(&g_state->in_action, party + 1);
    atomic_store(&g_state->phase[party], ACTION);
    for (volatile int spin = 0; spin < 2000; spin++) {
    }
    atomic_fetch_add(&g_state->actions, 1);
    atomic_store(&g_state->phase[party], WAITING);
    atomic_store(&g_state->in_action, 0);
    return 0;
}

static void party(mproc_barrier *shared, const char *name, int p) {
    int self = p;
    mproc_barrier *b = shared;
    /* Named: each party attaches on its own, with its own action. */
    if (name != NULL && mproc_barrier_open(&b, name, MPROC_ATTACH, 0, action, &self,
                                           PARTY_TIMEOUT, NULL) != 0)
        _exit(EXIT_OTHER);
    for (uint64_t round = 0;; round++) {
        atomic_store(&g_state->phase[p], WAITING);
        unsigned index = PARTIES;
        int rc = mproc_barrier_wait(b, &index);
        atomic_store(&g_state->phase[p], OUTSIDE);
        if (rc == MPROC_E_BROKEN)
            _exit(EXIT_BROKEN);
        if (rc == ETIMEDOUT)
            _exit(EXIT_TIMEDOUT);
        if (rc != 0)
            _exit(EXIT_OTHER);
        if (index >= PARTIES)
            _exit(EXIT_BAD_INDEX);
        uint32_t bit = 1u << index;
        if (round < ROUNDS_MAX && atomic_fetch_or(&g_state->seen[round], bit) & bit)
            _exit(EXIT_BAD_INDEX); /* two parties got one index in one round */
        atomic_fetch_add(&g_state->rounds[p], 1);
    }
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void nap_us(uint64_t us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL); /* randomises when the kill lands; orders nothing */
}

static uint64_t min_rounds(struct state *st) {
    uint64_t min = UINT64_MAX;
    for (int p = 0; p < PARTIES; p++) {
        uint64_t r = atomic_load(&st->rounds[p]);
        min = r < min ? r : min;
    }
    return min;
}

static void run(bool named) {
    const char *env = getenv("MPROC_KILL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("barrier kill test %s: seed %llu (MPROC_KILL_SEED=%llu to reproduce)\n",
           named ? "named" : "anonymous", (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    const char *name = named ? t_name("kbar") : NULL;
    static int party_ids[PARTIES];
    mproc_barrier *b;
    /* Anonymous: one handle (and action argument) inherited by every party;
     * the action reads the party from in_action's caller via the arg. */
    cr_assert_eq(named ? mproc_barrier_open(&b, name, MPROC_CREATE | MPROC_EXCL, PARTIES, NULL,
                                            NULL, PARTY_TIMEOUT, NULL)
                       : mproc_barrier_create(&b, PARTIES, action, &party_ids[0],
                                              PARTY_TIMEOUT, NULL),
                 0);
    struct state *st = t_shared(sizeof *st);
    g_state = st;
    int landed[NPHASES] = {0}, exits_broken = 0, exits_timedout = 0, missed = 0;
    double worst_detect = 0, started = t_now();
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        for (int p = 0; p < PARTIES; p++)
            atomic_store(&st->rounds[p], 0);
        for (int r = 0; r < ROUNDS_MAX; r++)
            atomic_store(&st->seen[r], 0);
        pid_t pids[PARTIES];
        for (int p = 0; p < PARTIES; p++) {
            party_ids[p] = p;
            pids[p] = t_fork();
            if (pids[p] == 0) {
                party_ids[0] = p; /* the anonymous handle's action argument */
                party(b, name, p);
            }
        }
        /* The barrier works after the reset: wait (bounded) for a full round. */
        double until = t_now() + SURVIVOR_BOUND;
        while (min_rounds(st) < 1 && t_now() < until)
            nap_us(100);
        cr_assert_geq(min_rounds(st), 1, "cycle %d: no round completed after reset", cycle);
        nap_us(xorshift(&rng) % 2000);
        int victim = (int)(xorshift(&rng) % PARTIES);
        int where = atomic_load(&st->phase[victim]);
        landed[where]++;
        kill(pids[victim], SIGKILL);
        double killed_at = t_now();
        cr_assert_neq(t_wait(pids[victim], 10), -1);
        bool detected = true;
        double took = 0;
        for (int p = 0; p < PARTIES; p++) {
            if (p == victim)
                continue;
            int code = t_exit_code(pids[p], SURVIVOR_BOUND);
            took = t_now() - killed_at;
            cr_assert(code == EXIT_BROKEN || code == EXIT_TIMEDOUT,
                      "cycle %d: survivor %d exit %d (victim died %s)", cycle, p, code,
                      phase_names[where]);
            detected &= code == EXIT_BROKEN;
            exits_broken += code == EXIT_BROKEN;
            exits_timedout += code == EXIT_TIMEDOUT;
        }
        if (where != OUTSIDE && detected)
            worst_detect = took > worst_detect ? took : worst_detect;
        else if (where != OUTSIDE)
            missed++;
        int broken = 0;
        cr_assert_eq(mproc_barrier_broken(b, &broken), 0);
        cr_assert_eq(broken, 1, "cycle %d: barrier not broken after a party died", cycle);
        cr_assert_eq(mproc_barrier_reset(b), 0);
        unsigned n_waiting = 99;
        cr_assert_eq(mproc_barrier_n_waiting(b, &n_waiting), 0);
        cr_assert_eq(n_waiting, 0);
    }
    printf("  %d kills in %.1f s; landed:", CYCLES, t_now() - started);
    for (int p = 0; p < NPHASES; p++)
        printf(" %s=%d", phase_names[p], landed[p]);
    printf("; survivors broken=%d timed out=%d (%d cycles undetected); actions=%llu; "
           "slowest detection %.1f ms\n",
           exits_broken, exits_timedout, missed, (unsigned long long)atomic_load(&st->actions),
           worst_detect * 1000);
    fflush(stdout);
    cr_assert_gt(landed[WAITING], CYCLES / 2, "too few kills landed in a wait to mean anything");
    /* `phase` is stored just before wait() and just after it, so a kill can
     * land a few instructions outside the call, where the victim is only a
     * slow party (covered by the timeout).  Measured: 0 of 220 per run.
     * Without death detection every cycle would time out. */
    cr_assert_leq(missed, CYCLES / 50, "%d of %d kills in wait were not detected", missed,
                  landed[WAITING] + landed[ACTION]);
    /* The product promises 100 ms (a 50 ms liveness slice); the bound here
     * is looser because CI shares 2 vCPUs with other tests. */
    cr_assert_lt(worst_detect, 1.0);
    mproc_barrier_close(b);
    if (named)
        mproc_unlink(name);
}

Test(kill, barrier_anonymous_survives_random_sigkills, .timeout = 200) { run(false); }
Test(kill, barrier_named_survives_random_sigkills, .timeout = 200) { run(true); }
