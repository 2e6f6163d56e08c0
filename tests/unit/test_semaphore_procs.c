/* SPDX-License-Identifier: MIT */
/*
 * Semaphore and BoundedSemaphore between processes: anonymous across fork,
 * named through handles each process opens itself.  Same counts and codes as
 * between threads; release(n) wakes exactly n sleeping processes; a process
 * killed while waiting leaves no phantom waiter to swallow a release; a
 * process killed while holding a permit takes the permit with it (the
 * documented semantics, as POSIX sem_t and Python).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */
#define KIDS 5

/* Written by children, read by the test. */
struct shared {
    _Atomic int rc[KIDS]; /* -1 until that child's acquire returned */
    double returned_at[KIDS];
    long counter; /* plain: only the semaphore protects it */
    _Atomic long claimed, consumed;
    _Atomic int errors;
    _Atomic int ready, go; /* start gate: stress children begin together */
};

typedef struct scenario {
    bool bounded;
    const char *name; /* NULL: anonymous */
    mproc_semaphore *sem;
    struct shared *sh;
} scenario;

static void setup(scenario *s, bool bounded, bool named, int value) {
    s->bounded = bounded;
    s->name = named ? t_name("semproc") : NULL;
    int flags = MPROC_CREATE | MPROC_EXCL;
    int rc;
    if (bounded)
        rc = named ? mproc_bounded_semaphore_open(&s->sem, s->name, flags, value, NULL)
                   : mproc_bounded_semaphore_create(&s->sem, value, NULL);
    else
        rc = named ? mproc_semaphore_open(&s->sem, s->name, flags, value, NULL)
                   : mproc_semaphore_create(&s->sem, value, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
    s->sh = t_shared(sizeof *s->sh);
    for (int i = 0; i < KIDS; i++)
        atomic_store(&s->sh->rc[i], -1);
}

static void teardown(scenario *s) {
    cr_assert_eq(mproc_semaphore_close(s->sem), 0);
    if (s->name != NULL)
        cr_assert_eq(mproc_unlink(s->name), 0);
}

/* A child reaches the semaphore the way a user would: the inherited handle
 * for an anonymous one, its own open() of the name for a named one. */
static mproc_semaphore *child_sem(scenario *s) {
    if (s->name == NULL)
        return s->sem;
    mproc_semaphore *mine;
    int rc = s->bounded ? mproc_bounded_semaphore_open(&mine, s->name, MPROC_ATTACH, 0, NULL)
                        : mproc_semaphore_open(&mine, s->name, MPROC_ATTACH, 0, NULL);
    if (rc != 0)
        _exit(90);
    return mine;
}

static int value_of(const mproc_semaphore *sem) {
    int value = -1;
    cr_assert_eq(mproc_semaphore_value(sem, &value), 0);
    return value;
}

/* Lets time pass; used only where a test proves that nothing happens. */
static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Forks child `slot`, which waits for a permit and records the outcome;
 * returns once the child sleeps in the kernel. */
static pid_t spawn_sleeper(scenario *s, int slot) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_semaphore *mine = child_sem(s);
        int rc = mproc_semaphore_acquire(mine, BOUND);
        s->sh->returned_at[slot] = t_now();
        atomic_store(&s->sh->rc[slot], rc);
        _exit(0);
    }
    cr_assert(t_wait_sleeping(pid, BOUND), "waiter %d never went to sleep", slot);
    return pid;
}

static int returned(scenario *s, int n) {
    int count = 0;
    for (int i = 0; i < n; i++)
        count += atomic_load(&s->sh->rc[i]) != -1;
    return count;
}

static int await_returned(scenario *s, int n, int want) {
    double end = t_now() + BOUND;
    while (returned(s, n) < want && t_now() < end)
        sched_yield();
    return returned(s, n);
}

/* ---- counts and wake-ups across processes ---- */

static void sleeping_child_is_woken(bool named) {
    scenario s;
    setup(&s, false, named, 0);
    pid_t kid = spawn_sleeper(&s, 0);
    double released_at = t_now();
    cr_assert_eq(mproc_semaphore_release(s.sem, 1), 0);
    cr_assert_eq(t_exit_code(kid, BOUND), 0);
    cr_assert_eq(atomic_load(&s.sh->rc[0]), 0);
    /* A futex wake-up takes tens of microseconds; 0.5 s leaves room for load. */
    cr_assert_lt(s.sh->returned_at[0] - released_at, 0.5);
    cr_assert_eq(value_of(s.sem), 0);
    teardown(&s);
}

Test(semaphore_procs, a_child_asleep_in_acquire_takes_the_parents_release_anonymous) {
    sleeping_child_is_woken(false);
}
Test(semaphore_procs, a_child_asleep_in_acquire_takes_the_parents_release_named) {
    sleeping_child_is_woken(true);
}

/* The child works on the count; the parent sees each change exactly. */
static void counts_are_shared(bool bounded, bool named) {
    scenario s;
    setup(&s, bounded, named, 2);
    cr_assert_eq(mproc_semaphore_acquire(s.sem, 0), 0);
    cr_assert_eq(mproc_semaphore_acquire(s.sem, 0), 0);
    pid_t kid = t_fork();
    if (kid == 0) {
        mproc_semaphore *mine = child_sem(&s);
        int bad = 0;
        if (mproc_semaphore_acquire(mine, 0) != ETIMEDOUT)
            bad |= 1;
        if (mproc_semaphore_release(mine, 2) != 0)
            bad |= 2;
        /* Bounded at 2: a third is EOVERFLOW here too; unbounded takes it. */
        if (mproc_semaphore_release(mine, 1) != (bounded ? EOVERFLOW : 0))
            bad |= 4;
        if (mproc_semaphore_release(mine, 0) != EINVAL)
            bad |= 8;
        _exit(bad);
    }
    cr_assert_eq(t_exit_code(kid, BOUND), 0);
    cr_assert_eq(value_of(s.sem), bounded ? 2 : 3);
    int max = -1;
    cr_assert_eq(mproc_semaphore_max(s.sem, &max), 0);
    cr_assert_eq(max, bounded ? 2 : MPROC_SEMAPHORE_VALUE_MAX);
    teardown(&s);
}

Test(semaphore_procs, counts_and_the_bound_are_shared_across_fork) {
    counts_are_shared(false, false);
    counts_are_shared(true, false);
}
Test(semaphore_procs, counts_and_the_bound_are_shared_through_a_name) {
    counts_are_shared(false, true);
    counts_are_shared(true, true);
}

/* Two processes that each open the name themselves (neither inherits a
 * handle, the creator has closed its own) meet on one count. */
Test(semaphore_procs, two_independently_opened_named_handles_share_one_count) {
    const char *name = t_name("semind");
    mproc_semaphore *creator;
    cr_assert_eq(mproc_semaphore_open(&creator, name, MPROC_CREATE | MPROC_EXCL, 0, NULL), 0);
    cr_assert_eq(mproc_semaphore_close(creator), 0);
    struct shared *sh = t_shared(sizeof *sh);
    pid_t waiter = t_fork();
    if (waiter == 0) {
        mproc_semaphore *mine;
        if (mproc_semaphore_open(&mine, name, MPROC_ATTACH, 0, NULL) != 0)
            _exit(90);
        _exit(mproc_semaphore_acquire(mine, BOUND) == 0 ? 0 : 1);
    }
    cr_assert(t_wait_sleeping(waiter, BOUND));
    pid_t releaser = t_fork();
    if (releaser == 0) {
        mproc_semaphore *mine;
        if (mproc_semaphore_open(&mine, name, MPROC_ATTACH, 0, NULL) != 0)
            _exit(90);
        _exit(mproc_semaphore_release(mine, 2) == 0 ? 0 : 1);
    }
    cr_assert_eq(t_exit_code(releaser, BOUND), 0);
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    /* One of the two permits was taken, one is left. */
    mproc_semaphore *check;
    cr_assert_eq(mproc_semaphore_open(&check, name, MPROC_ATTACH, 0, NULL), 0);
    cr_assert_eq(value_of(check), 1);
    cr_assert_eq(mproc_semaphore_close(check), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

static void release_n_wakes_n_processes(bool named) {
    scenario s;
    setup(&s, false, named, 0);
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++)
        kids[i] = spawn_sleeper(&s, i);
    cr_assert_eq(mproc_semaphore_release(s.sem, 2), 0);
    cr_assert_eq(await_returned(&s, KIDS, 2), 2);
    /* Exactly two: the other three stay asleep and the count stays 0. */
    nap(0.05);
    cr_assert_eq(returned(&s, KIDS), 2);
    cr_assert_eq(value_of(s.sem), 0);
    for (int i = 0; i < KIDS; i++)
        if (atomic_load(&s.sh->rc[i]) == -1)
            cr_assert(t_wait_sleeping(kids[i], BOUND));
    cr_assert_eq(mproc_semaphore_release(s.sem, 3), 0);
    for (int i = 0; i < KIDS; i++) {
        cr_assert_eq(t_exit_code(kids[i], BOUND), 0);
        cr_assert_eq(atomic_load(&s.sh->rc[i]), 0);
    }
    cr_assert_eq(value_of(s.sem), 0);
    teardown(&s);
}

Test(semaphore_procs, release_n_wakes_exactly_n_sleeping_processes_anonymous) {
    release_n_wakes_n_processes(false);
}
Test(semaphore_procs, release_n_wakes_exactly_n_sleeping_processes_named) {
    release_n_wakes_n_processes(true);
}

/* ---- stress ---- */

/* Child side of the start gate: check in, then spin (bounded) until the
 * parent opens it, so the children contend instead of running in turn. */
static void gate_pass(scenario *s) {
    atomic_fetch_add(&s->sh->ready, 1);
    double end = t_now() + BOUND;
    while (!atomic_load(&s->sh->go) && t_now() < end)
        sched_yield();
}

static void gate_open(scenario *s, int children) {
    double end = t_now() + BOUND;
    while (atomic_load(&s->sh->ready) < children && t_now() < end)
        sched_yield();
    cr_assert_eq(atomic_load(&s->sh->ready), children);
    atomic_store(&s->sh->go, 1);
}

#define PROCS 3
#define ITERATIONS 20000

static void exclusion(bool bounded, bool named) {
    scenario s;
    setup(&s, bounded, named, 1);
    pid_t kids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        kids[p] = t_fork();
        if (kids[p] == 0) {
            mproc_semaphore *mine = child_sem(&s);
            gate_pass(&s);
            for (int i = 0; i < ITERATIONS; i++) {
                if (mproc_semaphore_acquire(mine, BOUND) != 0) {
                    atomic_fetch_add(&s.sh->errors, 1);
                    continue;
                }
                long v = s.sh->counter;
                if ((i & 31) == 0)
                    sched_yield();
                s.sh->counter = v + 1;
                if (mproc_semaphore_release(mine, 1) != 0)
                    atomic_fetch_add(&s.sh->errors, 1);
            }
            _exit(0);
        }
    }
    gate_open(&s, PROCS);
    for (int p = 0; p < PROCS; p++)
        cr_assert_eq(t_exit_code(kids[p], 60), 0);
    cr_assert_eq(atomic_load(&s.sh->errors), 0);
    cr_assert_eq(s.sh->counter, (long)PROCS * ITERATIONS);
    cr_assert_eq(value_of(s.sem), 1);
    teardown(&s);
}

Test(semaphore_procs, semaphore_of_one_excludes_across_processes_exact_count) {
    exclusion(false, false);
    exclusion(true, true);
}

#define CONSUMERS 2
#define TOTAL 50000L

static void handoff(bool named) {
    scenario s;
    setup(&s, false, named, 0);
    pid_t consumers[CONSUMERS];
    for (int c = 0; c < CONSUMERS; c++) {
        consumers[c] = t_fork();
        if (consumers[c] == 0) {
            mproc_semaphore *mine = child_sem(&s);
            gate_pass(&s);
            while (atomic_fetch_add(&s.sh->claimed, 1) < TOTAL) {
                if (mproc_semaphore_acquire(mine, BOUND) == 0)
                    atomic_fetch_add(&s.sh->consumed, 1);
                else
                    atomic_fetch_add(&s.sh->errors, 1);
            }
            _exit(0);
        }
    }
    pid_t producer = t_fork();
    if (producer == 0) {
        mproc_semaphore *mine = child_sem(&s);
        gate_pass(&s);
        for (long sent = 0; sent < TOTAL;) {
            unsigned n = 1 + (unsigned)(sent % 4); /* batches of 1 to 4 */
            if (n > TOTAL - sent)
                n = (unsigned)(TOTAL - sent);
            if (mproc_semaphore_release(mine, n) != 0)
                atomic_fetch_add(&s.sh->errors, 1);
            sent += n;
        }
        _exit(0);
    }
    gate_open(&s, CONSUMERS + 1);
    cr_assert_eq(t_exit_code(producer, 60), 0);
    for (int c = 0; c < CONSUMERS; c++)
        cr_assert_eq(t_exit_code(consumers[c], 60), 0);
    /* Every permit released was taken exactly once, none is left over. */
    cr_assert_eq(atomic_load(&s.sh->errors), 0);
    cr_assert_eq(atomic_load(&s.sh->consumed), TOTAL);
    cr_assert_eq(value_of(s.sem), 0);
    cr_assert_eq(mproc_semaphore_acquire(s.sem, 0), ETIMEDOUT);
    teardown(&s);
}

Test(semaphore_procs, producer_and_consumer_processes_every_release_consumed_once) {
    handoff(false);
    handoff(true);
}

/* ---- death ---- */

/* A waiter SIGKILLed in its sleep leaves its announcement in the word, but
 * nothing in the kernel's sleeper list: the next release must reach the
 * living sleeper that was already there. */
static void dead_waiter_leaves_no_phantom(bool named) {
    scenario s;
    setup(&s, false, named, 0);
    pid_t doomed = spawn_sleeper(&s, 0);
    pid_t live = spawn_sleeper(&s, 1);
    kill(doomed, SIGKILL);
    cr_assert_eq(t_exit_code(doomed, BOUND), -1000 - SIGKILL);
    cr_assert_eq(atomic_load(&s.sh->rc[0]), -1);
    double released_at = t_now();
    cr_assert_eq(mproc_semaphore_release(s.sem, 1), 0);
    cr_assert_eq(t_exit_code(live, BOUND), 0);
    cr_assert_eq(atomic_load(&s.sh->rc[1]), 0);
    /* An ordinary wake-up (tens of microseconds); 0.5 s leaves room for load. */
    cr_assert_lt(s.sh->returned_at[1] - released_at, 0.5);
    cr_assert_eq(value_of(s.sem), 0);
    /* With nobody waiting, a release stays in the count: nothing ate it. */
    cr_assert_eq(mproc_semaphore_release(s.sem, 1), 0);
    cr_assert_eq(value_of(s.sem), 1);
    cr_assert_eq(mproc_semaphore_acquire(s.sem, 0), 0);
    teardown(&s);
}

Test(semaphore_procs, a_waiter_killed_asleep_leaves_no_phantom_anonymous) {
    dead_waiter_leaves_no_phantom(false);
}
Test(semaphore_procs, a_waiter_killed_asleep_leaves_no_phantom_named) {
    dead_waiter_leaves_no_phantom(true);
}

/* Several dead announcements, then sleepers that arrive after the kills:
 * release(2) still reaches both living ones. */
Test(semaphore_procs, many_dead_waiters_do_not_divert_release_n) {
    scenario s;
    setup(&s, false, true, 0);
    pid_t doomed[3];
    for (int i = 0; i < 3; i++)
        doomed[i] = spawn_sleeper(&s, i);
    for (int i = 0; i < 3; i++) {
        kill(doomed[i], SIGKILL);
        cr_assert_eq(t_exit_code(doomed[i], BOUND), -1000 - SIGKILL);
    }
    pid_t live[2] = {spawn_sleeper(&s, 3), spawn_sleeper(&s, 4)};
    cr_assert_eq(mproc_semaphore_release(s.sem, 2), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t_exit_code(live[i], BOUND), 0);
        cr_assert_eq(atomic_load(&s.sh->rc[3 + i]), 0);
    }
    cr_assert_eq(value_of(s.sem), 0);
    cr_assert_eq(mproc_semaphore_acquire(s.sem, 0), ETIMEDOUT);
    teardown(&s);
}

/* Documented semantics: permits are not owned, so a process killed while
 * holding one takes it with it; the count stays one lower until someone
 * releases on its behalf. */
static void killed_holder_loses_its_permit(bool bounded, bool named) {
    scenario s;
    setup(&s, bounded, named, 1);
    t_pipe held;
    t_pipe_open(&held);
    pid_t holder = t_fork();
    if (holder == 0) {
        mproc_semaphore *mine = child_sem(&s);
        if (mproc_semaphore_acquire(mine, BOUND) != 0)
            _exit(91);
        t_signal(&held, 'h');
        pause();
        _exit(92);
    }
    cr_assert_eq(t_await(&held, BOUND), 'h');
    t_pipe_close(&held);
    kill(holder, SIGKILL);
    cr_assert_eq(t_exit_code(holder, BOUND), -1000 - SIGKILL);
    cr_assert_eq(value_of(s.sem), 0);
    cr_assert_eq(mproc_semaphore_acquire(s.sem, 0.05), ETIMEDOUT);
    /* Someone else may give it back; a bounded one is then at its bound. */
    cr_assert_eq(mproc_semaphore_release(s.sem, 1), 0);
    cr_assert_eq(value_of(s.sem), 1);
    cr_assert_eq(mproc_semaphore_release(s.sem, 1), bounded ? EOVERFLOW : 0);
    teardown(&s);
}

Test(semaphore_procs, a_holder_killed_with_a_permit_takes_it_with_it) {
    killed_holder_loses_its_permit(false, false);
    killed_holder_loses_its_permit(true, true);
}
