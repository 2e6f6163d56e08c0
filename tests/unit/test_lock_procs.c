/* SPDX-License-Identifier: MIT */
/*
 * Lock and RLock between processes (fork), anonymous and named: exclusion,
 * and the headline: a holder that dies (SIGKILL, exit, execve) hands the lock
 * to a sleeping waiter, or to the next to arrive, with EOWNERDEAD within
 * 100 ms; a waiter that dies leaves nothing behind; PID reuse fools nothing.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <mproc.h>

#include "locks.h"
#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

/* Child side of a scenario: writes its result codes here. */
struct shared {
    int rc;
    double returned_at;
    double killed_at;
    long counter;
    int errors;
};

typedef struct scenario {
    t_kind kind;
    const char *name; /* NULL: anonymous */
    t_lock lock;
    struct shared *sh;
} scenario;

static void setup(scenario *s, t_kind kind, bool named) {
    s->kind = kind;
    s->name = named ? t_name("procs") : NULL;
    cr_assert_eq(t_lock_make(&s->lock, kind, s->name, MPROC_CREATE | MPROC_EXCL), 0);
    s->sh = t_shared(sizeof *s->sh);
}

static void teardown(scenario *s) {
    t_lock_close(&s->lock);
    if (s->name)
        cr_assert_eq(mproc_unlink(s->name), 0);
}

/* A child reaches the lock the way a user would: the inherited handle for
 * an anonymous lock, its own open() of the name for a named one. */
static t_lock child_lock(scenario *s) {
    if (s->name == NULL)
        return s->lock;
    t_lock mine;
    if (t_lock_make(&mine, s->kind, s->name, MPROC_ATTACH) != 0)
        _exit(90);
    return mine;
}

/* Forks a child that acquires the lock, says so through `held`, then either
 * waits to be killed, exits, or execs, holding it. */
enum holder_end { HOLD_UNTIL_KILLED, EXIT_HOLDING, EXEC_HOLDING };

static pid_t spawn_holder(scenario *s, enum holder_end end) {
    t_pipe held;
    t_pipe_open(&held);
    pid_t pid = t_fork();
    if (pid == 0) {
        t_lock mine = child_lock(s);
        if (t_lock_acquire(&mine, BOUND) != 0)
            _exit(91);
        if (s->kind == T_RLOCK && t_lock_acquire(&mine, 0) != 0) /* depth 2 */
            _exit(92);
        t_signal(&held, 'h');
        if (end == EXIT_HOLDING)
            _exit(0);
        if (end == EXEC_HOLDING) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(93);
        }
        pause();
        _exit(94);
    }
    cr_assert_eq(t_await(&held, BOUND), 'h');
    t_pipe_close(&held);
    return pid;
}

static pid_t spawn_waiter(scenario *s) {
    pid_t pid = t_fork();
    if (pid == 0) {
        t_lock mine = child_lock(s);
        int rc = t_lock_acquire(&mine, BOUND);
        s->sh->returned_at = t_now();
        s->sh->rc = rc;
        if (rc == 0 || rc == EOWNERDEAD)
            t_lock_release(&mine);
        _exit(0);
    }
    return pid;
}

static void sleeping_waiter_gets_eownerdead_fast(t_kind kind, bool named) {
    scenario s;
    setup(&s, kind, named);
    pid_t holder = spawn_holder(&s, HOLD_UNTIL_KILLED);
    s.sh->rc = -1;
    pid_t waiter = spawn_waiter(&s);
    cr_assert(t_wait_sleeping(waiter, BOUND), "waiter never went to sleep");
    s.sh->killed_at = t_now();
    kill(holder, SIGKILL);
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    cr_assert_eq(t_exit_code(holder, BOUND), -1000 - SIGKILL);
    cr_assert_eq(s.sh->rc, EOWNERDEAD, "%s", mproc_errname(s.sh->rc));
    double latency = s.sh->returned_at - s.sh->killed_at;
    cr_assert_lt(latency, 0.1, "waiter woke %.3f s after the kill", latency);
    /* The lock works normally afterwards. */
    cr_assert_eq(t_lock_acquire(&s.lock, 0), 0);
    cr_assert_eq(t_lock_release(&s.lock), 0);
    teardown(&s);
}

Test(lock_procs, sleeping_waiter_gets_eownerdead_within_100ms_lock_anon) {
    sleeping_waiter_gets_eownerdead_fast(T_LOCK, false);
}
Test(lock_procs, sleeping_waiter_gets_eownerdead_within_100ms_lock_named) {
    sleeping_waiter_gets_eownerdead_fast(T_LOCK, true);
}
Test(lock_procs, sleeping_waiter_gets_eownerdead_within_100ms_rlock_anon) {
    sleeping_waiter_gets_eownerdead_fast(T_RLOCK, false);
}
Test(lock_procs, sleeping_waiter_gets_eownerdead_within_100ms_rlock_named) {
    sleeping_waiter_gets_eownerdead_fast(T_RLOCK, true);
}

static void next_arrival_gets_eownerdead(t_kind kind, bool named, enum holder_end end) {
    scenario s;
    setup(&s, kind, named);
    pid_t holder = spawn_holder(&s, end);
    if (end == HOLD_UNTIL_KILLED)
        kill(holder, SIGKILL);
    int code = t_exit_code(holder, BOUND);
    cr_assert(code == 0 || code == -1000 - SIGKILL, "holder ended with %d", code);
    double t0 = t_now();
    cr_assert_eq(t_lock_acquire(&s.lock, 1.0), EOWNERDEAD);
    cr_assert_lt(t_now() - t0, 0.1);
    cr_assert_eq(t_lock_release(&s.lock), 0);
    cr_assert_eq(t_lock_acquire(&s.lock, 0), 0);
    cr_assert_eq(t_lock_release(&s.lock), 0);
    teardown(&s);
}

Test(lock_procs, next_arrival_after_sigkill_gets_eownerdead_lock) {
    next_arrival_gets_eownerdead(T_LOCK, false, HOLD_UNTIL_KILLED);
    next_arrival_gets_eownerdead(T_LOCK, true, HOLD_UNTIL_KILLED);
}
Test(lock_procs, next_arrival_after_sigkill_gets_eownerdead_rlock) {
    next_arrival_gets_eownerdead(T_RLOCK, false, HOLD_UNTIL_KILLED);
    next_arrival_gets_eownerdead(T_RLOCK, true, HOLD_UNTIL_KILLED);
}
Test(lock_procs, holder_that_exits_without_release_gives_eownerdead) {
    next_arrival_gets_eownerdead(T_LOCK, true, EXIT_HOLDING);
    next_arrival_gets_eownerdead(T_RLOCK, false, EXIT_HOLDING);
}
Test(lock_procs, holder_that_execs_gives_eownerdead) {
    next_arrival_gets_eownerdead(T_LOCK, false, EXEC_HOLDING);
    next_arrival_gets_eownerdead(T_RLOCK, true, EXEC_HOLDING);
}

static void dead_waiter_leaves_nothing(t_kind kind, bool named) {
    scenario s;
    setup(&s, kind, named);
    cr_assert_eq(t_lock_acquire(&s.lock, 0), 0);
    pid_t doomed = spawn_waiter(&s);
    cr_assert(t_wait_sleeping(doomed, BOUND));
    s.sh->rc = -1;
    kill(doomed, SIGKILL);
    cr_assert_eq(t_exit_code(doomed, BOUND), -1000 - SIGKILL);
    cr_assert_eq(s.sh->rc, -1);
    /* A living waiter still gets the lock on release, with plain 0. */
    pid_t waiter = spawn_waiter(&s);
    cr_assert(t_wait_sleeping(waiter, BOUND));
    cr_assert_eq(t_lock_release(&s.lock), 0);
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    cr_assert_eq(s.sh->rc, 0);
    cr_assert_eq(t_lock_acquire(&s.lock, 0), 0);
    cr_assert_eq(t_lock_release(&s.lock), 0);
    teardown(&s);
}

Test(lock_procs, a_waiter_killed_while_waiting_leaves_nothing_lock) {
    dead_waiter_leaves_nothing(T_LOCK, false);
    dead_waiter_leaves_nothing(T_LOCK, true);
}
Test(lock_procs, a_waiter_killed_while_waiting_leaves_nothing_rlock) {
    dead_waiter_leaves_nothing(T_RLOCK, false);
    dead_waiter_leaves_nothing(T_RLOCK, true);
}

#define PROCS 3
#define ITERATIONS 5000

static void exclusion(t_kind kind, bool named) {
    scenario s;
    setup(&s, kind, named);
    pid_t kids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        kids[p] = t_fork();
        if (kids[p] == 0) {
            t_lock mine = child_lock(&s);
            for (int i = 0; i < ITERATIONS; i++) {
                if (t_lock_acquire(&mine, BOUND) != 0) {
                    __atomic_fetch_add(&s.sh->errors, 1, __ATOMIC_RELAXED);
                    continue;
                }
                long v = s.sh->counter;
                if ((i & 31) == 0)
                    sched_yield();
                s.sh->counter = v + 1;
                t_lock_release(&mine);
            }
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++)
        cr_assert_eq(t_exit_code(kids[p], 60), 0);
    cr_assert_eq(s.sh->errors, 0);
    cr_assert_eq(s.sh->counter, (long)PROCS * ITERATIONS);
    teardown(&s);
}

Test(lock_procs, exclusion_across_processes_exact_count_lock) {
    exclusion(T_LOCK, false);
    exclusion(T_LOCK, true);
}
Test(lock_procs, exclusion_across_processes_exact_count_rlock) {
    exclusion(T_RLOCK, false);
    exclusion(T_RLOCK, true);
}

static void child_does_not_own_parents_lock(t_kind kind) {
    scenario s;
    setup(&s, kind, false);
    cr_assert_eq(t_lock_acquire(&s.lock, 0), 0);
    pid_t child = t_fork();
    if (child == 0) {
        int bad = 0;
        if (t_lock_release(&s.lock) != EPERM)
            bad |= 1;
        if (t_lock_acquire(&s.lock, 0) != ETIMEDOUT)
            bad |= 2;
        if (kind == T_RLOCK) {
            unsigned n = 99;
            mproc_rlock_count(s.lock.handle, &n);
            if (n != 0)
                bad |= 4;
        }
        _exit(bad);
    }
    cr_assert_eq(t_exit_code(child, BOUND), 0);
    cr_assert_eq(t_lock_release(&s.lock), 0);
    teardown(&s);
}

Test(lock_procs, a_forked_child_does_not_own_its_parents_lock) {
    child_does_not_own_parents_lock(T_LOCK);
    child_does_not_own_parents_lock(T_RLOCK);
}

/* PID reuse: the dead holder's PID (and, single-threaded, TID) is given to
 * a new process, which must neither own the lock nor be able to release it,
 * and must get EOWNERDEAD like anyone else. */
static scenario *reuse_scenario;

static int reuser(void *arg) {
    (void)arg;
    scenario *s = reuse_scenario;
    t_lock mine = child_lock(s);
    int bad = 0;
    if (s->kind == T_RLOCK) {
        unsigned n = 99;
        mproc_rlock_count(mine.handle, &n);
        if (n != 0)
            bad |= 1;
    }
    if (t_lock_release(&mine) != EPERM)
        bad |= 2;
    if (t_lock_acquire(&mine, 0) != EOWNERDEAD)
        bad |= 4;
    if (s->kind == T_RLOCK) {
        unsigned n = 99;
        mproc_rlock_count(mine.handle, &n);
        if (n != 1)
            bad |= 8;
    }
    if (t_lock_release(&mine) != 0)
        bad |= 16;
    return bad;
}

static void pid_reuse(t_kind kind, bool named) {
    scenario s;
    setup(&s, kind, named);
    pid_t holder = spawn_holder(&s, HOLD_UNTIL_KILLED);
    kill(holder, SIGKILL);
    cr_assert_eq(t_exit_code(holder, BOUND), -1000 - SIGKILL);
    reuse_scenario = &s;
    pid_t again = t_fork_with_pid(holder, reuser, NULL);
    cr_assert_eq(again, holder, "could not reuse pid %d", (int)holder);
    cr_assert_eq(t_exit_code(again, BOUND), 0);
    cr_assert_eq(t_lock_acquire(&s.lock, 0), 0);
    cr_assert_eq(t_lock_release(&s.lock), 0);
    teardown(&s);
}

Test(lock_procs, pid_reuse_does_not_fool_the_lock, .timeout = 60) {
    pid_reuse(T_LOCK, false);
    pid_reuse(T_LOCK, true);
}
Test(lock_procs, pid_reuse_does_not_fool_the_rlock, .timeout = 60) {
    pid_reuse(T_RLOCK, false);
    pid_reuse(T_RLOCK, true);
}
