/* SPDX-License-Identifier: MIT */
/*
 * Kill test for Condition: 2 producer and 2 consumer processes pass items
 * through a bounded FIFO buffer guarded by one lock and two conditions over
 * it (not_empty, not_full), each notify waking one waiter (notify(1)), while
 * the parent SIGKILLs a random worker at a random moment KILLS times and
 * starts a replacement.  Workers also kill themselves now and then right
 * after a notify, still holding the lock.
 *
 * What it proves:
 *   - a dead lock holder never blocks the others: its successor (acquirer
 *     or waiter) gets EOWNERDEAD and rolls the half-done operation back;
 *   - a dead waiter never swallows a notify meant for the living, and a
 *     notified waiter that dies passes the notification on: no survivor ever
 *     waits WAIT_BOUND (every acquire and wait is bounded; ETIMEDOUT while
 *     the others keep running is counted as a failure);
 *   - the buffer stays exact: every item comes out in FIFO order, and
 *     puts == takes + items in the buffer, with per-worker journals that
 *     sum to the same counts.
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

#define PRODUCERS 2
#define WORKERS 4            /* 0..1 produce, 2..3 consume */
#define CAPACITY 4
#define KILLS 240            /* parent's SIGKILLs per run (the issue asks >= 200) */
#define WAIT_BOUND 2.0       /* any acquire or wait longer than this fails the test */
#define SELF_KILL_ODDS 3000  /* a worker kills itself after notifying, 1 in N */

enum phase { OUTSIDE, ACQUIRING, WAITING, HOLDING, NPHASES };
static const char *phase_names[NPHASES] = {"outside", "acquire", "wait", "holding"};

/* One operation's undo record, as in test_kill_lock.c. */
struct undo {
    uint64_t valid, worker, puts, takes, journal;
};

struct state {
    /* Protected by the lock. */
    uint64_t buffer[CAPACITY];
    uint64_t puts, takes; /* item k is the k-th put; buffer holds [takes, puts) */
    uint64_t journal[WORKERS];
    struct undo undo;
    /* Bookkeeping, atomics outside the lock. */
    _Atomic int phase[WORKERS];
    _Atomic int stop;
    _Atomic int failures, last_failure;
    _Atomic uint64_t max_wait_us, ownerdead, rollbacks, timeouts_ok, self_kills;
};

struct objects {
    mproc_lock *lock;
    mproc_condition *not_empty, *not_full;
};

#define PUT(lv, v) __atomic_store_n(&(lv), (v), __ATOMIC_SEQ_CST)
#define GET(lv) __atomic_load_n(&(lv), __ATOMIC_SEQ_CST)

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fail(struct state *st, int code) {
    atomic_fetch_add(&st->failures, 1);
    atomic_store(&st->last_failure, code);
}

static void note_wait(struct state *st, double since) {
    uint64_t waited = (uint64_t)((t_now() - since) * 1e6);
    uint64_t max = atomic_load(&st->max_wait_us);
    while (waited > max && !atomic_compare_exchange_weak(&st->max_wait_us, &max, waited)) {
    }
}

static void roll_back(struct state *st) {
    atomic_fetch_add(&st->ownerdead, 1);
    if (!GET(st->undo.valid))
        return;
    uint64_t w = GET(st->undo.worker);
    if (w >= WORKERS) {
        fail(st, 1000);
        return;
    }
    PUT(st->puts, GET(st->undo.puts));
    PUT(st->takes, GET(st->undo.takes));
    PUT(st->journal[w], GET(st->undo.journal));
    PUT(st->undo.valid, 0);
    atomic_fetch_add(&st->rollbacks, 1);
}

/* With the lock held: waits on `cond` until `ready` holds.  0, or a failure
 * code (the lock is held in both cases). */
static int wait_until_ready(struct state *st, mproc_condition *cond, int w, bool producer) {
    for (;;) {
        uint64_t in_buffer = GET(st->puts) - GET(st->takes);
        if (in_buffer > CAPACITY)
            return 1001; /* the buffer's counts were corrupted */
        if (producer ? in_buffer < CAPACITY : in_buffer > 0)
            return 0;
        if (atomic_load(&st->stop)) /* set under the lock: no notify will come */
            return -1;
        atomic_store(&st->phase[w], WAITING);
        double t0 = t_now();
        int rc = mproc_condition_wait(cond, WAIT_BOUND);
        note_wait(st, t0);
        atomic_store(&st->phase[w], HOLDING);
        if (rc == EOWNERDEAD)
            roll_back(st);
        else if (rc != 0)
            return rc; /* ETIMEDOUT: nobody notified us for WAIT_BOUND */
    }
}

/* One put or take, under the lock, with an undo record. */
static void operate(struct state *st, int w, bool producer) {
    PUT(st->undo.worker, (uint64_t)w);
    PUT(st->undo.puts, GET(st->puts));
    PUT(st->undo.takes, GET(st->takes));
    PUT(st->undo.journal, GET(st->journal[w]));
    PUT(st->undo.valid, 1);
    if (producer) {
        uint64_t k = GET(st->puts);
        PUT(st->buffer[k % CAPACITY], k);
        PUT(st->puts, k + 1);
    } else {
        uint64_t k = GET(st->takes);
        if (GET(st->buffer[k % CAPACITY]) != k)
            fail(st, 1002); /* out of order, duplicated or torn */
        PUT(st->takes, k + 1);
    }
    PUT(st->journal[w], GET(st->journal[w]) + 1);
    PUT(st->undo.valid, 0);
}

static void worker(struct state *st, struct objects *o, int w, uint64_t seed) {
    uint64_t rng = seed | 1;
    bool producer = w < PRODUCERS;
    mproc_condition *mine = producer ? o->not_full : o->not_empty;
    mproc_condition *theirs = producer ? o->not_empty : o->not_full;
    while (!atomic_load(&st->stop)) {
        atomic_store(&st->phase[w], ACQUIRING);
        double t0 = t_now();
        int rc = mproc_condition_acquire(mine, WAIT_BOUND);
        note_wait(st, t0);
        if (rc == EOWNERDEAD)
            roll_back(st);
        else if (rc != 0) {
            fail(st, rc);
            continue;
        }
        atomic_store(&st->phase[w], HOLDING);
        rc = wait_until_ready(st, mine, w, producer);
        if (rc == 0) {
            operate(st, w, producer);
            if (mproc_condition_notify(theirs, 1) != 0)
                fail(st, 1003);
            if (xorshift(&rng) % SELF_KILL_ODDS == 0) {
                atomic_fetch_add(&st->self_kills, 1);
                raise(SIGKILL); /* dies holding the lock, after notifying */
            }
        } else if (rc != -1) {
            fail(st, rc);
        }
        if (mproc_condition_release(mine) != 0)
            fail(st, 1004);
        atomic_store(&st->phase[w], OUTSIDE);
    }
    _exit(0);
}

static pid_t spawn(struct state *st, struct objects *o, int w, uint64_t seed) {
    pid_t pid = t_fork();
    if (pid == 0)
        worker(st, o, w, seed);
    cr_assert_gt(pid, 0);
    return pid;
}

static void nap_us(uint64_t us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL); /* randomises when the kill lands; orders nothing */
}

static void make_objects(struct objects *o, const char *lock_name, const char *names[2]) {
    int flags = MPROC_CREATE | MPROC_EXCL;
    if (lock_name == NULL) {
        cr_assert_eq(mproc_lock_create(&o->lock, NULL), 0);
        cr_assert_eq(mproc_condition_create(&o->not_empty, o->lock, NULL, NULL), 0);
        cr_assert_eq(mproc_condition_create(&o->not_full, o->lock, NULL, NULL), 0);
    } else {
        cr_assert_eq(mproc_lock_open(&o->lock, lock_name, flags, NULL), 0);
        cr_assert_eq(mproc_condition_open(&o->not_empty, names[0], flags, o->lock, NULL, NULL), 0);
        cr_assert_eq(mproc_condition_open(&o->not_full, names[1], flags, o->lock, NULL, NULL), 0);
    }
}

static void run(bool named) {
    const char *env = getenv("MPROC_KILL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("condition kill test %s: seed %llu (MPROC_KILL_SEED=%llu to reproduce)\n",
           named ? "named" : "anonymous", (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    const char *lock_name = named ? t_name("kcl") : NULL;
    const char *names[2] = {named ? t_name("kce") : NULL, named ? t_name("kcf") : NULL};
    struct objects o;
    make_objects(&o, lock_name, names);
    struct state *st = t_shared(sizeof *st);
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        pids[w] = spawn(st, &o, w, xorshift(&rng));
    int landed[NPHASES] = {0};
    double started = t_now();
    for (int k = 0; k < KILLS; k++) {
        for (int w = 0; w < WORKERS; w++) /* replace self-killed workers */
            if (waitpid(pids[w], NULL, WNOHANG) == pids[w])
                pids[w] = spawn(st, &o, w, xorshift(&rng));
        nap_us(xorshift(&rng) % 1500);
        int w = (int)(xorshift(&rng) % WORKERS);
        landed[atomic_load(&st->phase[w])]++;
        kill(pids[w], SIGKILL);
        cr_assert_neq(t_wait(pids[w], 10), -1, "worker %d did not die", w);
        pids[w] = spawn(st, &o, w, xorshift(&rng));
    }
    /* Stop under the lock, and wake whoever waits so that it sees `stop`. */
    int rc = mproc_lock_acquire(o.lock, WAIT_BOUND);
    cr_assert(rc == 0 || rc == EOWNERDEAD, "stop acquire: %s", mproc_errname(rc));
    if (rc == EOWNERDEAD)
        roll_back(st);
    atomic_store(&st->stop, 1);
    cr_assert_eq(mproc_condition_notify_all(o.not_empty), 0);
    cr_assert_eq(mproc_condition_notify_all(o.not_full), 0);
    cr_assert_eq(mproc_lock_release(o.lock), 0);
    for (int w = 0; w < WORKERS; w++)
        t_wait(pids[w], 10); /* exit 0, or self-killed on the way out */
    rc = mproc_lock_acquire(o.lock, WAIT_BOUND);
    cr_assert(rc == 0 || rc == EOWNERDEAD, "final acquire: %s", mproc_errname(rc));
    if (rc == EOWNERDEAD)
        roll_back(st);
    uint64_t produced = st->journal[0] + st->journal[1];
    uint64_t consumed = st->journal[2] + st->journal[3];
    printf("  %d kills in %.1f s; landed:", KILLS, t_now() - started);
    for (int p = 0; p < NPHASES; p++)
        printf(" %s=%d", phase_names[p], landed[p]);
    printf("; self-kills=%llu EOWNERDEAD=%llu rollbacks=%llu; items put=%llu taken=%llu; "
           "longest wait %.1f ms\n",
           (unsigned long long)st->self_kills, (unsigned long long)st->ownerdead,
           (unsigned long long)st->rollbacks, (unsigned long long)st->puts,
           (unsigned long long)st->takes, (double)st->max_wait_us / 1000);
    fflush(stdout);
    cr_assert_eq(st->failures, 0, "%d failures, last %s", st->failures,
                 mproc_errname(st->last_failure));
    cr_assert_eq(st->undo.valid, 0);
    cr_assert_eq(produced, st->puts, "producer journals %llu != puts %llu",
                 (unsigned long long)produced, (unsigned long long)st->puts);
    cr_assert_eq(consumed, st->takes, "consumer journals %llu != takes %llu",
                 (unsigned long long)consumed, (unsigned long long)st->takes);
    cr_assert_leq(st->puts - st->takes, CAPACITY);
    cr_assert_gt(st->takes, 1000, "too little traffic to mean anything");
    cr_assert_gt(landed[WAITING], 0, "no kill landed in a wait");
    cr_assert_lt(st->max_wait_us, (uint64_t)(WAIT_BOUND * 1e6));
    cr_assert_eq(mproc_lock_release(o.lock), 0);
    mproc_condition_close(o.not_empty);
    mproc_condition_close(o.not_full);
    mproc_lock_close(o.lock);
    if (named) {
        mproc_unlink(lock_name);
        mproc_unlink(names[0]);
        mproc_unlink(names[1]);
    }
}

Test(kill, condition_anonymous_survives_random_sigkills, .timeout = 120) { run(false); }
Test(kill, condition_named_survives_random_sigkills, .timeout = 120) { run(true); }
