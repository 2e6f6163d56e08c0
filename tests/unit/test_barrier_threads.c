/* SPDX-License-Identifier: MIT */
/*
 * Barrier between the threads of one process, anonymous and named (named:
 * each party thread opens its own handle by name): argument checks, distinct
 * indices every round, the action (once per round, before anyone leaves; a
 * failing one breaks the barrier), timeouts, abort(), reset(), n_waiting, and
 * a stress with more threads than parties.
 *
 * Test data shared between threads is _Atomic: named handles map the same
 * segment at different addresses, so TSan cannot see the barrier's internal
 * mutex as one lock across them.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0        /* seconds: no wait in these tests may take longer */
#define MAX_THREADS 8
#define MAX_ROUNDS 200

/* ---- fixture: one barrier, anonymous or named ---- */

typedef struct fixture {
    mproc_barrier *barrier;
    const char *name; /* NULL: anonymous */
    unsigned parties;
    mproc_barrier_action action;
    void *arg;
    double timeout;
} fixture;

static void make(fixture *f, bool named, unsigned parties, mproc_barrier_action action, void *arg,
                 double timeout) {
    f->name = named ? t_name("barth") : NULL;
    f->parties = parties;
    f->action = action;
    f->arg = arg;
    f->timeout = timeout;
    int rc = named ? mproc_barrier_open(&f->barrier, f->name, MPROC_CREATE | MPROC_EXCL, parties,
                                        action, arg, timeout, NULL)
                   : mproc_barrier_create(&f->barrier, parties, action, arg, timeout, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
}

static void unmake(fixture *f) {
    cr_assert_eq(mproc_barrier_close(f->barrier), 0);
    if (f->name != NULL)
        cr_assert_eq(mproc_unlink(f->name), 0);
}

static unsigned n_waiting(mproc_barrier *b) {
    unsigned n = UINT_MAX;
    cr_assert_eq(mproc_barrier_n_waiting(b, &n), 0);
    return n;
}

static int broken(mproc_barrier *b) {
    int is_broken = -1;
    cr_assert_eq(mproc_barrier_broken(b, &is_broken), 0);
    return is_broken;
}

/* ---- party threads ---- */

/* What the action and the parties record, per round. */
typedef struct record {
    _Atomic unsigned seen[MAX_ROUNDS][MAX_THREADS]; /* [round][index]: times returned */
    _Atomic int actions;                          /* action runs so far */
    _Atomic pid_t action_tid[MAX_ROUNDS];         /* who ran round r's action */
    _Atomic pid_t last_tid[MAX_ROUNDS];           /* who got index parties-1 in round r */
    _Atomic int early;      /* a party saw fewer actions than rounds done: released early */
    _Atomic int fail_round; /* the action fails (returns 77) in this round; -1: never */
} record;

static void record_init(record *rec) {
    memset(rec, 0, sizeof *rec);
    atomic_store(&rec->fail_round, -1);
}

static int counting_action(void *arg) {
    record *rec = arg;
    int round = atomic_fetch_add(&rec->actions, 1);
    if (round < MAX_ROUNDS)
        atomic_store(&rec->action_tid[round], gettid());
    return round == atomic_load(&rec->fail_round) ? 77 : 0;
}

typedef struct party {
    fixture *f;
    double timeout; /* for mproc_barrier_wait_timeout */
    int rounds;
    record *rec; /* NULL: record nothing */
    _Atomic pid_t tid;
    int rc;         /* 0, or the first nonzero code */
    int rc_round;   /* the round that got it */
    unsigned index; /* the last index received */
    double returned_at;
    pthread_t thread;
} party;

static void *party_main(void *arg) {
    party *p = arg;
    mproc_barrier *b = p->f->barrier;
    if (p->f->name != NULL && mproc_barrier_open(&b, p->f->name, MPROC_ATTACH, 0, p->f->action,
                                                 p->f->arg, p->f->timeout, NULL) != 0) {
        p->rc = -1;
        atomic_store(&p->tid, gettid());
        return NULL;
    }
    atomic_store(&p->tid, gettid());
    for (int r = 0; r < p->rounds; r++) {
        unsigned index = UINT_MAX;
        int rc = mproc_barrier_wait_timeout(b, p->timeout, &index);
        p->index = index;
        if (rc != 0) {
            p->rc = rc;
            p->rc_round = r;
            break;
        }
        if (p->rec != NULL && r < MAX_ROUNDS && index < MAX_THREADS) {
            record *rec = p->rec;
            atomic_fetch_add(&rec->seen[r][index], 1);
            if (atomic_load(&rec->actions) != r + 1)
                atomic_fetch_add(&rec->early, 1);
            if (index == p->f->parties - 1)
                atomic_store(&rec->last_tid[r], gettid());
        }
    }
    p->returned_at = t_now();
    if (b != p->f->barrier)
        mproc_barrier_close(b);
    return NULL;
}

static void start(party *p, fixture *f, double timeout, int rounds, record *rec) {
    p->f = f;
    p->timeout = timeout;
    p->rounds = rounds;
    p->rec = rec;
    atomic_store(&p->tid, 0);
    p->rc = 0;
    p->rc_round = -1;
    p->index = UINT_MAX;
    cr_assert_eq(pthread_create(&p->thread, NULL, party_main, p), 0);
}

/* Joining is bounded: every party waits with a finite timeout. */
static void join(party *p) {
    cr_assert_eq(pthread_join(p->thread, NULL), 0);
}

/* Waits (bounded) until the first `k` parties have arrived and sleep: each
 * thread asleep in the kernel and n_waiting == k.  Returns n_waiting. */
static unsigned settle(fixture *f, party *ps, unsigned k) {
    double end = t_now() + BOUND;
    unsigned n;
    do {
        for (unsigned i = 0; i < k; i++) {
            while (atomic_load(&ps[i].tid) == 0 && t_now() < end)
                sched_yield();
            cr_assert(t_wait_sleeping(atomic_load(&ps[i].tid), end - t_now()),
                      "party %u never went to sleep", i);
        }
        n = n_waiting(f->barrier);
    } while (n != k && t_now() < end);
    return n;
}

/* `rounds` full rounds of `parties` fresh threads on a barrier whose action
 * is counting_action(rec): every wait returns 0, each round hands out each
 * index exactly once, after its action ran. */
static void check_full_rounds(fixture *f, unsigned parties, int rounds, record *rec) {
    memset(rec->seen, 0, sizeof rec->seen);
    atomic_store(&rec->actions, 0);
    atomic_store(&rec->early, 0);
    party ps[MAX_THREADS];
    for (unsigned i = 0; i < parties; i++)
        start(&ps[i], f, BOUND, rounds, rec);
    for (unsigned i = 0; i < parties; i++) {
        join(&ps[i]);
        cr_assert_eq(ps[i].rc, 0, "party %u round %d: %s", i, ps[i].rc_round,
                     mproc_errname(ps[i].rc));
    }
    for (int r = 0; r < rounds; r++)
        for (unsigned i = 0; i < parties; i++)
            cr_assert_eq(atomic_load(&rec->seen[r][i]), 1, "round %d index %u", r, i);
    cr_assert_eq(atomic_load(&rec->actions), rounds, "the action runs once per round");
    cr_assert_eq(atomic_load(&rec->early), 0, "a party left before its round's action ran");
}

/* ---- arguments ---- */

Test(barrier_threads, bad_arguments_are_einval_anonymous) {
    mproc_barrier *b = NULL;
    mproc_barrier_options reserved = {0};
    reserved.reserved[6] = 1;
    cr_assert_eq(mproc_barrier_create(&b, 0, NULL, NULL, MPROC_FOREVER, NULL), EINVAL);
    cr_assert_eq(mproc_barrier_create(&b, MPROC_BARRIER_MAX_PARTIES + 1, NULL, NULL,
                                      MPROC_FOREVER, NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_create(&b, UINT_MAX, NULL, NULL, MPROC_FOREVER, NULL), EINVAL);
    cr_assert_eq(mproc_barrier_create(&b, 2, NULL, NULL, NAN, NULL), EINVAL);
    cr_assert_eq(mproc_barrier_create(&b, 2, NULL, NULL, MPROC_FOREVER, &reserved), EINVAL);
    cr_assert_eq(mproc_barrier_create(NULL, 2, NULL, NULL, MPROC_FOREVER, NULL), EINVAL);
    cr_assert_null(b);

    cr_assert_eq(mproc_barrier_create(&b, 3, NULL, NULL, MPROC_FOREVER, NULL), 0);
    unsigned parties = 0;
    cr_assert_eq(mproc_barrier_parties(b, &parties), 0);
    cr_assert_eq(parties, 3);
    cr_assert_eq(n_waiting(b), 0);
    cr_assert_eq(broken(b), 0);
    unsigned index = 1234;
    cr_assert_eq(mproc_barrier_wait_timeout(b, NAN, &index), EINVAL);
    cr_assert_eq(index, 1234);
    cr_assert_eq(n_waiting(b), 0, "NaN arrived");
    int flag;
    cr_assert_eq(mproc_barrier_wait(NULL, &index), EINVAL);
    cr_assert_eq(mproc_barrier_wait_timeout(NULL, 0, &index), EINVAL);
    cr_assert_eq(mproc_barrier_abort(NULL), EINVAL);
    cr_assert_eq(mproc_barrier_reset(NULL), EINVAL);
    cr_assert_eq(mproc_barrier_parties(NULL, &parties), EINVAL);
    cr_assert_eq(mproc_barrier_parties(b, NULL), EINVAL);
    cr_assert_eq(mproc_barrier_n_waiting(NULL, &parties), EINVAL);
    cr_assert_eq(mproc_barrier_n_waiting(b, NULL), EINVAL);
    cr_assert_eq(mproc_barrier_broken(NULL, &flag), EINVAL);
    cr_assert_eq(mproc_barrier_broken(b, NULL), EINVAL);
    cr_assert_eq(mproc_barrier_close(NULL), EINVAL);
    cr_assert_eq(broken(b), 0, "a rejected call changed the barrier");
    cr_assert_eq(mproc_barrier_close(b), 0);

    /* The largest count is accepted. */
    cr_assert_eq(mproc_barrier_create(&b, MPROC_BARRIER_MAX_PARTIES, NULL, NULL, MPROC_FOREVER,
                                      NULL),
                 0);
    cr_assert_eq(mproc_barrier_parties(b, &parties), 0);
    cr_assert_eq(parties, MPROC_BARRIER_MAX_PARTIES);
    cr_assert_eq(mproc_barrier_close(b), 0);
}

Test(barrier_threads, named_open_checks_parties_and_attach_with_zero_accepts_the_count) {
    const char *name = t_name("barargs");
    mproc_barrier *b = NULL, *other = NULL;
    mproc_barrier_options reserved = {0};
    reserved.reserved[0] = 1;
    /* Creating needs a count. */
    cr_assert_eq(mproc_barrier_open(&b, name, MPROC_CREATE | MPROC_EXCL, 0, NULL, NULL,
                                    MPROC_FOREVER, NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&b, name, MPROC_CREATE, 0, NULL, NULL, MPROC_FOREVER, NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&b, name, MPROC_CREATE | MPROC_EXCL,
                                    MPROC_BARRIER_MAX_PARTIES + 1, NULL, NULL, MPROC_FOREVER,
                                    NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&b, name, MPROC_CREATE | MPROC_EXCL, 3, NULL, NULL, NAN,
                                    NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&b, name, MPROC_CREATE | MPROC_EXCL, 3, NULL, NULL,
                                    MPROC_FOREVER, &reserved),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&b, NULL, MPROC_CREATE, 3, NULL, NULL, MPROC_FOREVER, NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(NULL, name, MPROC_CREATE, 3, NULL, NULL, MPROC_FOREVER, NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&b, name, MPROC_ATTACH, 0, NULL, NULL, MPROC_FOREVER, NULL),
                 ENOENT, "a rejected create left a name behind");
    cr_assert_null(b);

    cr_assert_eq(mproc_barrier_open(&b, name, MPROC_CREATE | MPROC_EXCL, 3, NULL, NULL,
                                    MPROC_FOREVER, NULL),
                 0);
    /* Attaching: 0 accepts the existing count, a different count is EINVAL. */
    cr_assert_eq(mproc_barrier_open(&other, name, MPROC_ATTACH, 0, NULL, NULL, MPROC_FOREVER,
                                    NULL),
                 0);
    unsigned parties = 0;
    cr_assert_eq(mproc_barrier_parties(other, &parties), 0);
    cr_assert_eq(parties, 3);
    cr_assert_eq(mproc_barrier_close(other), 0);
    cr_assert_eq(mproc_barrier_open(&other, name, MPROC_ATTACH, 3, NULL, NULL, MPROC_FOREVER,
                                    NULL),
                 0);
    cr_assert_eq(mproc_barrier_close(other), 0);
    cr_assert_eq(mproc_barrier_open(&other, name, MPROC_CREATE, 0, NULL, NULL, MPROC_FOREVER,
                                    NULL),
                 EINVAL, "create-or-attach needs a count too");
    cr_assert_eq(mproc_barrier_open(&other, name, MPROC_ATTACH, 2, NULL, NULL, MPROC_FOREVER,
                                    NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&other, name, MPROC_CREATE, 4, NULL, NULL, MPROC_FOREVER,
                                    NULL),
                 EINVAL);
    cr_assert_eq(mproc_barrier_open(&other, name, MPROC_CREATE | MPROC_EXCL, 3, NULL, NULL,
                                    MPROC_FOREVER, NULL),
                 EEXIST);
    cr_assert_eq(mproc_barrier_parties(b, &parties), 0);
    cr_assert_eq(parties, 3);
    cr_assert_eq(n_waiting(b), 0);
    cr_assert_eq(broken(b), 0);
    cr_assert_eq(mproc_barrier_close(b), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

/* ---- rounds ---- */

static void check_one_party(bool named) {
    record rec;
    record_init(&rec);
    fixture f;
    make(&f, named, 1, counting_action, &rec, MPROC_FOREVER);
    for (int r = 0; r < 3; r++) {
        unsigned index = UINT_MAX;
        double t0 = t_now();
        cr_assert_eq(mproc_barrier_wait(f.barrier, &index), 0);
        cr_assert_lt(t_now() - t0, 0.5, "Barrier(1) made its only party wait");
        cr_assert_eq(index, 0);
        cr_assert_eq(atomic_load(&rec.actions), r + 1);
    }
    /* Timeout 0: the last arriver (here the only one) succeeds. */
    cr_assert_eq(mproc_barrier_wait_timeout(f.barrier, 0, NULL), 0);
    cr_assert_eq(atomic_load(&rec.actions), 4);
    cr_assert_eq(n_waiting(f.barrier), 0);
    cr_assert_eq(broken(f.barrier), 0);
    unmake(&f);
}

Test(barrier_threads, one_party_barrier_returns_index_0_at_once_anonymous) {
    check_one_party(false);
}
Test(barrier_threads, one_party_barrier_returns_index_0_at_once_named) {
    check_one_party(true);
}

/* 5 threads x 200 rounds: a round is identified by each thread's own loop
 * counter (the barrier is reused), and every round hands out each index
 * exactly once.  The action ran once per round, in the party that got the
 * last index, before any party of that round returned. */
static void check_indices_and_action(bool named) {
    enum { PARTIES = 5, ROUNDS = 200 };
    static record rec;
    record_init(&rec);
    fixture f;
    make(&f, named, PARTIES, counting_action, &rec, MPROC_FOREVER);
    check_full_rounds(&f, PARTIES, ROUNDS, &rec);
    for (int r = 0; r < ROUNDS; r++) {
        cr_assert_neq(atomic_load(&rec.action_tid[r]), 0);
        cr_assert_eq(atomic_load(&rec.action_tid[r]), atomic_load(&rec.last_tid[r]),
                     "round %d: the action did not run in the last arriver", r);
    }
    cr_assert_eq(n_waiting(f.barrier), 0);
    cr_assert_eq(broken(f.barrier), 0);
    unmake(&f);
}

Test(barrier_threads, every_round_hands_out_each_index_once_and_runs_the_action_once_anonymous,
     .timeout = 50) {
    check_indices_and_action(false);
}
Test(barrier_threads, every_round_hands_out_each_index_once_and_runs_the_action_once_named,
     .timeout = 50) {
    check_indices_and_action(true);
}

/* ---- breaking: failing action, timeout, abort, reset ---- */

/* The barrier is broken: waits fail at once, whatever their timeout. */
static void check_broken_until_reset(fixture *f) {
    cr_assert_eq(broken(f->barrier), 1);
    cr_assert_eq(n_waiting(f->barrier), 0);
    unsigned index;
    double t0 = t_now();
    cr_assert_eq(mproc_barrier_wait_timeout(f->barrier, 0, &index), MPROC_E_BROKEN);
    cr_assert_eq(mproc_barrier_wait_timeout(f->barrier, BOUND, &index), MPROC_E_BROKEN);
    cr_assert_eq(mproc_barrier_wait(f->barrier, &index), MPROC_E_BROKEN);
    cr_assert_lt(t_now() - t0, 0.5, "a wait on a broken barrier blocked");
    cr_assert_eq(broken(f->barrier), 1);
}

/* After reset() the barrier is whole: fresh full rounds succeed. */
static void check_usable_after_reset(fixture *f, record *rec) {
    cr_assert_eq(mproc_barrier_reset(f->barrier), 0);
    cr_assert_eq(broken(f->barrier), 0);
    cr_assert_eq(n_waiting(f->barrier), 0);
    atomic_store(&rec->fail_round, -1);
    check_full_rounds(f, f->parties, 20, rec);
    cr_assert_eq(broken(f->barrier), 0);
}

static void check_failing_action(bool named) {
    enum { PARTIES = 3 };
    static record rec;
    record_init(&rec);
    atomic_store(&rec.fail_round, 1); /* round 0 passes, round 1's action returns 77 */
    fixture f;
    make(&f, named, PARTIES, counting_action, &rec, MPROC_FOREVER);
    party ps[PARTIES];
    for (int i = 0; i < PARTIES; i++)
        start(&ps[i], &f, BOUND, 3, NULL);
    int got77 = 0, got_broken = 0;
    for (int i = 0; i < PARTIES; i++) {
        join(&ps[i]);
        cr_assert_eq(ps[i].rc_round, 1, "party %d failed in round %d", i, ps[i].rc_round);
        got77 += ps[i].rc == 77;
        got_broken += ps[i].rc == MPROC_E_BROKEN;
        if (ps[i].rc == 77)
            cr_assert_eq(ps[i].index, PARTIES - 1, "the action ran in a party that was not last");
    }
    cr_assert_eq(got77, 1, "exactly the party that ran the action gets its code");
    cr_assert_eq(got_broken, PARTIES - 1);
    cr_assert_eq(atomic_load(&rec.actions), 2, "the action runs once per round");
    check_broken_until_reset(&f);
    check_usable_after_reset(&f, &rec);
    unmake(&f);
}

Test(barrier_threads, failing_action_returns_its_code_to_its_party_and_breaks_the_rest_anonymous) {
    check_failing_action(false);
}
Test(barrier_threads, failing_action_returns_its_code_to_its_party_and_breaks_the_rest_named) {
    check_failing_action(true);
}


/* A lone sleeper in a 3-party barrier; the second party arrives with a
 * 0.1 s timeout (explicit, or the handle's default through
 * mproc_barrier_wait) and the third never comes: the second gets ETIMEDOUT
 * after 0.1 s, the sleeper MPROC_E_BROKEN, and the barrier stays broken until
 * reset(). */
static void check_timeout(bool named, bool by_default) {
    enum { PARTIES = 3 };
    static record rec;
    record_init(&rec);
    fixture f;
    make(&f, named, PARTIES, counting_action, &rec, by_default ? 0.1 : MPROC_FOREVER);
    party sleeper;
    start(&sleeper, &f, BOUND, 1, NULL);
    cr_assert_eq(settle(&f, &sleeper, 1), 1);
    unsigned index = UINT_MAX;
    double t0 = t_now();
    int rc = by_default ? mproc_barrier_wait(f.barrier, &index)
                        : mproc_barrier_wait_timeout(f.barrier, 0.1, &index);
    double returned = t_now();
    cr_assert_eq(rc, ETIMEDOUT, "%s", mproc_errname(rc));
    cr_assert_geq(returned - t0, 0.1);
    cr_assert_lt(returned - t0, 1.0); /* 0.1 s, with slack for a loaded 2-vCPU machine */
    cr_assert_eq(index, 1);
    join(&sleeper);
    cr_assert_eq(sleeper.rc, MPROC_E_BROKEN, "%s", mproc_errname(sleeper.rc));
    cr_assert_lt(sleeper.returned_at - returned, 0.5, "the break did not wake the sleeper");
    cr_assert_eq(atomic_load(&rec.actions), 0);
    check_broken_until_reset(&f);
    check_usable_after_reset(&f, &rec);
    unmake(&f);
}

Test(barrier_threads, timeout_gives_etimedout_to_its_party_and_breaks_the_others_anonymous) {
    check_timeout(false, false);
}
Test(barrier_threads, timeout_gives_etimedout_to_its_party_and_breaks_the_others_named) {
    check_timeout(true, false);
}
Test(barrier_threads, wait_uses_the_handles_default_timeout_anonymous) {
    check_timeout(false, true);
}
Test(barrier_threads, wait_uses_the_handles_default_timeout_named) {
    check_timeout(true, true);
}

/* The default is only a default: a party waiting with an explicit longer
 * timeout outlasts it. */
Test(barrier_threads, an_explicit_timeout_overrides_the_handles_default) {
    fixture f;
    make(&f, false, 2, NULL, NULL, 0.1);
    party sleeper;
    start(&sleeper, &f, BOUND, 1, NULL);
    cr_assert_eq(settle(&f, &sleeper, 1), 1);
    struct timespec pass = {0, 300 * 1000 * 1000}; /* let the 0.1 s default pass */
    nanosleep(&pass, NULL);
    cr_assert_eq(n_waiting(f.barrier), 1);
    cr_assert_eq(mproc_barrier_wait_timeout(f.barrier, BOUND, NULL), 0);
    join(&sleeper);
    cr_assert_eq(sleeper.rc, 0, "%s", mproc_errname(sleeper.rc));
    unmake(&f);
}

/* abort() or reset() while two of three parties sleep:
 * both get MPROC_E_BROKEN at once.  abort() leaves the barrier broken until
 * reset(); reset() leaves it whole. */
static void check_break_sleepers(bool named, bool by_abort) {
    enum { PARTIES = 3 };
    static record rec;
    record_init(&rec);
    fixture f;
    make(&f, named, PARTIES, counting_action, &rec, MPROC_FOREVER);
    party ps[2];
    start(&ps[0], &f, BOUND, 1, NULL);
    start(&ps[1], &f, BOUND, 1, NULL);
    cr_assert_eq(settle(&f, ps, 2), 2);
    double t0 = t_now();
    cr_assert_eq(by_abort ? mproc_barrier_abort(f.barrier) : mproc_barrier_reset(f.barrier), 0);
    for (int i = 0; i < 2; i++) {
        join(&ps[i]);
        cr_assert_eq(ps[i].rc, MPROC_E_BROKEN, "%s", mproc_errname(ps[i].rc));
        cr_assert_lt(ps[i].returned_at - t0, 0.5, "party %d was not woken", i);
    }
    cr_assert_eq(atomic_load(&rec.actions), 0);
    if (by_abort) {
        check_broken_until_reset(&f);
        check_usable_after_reset(&f, &rec);
    } else {
        cr_assert_eq(broken(f.barrier), 0);
        cr_assert_eq(n_waiting(f.barrier), 0);
        check_full_rounds(&f, PARTIES, 20, &rec);
    }
    unmake(&f);
}

Test(barrier_threads, abort_breaks_sleepers_and_later_waiters_until_reset_anonymous) {
    check_break_sleepers(false, true);
}
Test(barrier_threads, abort_breaks_sleepers_and_later_waiters_until_reset_named) {
    check_break_sleepers(true, true);
}
Test(barrier_threads, reset_breaks_sleepers_and_leaves_the_barrier_usable_anonymous) {
    check_break_sleepers(false, false);
}
Test(barrier_threads, reset_breaks_sleepers_and_leaves_the_barrier_usable_named) {
    check_break_sleepers(true, false);
}

/* A 2-party barrier with one sleeper; reset(), then at once two fresh
 * parties arrive.  The old sleeper must get MPROC_E_BROKEN even though a new
 * round can complete: new arrivals are held until the reset parties have
 * left, so none of them joins the old sleeper's round. */
Test(barrier_threads, reset_holds_new_arrivals_until_the_old_waiters_have_left) {
    fixture f;
    make(&f, false, 2, NULL, NULL, MPROC_FOREVER);
    party old, fresh;
    start(&old, &f, BOUND, 1, NULL);
    cr_assert_eq(settle(&f, &old, 1), 1);
    cr_assert_eq(mproc_barrier_reset(f.barrier), 0);
    start(&fresh, &f, BOUND, 1, NULL);
    unsigned index = UINT_MAX;
    cr_assert_eq(mproc_barrier_wait_timeout(f.barrier, BOUND, &index), 0);
    join(&old);
    join(&fresh);
    cr_assert_eq(old.rc, MPROC_E_BROKEN, "the reset sleeper was released: %s",
                 mproc_errname(old.rc));
    cr_assert_eq(fresh.rc, 0, "%s", mproc_errname(fresh.rc));
    cr_assert(index < 2 && fresh.index < 2 && index != fresh.index, "indices %u and %u", index,
              fresh.index);
    cr_assert_eq(broken(f.barrier), 0);
    unmake(&f);
}

/* ---- n_waiting ---- */

/* Parties arrive one at a time: n_waiting counts the sleepers, indices are
 * the order of arrival, and n_waiting is 0 once the round is over. */
static void check_n_waiting(bool named) {
    enum { PARTIES = 4 };
    fixture f;
    make(&f, named, PARTIES, NULL, NULL, MPROC_FOREVER);
    cr_assert_eq(n_waiting(f.barrier), 0);
    party ps[PARTIES - 1];
    for (unsigned k = 1; k < PARTIES; k++) {
        start(&ps[k - 1], &f, BOUND, 1, NULL);
        cr_assert_eq(settle(&f, ps, k), k);
    }
    unsigned index = UINT_MAX;
    cr_assert_eq(mproc_barrier_wait_timeout(f.barrier, BOUND, &index), 0);
    cr_assert_eq(index, PARTIES - 1);
    for (unsigned i = 0; i < PARTIES - 1; i++) {
        join(&ps[i]);
        cr_assert_eq(ps[i].rc, 0, "%s", mproc_errname(ps[i].rc));
        cr_assert_eq(ps[i].index, i, "arrival order");
    }
    cr_assert_eq(n_waiting(f.barrier), 0);
    cr_assert_eq(broken(f.barrier), 0);
    unmake(&f);
}

Test(barrier_threads, n_waiting_counts_the_sleeping_parties_anonymous) {
    check_n_waiting(false);
}
Test(barrier_threads, n_waiting_counts_the_sleeping_parties_named) {
    check_n_waiting(true);
}

/* ---- more threads than parties ---- */

/* 6 threads share 3 * ROUNDS waits on a 3-party barrier, so threads of the
 * next round keep arriving while the previous one drains.  Each thread takes
 * one ticket per wait; since a thread holds at most one ticket and the
 * tickets are a multiple of 3, the last waits always fill a round.  Every
 * wait must return 0, and each index must come out exactly ROUNDS times:
 * a thread let into a draining round would get index >= 3 or unbalance them. */
typedef struct stress {
    fixture *f;
    _Atomic int tickets;
    _Atomic unsigned by_index[3];
    _Atomic int failures;
    _Atomic int last_failure;
} stress;

static void *stress_main(void *arg) {
    stress *s = arg;
    mproc_barrier *b = s->f->barrier;
    if (s->f->name != NULL && mproc_barrier_open(&b, s->f->name, MPROC_ATTACH, 0, s->f->action,
                                                 s->f->arg, s->f->timeout, NULL) != 0) {
        atomic_fetch_add(&s->failures, 1);
        return NULL;
    }
    while (atomic_fetch_sub(&s->tickets, 1) > 0) {
        unsigned index = UINT_MAX;
        int rc = mproc_barrier_wait_timeout(b, BOUND, &index);
        if (rc != 0 || index >= 3) {
            atomic_fetch_add(&s->failures, 1);
            atomic_store(&s->last_failure, rc != 0 ? rc : -(int)index);
            break;
        }
        atomic_fetch_add(&s->by_index[index], 1);
    }
    if (b != s->f->barrier)
        mproc_barrier_close(b);
    return NULL;
}

static void check_more_threads_than_parties(bool named) {
    enum { THREADS = 6, ROUNDS = 600 };
    static record rec;
    record_init(&rec);
    fixture f;
    make(&f, named, 3, counting_action, &rec, MPROC_FOREVER);
    static stress s;
    memset(&s, 0, sizeof s);
    s.f = &f;
    atomic_store(&s.tickets, 3 * ROUNDS);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, stress_main, &s), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(threads[i], NULL), 0);
    cr_assert_eq(atomic_load(&s.failures), 0, "last failure %d (%s)", atomic_load(&s.last_failure),
                 mproc_errname(atomic_load(&s.last_failure)));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(atomic_load(&s.by_index[i]), ROUNDS, "index %d", i);
    cr_assert_eq(atomic_load(&rec.actions), ROUNDS);
    cr_assert_eq(n_waiting(f.barrier), 0);
    cr_assert_eq(broken(f.barrier), 0);
    unmake(&f);
}

Test(barrier_threads, more_threads_than_parties_never_mix_rounds_anonymous, .timeout = 50) {
    check_more_threads_than_parties(false);
}
Test(barrier_threads, more_threads_than_parties_never_mix_rounds_named, .timeout = 50) {
    check_more_threads_than_parties(true);
}
