/* SPDX-License-Identifier: MIT */
/*
 * JoinableQueue between the threads of one process: join's codes and
 * timeouts, task_done past what was got (EOVERFLOW, nothing changed), the
 * unfinished count at every step, task_done from another thread than the
 * get (one record per process), joiners woken by the last task_done (by the
 * wake, not by the next 50 ms slice), and a producers/consumers run in which
 * join returning 0 proves that every item of the joiner was processed.
 * No fork here: this file also runs under ThreadSanitizer.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

static mproc_queue *make(size_t maxsize) {
    mproc_queue_options opts = {.capacity = 1 << 16};
    mproc_queue *queue = NULL;
    int rc = mproc_joinable_queue_create(&queue, maxsize, &opts);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
    return queue;
}

static uint64_t unfinished(mproc_queue *queue) {
    uint64_t count = UINT64_MAX;
    cr_assert_eq(mproc_queue_unfinished(queue, &count), 0);
    return count;
}

static uint64_t abandoned(mproc_queue *queue) {
    uint64_t count = UINT64_MAX;
    cr_assert_eq(mproc_queue_abandoned(queue, &count), 0);
    return count;
}

static void put_int(mproc_queue *queue, int value) {
    cr_assert_eq(mproc_queue_put(queue, &value, sizeof value, BOUND), 0);
}

static int get_int(mproc_queue *queue) {
    int value = -1;
    size_t len = 0;
    int rc = mproc_queue_get(queue, &value, sizeof value, &len, BOUND);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
    cr_assert_eq(len, sizeof value);
    return value;
}

/* ---- codes and counts ---- */

Test(joinable_threads, join_is_immediate_when_empty_and_times_out_while_tasks_are_open) {
    mproc_queue *queue = make(0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0, "a fresh queue has no task");
    cr_assert_eq(mproc_queue_join(queue, MPROC_FOREVER), 0);
    for (int i = 0; i < 3; i++)
        put_int(queue, i);
    double t0 = t_now();
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT);
    cr_assert_lt(t_now() - t0, 0.05, "join(0) must not wait");
    t0 = t_now();
    cr_assert_eq(mproc_queue_join(queue, 0.1), ETIMEDOUT);
    double waited = t_now() - t0;
    cr_assert_geq(waited, 0.1);
    cr_assert_lt(waited, 1.0); /* loose: a loaded 2-vCPU machine */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(get_int(queue), i);
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT, "got is not done");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(mproc_queue_task_done(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(mproc_queue_join(queue, BOUND), 0);
    /* One task_done too many: refused, and nothing moves. */
    cr_assert_eq(mproc_queue_task_done(queue), EOVERFLOW);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    /* The refused call did not bank a credit for the next item either. */
    put_int(queue, 7);
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT);
    cr_assert_eq(unfinished(queue), 1);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

Test(joinable_threads, task_done_without_a_get_is_eoverflow) {
    mproc_queue *queue = make(0);
    cr_assert_eq(mproc_queue_task_done(queue), EOVERFLOW, "fresh queue");
    put_int(queue, 1);
    cr_assert_eq(mproc_queue_task_done(queue), EOVERFLOW, "put alone is not a get");
    cr_assert_eq(unfinished(queue), 1);
    cr_assert_eq(get_int(queue), 1);
    cr_assert_eq(mproc_queue_task_done(queue), 0);
    /* A get that found nothing claims no item. */
    size_t len;
    int value;
    cr_assert_eq(mproc_queue_get(queue, &value, sizeof value, &len, 0), MPROC_E_EMPTY);
    cr_assert_eq(mproc_queue_task_done(queue), EOVERFLOW);
    /* ENOBUFS leaves the message queued: no item got, nothing to finish. */
    put_int(queue, 2);
    char small[1];
    cr_assert_eq(mproc_queue_get(queue, small, sizeof small, &len, 0), ENOBUFS);
    cr_assert_eq(len, sizeof(int));
    cr_assert_eq(mproc_queue_task_done(queue), EOVERFLOW);
    cr_assert_eq(unfinished(queue), 1);
    cr_assert_eq(get_int(queue), 2);
    cr_assert_eq(mproc_queue_task_done(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* unfinished == puts - task_done calls after every step; a get moves a
 * task from queued to taken and changes nothing; qsize follows the gets. */
Test(joinable_threads, unfinished_counts_puts_minus_task_dones_at_every_step) {
    mproc_queue *queue = make(0);
    /* 'p': put n items, 'g': get n, 'd': n task_done calls */
    static const struct step {
        char op;
        int n;
    } steps[] = {{'p', 3}, {'g', 1}, {'d', 1}, {'g', 2}, {'p', 2}, {'d', 1},
                 {'g', 1}, {'d', 2}, {'p', 1}, {'g', 2}, {'d', 2}};
    int puts = 0, gets = 0, dones = 0;
    cr_assert_eq(unfinished(queue), 0);
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        for (int i = 0; i < steps[s].n; i++) {
            if (steps[s].op == 'p')
                put_int(queue, puts++);
            else if (steps[s].op == 'g')
                cr_assert_eq(get_int(queue), gets++, "FIFO order");
            else {
                cr_assert_eq(mproc_queue_task_done(queue), 0, "step %zu", s);
                dones++;
            }
            cr_assert_eq(unfinished(queue), (uint64_t)(puts - dones), "step %zu", s);
            size_t qsize = 99;
            cr_assert_eq(mproc_queue_qsize(queue, &qsize), 0);
            cr_assert_eq(qsize, (size_t)(puts - gets), "step %zu", s);
            cr_assert_eq(mproc_queue_join(queue, 0), puts == dones ? 0 : ETIMEDOUT);
        }
    }
    cr_assert_eq(puts, 6);
    cr_assert_eq(dones, 6);
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

static void *get_one(void *arg) {
    int value = -1;
    size_t len = 0;
    int rc = mproc_queue_get(arg, &value, sizeof value, &len, BOUND);
    return (void *)(intptr_t)(rc == 0 ? value : -1000 - rc);
}

static void *task_done_once(void *arg) {
    return (void *)(intptr_t)mproc_queue_task_done(arg);
}

static intptr_t run_thread(void *(*fn)(void *), void *arg) {
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, fn, arg), 0);
    void *result;
    cr_assert_eq(pthread_join(thread, &result), 0); /* fn is bounded */
    return (intptr_t)result;
}

/* task_done belongs to the process, not the thread: an item got in one
 * thread is finished from another (Python's usual worker pattern). */
Test(joinable_threads, any_thread_of_the_getting_process_may_call_task_done) {
    mproc_queue *queue = make(0);
    put_int(queue, 41);
    put_int(queue, 42);
    cr_assert_eq(run_thread(get_one, queue), 41);
    cr_assert_eq(run_thread(get_one, queue), 42);
    cr_assert_eq(unfinished(queue), 2);
    cr_assert_eq(run_thread(task_done_once, queue), 0);
    cr_assert_eq(mproc_queue_task_done(queue), 0, "main thread, item got by another");
    cr_assert_eq(run_thread(task_done_once, queue), EOVERFLOW);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* Two handles on one name in one process share the process's record. */
Test(joinable_threads, named_handles_in_one_process_share_its_record) {
    const char *name = t_name("jqth");
    mproc_queue_options joinable = {.flags = MPROC_QUEUE_JOINABLE, .capacity = 1 << 16};
    mproc_queue *a, *b, *plain;
    cr_assert_eq(mproc_queue_open(&a, name, MPROC_CREATE | MPROC_EXCL, 0, &joinable), 0);
    cr_assert_eq(mproc_queue_open(&b, name, MPROC_ATTACH, 0, &joinable), 0);
    cr_assert_eq(mproc_queue_open(&plain, name, MPROC_ATTACH, 0, NULL), MPROC_E_KIND);
    put_int(a, 5);
    cr_assert_eq(get_int(b), 5);
    cr_assert_eq(unfinished(a), 1);
    cr_assert_eq(mproc_queue_join(a, 0), ETIMEDOUT);
    cr_assert_eq(mproc_queue_task_done(a), 0, "got through b, done through a");
    cr_assert_eq(mproc_queue_task_done(b), EOVERFLOW);
    cr_assert_eq(mproc_queue_join(b, 0), 0);
    cr_assert_eq(mproc_queue_close(a), 0);
    cr_assert_eq(mproc_queue_close(b), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

Test(joinable_threads, forgive_without_abandoned_tasks_is_einval) {
    mproc_queue *queue = make(0);
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(mproc_queue_forgive(queue, 1), EINVAL);
    cr_assert_eq(mproc_queue_forgive(queue, UINT64_MAX), EINVAL);
    cr_assert_eq(mproc_queue_forgive(queue, 0), 0, "forgiving nothing is fine");
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

Test(joinable_threads, joinable_calls_are_einval_on_null_and_other_queues) {
    uint64_t count = 77;
    cr_assert_eq(mproc_queue_task_done(NULL), EINVAL);
    cr_assert_eq(mproc_queue_join(NULL, 0), EINVAL);
    cr_assert_eq(mproc_queue_join(NULL, MPROC_FOREVER), EINVAL);
    cr_assert_eq(mproc_queue_unfinished(NULL, &count), EINVAL);
    cr_assert_eq(mproc_queue_abandoned(NULL, &count), EINVAL);
    cr_assert_eq(mproc_queue_forgive(NULL, 0), EINVAL);
    mproc_queue_options small = {.capacity = 1 << 16};
    mproc_queue *plain, *simple;
    cr_assert_eq(mproc_queue_create(&plain, 0, &small), 0);
    cr_assert_eq(mproc_simple_queue_create(&simple, &small), 0);
    mproc_queue *others[] = {plain, simple};
    for (int i = 0; i < 2; i++) {
        int value = 3;
        size_t len;
        cr_assert_eq(mproc_queue_put(others[i], &value, sizeof value, 0), 0);
        cr_assert_eq(mproc_queue_get(others[i], &value, sizeof value, &len, 0), 0);
        cr_assert_eq(mproc_queue_task_done(others[i]), EINVAL, "queue %d", i);
        cr_assert_eq(mproc_queue_join(others[i], 0), EINVAL, "queue %d", i);
        cr_assert_eq(mproc_queue_unfinished(others[i], &count), EINVAL, "queue %d", i);
        cr_assert_eq(mproc_queue_abandoned(others[i], &count), EINVAL, "queue %d", i);
        cr_assert_eq(mproc_queue_forgive(others[i], 0), EINVAL, "queue %d", i);
        cr_assert_eq(mproc_queue_close(others[i]), 0);
    }
    cr_assert_eq(count, 77, "no count written on EINVAL");
    /* max_consumers belongs to joinable queues only. */
    mproc_queue_options consumers = {.capacity = 1 << 16, .max_consumers = 2};
    cr_assert_eq(mproc_queue_create(&plain, 0, &consumers), EINVAL);
    consumers.max_consumers = MPROC_QUEUE_MAX_CONSUMERS + 1;
    cr_assert_eq(mproc_joinable_queue_create(&plain, 0, &consumers), EINVAL);

    mproc_queue *queue = make(0);
    cr_assert_eq(mproc_queue_unfinished(queue, NULL), EINVAL);
    cr_assert_eq(mproc_queue_abandoned(queue, NULL), EINVAL);
    cr_assert_eq(mproc_queue_join(queue, NAN), EINVAL, "NaN, nothing open");
    put_int(queue, 1);
    cr_assert_eq(mproc_queue_join(queue, NAN), EINVAL, "NaN, a task open");
    cr_assert_eq(unfinished(queue), 1);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* ---- joiners woken by the last task_done ---- */

typedef struct joiner {
    mproc_queue *queue;
    _Atomic pid_t tid;     /* 0 until the thread runs */
    _Atomic int rc;        /* join's result */
    _Atomic double returned_at;
} joiner;

static void *join_thread(void *arg) {
    joiner *j = arg;
    atomic_store(&j->tid, gettid());
    int rc = mproc_queue_join(j->queue, BOUND);
    atomic_store(&j->returned_at, t_now());
    atomic_store(&j->rc, rc);
    return NULL;
}

/* Starts joiners and returns once each sleeps in the kernel. */
static void start_joiners(joiner *js, pthread_t *threads, int n, mproc_queue *queue) {
    for (int i = 0; i < n; i++) {
        js[i] = (joiner){.queue = queue, .rc = -1};
        cr_assert_eq(pthread_create(&threads[i], NULL, join_thread, &js[i]), 0);
    }
    double end = t_now() + BOUND;
    for (int i = 0; i < n; i++) {
        while (atomic_load(&js[i].tid) == 0 && t_now() < end)
            sched_yield();
        cr_assert(t_wait_sleeping(atomic_load(&js[i].tid), end - t_now()),
                  "joiner %d never went to sleep", i);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* join also wakes at every 50 ms slice, so a missing wake-up would still
 * return.  The median latency over rounds tells the two apart: a woken
 * joiner returns in well under a millisecond; one that waits for its slice
 * returns after 25 ms on average. */
#define ROUNDS 9
#define WAKE_MEDIAN 0.010 /* s: loose, for a loaded 2-vCPU machine */

Test(joinable_threads, last_task_done_wakes_a_sleeping_joiner) {
    mproc_queue *queue = make(0);
    double latency[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        put_int(queue, r);
        put_int(queue, r);
        cr_assert_eq(get_int(queue), r);
        cr_assert_eq(get_int(queue), r);
        joiner j;
        pthread_t thread;
        start_joiners(&j, &thread, 1, queue);
        cr_assert_eq(mproc_queue_task_done(queue), 0);
        /* one task open: the joiner must stay asleep */
        cr_assert(t_wait_sleeping(atomic_load(&j.tid), BOUND));
        cr_assert_eq(atomic_load(&j.rc), -1, "join returned with a task open");
        double done_at = t_now();
        cr_assert_eq(mproc_queue_task_done(queue), 0);
        cr_assert_eq(pthread_join(thread, NULL), 0); /* join is bounded */
        cr_assert_eq(atomic_load(&j.rc), 0, "round %d: %s", r,
                     mproc_errname(atomic_load(&j.rc)));
        latency[r] = atomic_load(&j.returned_at) - done_at;
        cr_assert_lt(latency[r], 1.0, "round %d", r);
    }
    qsort(latency, ROUNDS, sizeof latency[0], cmp_double);
    cr_assert_lt(latency[ROUNDS / 2], WAKE_MEDIAN, "median wake latency %.4f s",
                 latency[ROUNDS / 2]);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

#define JOINERS 4

Test(joinable_threads, last_task_done_wakes_every_joiner) {
    mproc_queue *queue = make(0);
    put_int(queue, 1);
    cr_assert_eq(get_int(queue), 1);
    joiner js[JOINERS];
    pthread_t threads[JOINERS];
    start_joiners(js, threads, JOINERS, queue);
    double done_at = t_now();
    cr_assert_eq(mproc_queue_task_done(queue), 0);
    for (int i = 0; i < JOINERS; i++) {
        cr_assert_eq(pthread_join(threads[i], NULL), 0);
        cr_assert_eq(atomic_load(&js[i].rc), 0, "joiner %d", i);
        cr_assert_lt(atomic_load(&js[i].returned_at) - done_at, 1.0, "joiner %d", i);
    }
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* ---- producers and consumers ---- */

#define PRODUCERS 2
#define CONSUMERS 4
#define ITEMS 1500 /* per producer */

typedef struct item {
    uint32_t producer, seq;
} item;

typedef struct work {
    mproc_queue *queue;
    /* processed[p][s]: written by the one consumer that got (p, s), before
     * its task_done; plain ints, so ThreadSanitizer checks that join
     * returning 0 orders those writes before the producer's reads. */
    int processed[PRODUCERS][ITEMS];
    _Atomic int consumer_rc[CONSUMERS];
    _Atomic int producer_rc[PRODUCERS];
    _Atomic int missing[PRODUCERS]; /* items unprocessed when join returned 0 */
} work;

typedef struct role {
    work *w;
    int index;
} role;

static void *consume(void *arg) {
    role *r = arg;
    for (;;) {
        item it;
        size_t len;
        int rc = mproc_queue_get(r->w->queue, &it, sizeof it, &len, BOUND);
        if (rc != 0 || (len != 0 && len != sizeof it)) {
            atomic_store(&r->w->consumer_rc[r->index], rc != 0 ? rc : -1);
            return NULL;
        }
        if (len == sizeof it && it.producer < PRODUCERS && it.seq < ITEMS)
            r->w->processed[it.producer][it.seq]++;
        rc = mproc_queue_task_done(r->w->queue);
        if (rc != 0 || len == 0) { /* an empty message says stop */
            atomic_store(&r->w->consumer_rc[r->index], rc);
            return NULL;
        }
    }
}

static void *produce(void *arg) {
    role *r = arg;
    for (uint32_t s = 0; s < ITEMS; s++) {
        item it = {(uint32_t)r->index, s};
        int rc = mproc_queue_put(r->w->queue, &it, sizeof it, BOUND);
        if (rc != 0) {
            atomic_store(&r->w->producer_rc[r->index], rc);
            return NULL;
        }
    }
    int rc = mproc_queue_join(r->w->queue, BOUND);
    int missing = 0;
    for (int s = 0; rc == 0 && s < ITEMS; s++)
        missing += r->w->processed[r->index][s] != 1;
    atomic_store(&r->w->missing[r->index], missing);
    atomic_store(&r->w->producer_rc[r->index], rc);
    return NULL;
}

Test(joinable_threads, producers_join_after_consumers_processed_each_item_once, .timeout = 30) {
    work *w = calloc(1, sizeof *w);
    cr_assert_not_null(w);
    w->queue = make(16); /* bounded: puts block too */
    role consumers[CONSUMERS], producers[PRODUCERS];
    pthread_t ct[CONSUMERS], pt[PRODUCERS];
    for (int i = 0; i < CONSUMERS; i++) {
        consumers[i] = (role){w, i};
        atomic_store(&w->consumer_rc[i], -1);
        cr_assert_eq(pthread_create(&ct[i], NULL, consume, &consumers[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        producers[i] = (role){w, i};
        atomic_store(&w->producer_rc[i], -1);
        cr_assert_eq(pthread_create(&pt[i], NULL, produce, &producers[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        cr_assert_eq(pthread_join(pt[i], NULL), 0); /* puts and join are bounded */
        cr_assert_eq(atomic_load(&w->producer_rc[i]), 0, "producer %d: %s", i,
                     mproc_errname(atomic_load(&w->producer_rc[i])));
        cr_assert_eq(atomic_load(&w->missing[i]), 0, "producer %d", i);
    }
    for (int i = 0; i < CONSUMERS; i++)
        cr_assert_eq(mproc_queue_put(w->queue, NULL, 0, BOUND), 0);
    for (int i = 0; i < CONSUMERS; i++) {
        cr_assert_eq(pthread_join(ct[i], NULL), 0); /* gets are bounded */
        cr_assert_eq(atomic_load(&w->consumer_rc[i]), 0, "consumer %d", i);
    }
    for (int p = 0; p < PRODUCERS; p++)
        for (int s = 0; s < ITEMS; s++)
            cr_assert_eq(w->processed[p][s], 1, "item (%d, %d)", p, s);
    cr_assert_eq(mproc_queue_join(w->queue, 0), 0, "the stop messages are done too");
    cr_assert_eq(unfinished(w->queue), 0);
    cr_assert_eq(abandoned(w->queue), 0);
    cr_assert_eq(mproc_queue_task_done(w->queue), EOVERFLOW);
    cr_assert_eq(mproc_queue_close(w->queue), 0);
    free(w);
}

/* ---- join(0) while others inspect the queue ---- */

typedef struct prober {
    mproc_queue *queue;
    _Atomic bool stop;
    _Atomic int bad; /* unfinished() calls that failed or saw a task */
} prober;

static void *probe_unfinished(void *arg) {
    prober *p = arg;
    while (!atomic_load(&p->stop)) {
        uint64_t count;
        if (mproc_queue_unfinished(p->queue, &count) != 0 || count != 0)
            atomic_fetch_add(&p->bad, 1);
    }
    return NULL;
}

/* Every task is done, so join(0) has its answer: another thread calling
 * unfinished() (which reaps under the registry lock) must not turn it into
 * ETIMEDOUT. */
Test(joinable_threads, join_zero_on_a_finished_queue_is_zero_while_others_inspect_it) {
    mproc_queue *queue = make(0);
    put_int(queue, 1);
    cr_assert_eq(get_int(queue), 1);
    cr_assert_eq(mproc_queue_task_done(queue), 0);
    prober p = {.queue = queue};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, probe_unfinished, &p), 0);
    int timeouts = 0, others = 0, calls = 0;
    double end = t_now() + 0.5;
    while (t_now() < end) {
        int rc = mproc_queue_join(queue, 0);
        calls++;
        timeouts += rc == ETIMEDOUT;
        others += rc != 0 && rc != ETIMEDOUT;
    }
    atomic_store(&p.stop, true);
    cr_assert_eq(pthread_join(thread, NULL), 0);
    cr_assert_eq(atomic_load(&p.bad), 0);
    cr_assert_eq(others, 0);
    cr_assert_eq(timeouts, 0, "join(0) said ETIMEDOUT %d times in %d calls", timeouts, calls);
    cr_assert_eq(mproc_queue_close(queue), 0);
}
