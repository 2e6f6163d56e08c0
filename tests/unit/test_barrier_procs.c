/* SPDX-License-Identifier: MIT */
/*
 * Barrier between processes (fork), anonymous (inherited handle) and named
 * (each child opens its own handle): distinct indices every round across
 * processes, and the headline: a party SIGKILLed while it waits, or while it
 * runs the action as the last arriver, breaks the barrier for the others
 * within 100 ms instead of leaving them waiting for a round that cannot
 * complete; reset() then makes it usable again with fresh parties.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */
#define MAX_PARTIES 8
#define ROUNDS 100

/* Written by the children, read by the parent. */
struct shared {
    _Atomic unsigned seen[ROUNDS][MAX_PARTIES]; /* [round][index]: times returned */
    _Atomic int actions;                        /* action runs so far */
    _Atomic int early; /* a party saw fewer actions than rounds done: released early */
    _Atomic int rc[MAX_PARTIES];
    _Atomic double returned_at[MAX_PARTIES];
};

typedef struct scenario {
    const char *name; /* NULL: anonymous */
    unsigned parties;
    mproc_barrier *barrier;
    struct shared *sh;
} scenario;

/* Per process: set in the child chosen to die inside the action. */
static bool doomed;
static t_pipe in_action;

/* Counts rounds; in the doomed child it says so, then waits to be killed
 * (holding the barrier's internal mutex and its own token). */
static int action(void *arg) {
    struct shared *sh = arg;
    if (doomed) {
        t_signal(&in_action, 'a');
        pause();
        _exit(95);
    }
    atomic_fetch_add(&sh->actions, 1);
    return 0;
}

static void setup(scenario *s, bool named, unsigned parties) {
    s->name = named ? t_name("barpr") : NULL;
    s->parties = parties;
    s->sh = t_shared(sizeof *s->sh);
    int rc = named ? mproc_barrier_open(&s->barrier, s->name, MPROC_CREATE | MPROC_EXCL, parties,
                                        action, s->sh, MPROC_FOREVER, NULL)
                   : mproc_barrier_create(&s->barrier, parties, action, s->sh, MPROC_FOREVER,
                                          NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
    t_pipe_open(&in_action);
}

static void teardown(scenario *s) {
    cr_assert_eq(mproc_barrier_close(s->barrier), 0);
    if (s->name != NULL)
        cr_assert_eq(mproc_unlink(s->name), 0);
    t_pipe_close(&in_action);
}

static int broken(mproc_barrier *b) {
    int is_broken = -1;
    cr_assert_eq(mproc_barrier_broken(b, &is_broken), 0);
    return is_broken;
}

static unsigned n_waiting(mproc_barrier *b) {
    unsigned n = UINT_MAX;
    cr_assert_eq(mproc_barrier_n_waiting(b, &n), 0);
    return n;
}

/* A child reaches the barrier the way a user would: the inherited handle for
 * an anonymous barrier, its own open() of the name (count 0: accept it) for a
 * named one. */
static mproc_barrier *child_barrier(scenario *s) {
    if (s->name == NULL)
        return s->barrier;
    mproc_barrier *mine;
    if (mproc_barrier_open(&mine, s->name, MPROC_ATTACH, 0, action, s->sh, MPROC_FOREVER, NULL) !=
        0)
        _exit(90);
    return mine;
}

/* Forks party `slot`: `rounds` waits, recording indices and whether the
 * action had run; its first nonzero code (or 0) goes to sh->rc[slot]. */
static pid_t spawn_party(scenario *s, int slot, int rounds, bool doom) {
    atomic_store(&s->sh->rc[slot], -1);
    pid_t pid = t_fork();
    if (pid == 0) {
        doomed = doom;
        mproc_barrier *b = child_barrier(s);
        int rc = 0;
        for (int r = 0; r < rounds && rc == 0; r++) {
            unsigned index = UINT_MAX;
            rc = mproc_barrier_wait_timeout(b, BOUND, &index);
            if (rc == 0 && index >= s->parties)
                rc = 1000 + (int)index;
            if (rc == 0) {
                atomic_fetch_add(&s->sh->seen[r][index], 1);
                if (atomic_load(&s->sh->actions) != r + 1)
                    atomic_fetch_add(&s->sh->early, 1);
            }
        }
        atomic_store(&s->sh->returned_at[slot], t_now());
        atomic_store(&s->sh->rc[slot], rc);
        _exit(0);
    }
    cr_assert_gt(pid, 0);
    return pid;
}

/* Waits (bounded) until parties pids[0..k) have arrived and sleep: each
 * asleep in the kernel and n_waiting == k.  Returns n_waiting. */
static unsigned settle(scenario *s, const pid_t *pids, unsigned k) {
    double end = t_now() + BOUND;
    unsigned n;
    do {
        for (unsigned i = 0; i < k; i++)
            cr_assert(t_wait_sleeping(pids[i], end - t_now()), "party %u never slept", i);
        n = n_waiting(s->barrier);
    } while (n != k && t_now() < end);
    return n;
}

/* `rounds` full rounds of `parties` fresh children: every wait returns 0,
 * each round hands out each index exactly once, after its action ran. */
static void check_full_rounds(scenario *s, int rounds) {
    memset(s->sh->seen, 0, sizeof s->sh->seen);
    atomic_store(&s->sh->actions, 0);
    atomic_store(&s->sh->early, 0);
    pid_t pids[MAX_PARTIES];
    for (unsigned i = 0; i < s->parties; i++)
        pids[i] = spawn_party(s, (int)i, rounds, false);
    for (unsigned i = 0; i < s->parties; i++) {
        cr_assert_eq(t_exit_code(pids[i], 2 * BOUND), 0);
        int rc = atomic_load(&s->sh->rc[i]);
        cr_assert_eq(rc, 0, "party %u: %d %s", i, rc, mproc_errname(rc));
    }
    for (int r = 0; r < rounds; r++)
        for (unsigned i = 0; i < s->parties; i++)
            cr_assert_eq(atomic_load(&s->sh->seen[r][i]), 1, "round %d index %u", r, i);
    cr_assert_eq(atomic_load(&s->sh->actions), rounds);
    cr_assert_eq(atomic_load(&s->sh->early), 0, "a party left before its round's action ran");
    cr_assert_eq(n_waiting(s->barrier), 0);
    cr_assert_eq(broken(s->barrier), 0);
}

/* ---- rounds ---- */

static void check_rounds(bool named) {
    scenario s;
    setup(&s, named, 4);
    check_full_rounds(&s, ROUNDS);
    teardown(&s);
}

Test(barrier_procs, indices_are_distinct_every_round_across_processes_anonymous, .timeout = 100) {
    check_rounds(false);
}
Test(barrier_procs, indices_are_distinct_every_round_across_processes_named, .timeout = 100) {
    check_rounds(true);
}

/* A timeout in the parent breaks the round for a child asleep in it. */
static void check_timeout_across_processes(bool named) {
    scenario s;
    setup(&s, named, 3);
    pid_t child = spawn_party(&s, 0, 1, false);
    cr_assert_eq(settle(&s, &child, 1), 1);
    double t0 = t_now();
    cr_assert_eq(mproc_barrier_wait_timeout(s.barrier, 0.1, NULL), ETIMEDOUT);
    double returned = t_now();
    cr_assert_geq(returned - t0, 0.1);
    cr_assert_lt(returned - t0, 1.0); /* 0.1 s, with slack for a loaded 2-vCPU machine */
    cr_assert_eq(t_exit_code(child, BOUND), 0);
    cr_assert_eq(atomic_load(&s.sh->rc[0]), MPROC_E_BROKEN);
    cr_assert_lt(atomic_load(&s.sh->returned_at[0]) - returned, 0.5);
    cr_assert_eq(broken(s.barrier), 1);
    cr_assert_eq(mproc_barrier_reset(s.barrier), 0);
    check_full_rounds(&s, 5);
    teardown(&s);
}

Test(barrier_procs, a_timeout_in_one_process_breaks_the_round_in_another_anonymous) {
    check_timeout_across_processes(false);
}
Test(barrier_procs, a_timeout_in_one_process_breaks_the_round_in_another_named) {
    check_timeout_across_processes(true);
}

/* ---- deaths ---- */

/*
 * The product promises that a party's death breaks the barrier for the
 * others within 100 ms (they probe their peers every
 * MPROC_BARRIER_LIVENESS_MS = 50 ms).  The asserts allow 0.5 s: the 2-vCPU
 * CI machine runs other tests at the same time, and a survivor must also be
 * scheduled to return.  A barrier that missed the death would hold them
 * until their BOUND timeout.
 */
#define DEATH_BOUND 0.5

static void check_survivors_broken(scenario *s, const pid_t *survivors, unsigned n,
                                   double killed_at) {
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(t_exit_code(survivors[i], BOUND), 0);
        int rc = atomic_load(&s->sh->rc[i]);
        cr_assert_eq(rc, MPROC_E_BROKEN, "survivor %u: %d %s", i, rc, mproc_errname(rc));
        double latency = atomic_load(&s->sh->returned_at[i]) - killed_at;
        cr_assert_lt(latency, DEATH_BOUND, "survivor %u returned %.3f s after the kill", i,
                     latency);
    }
}

/* Four parties: three arrive (two survivors and a victim) and sleep; the
 * victim is SIGKILLed. */
static void check_killed_waiter(bool named) {
    scenario s;
    setup(&s, named, 4);
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = spawn_party(&s, i, 1, false);
    cr_assert_eq(settle(&s, pids, 3), 3);
    double killed_at = t_now();
    cr_assert_eq(kill(pids[2], SIGKILL), 0);
    check_survivors_broken(&s, pids, 2, killed_at);
    cr_assert_eq(t_exit_code(pids[2], BOUND), -1000 - SIGKILL);
    cr_assert_eq(broken(s.barrier), 1);
    cr_assert_eq(n_waiting(s.barrier), 0);
    cr_assert_eq(mproc_barrier_wait_timeout(s.barrier, BOUND, NULL), MPROC_E_BROKEN);
    cr_assert_eq(mproc_barrier_reset(s.barrier), 0);
    cr_assert_eq(broken(s.barrier), 0);
    check_full_rounds(&s, 10);
    teardown(&s);
}

Test(barrier_procs, a_party_killed_while_waiting_breaks_the_barrier_within_100ms_anonymous) {
    check_killed_waiter(false);
}
Test(barrier_procs, a_party_killed_while_waiting_breaks_the_barrier_within_100ms_named) {
    check_killed_waiter(true);
}

/* Three parties: two sleep; the third arrives last and runs the action,
 * which reports through a pipe and blocks; it is SIGKILLed there, holding the
 * barrier's internal mutex.  The next locker sees EOWNERDEAD and breaks the
 * barrier. */
static void check_killed_in_action(bool named) {
    scenario s;
    setup(&s, named, 3);
    pid_t pids[3];
    for (int i = 0; i < 2; i++)
        pids[i] = spawn_party(&s, i, 1, false);
    cr_assert_eq(settle(&s, pids, 2), 2);
    pids[2] = spawn_party(&s, 2, 1, true);
    cr_assert_eq(t_await(&in_action, BOUND), 'a', "the last arriver never ran the action");
    double killed_at = t_now();
    cr_assert_eq(kill(pids[2], SIGKILL), 0);
    check_survivors_broken(&s, pids, 2, killed_at);
    cr_assert_eq(t_exit_code(pids[2], BOUND), -1000 - SIGKILL);
    cr_assert_eq(atomic_load(&s.sh->rc[2]), -1, "the victim returned from wait");
    cr_assert_eq(atomic_load(&s.sh->actions), 0);
    cr_assert_eq(broken(s.barrier), 1);
    cr_assert_eq(n_waiting(s.barrier), 0);
    cr_assert_eq(mproc_barrier_wait_timeout(s.barrier, BOUND, NULL), MPROC_E_BROKEN);
    cr_assert_eq(mproc_barrier_reset(s.barrier), 0);
    cr_assert_eq(broken(s.barrier), 0);
    check_full_rounds(&s, 10);
    teardown(&s);
}

Test(barrier_procs, a_last_arriver_killed_in_the_action_breaks_the_barrier_within_100ms_anonymous) {
    check_killed_in_action(false);
}
Test(barrier_procs, a_last_arriver_killed_in_the_action_breaks_the_barrier_within_100ms_named) {
    check_killed_in_action(true);
}

/* The victim is the only party waiting when it dies, so no peer probes it
 * then.  The next arrival must not count it as present: with `parties`
 * 3 the arrival sleeps and finds the death at its first probe; with 2 it is
 * the last arriver and must check before completing the round. */
static void check_death_found_by_next_arrival(bool named, unsigned parties) {
    scenario s;
    setup(&s, named, parties);
    pid_t victim = spawn_party(&s, 0, 1, false);
    cr_assert_eq(settle(&s, &victim, 1), 1);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    cr_assert_eq(t_exit_code(victim, BOUND), -1000 - SIGKILL);
    double t0 = t_now();
    int rc = mproc_barrier_wait_timeout(s.barrier, BOUND, NULL);
    cr_assert_eq(rc, MPROC_E_BROKEN, "the round completed with a dead party: %d %s", rc,
                 mproc_errname(rc));
    cr_assert_lt(t_now() - t0, DEATH_BOUND);
    cr_assert_eq(broken(s.barrier), 1);
    cr_assert_eq(mproc_barrier_reset(s.barrier), 0);
    check_full_rounds(&s, 5);
    teardown(&s);
}

Test(barrier_procs, a_lone_waiter_killed_breaks_the_barrier_for_the_next_sleeper) {
    check_death_found_by_next_arrival(false, 3);
    check_death_found_by_next_arrival(true, 3);
}
Test(barrier_procs, a_lone_waiter_killed_breaks_the_barrier_for_the_last_arriver) {
    check_death_found_by_next_arrival(false, 2);
    check_death_found_by_next_arrival(true, 2);
}

/* reset() right after a death, before any peer probed: it reclaims the dead
 * party's slot, so the next round has all its places. */
static void check_reset_reclaims_dead_slot(bool named) {
    scenario s;
    setup(&s, named, 2);
    pid_t victim = spawn_party(&s, 0, 1, false);
    cr_assert_eq(settle(&s, &victim, 1), 1);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    cr_assert_eq(t_exit_code(victim, BOUND), -1000 - SIGKILL);
    cr_assert_eq(mproc_barrier_reset(s.barrier), 0);
    cr_assert_eq(n_waiting(s.barrier), 0);
    cr_assert_eq(broken(s.barrier), 0);
    check_full_rounds(&s, 5);
    teardown(&s);
}

Test(barrier_procs, reset_after_a_death_reclaims_the_dead_partys_place) {
    check_reset_reclaims_dead_slot(false);
    check_reset_reclaims_dead_slot(true);
}
