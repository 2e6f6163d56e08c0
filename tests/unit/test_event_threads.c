/* SPDX-License-Identifier: MIT */
/*
 * Event between the threads of one process, anonymous and named: the flag,
 * wait's timeouts and codes, set() waking every sleeper, set() then clear()
 * still releasing everyone who was waiting (Python's test_set_and_clear),
 * late arrivals blocking again, and a ping-pong that must lose no wake-up.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

typedef struct fixture {
    mproc_event *event;
    const char *name; /* NULL: anonymous */
} fixture;

static void make(fixture *f, bool named) {
    f->name = named ? t_name("evth") : NULL;
    int rc = named ? mproc_event_open(&f->event, f->name, MPROC_CREATE | MPROC_EXCL, NULL)
                   : mproc_event_create(&f->event, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
}

static void unmake(fixture *f) {
    cr_assert_eq(mproc_event_close(f->event), 0);
    if (f->name != NULL)
        cr_assert_eq(mproc_unlink(f->name), 0);
}

static int is_set(const mproc_event *event) {
    int set = -1;
    cr_assert_eq(mproc_event_is_set(event, &set), 0);
    return set;
}

/* Lets time pass; used only where a test proves that nothing happens. */
static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- the flag and the codes ---- */

static void check_flag(bool named) {
    fixture f;
    make(&f, named);
    cr_assert_eq(is_set(f.event), 0, "a new event starts clear");
    double t0 = t_now();
    cr_assert_eq(mproc_event_wait(f.event, 0), ETIMEDOUT);
    cr_assert_lt(t_now() - t0, 0.05, "wait(0) must not wait");
    t0 = t_now();
    cr_assert_eq(mproc_event_wait(f.event, 0.1), ETIMEDOUT);
    double waited = t_now() - t0;
    cr_assert_geq(waited, 0.1);
    cr_assert_lt(waited, 1.0); /* loose: a loaded 2-vCPU machine */
    cr_assert_eq(mproc_event_set(f.event), 0);
    cr_assert_eq(is_set(f.event), 1);
    cr_assert_eq(mproc_event_wait(f.event, 0), 0);
    cr_assert_eq(mproc_event_wait(f.event, 0.1), 0);
    cr_assert_eq(mproc_event_wait(f.event, MPROC_FOREVER), 0);
    cr_assert_eq(is_set(f.event), 1, "wait does not consume the flag");
    cr_assert_eq(mproc_event_clear(f.event), 0);
    cr_assert_eq(is_set(f.event), 0);
    cr_assert_eq(mproc_event_wait(f.event, 0), ETIMEDOUT);
    cr_assert_eq(mproc_event_clear(f.event), 0, "clearing a clear event is fine");
    cr_assert_eq(is_set(f.event), 0);
    unmake(&f);
}

Test(event_threads, starts_clear_and_set_clear_wait_behave_anonymous) { check_flag(false); }
Test(event_threads, starts_clear_and_set_clear_wait_behave_named) { check_flag(true); }

Test(event_threads, repeated_set_is_idempotent_and_one_clear_undoes_it) {
    fixture f;
    make(&f, false);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(mproc_event_set(f.event), 0);
    cr_assert_eq(is_set(f.event), 1);
    cr_assert_eq(mproc_event_clear(f.event), 0); /* a flag, not a counter */
    cr_assert_eq(is_set(f.event), 0);
    cr_assert_eq(mproc_event_wait(f.event, 0), ETIMEDOUT);
    unmake(&f);
}

Test(event_threads, null_nan_and_reserved_options_are_einval) {
    mproc_event *event = NULL;
    mproc_event_options reserved = {.reserved = {[6] = 1}};
    const char *name = t_name("evarg");
    cr_assert_eq(mproc_event_create(NULL, NULL), EINVAL);
    cr_assert_eq(mproc_event_create(&event, &reserved), EINVAL);
    cr_assert_eq(mproc_event_open(NULL, name, MPROC_CREATE, NULL), EINVAL);
    cr_assert_eq(mproc_event_open(&event, NULL, MPROC_CREATE, NULL), EINVAL);
    cr_assert_eq(mproc_event_open(&event, name, MPROC_CREATE, &reserved), EINVAL);
    cr_assert_eq(mproc_unlink(name), ENOENT);
    cr_assert_null(event);
    int set;
    cr_assert_eq(mproc_event_set(NULL), EINVAL);
    cr_assert_eq(mproc_event_clear(NULL), EINVAL);
    cr_assert_eq(mproc_event_is_set(NULL, &set), EINVAL);
    cr_assert_eq(mproc_event_wait(NULL, 0), EINVAL);
    cr_assert_eq(mproc_event_wait(NULL, MPROC_FOREVER), EINVAL);
    cr_assert_eq(mproc_event_close(NULL), EINVAL);
    cr_assert_eq(mproc_event_create(&event, NULL), 0);
    cr_assert_eq(mproc_event_is_set(event, NULL), EINVAL);
    /* NaN is EINVAL whether the flag is clear or set. */
    cr_assert_eq(mproc_event_wait(event, NAN), EINVAL);
    cr_assert_eq(mproc_event_set(event), 0);
    cr_assert_eq(mproc_event_wait(event, NAN), EINVAL);
    cr_assert_eq(is_set(event), 1);
    cr_assert_eq(mproc_event_close(event), 0);
}

Test(event_threads, two_handles_on_one_name_share_the_flag) {
    const char *name = t_name("ev2h");
    mproc_event *a, *b;
    cr_assert_eq(mproc_event_open(&a, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
    cr_assert_eq(mproc_event_open(&b, name, MPROC_ATTACH, NULL), 0);
    cr_assert_eq(mproc_event_set(a), 0);
    cr_assert_eq(is_set(b), 1);
    cr_assert_eq(mproc_event_wait(b, 0), 0);
    cr_assert_eq(mproc_event_clear(b), 0);
    cr_assert_eq(is_set(a), 0);
    cr_assert_eq(mproc_event_close(a), 0);
    cr_assert_eq(mproc_event_close(b), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

/* ---- waking ---- */

struct waiter {
    mproc_event *event;
    double timeout;
    _Atomic pid_t tid; /* 0 until the thread runs */
    _Atomic int rc;    /* -1 until its wait returns */
};

static void *wait_for_set(void *arg) {
    struct waiter *w = arg;
    atomic_store(&w->tid, gettid());
    atomic_store(&w->rc, mproc_event_wait(w->event, w->timeout));
    return NULL;
}

/* Starts a thread in wait(), and returns once it sleeps in the kernel (so
 * set() must wake it, not merely be seen by a spinner). */
static void start_sleeper(struct waiter *w, pthread_t *th, mproc_event *event, double timeout) {
    w->event = event;
    w->timeout = timeout;
    atomic_init(&w->tid, 0);
    atomic_init(&w->rc, -1);
    cr_assert_eq(pthread_create(th, NULL, wait_for_set, w), 0);
    double end = t_now() + BOUND;
    while (atomic_load(&w->tid) == 0 && t_now() < end)
        sched_yield();
    cr_assert_neq(atomic_load(&w->tid), 0);
    cr_assert(t_wait_sleeping(atomic_load(&w->tid), BOUND), "waiter never went to sleep");
}

static int returned(struct waiter *w, int n) {
    int count = 0;
    for (int i = 0; i < n; i++)
        count += atomic_load(&w[i].rc) != -1;
    return count;
}

static int await_returned(struct waiter *w, int n, int want) {
    double end = t_now() + BOUND;
    while (returned(w, n) < want && t_now() < end)
        sched_yield();
    return returned(w, n);
}

#define SLEEPERS 8

/* Parks every sleeper in a signal handler that blocks until the gate opens
 * (the signal takes it off the futex; the handler runs inside its wait()),
 * so none can run between set() and a clear() that follows: each then finds
 * the flag already down, and only the generation tells it that a set()
 * happened while it waited.  Without this a woken sleeper usually runs at
 * once and sees the flag up, and the test could not tell a missing
 * generation from a working one. */
static t_pipe park_gate;
static _Atomic int parked;

static void park(int sig) {
    (void)sig;
    int saved = errno;
    atomic_fetch_add(&parked, 1);
    char byte;
    while (read(park_gate.rd, &byte, 1) < 0 && errno == EINTR) {
    }
    errno = saved;
}

static void park_all(pthread_t *th, int n) {
    t_pipe_open(&park_gate);
    atomic_store(&parked, 0);
    struct sigaction sa = {.sa_handler = park};
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(pthread_kill(th[i], SIGUSR1), 0);
    double end = t_now() + BOUND;
    while (atomic_load(&parked) < n && t_now() < end)
        sched_yield();
    cr_assert_eq(atomic_load(&parked), n);
}

static void unpark_all(int n) {
    for (int i = 0; i < n; i++)
        t_signal(&park_gate, 'g');
}

/* Eight sleepers; set() (then clear() at once, when `clear_after`; with
 * the sleepers parked first, when `parked`) must release all eight with 0. */
static void check_set_wakes_all(bool named, bool clear_after, bool parked_first) {
    fixture f;
    make(&f, named);
    struct waiter w[SLEEPERS];
    pthread_t th[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        start_sleeper(&w[i], &th[i], f.event, BOUND);
    if (parked_first)
        park_all(th, SLEEPERS);
    double t0 = t_now();
    cr_assert_eq(mproc_event_set(f.event), 0);
    if (clear_after)
        cr_assert_eq(mproc_event_clear(f.event), 0);
    if (parked_first)
        unpark_all(SLEEPERS);
    cr_assert_eq(await_returned(w, SLEEPERS, SLEEPERS), SLEEPERS);
    /* Wake-ups take tens of microseconds; 0.5 s leaves room for load. */
    cr_assert_lt(t_now() - t0, 0.5);
    for (int i = 0; i < SLEEPERS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(atomic_load(&w[i].rc), 0, "waiter %d", i);
    }
    cr_assert_eq(is_set(f.event), clear_after ? 0 : 1);
    if (parked_first)
        t_pipe_close(&park_gate);
    unmake(&f);
}

Test(event_threads, set_wakes_every_sleeper_anonymous) {
    check_set_wakes_all(false, false, false);
}
Test(event_threads, set_wakes_every_sleeper_named) { check_set_wakes_all(true, false, false); }
Test(event_threads, set_then_clear_at_once_still_releases_every_sleeper_anonymous) {
    check_set_wakes_all(false, true, false);
}
Test(event_threads, set_then_clear_at_once_still_releases_every_sleeper_named) {
    check_set_wakes_all(true, true, false);
}
Test(event_threads, set_then_clear_releases_sleepers_that_could_not_run_in_between) {
    check_set_wakes_all(false, true, true);
    check_set_wakes_all(true, true, true);
}

Test(event_threads, waiters_arriving_after_clear_block_until_the_next_set) {
    fixture f;
    make(&f, false);
    cr_assert_eq(mproc_event_set(f.event), 0);
    cr_assert_eq(mproc_event_clear(f.event), 0);
    /* The earlier set does not count for a newcomer. */
    cr_assert_eq(mproc_event_wait(f.event, 0.05), ETIMEDOUT);
    struct waiter w;
    pthread_t th;
    start_sleeper(&w, &th, f.event, BOUND);
    nap(0.05);
    cr_assert_eq(atomic_load(&w.rc), -1, "a late waiter must stay blocked");
    cr_assert(t_wait_sleeping(atomic_load(&w.tid), BOUND));
    cr_assert_eq(mproc_event_set(f.event), 0);
    cr_assert_eq(await_returned(&w, 1, 1), 1);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&w.rc), 0);
    unmake(&f);
}

Test(event_threads, a_sleeping_wait_times_out_in_bound_and_a_later_set_still_works) {
    fixture f;
    make(&f, false);
    struct waiter w;
    pthread_t th;
    double t0 = t_now();
    start_sleeper(&w, &th, f.event, 0.5);
    pthread_join(th, NULL);
    double waited = t_now() - t0;
    cr_assert_eq(atomic_load(&w.rc), ETIMEDOUT);
    cr_assert_geq(waited, 0.5);
    cr_assert_lt(waited, 1.5); /* loose: a loaded 2-vCPU machine */
    /* Its WAITERS mark, if left behind, costs at most a spare wake call. */
    cr_assert_eq(mproc_event_set(f.event), 0);
    cr_assert_eq(mproc_event_wait(f.event, 0), 0);
    unmake(&f);
}

/* ---- stress ---- */

#define ROUNDS 20000

struct pingpong {
    mproc_event *ping, *pong;
    long rounds; /* plain: written by the ponger, read by the pinger after pong */
    _Atomic int errors;
};

static void *ponger(void *arg) {
    struct pingpong *p = arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (mproc_event_wait(p->ping, BOUND) != 0) {
            atomic_fetch_add(&p->errors, 1);
            return NULL;
        }
        mproc_event_clear(p->ping);
        p->rounds++;
        mproc_event_set(p->pong);
    }
    return NULL;
}

/* Each round: set(ping), wait(pong), clear(pong); the other side answers.
 * A lost wake-up would stall a wait until BOUND and show as an error. */
static void check_pingpong(bool named) {
    fixture ping, pong;
    make(&ping, named);
    make(&pong, named);
    struct pingpong p = {.ping = ping.event, .pong = pong.event};
    atomic_init(&p.errors, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, ponger, &p), 0);
    int completed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        cr_assert_eq(mproc_event_set(p.ping), 0);
        if (mproc_event_wait(p.pong, BOUND) != 0)
            break;
        cr_assert_eq(mproc_event_clear(p.pong), 0);
        /* set/wait order the ponger's plain write before our read. */
        cr_assert_eq(p.rounds, (long)i + 1);
        completed++;
    }
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&p.errors), 0);
    cr_assert_eq(completed, ROUNDS);
    cr_assert_eq(p.rounds, (long)ROUNDS);
    unmake(&ping);
    unmake(&pong);
}

Test(event_threads, ping_pong_through_two_events_loses_no_round_anonymous) {
    check_pingpong(false);
}
Test(event_threads, ping_pong_through_two_events_loses_no_round_named) { check_pingpong(true); }
