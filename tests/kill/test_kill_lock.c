/* SPDX-License-Identifier: MIT */
/*
 * Kill test: WORKERS processes increment a counter under one Lock (or RLock,
 * entered twice), while the parent SIGKILLs a random worker at a random
 * moment KILLS times and starts a replacement.  Workers also kill themselves
 * now and then at exact points between the critical section's stores.
 *
 * The data the lock protects carries a one-record undo log:
 *   undo = {counter, journal[w]}; undo.valid = 1;    (begin)
 *   counter = counter + 1  (read, pause, write);     (the protected update)
 *   journal[w] += 1;                                 (this CS completed)
 *   undo.valid = 0;                                  (commit)
 * A worker that acquires with EOWNERDEAD and finds undo.valid rolls back.
 * Invariant at the end: counter == sum(journal), i.e. the protected counter
 * equals the number of completed critical sections exactly.  A lock that
 * let two workers in at once, or that lost an owner's death, breaks it (lost
 * updates) or hangs a survivor past its acquire bound (ETIMEDOUT, counted).
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

#include "locks.h"
#include "support.h"

#define WORKERS 3
#define KILLS 520            /* parent's SIGKILLs per kind and run (>= 500) */
#define ACQUIRE_BOUND 2.0    /* a survivor waiting longer than this fails the test */
#define SELF_KILL_ODDS 4000  /* a worker kills itself at an exact point 1 in N CSs */

enum phase { OUTSIDE, ACQUIRING, IN_CS, RELEASING, NPHASES };
static const char *phase_names[NPHASES] = {"outside", "acquire", "critical", "release"};

/* Self-kill points inside the critical section, between its stores. */
enum point { AFTER_BEGIN, AFTER_UPDATE, AFTER_JOURNAL, AFTER_COMMIT, NPOINTS };

struct undo {
    uint64_t valid, worker, counter, journal;
};

struct state {
    /* Protected by the lock under test. */
    uint64_t counter;
    uint64_t journal[WORKERS];
    struct undo undo;
    /* Bookkeeping, atomics outside the lock. */
    _Atomic int phase[WORKERS];
    _Atomic int stop;
    _Atomic int failures;
    _Atomic int last_failure;
    _Atomic uint64_t max_wait_us;
    _Atomic uint64_t ownerdead, rollbacks, self_kills[NPOINTS];
};

/* Stores of the protocol go through these so the compiler keeps their order
 * (seq_cst); the kill can land between any two of them. */
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

static void maybe_die(struct state *st, uint64_t *rng, enum point point) {
    if (xorshift(rng) % SELF_KILL_ODDS == 0) {
        atomic_fetch_add(&st->self_kills[point], 1);
        raise(SIGKILL);
    }
}

static void roll_back(struct state *st) {
    if (GET(st->undo.valid)) {
        uint64_t w = GET(st->undo.worker);
        if (w >= WORKERS) {
            fail(st, 1000);
            return;
        }
        PUT(st->counter, GET(st->undo.counter));
        PUT(st->journal[w], GET(st->undo.journal));
        PUT(st->undo.valid, 0);
        atomic_fetch_add(&st->rollbacks, 1);
    }
}

static void critical_section(struct state *st, int w, uint64_t *rng) {
    PUT(st->undo.worker, (uint64_t)w);
    PUT(st->undo.counter, GET(st->counter));
    PUT(st->undo.journal, GET(st->journal[w]));
    PUT(st->undo.valid, 1);
    maybe_die(st, rng, AFTER_BEGIN);
    uint64_t value = GET(st->counter);
    for (uint64_t spin = xorshift(rng) % 200; spin > 0; spin--)
        __asm__ volatile("" ::: "memory");
    PUT(st->counter, value + 1);
    maybe_die(st, rng, AFTER_UPDATE);
    PUT(st->journal[w], GET(st->journal[w]) + 1);
    maybe_die(st, rng, AFTER_JOURNAL);
    PUT(st->undo.valid, 0);
    maybe_die(st, rng, AFTER_COMMIT);
}

static void worker(struct state *st, t_lock *lock, int w, uint64_t seed) {
    uint64_t rng = seed | 1;
    while (!atomic_load(&st->stop)) {
        atomic_store(&st->phase[w], ACQUIRING);
        double t0 = t_now();
        int rc = t_lock_acquire(lock, ACQUIRE_BOUND);
        uint64_t waited = (uint64_t)((t_now() - t0) * 1e6);
        uint64_t max = atomic_load(&st->max_wait_us);
        while (waited > max && !atomic_compare_exchange_weak(&st->max_wait_us, &max, waited)) {
        }
        if (rc == EOWNERDEAD) {
            atomic_fetch_add(&st->ownerdead, 1);
            roll_back(st);
        } else if (rc != 0) {
            fail(st, rc); /* ETIMEDOUT: waited past the bound */
            continue;
        }
        atomic_store(&st->phase[w], IN_CS);
        if (lock->kind == T_RLOCK && t_lock_acquire(lock, 0) != 0)
            fail(st, 1001);
        critical_section(st, w, &rng);
        atomic_store(&st->phase[w], RELEASING);
        if (lock->kind == T_RLOCK && t_lock_release(lock) != 0)
            fail(st, 1002);
        if (t_lock_release(lock) != 0)
            fail(st, 1003);
        atomic_store(&st->phase[w], OUTSIDE);
    }
    _exit(0);
}

static pid_t spawn(struct state *st, t_lock *lock, int w, uint64_t seed) {
    pid_t pid = t_fork();
    if (pid == 0)
        worker(st, lock, w, seed);
    cr_assert_gt(pid, 0);
    return pid;
}

static void nap_us(uint64_t us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL); /* randomises when the kill lands; orders nothing */
}

static void run(t_kind kind, bool named) {
    const char *env = getenv("MPROC_KILL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("kill test %s %s: seed %llu (MPROC_KILL_SEED=%llu to reproduce)\n",
           kind == T_LOCK ? "lock" : "rlock", named ? "named" : "anonymous",
           (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    const char *name = named ? t_name("kill") : NULL;
    t_lock lock;
    cr_assert_eq(t_lock_make(&lock, kind, name, MPROC_CREATE | MPROC_EXCL), 0);
    struct state *st = t_shared(sizeof *st);
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        pids[w] = spawn(st, &lock, w, xorshift(&rng));
    int landed[NPHASES] = {0};
    double started = t_now();
    for (int k = 0; k < KILLS; k++) {
        /* Replace workers that killed themselves. */
        for (int w = 0; w < WORKERS; w++)
            if (waitpid(pids[w], NULL, WNOHANG) == pids[w])
                pids[w] = spawn(st, &lock, w, xorshift(&rng));
        nap_us(xorshift(&rng) % 1500);
        int w = (int)(xorshift(&rng) % WORKERS);
        landed[atomic_load(&st->phase[w])]++;
        kill(pids[w], SIGKILL);
        int status = t_wait(pids[w], 10);
        cr_assert_neq(status, -1, "worker %d did not die", w);
        pids[w] = spawn(st, &lock, w, xorshift(&rng));
    }
    atomic_store(&st->stop, 1);
    for (int w = 0; w < WORKERS; w++)
        t_wait(pids[w], 10); /* exit 0, or self-killed on the way out */
    /* Settle: take the lock once more; a last self-kill may need rollback. */
    int rc = t_lock_acquire(&lock, ACQUIRE_BOUND);
    cr_assert(rc == 0 || rc == EOWNERDEAD, "final acquire: %s", mproc_errname(rc));
    if (rc == EOWNERDEAD)
        roll_back(st);
    uint64_t sum = 0;
    for (int w = 0; w < WORKERS; w++)
        sum += st->journal[w];
    uint64_t self_kills = 0;
    for (int p = 0; p < NPOINTS; p++)
        self_kills += st->self_kills[p];
    printf("  %d kills in %.1f s; landed:", KILLS, t_now() - started);
    for (int p = 0; p < NPHASES; p++)
        printf(" %s=%d", phase_names[p], landed[p]);
    printf("; self-kills=%llu; EOWNERDEAD=%llu rollbacks=%llu; critical sections=%llu; "
           "longest wait %.1f ms\n",
           (unsigned long long)self_kills, (unsigned long long)st->ownerdead,
           (unsigned long long)st->rollbacks, (unsigned long long)sum,
           (double)st->max_wait_us / 1000);
    fflush(stdout);
    cr_assert_eq(st->failures, 0, "%d failures, last %s", st->failures,
                 mproc_errname(st->last_failure));
    cr_assert_eq(st->counter, sum, "counter %llu != completed critical sections %llu",
                 (unsigned long long)st->counter, (unsigned long long)sum);
    cr_assert_eq(st->undo.valid, 0);
    cr_assert_gt(sum, 0);
    cr_assert_gt(st->ownerdead, 0, "no kill ever landed while the lock was held");
    cr_assert_lt(st->max_wait_us, (uint64_t)(ACQUIRE_BOUND * 1e6));
    cr_assert_eq(t_lock_release(&lock), 0);
    t_lock_close(&lock);
    if (name)
        mproc_unlink(name);
}

Test(kill, lock_survives_random_sigkills, .timeout = 120) { run(T_LOCK, false); }
Test(kill, rlock_survives_random_sigkills, .timeout = 120) { run(T_RLOCK, true); }
