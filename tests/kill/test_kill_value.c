/* SPDX-License-Identifier: MIT */
/*
 * Kill test for Array (and Value): WORKERS processes repeatedly take an
 * Array of SLOTS counters by its own RLock and add 1 to every counter, one
 * element at a time (mproc_array_set, re-entering the lock), so a death
 * mid-update leaves the counters unequal.  Each update first writes an undo
 * record to a raw Value in shared memory (the journal); committing it is one
 * store.  The parent SIGKILLs a random worker at a random moment KILLS times
 * and starts a replacement; workers also kill themselves now and then in the
 * middle of an update.
 *
 * What it proves:
 *   - a dead holder never blocks the others: the next acquire (bounded by
 *     WAIT_BOUND) gets EOWNERDEAD, holding the lock, and repairs from the
 *     undo record;
 *   - after every repair the SLOTS counters are equal, and equal to the
 *     number of committed updates in the workers' journals; at the end too;
 *   - no acquire waits WAIT_BOUND (ETIMEDOUT is a failure).
 *
 * The seed is printed; MPROC_KILL_SEED=N reproduces a run.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define WORKERS 4
#define SLOTS 8
#define KILLS 500           /* parent's SIGKILLs per run (>= 150 asked; the queues' 500) */
#define WAIT_BOUND 2.0      /* any acquire longer than this fails the test */
#define SELF_KILL_ODDS 2000 /* a worker kills itself mid-update, 1 in N */

enum phase { OUTSIDE, ACQUIRING, HOLDING, UPDATING, NPHASES };
static const char *phase_names[NPHASES] = {"outside", "acquire", "holding", "updating"};

/* The journal: a raw Value of this struct, guarded by the array's lock. */
struct journal {
    uint64_t valid;          /* 1 while an update is in flight: `before` restores it */
    uint64_t worker;         /* whose update */
    uint64_t before[SLOTS];  /* the counters before it */
    uint64_t done_before;    /* committed[worker] before it */
    uint64_t committed[WORKERS]; /* updates each worker committed */
};

/* Bookkeeping outside the lock, in plain shared memory. */
struct state {
    _Atomic int phase[WORKERS];
    _Atomic int stop;
    _Atomic int failures, last_failure;
    _Atomic uint64_t max_wait_us, ownerdead, repairs, self_kills;
};

struct objects {
    bool named;
    char array_name[96], journal_name[96];
    mproc_array *counters;
    mproc_value *journal;
};

#define PUT(lv, v) __atomic_store_n(&(lv), (v), __ATOMIC_SEQ_CST)
#define GET(lv) __atomic_load_n(&(lv), __ATOMIC_SEQ_CST)

static const mproc_value_options journal_opts = {.flags = MPROC_RAW,
                                                 .elem_size = sizeof(struct journal)};

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

/* Under the lock, after EOWNERDEAD: undoes a half-done update.  Idempotent,
 * so a repairer that dies halfway leaves work its successor redoes. */
static void repair(struct state *st, struct objects *o) {
    struct journal *j = mproc_value_ptr(o->journal);
    atomic_fetch_add(&st->ownerdead, 1);
    if (!GET(j->valid))
        return;
    uint64_t w = GET(j->worker);
    if (w >= WORKERS) {
        fail(st, 1000);
        return;
    }
    if (mproc_array_write(o->counters, 0, SLOTS, j->before) != 0)
        fail(st, 1001);
    PUT(j->committed[w], GET(j->done_before));
    PUT(j->valid, 0);
    atomic_fetch_add(&st->repairs, 1);
}

/* Under the lock, after any repair: every counter equals the committed
 * updates.  0 or a failure code. */
static int check_invariant(struct objects *o) {
    const struct journal *j = mproc_value_ptr(o->journal);
    uint64_t now[SLOTS], total = 0;
    if (GET(j->valid))
        return 1002;
    if (mproc_array_read(o->counters, 0, SLOTS, now) != 0)
        return 1003;
    for (int w = 0; w < WORKERS; w++)
        total += GET(j->committed[w]);
    for (int i = 0; i < SLOTS; i++)
        if (now[i] != total)
            return 1004;
    return 0;
}

/* One update, under the lock: journal, then each counter, then commit. */
static void update(struct state *st, struct objects *o, int w, uint64_t *rng) {
    struct journal *j = mproc_value_ptr(o->journal);
    uint64_t now[SLOTS];
    if (mproc_array_read(o->counters, 0, SLOTS, now) != 0)
        fail(st, 1005);
    PUT(j->worker, (uint64_t)w);
    memcpy(j->before, now, sizeof now);
    PUT(j->done_before, GET(j->committed[w]));
    PUT(j->valid, 1); /* seq_cst: the record is complete before this */
    atomic_store(&st->phase[w], UPDATING);
    int dies_at = xorshift(rng) % SELF_KILL_ODDS == 0 ? (int)(xorshift(rng) % SLOTS) : -1;
    for (int i = 0; i < SLOTS; i++) {
        if (i == dies_at) {
            atomic_fetch_add(&st->self_kills, 1);
            raise(SIGKILL); /* dies holding the lock, counters unequal */
        }
        uint64_t next = now[i] + 1;
        if (mproc_array_set(o->counters, (size_t)i, &next) != 0) /* re-enters the RLock */
            fail(st, 1006);
    }
    PUT(j->committed[w], GET(j->committed[w]) + 1);
    PUT(j->valid, 0); /* the commit */
    atomic_store(&st->phase[w], HOLDING);
}

/* Named: a worker opens its own handles, as an unrelated program would. */
static void worker_objects(struct state *st, struct objects *o) {
    if (!o->named)
        return;
    if (mproc_array_open(&o->counters, o->array_name, MPROC_ATTACH, MPROC_TYPE_ULONGLONG, SLOTS,
                         NULL, NULL, NULL, NULL) != 0 ||
        mproc_value_open(&o->journal, o->journal_name, MPROC_ATTACH, MPROC_TYPE_BYTES, NULL,
                         NULL, NULL, &journal_opts) != 0) {
        fail(st, 1007);
        _exit(1);
    }
}

static void worker(struct state *st, struct objects o, int w, uint64_t seed) {
    uint64_t rng = seed | 1;
    worker_objects(st, &o);
    while (!atomic_load(&st->stop)) {
        atomic_store(&st->phase[w], ACQUIRING);
        double t0 = t_now();
        int rc = mproc_array_acquire(o.counters, WAIT_BOUND);
        note_wait(st, t0);
        if (rc == EOWNERDEAD) {
            repair(st, &o);
        } else if (rc != 0) {
            fail(st, rc);
            continue;
        }
        atomic_store(&st->phase[w], HOLDING);
        rc = check_invariant(&o);
        if (rc != 0)
            fail(st, rc);
        update(st, &o, w, &rng);
        if (mproc_array_release(o.counters) != 0)
            fail(st, 1008);
        atomic_store(&st->phase[w], OUTSIDE);
    }
    _exit(0);
}

static pid_t spawn(struct state *st, struct objects *o, int w, uint64_t seed) {
    pid_t pid = t_fork();
    if (pid == 0)
        worker(st, *o, w, seed);
    cr_assert_gt(pid, 0);
    return pid;
}

static void nap_us(uint64_t us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL); /* randomises when the kill lands; orders nothing */
}

static void make_objects(struct objects *o, bool named) {
    memset(o, 0, sizeof *o);
    o->named = named;
    int q = MPROC_TYPE_ULONGLONG, excl = MPROC_CREATE | MPROC_EXCL;
    if (!named) {
        cr_assert_eq(mproc_array_create(&o->counters, q, SLOTS, NULL, NULL, NULL, NULL), 0);
        cr_assert_eq(mproc_value_create(&o->journal, MPROC_TYPE_BYTES, NULL, NULL, NULL,
                                        &journal_opts),
                     0);
        return;
    }
    snprintf(o->array_name, sizeof o->array_name, "%s", t_name("kva"));
    snprintf(o->journal_name, sizeof o->journal_name, "%s", t_name("kvj"));
    cr_assert_eq(mproc_array_open(&o->counters, o->array_name, excl, q, SLOTS, NULL, NULL, NULL,
                                  NULL),
                 0);
    cr_assert_eq(mproc_value_open(&o->journal, o->journal_name, excl, MPROC_TYPE_BYTES, NULL,
                                  NULL, NULL, &journal_opts),
                 0);
}

static void report(const struct state *st, const struct journal *j, const int *landed,
                   double started) {
    printf("  %d kills in %.1f s; landed:", KILLS, t_now() - started);
    for (int p = 0; p < NPHASES; p++)
        printf(" %s=%d", phase_names[p], landed[p]);
    uint64_t total = 0;
    for (int w = 0; w < WORKERS; w++)
        total += j->committed[w];
    printf("; self-kills=%llu EOWNERDEAD=%llu repairs=%llu; committed updates=%llu; "
           "longest wait %.1f ms\n",
           (unsigned long long)st->self_kills, (unsigned long long)st->ownerdead,
           (unsigned long long)st->repairs, (unsigned long long)total,
           (double)st->max_wait_us / 1000);
    fflush(stdout);
}

static void run(bool named) {
    const char *env = getenv("MPROC_KILL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("value kill test %s: seed %llu (MPROC_KILL_SEED=%llu to reproduce)\n",
           named ? "named" : "anonymous", (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    struct objects o;
    make_objects(&o, named);
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
    atomic_store(&st->stop, 1);
    for (int w = 0; w < WORKERS; w++)
        t_wait(pids[w], 10); /* exit 0, or self-killed on the way out */
    int rc = mproc_array_acquire(o.counters, WAIT_BOUND);
    cr_assert(rc == 0 || rc == EOWNERDEAD, "final acquire: %s", mproc_errname(rc));
    if (rc == EOWNERDEAD)
        repair(st, &o);
    const struct journal *j = mproc_value_ptr(o.journal);
    report(st, j, landed, started);
    cr_assert_eq(st->failures, 0, "%d failures, last %d (%s)", st->failures, st->last_failure,
                 mproc_errname(st->last_failure));
    cr_assert_eq(check_invariant(&o), 0, "counters unequal or != committed updates");
    uint64_t total = 0, first = 0;
    for (int w = 0; w < WORKERS; w++)
        total += j->committed[w];
    cr_assert_eq(mproc_array_get(o.counters, 0, &first), 0);
    cr_assert_eq(first, total);
    cr_assert_gt(total, 1000, "too little traffic to mean anything");
    cr_assert_gt(st->repairs, 0, "no death ever interrupted an update");
    cr_assert_lt(st->max_wait_us, (uint64_t)(WAIT_BOUND * 1e6));
    cr_assert_eq(mproc_array_release(o.counters), 0);
    mproc_array_close(o.counters);
    mproc_value_close(o.journal);
    if (named) {
        cr_assert_eq(mproc_unlink(o.array_name), 0);
        cr_assert_eq(mproc_unlink(o.journal_name), 0);
    }
}

Test(kill, value_anonymous_survives_random_sigkills, .timeout = 120) { run(false); }
Test(kill, value_named_survives_random_sigkills, .timeout = 120) { run(true); }
