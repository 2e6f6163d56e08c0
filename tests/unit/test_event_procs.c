/* SPDX-License-Identifier: MIT */
/*
 * Event between processes: anonymous across fork, named through handles
 * each process opens itself.  set() wakes every sleeping process, even when
 * clear() follows at once; a waiter SIGKILLed in its sleep keeps nobody else
 * from being woken by the next set(); and a ping-pong between two processes
 * through two events loses no wake-up over many rounds.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */
#define KIDS 6

/* Written by children, read by the test. */
struct shared {
    _Atomic int rc[KIDS]; /* -1 until that child's wait returned */
    double returned_at[KIDS];
    long rounds; /* ping-pong: written by the ponger only */
};

typedef struct scenario {
    const char *name; /* NULL: anonymous */
    mproc_event *event;
    struct shared *sh;
} scenario;

static void setup(scenario *s, bool named) {
    s->name = named ? t_name("evproc") : NULL;
    int rc = named ? mproc_event_open(&s->event, s->name, MPROC_CREATE | MPROC_EXCL, NULL)
                   : mproc_event_create(&s->event, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
    s->sh = t_shared(sizeof *s->sh);
    for (int i = 0; i < KIDS; i++)
        atomic_store(&s->sh->rc[i], -1);
}

static void teardown(scenario *s) {
    cr_assert_eq(mproc_event_close(s->event), 0);
    if (s->name != NULL)
        cr_assert_eq(mproc_unlink(s->name), 0);
}

/* The inherited handle for an anonymous event, the child's own open() of
 * the name for a named one. */
static mproc_event *child_event(const char *name, mproc_event *inherited) {
    if (name == NULL)
        return inherited;
    mproc_event *mine;
    if (mproc_event_open(&mine, name, MPROC_ATTACH, NULL) != 0)
        _exit(90);
    return mine;
}

static int is_set(const mproc_event *event) {
    int set = -1;
    cr_assert_eq(mproc_event_is_set(event, &set), 0);
    return set;
}

/* Forks child `slot`, which waits for the event and records the outcome;
 * returns once the child sleeps in the kernel. */
static pid_t spawn_sleeper(scenario *s, int slot) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_event *mine = child_event(s->name, s->event);
        int rc = mproc_event_wait(mine, BOUND);
        s->sh->returned_at[slot] = t_now();
        atomic_store(&s->sh->rc[slot], rc);
        _exit(0);
    }
    cr_assert(t_wait_sleeping(pid, BOUND), "waiter %d never went to sleep", slot);
    return pid;
}

/* Wake-ups take tens of microseconds; 0.5 s leaves room for load. */
#define WAKE_LATENCY 0.5

/* Every child in [first, first+n) returns 0 within `latency` s of `set_at`. */
static void expect_woken(scenario *s, const pid_t *kids, int first, int n, double set_at,
                         double latency) {
    for (int i = first; i < first + n; i++) {
        cr_assert_eq(t_exit_code(kids[i], BOUND), 0);
        cr_assert_eq(atomic_load(&s->sh->rc[i]), 0, "waiter %d", i);
        cr_assert_lt(s->sh->returned_at[i] - set_at, latency, "waiter %d", i);
    }
}

/* ---- waking ---- */

/* Stops every sleeper (SIGSTOP: the kernel takes it off the futex until
 * SIGCONT restarts its wait), so none can run between set() and a clear()
 * that follows: each then finds the flag already down, and only the
 * generation tells it that a set() happened while it waited.  Without this
 * a woken sleeper usually runs at once and sees the flag up, and the test
 * could not tell a missing generation from a working one. */
static void stop_all(const pid_t *kids, int n) {
    for (int i = 0; i < n; i++) {
        cr_assert_eq(kill(kids[i], SIGSTOP), 0);
        double end = t_now() + BOUND;
        int status = 0;
        pid_t got;
        while ((got = waitpid(kids[i], &status, WUNTRACED | WNOHANG)) == 0 && t_now() < end)
            sched_yield();
        cr_assert_eq(got, kids[i], "waiter %d did not stop", i);
        cr_assert(WIFSTOPPED(status));
    }
}

static void continue_all(const pid_t *kids, int n) {
    for (int i = 0; i < n; i++)
        cr_assert_eq(kill(kids[i], SIGCONT), 0);
}

static void set_wakes_every_process(bool named, bool clear_after) {
    scenario s;
    setup(&s, named);
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++)
        kids[i] = spawn_sleeper(&s, i);
    if (clear_after)
        stop_all(kids, KIDS);
    double set_at = t_now();
    cr_assert_eq(mproc_event_set(s.event), 0);
    if (clear_after) {
        cr_assert_eq(mproc_event_clear(s.event), 0);
        continue_all(kids, KIDS);
    }
    expect_woken(&s, kids, 0, KIDS, set_at, WAKE_LATENCY);
    cr_assert_eq(is_set(s.event), clear_after ? 0 : 1);
    teardown(&s);
}

Test(event_procs, set_wakes_every_sleeping_process_anonymous) {
    set_wakes_every_process(false, false);
}
Test(event_procs, set_wakes_every_sleeping_process_named) { set_wakes_every_process(true, false); }
Test(event_procs, set_then_clear_at_once_still_releases_every_process_anonymous) {
    set_wakes_every_process(false, true);
}
Test(event_procs, set_then_clear_at_once_still_releases_every_process_named) {
    set_wakes_every_process(true, true);
}

/* The flag itself is shared: what one process does, the other sees. */
static void flag_is_shared(bool named) {
    scenario s;
    setup(&s, named);
    pid_t kid = t_fork();
    if (kid == 0) {
        mproc_event *mine = child_event(s.name, s.event);
        int bad = 0;
        if (mproc_event_wait(mine, 0) != ETIMEDOUT)
            bad |= 1;
        if (mproc_event_set(mine) != 0)
            bad |= 2;
        _exit(bad);
    }
    cr_assert_eq(t_exit_code(kid, BOUND), 0);
    cr_assert_eq(is_set(s.event), 1);
    cr_assert_eq(mproc_event_clear(s.event), 0);
    kid = t_fork();
    if (kid == 0) {
        mproc_event *mine = child_event(s.name, s.event);
        int set = -1;
        mproc_event_is_set(mine, &set);
        double t0 = t_now();
        int rc = mproc_event_wait(mine, 0.1);
        double waited = t_now() - t0;
        /* 0.1 s asked: >= 0.1 and, loose for a loaded machine, < 1 s. */
        _exit(set == 0 && rc == ETIMEDOUT && waited >= 0.1 && waited < 1.0 ? 0 : 1);
    }
    cr_assert_eq(t_exit_code(kid, BOUND), 0);
    teardown(&s);
}

Test(event_procs, the_flag_is_shared_across_fork_and_through_a_name) {
    flag_is_shared(false);
    flag_is_shared(true);
}

/* ---- death ---- */

/* A waiter SIGKILLed in its sleep leaves (at most) its WAITERS mark behind;
 * the next set() still wakes the living, both those asleep before the kill
 * and those that went to sleep after it. */
static void dead_waiter_leaves_no_phantom(bool named) {
    scenario s;
    setup(&s, named);
    pid_t kids[KIDS];
    /* Round one: slot 0 dies, slots 1 and 2 were asleep with it. */
    for (int i = 0; i < 3; i++)
        kids[i] = spawn_sleeper(&s, i);
    kill(kids[0], SIGKILL);
    cr_assert_eq(t_exit_code(kids[0], BOUND), -1000 - SIGKILL);
    double set_at = t_now();
    cr_assert_eq(mproc_event_set(s.event), 0);
    expect_woken(&s, kids, 1, 2, set_at, WAKE_LATENCY);
    cr_assert_eq(atomic_load(&s.sh->rc[0]), -1);
    /* Round two: clear; slot 3 dies asleep, slots 4 and 5 arrive after. */
    cr_assert_eq(mproc_event_clear(s.event), 0);
    kids[3] = spawn_sleeper(&s, 3);
    kill(kids[3], SIGKILL);
    cr_assert_eq(t_exit_code(kids[3], BOUND), -1000 - SIGKILL);
    kids[4] = spawn_sleeper(&s, 4);
    kids[5] = spawn_sleeper(&s, 5);
    set_at = t_now();
    cr_assert_eq(mproc_event_set(s.event), 0);
    expect_woken(&s, kids, 4, 2, set_at, WAKE_LATENCY);
    cr_assert_eq(atomic_load(&s.sh->rc[3]), -1);
    teardown(&s);
}

Test(event_procs, a_waiter_killed_asleep_does_not_stop_the_next_set_anonymous) {
    dead_waiter_leaves_no_phantom(false);
}
Test(event_procs, a_waiter_killed_asleep_does_not_stop_the_next_set_named) {
    dead_waiter_leaves_no_phantom(true);
}

/* ---- stress ---- */

#define ROUNDS 5000

/* Each round the parent sets ping and waits for pong; the child waits for
 * ping, clears it, counts the round and sets pong; the parent clears pong.
 * A lost wake-up stalls one side until BOUND and fails the count. */
static void pingpong(bool named) {
    scenario ping, pong;
    setup(&ping, named);
    setup(&pong, named);
    struct shared *sh = ping.sh;
    pid_t kid = t_fork();
    if (kid == 0) {
        mproc_event *my_ping = child_event(ping.name, ping.event);
        mproc_event *my_pong = child_event(pong.name, pong.event);
        for (int i = 0; i < ROUNDS; i++) {
            if (mproc_event_wait(my_ping, BOUND) != 0)
                _exit(1);
            mproc_event_clear(my_ping);
            sh->rounds++;
            mproc_event_set(my_pong);
        }
        _exit(0);
    }
    double t0 = t_now();
    int completed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        cr_assert_eq(mproc_event_set(ping.event), 0);
        int rc = mproc_event_wait(pong.event, BOUND);
        cr_assert_eq(rc, 0, "round %d: %s", i, mproc_errname(rc));
        cr_assert_eq(mproc_event_clear(pong.event), 0);
        cr_assert_eq(sh->rounds, (long)i + 1, "round %d", i);
        completed++;
    }
    cr_assert_eq(t_exit_code(kid, BOUND), 0);
    cr_assert_eq(completed, ROUNDS);
    cr_assert_eq(sh->rounds, (long)ROUNDS);
    /* A few tens of microseconds a round; 60 s is only a hang guard. */
    cr_assert_lt(t_now() - t0, 60.0);
    teardown(&ping);
    teardown(&pong);
}

Test(event_procs, ping_pong_between_processes_loses_no_round_anonymous, .timeout = 90) {
    pingpong(false);
}
Test(event_procs, ping_pong_between_processes_loses_no_round_named, .timeout = 90) {
    pingpong(true);
}
