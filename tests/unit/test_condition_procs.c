/* SPDX-License-Identifier: MIT */
/*
 * Condition between processes (fork), for each lock flavour (its own RLock,
 * a given mproc_lock, a given mproc_rlock), each anonymous (the child uses
 * the inherited handle) and named (the child opens the lock and the
 * condition by name): a child waits and the parent notifies; notify(n) wakes
 * exactly n processes, longest-waiting first; and SIGKILL at the worst
 * moments:
 *   - the lock's holder dies after notifying: the waiter gets EOWNERDEAD,
 *     holding the lock at its own depth; so does a plain acquirer, and a
 *     waiter whose time ran out behind the dead holder;
 *   - the lock's holder dies without notifying: a sleeping waiter notices
 *     (MPROC_CONDITION_LIVENESS_MS) and returns EOWNERDEAD;
 *   - a waiter dies asleep: it never swallows a notify meant for the living,
 *     its record is reused, and notifying only the dead wakes nobody later;
 *   - a waiter dies after a notify chose it: a living waiter gets it.
 *
 * A waiter child flags (pipe) that it holds the lock just before wait(), and
 * t_wait_sleeping() then sees it blocked in the kernel: that can only be the
 * wait's futex.  Children never assert; they leave codes in shared memory.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */
/* The product wakes a notified waiter at once, and hands a dead holder's
 * lock over at once (robust futex; the lock tests assert < 100 ms).  The
 * 2-vCPU CI runs other suites alongside, so "at once" is < WAKE_SLACK. */
#define WAKE_SLACK 0.5
/* Rescues by a sleeping waiter happen within MPROC_CONDITION_LIVENESS_MS. */
#define LIVENESS_SLACK (MPROC_CONDITION_LIVENESS_MS / 1000.0 + WAKE_SLACK)
/* How long a waiter that must NOT wake is given to (wrongly) wake up. */
#define GRACE 0.2
#define SLOTS 4

enum flavour { OWN_RLOCK, GIVEN_LOCK, GIVEN_RLOCK };

/* What children report; "-1" means "not returned (yet)". */
struct shared {
    int rc[SLOTS];
    int release_ok[SLOTS]; /* 1: released exactly its depth, then EPERM */
    double returned_at[SLOTS];
    int notify_rc;
    int order[SLOTS];
    int norder; /* written under the condition's lock */
};

typedef struct fx {
    enum flavour flavour;
    bool named;
    char name[96], lock_name[96];
    mproc_lock *lock;
    mproc_rlock *rlock;
    mproc_condition *cond;
    struct shared *sh;
    t_pipe ready; /* children: 'w' holding the lock before wait(), 'h' holding it */
} fx;

static void fx_make_opts(fx *f, enum flavour flavour, bool named,
                         const mproc_condition_options *opts) {
    memset(f, 0, sizeof *f);
    f->flavour = flavour;
    f->named = named;
    if (named) {
        snprintf(f->name, sizeof f->name, "%s", t_name("condpr"));
        snprintf(f->lock_name, sizeof f->lock_name, "%s", t_name("condprlk"));
    }
    int excl = MPROC_CREATE | MPROC_EXCL;
    if (flavour == GIVEN_LOCK)
        cr_assert_eq(named ? mproc_lock_open(&f->lock, f->lock_name, excl, NULL)
                           : mproc_lock_create(&f->lock, NULL),
                     0);
    if (flavour == GIVEN_RLOCK)
        cr_assert_eq(named ? mproc_rlock_open(&f->rlock, f->lock_name, excl, NULL)
                           : mproc_rlock_create(&f->rlock, NULL),
                     0);
    cr_assert_eq(named ? mproc_condition_open(&f->cond, f->name, excl, f->lock, f->rlock, opts)
                       : mproc_condition_create(&f->cond, f->lock, f->rlock, opts),
                 0);
    f->sh = t_shared(sizeof *f->sh);
    for (int i = 0; i < SLOTS; i++)
        f->sh->rc[i] = f->sh->release_ok[i] = -1;
    f->sh->notify_rc = -1;
    t_pipe_open(&f->ready);
}

static void fx_make(fx *f, enum flavour flavour, bool named) {
    fx_make_opts(f, flavour, named, NULL);
}

static void fx_free(fx *f) {
    t_pipe_close(&f->ready);
    cr_assert_eq(mproc_condition_close(f->cond), 0);
    if (f->lock != NULL)
        cr_assert_eq(mproc_lock_close(f->lock), 0);
    if (f->rlock != NULL)
        cr_assert_eq(mproc_rlock_close(f->rlock), 0);
    if (f->named) {
        cr_assert_eq(mproc_unlink(f->name), 0);
        if (f->flavour != OWN_RLOCK)
            cr_assert_eq(mproc_unlink(f->lock_name), 0);
    }
}

/* One Test per flavour; each runs the scenario anonymous, then named. */
#define FOR_EACH_FLAVOUR(behaviour, check)                                                 \
    Test(condition_procs, behaviour##_own_rlock) {                                         \
        check(OWN_RLOCK, false);                                                           \
        check(OWN_RLOCK, true);                                                            \
    }                                                                                      \
    Test(condition_procs, behaviour##_given_lock) {                                        \
        check(GIVEN_LOCK, false);                                                          \
        check(GIVEN_LOCK, true);                                                           \
    }                                                                                      \
    Test(condition_procs, behaviour##_given_rlock) {                                       \
        check(GIVEN_RLOCK, false);                                                         \
        check(GIVEN_RLOCK, true);                                                          \
    }

/* Levels a waiter holds: an RLock is entered twice, to see them restored. */
static int depth_of(const fx *f) {
    return f->flavour == GIVEN_LOCK ? 1 : 2;
}

static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- children ---- */

/* The condition as a child reaches it: the inherited handle when anonymous,
 * its own open() of the lock and the condition when named. */
static mproc_condition *child_cond(fx *f) {
    if (!f->named)
        return f->cond;
    mproc_lock *lock = NULL;
    mproc_rlock *rlock = NULL;
    mproc_condition *cond;
    if (f->flavour == GIVEN_LOCK && mproc_lock_open(&lock, f->lock_name, MPROC_ATTACH, NULL) != 0)
        _exit(90);
    if (f->flavour == GIVEN_RLOCK &&
        mproc_rlock_open(&rlock, f->lock_name, MPROC_ATTACH, NULL) != 0)
        _exit(91);
    if (mproc_condition_open(&cond, f->name, MPROC_ATTACH, lock, rlock, NULL) != 0)
        _exit(92);
    return cond;
}

/* Releases exactly `depth` levels, the next release being EPERM. */
static int release_depth(mproc_condition *cond, int depth) {
    for (int i = 0; i < depth; i++)
        if (mproc_condition_release(cond) != 0)
            return 0;
    return mproc_condition_release(cond) == EPERM;
}

/* A child that takes the lock (at depth_of levels), says 'w', waits, logs
 * and releases; its codes go to slot `slot`. */
static pid_t spawn_waiter(fx *f, int slot, double timeout) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_condition *cond = child_cond(f);
        for (int i = 0; i < depth_of(f); i++)
            if (mproc_condition_acquire(cond, BOUND) != 0)
                _exit(93);
        t_signal(&f->ready, 'w');
        int rc = mproc_condition_wait(cond, timeout);
        f->sh->returned_at[slot] = t_now();
        if (rc == 0 || rc == ETIMEDOUT || rc == EOWNERDEAD) {
            f->sh->order[f->sh->norder++] = slot;
            f->sh->release_ok[slot] = release_depth(cond, depth_of(f));
        }
        f->sh->rc[slot] = rc;
        _exit(0);
    }
    return pid;
}

/* spawn_waiter, returning once the child is asleep in wait(). */
static pid_t start_waiter(fx *f, int slot, double timeout) {
    pid_t pid = spawn_waiter(f, slot, timeout);
    cr_assert_eq(t_await(&f->ready, BOUND), 'w', "waiter %d never held the lock", slot);
    cr_assert(t_wait_sleeping(pid, BOUND), "waiter %d never went to sleep", slot);
    return pid;
}

/* A child that takes the lock (at depth_of levels), optionally notifies one
 * waiter, says 'h' and waits to be killed, holding it. */
static pid_t start_holder(fx *f, bool notify) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_condition *cond = child_cond(f);
        for (int i = 0; i < depth_of(f); i++)
            if (mproc_condition_acquire(cond, BOUND) != 0)
                _exit(94);
        if (notify)
            f->sh->notify_rc = mproc_condition_notify(cond, 1);
        t_signal(&f->ready, 'h');
        pause();
        _exit(95);
    }
    cr_assert_eq(t_await(&f->ready, BOUND), 'h', "the holder never held the lock");
    return pid;
}

static void kill_and_reap(pid_t pid) {
    kill(pid, SIGKILL);
    cr_assert_eq(t_exit_code(pid, BOUND), -1000 - SIGKILL);
}

/* The parent notifies: n waiters, or all when n < 0. */
static double notify_from_parent(fx *f, int n) {
    cr_assert_eq(mproc_condition_acquire(f->cond, BOUND), 0);
    double at = t_now();
    cr_assert_eq(n < 0 ? mproc_condition_notify_all(f->cond)
                       : mproc_condition_notify(f->cond, (unsigned)n),
                 0);
    cr_assert_eq(mproc_condition_release(f->cond), 0);
    return at;
}

/* The lock is free and healthy: taken with plain 0, released with 0. */
static void assert_lock_normal(fx *f) {
    cr_assert_eq(mproc_condition_acquire(f->cond, 0), 0);
    cr_assert_eq(mproc_condition_release(f->cond), 0);
}

/* ========================================================================= */

static void check_child_waits_parent_notifies(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    pid_t waiter = start_waiter(&f, 0, BOUND);
    double at = notify_from_parent(&f, 1);
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    cr_assert_eq(f.sh->rc[0], 0, "%s", mproc_errname(f.sh->rc[0]));
    cr_assert_eq(f.sh->release_ok[0], 1, "the depth was not restored");
    cr_assert_lt(f.sh->returned_at[0] - at, WAKE_SLACK);
    assert_lock_normal(&f);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_child_waits_and_the_parent_notifies, check_child_waits_parent_notifies)

#define WAITERS 3

static void check_exactly_n_across_processes(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    pid_t pids[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        pids[i] = start_waiter(&f, i, BOUND); /* asleep before the next starts */
    double at = notify_from_parent(&f, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t_exit_code(pids[i], BOUND), 0);
        cr_assert_eq(f.sh->rc[i], 0, "waiter %d: %s", i, mproc_errname(f.sh->rc[i]));
        cr_assert_eq(f.sh->release_ok[i], 1);
        cr_assert_lt(f.sh->returned_at[i] - at, WAKE_SLACK);
    }
    nap(GRACE);
    cr_assert_eq(f.sh->rc[2], -1, "the third woke: %s", mproc_errname(f.sh->rc[2]));
    cr_assert(t_wait_sleeping(pids[2], BOUND));
    at = notify_from_parent(&f, -1);
    cr_assert_eq(t_exit_code(pids[2], BOUND), 0);
    cr_assert_eq(f.sh->rc[2], 0, "%s", mproc_errname(f.sh->rc[2]));
    cr_assert_lt(f.sh->returned_at[2] - at, WAKE_SLACK);
    cr_assert_eq(f.sh->norder, WAITERS);
    cr_assert_eq(f.sh->order[2], 2, "the longest waiters go first");
    fx_free(&f);
}
FOR_EACH_FLAVOUR(notify_two_wakes_exactly_the_two_longest_waiting_processes,
                 check_exactly_n_across_processes)

/* ---- the lock's holder is killed ---- */

static void check_notifier_killed(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    /* Anonymous: wait without a bound (t_exit_code bounds the test). */
    pid_t waiter = start_waiter(&f, 0, named ? BOUND : MPROC_FOREVER);
    pid_t holder = start_holder(&f, true); /* takes the lock, notifies */
    cr_assert_eq(f.sh->notify_rc, 0);
    double killed_at = t_now();
    kill_and_reap(holder);
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    cr_assert_eq(f.sh->rc[0], EOWNERDEAD, "%s", mproc_errname(f.sh->rc[0]));
    cr_assert_eq(f.sh->release_ok[0], 1, "EOWNERDEAD without the lock at its depth");
    cr_assert_lt(f.sh->returned_at[0] - killed_at, WAKE_SLACK);
    assert_lock_normal(&f);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_notifier_killed_holding_the_lock_gives_the_waiter_eownerdead,
                 check_notifier_killed)

static void check_timed_out_behind_dead_holder(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    double started = t_now();
    pid_t waiter = start_waiter(&f, 0, 0.2);
    pid_t holder = start_holder(&f, false);
    /* Its time runs out, but it cannot return without the lock. */
    double left = 0.2 + GRACE - (t_now() - started);
    if (left > 0)
        nap(left);
    cr_assert(t_wait_sleeping(waiter, BOUND));
    cr_assert_eq(f.sh->rc[0], -1, "returned without the lock: %s", mproc_errname(f.sh->rc[0]));
    double killed_at = t_now();
    kill_and_reap(holder);
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    cr_assert_eq(f.sh->rc[0], EOWNERDEAD, "%s", mproc_errname(f.sh->rc[0]));
    cr_assert_eq(f.sh->release_ok[0], 1);
    cr_assert_lt(f.sh->returned_at[0] - killed_at, LIVENESS_SLACK);
    assert_lock_normal(&f);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_waiter_timed_out_behind_a_killed_holder_gets_eownerdead,
                 check_timed_out_behind_dead_holder)

static void check_silent_holder_killed(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    pid_t waiter = start_waiter(&f, 0, BOUND);
    pid_t holder = start_holder(&f, false); /* takes the lock, never notifies */
    double killed_at = t_now();
    kill_and_reap(holder);
    /* Nobody can notify now: the sleeper notices the death itself. */
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    cr_assert_eq(f.sh->rc[0], EOWNERDEAD, "%s", mproc_errname(f.sh->rc[0]));
    cr_assert_eq(f.sh->release_ok[0], 1);
    cr_assert_lt(f.sh->returned_at[0] - killed_at, LIVENESS_SLACK);
    assert_lock_normal(&f);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_holder_killed_without_notifying_wakes_a_sleeper_with_eownerdead,
                 check_silent_holder_killed)

static void check_acquirer_after_kill(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    kill_and_reap(start_holder(&f, false));
    double t0 = t_now();
    cr_assert_eq(mproc_condition_acquire(f.cond, 1.0), EOWNERDEAD);
    cr_assert_lt(t_now() - t0, WAKE_SLACK);
    /* Held at one level (an RLock's dead depth is not inherited). */
    cr_assert_eq(mproc_condition_notify(f.cond, 0), 0);
    cr_assert_eq(mproc_condition_release(f.cond), 0);
    cr_assert_eq(mproc_condition_release(f.cond), EPERM);
    assert_lock_normal(&f);
    /* And the condition works as before. */
    pid_t waiter = start_waiter(&f, 0, BOUND);
    notify_from_parent(&f, 1);
    cr_assert_eq(t_exit_code(waiter, BOUND), 0);
    cr_assert_eq(f.sh->rc[0], 0);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_plain_acquirer_after_a_killed_holder_gets_eownerdead,
                 check_acquirer_after_kill)

/* ---- a waiter is killed ---- */

static void check_phantom(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    pid_t doomed = start_waiter(&f, 0, BOUND);
    kill_and_reap(doomed);
    pid_t living = start_waiter(&f, 1, BOUND);
    /* notify(1) would pick the dead one first (the longest waiting). */
    double at = notify_from_parent(&f, 1);
    cr_assert_eq(t_exit_code(living, BOUND), 0);
    cr_assert_eq(f.sh->rc[1], 0, "%s", mproc_errname(f.sh->rc[1]));
    cr_assert_eq(f.sh->release_ok[1], 1);
    cr_assert_lt(f.sh->returned_at[1] - at, WAKE_SLACK, "the dead waiter swallowed the notify");
    cr_assert_eq(f.sh->rc[0], -1);
    assert_lock_normal(&f); /* a waiter dies without the lock: no EOWNERDEAD */
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_killed_waiter_does_not_swallow_a_notify, check_phantom)

static void check_only_dead_waiters(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    kill_and_reap(start_waiter(&f, 0, BOUND));
    kill_and_reap(start_waiter(&f, 1, BOUND));
    notify_from_parent(&f, 1);
    notify_from_parent(&f, -1);
    /* Nothing was kept for a later waiter: it times out... */
    pid_t late = start_waiter(&f, 2, 0.3);
    cr_assert_eq(t_exit_code(late, BOUND), 0);
    cr_assert_eq(f.sh->rc[2], ETIMEDOUT, "%s", mproc_errname(f.sh->rc[2]));
    cr_assert_eq(f.sh->release_ok[2], 1);
    /* ...and one that waits longer still wakes on its own notify. */
    pid_t next = start_waiter(&f, 3, BOUND);
    double at = notify_from_parent(&f, 1);
    cr_assert_eq(t_exit_code(next, BOUND), 0);
    cr_assert_eq(f.sh->rc[3], 0, "%s", mproc_errname(f.sh->rc[3]));
    cr_assert_lt(f.sh->returned_at[3] - at, WAKE_SLACK);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(notifying_only_dead_waiters_wakes_nobody_later, check_only_dead_waiters)

static void check_record_reused(enum flavour flavour, bool named) {
    fx f;
    mproc_condition_options opts = {.max_waiters = 1};
    fx_make_opts(&f, flavour, named, &opts);
    kill_and_reap(start_waiter(&f, 0, BOUND));
    /* The only record belongs to a dead waiter: taken back, not EAGAIN. */
    pid_t living = start_waiter(&f, 1, BOUND);
    notify_from_parent(&f, 1);
    cr_assert_eq(t_exit_code(living, BOUND), 0);
    cr_assert_eq(f.sh->rc[1], 0, "%s", mproc_errname(f.sh->rc[1]));
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_killed_waiters_record_is_reused, check_record_reused)

static void check_notified_then_killed(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    pid_t chosen = start_waiter(&f, 0, BOUND);
    pid_t other = start_waiter(&f, 1, BOUND);
    /* The parent notifies the longest waiter and keeps the lock, so the
     * chosen one cannot return; it dies with the notification. */
    cr_assert_eq(mproc_condition_acquire(f.cond, BOUND), 0);
    cr_assert_eq(mproc_condition_notify(f.cond, 1), 0);
    kill_and_reap(chosen);
    double at = t_now();
    cr_assert_eq(mproc_condition_release(f.cond), 0);
    /* The living waiter takes the notification over. */
    cr_assert_eq(t_exit_code(other, BOUND), 0);
    cr_assert_eq(f.sh->rc[0], -1);
    cr_assert_eq(f.sh->rc[1], 0, "%s", mproc_errname(f.sh->rc[1]));
    cr_assert_eq(f.sh->release_ok[1], 1);
    cr_assert_lt(f.sh->returned_at[1] - at, LIVENESS_SLACK);
    assert_lock_normal(&f);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_notified_waiter_killed_before_returning_passes_the_notify_on,
                 check_notified_then_killed)

/* ---- lost wake-ups across processes ---- */

#define ROUNDS 500

struct turns {
    int turn; /* guarded by the condition's lock */
    int rounds[2], errors[2];
};

/* Takes turns with the other process: waits (bounded) for its turn, passes
 * it on with notify(1).  A lost wake-up shows as a time-out. */
static void play(mproc_condition *cond, struct turns *t, int me) {
    for (int i = 0; i < ROUNDS; i++) {
        if (mproc_condition_acquire(cond, BOUND) != 0) {
            t->errors[me]++;
            return;
        }
        while (t->turn != me)
            if (mproc_condition_wait(cond, BOUND) != 0) {
                t->errors[me]++;
                break;
            }
        t->turn = !me;
        t->rounds[me]++;
        mproc_condition_notify(cond, 1);
        mproc_condition_release(cond);
    }
}

static void check_ping_pong(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    struct turns *t = t_shared(sizeof *t);
    pid_t child = t_fork();
    if (child == 0) {
        play(child_cond(&f), t, 1);
        _exit(0);
    }
    play(f.cond, t, 0);
    cr_assert_eq(t_exit_code(child, 60), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t->errors[i], 0, "side %d lost a wake-up", i);
        cr_assert_eq(t->rounds[i], ROUNDS);
    }
    fx_free(&f);
}
FOR_EACH_FLAVOUR(ping_pong_between_processes_loses_no_wakeup, check_ping_pong)
