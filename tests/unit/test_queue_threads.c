/* SPDX-License-Identifier: MIT */
/*
 * Queue and SimpleQueue between the threads of one process, anonymous and
 * named (threads of a named queue use handles of their own, opened by name):
 *   - messages of every length from 0 to max_message() round-trip exactly;
 *     max + 1 is EMSGSIZE and changes nothing;
 *   - FIFO order, codes and qsize/empty/full are exact against a model of
 *     the ring's bytes (layout.h: 8-byte headers, payload padded to 8, a PAD
 *     record when a record does not fit before the ring's end) over many
 *     wraps of a 4096-byte ring;
 *   - maxsize counts messages, the byte capacity bounds every queue, and
 *     full() says so when the bytes run out;
 *   - timeouts: nowait answers at once, a timed call waits its timeout;
 *     blocked calls proceed when the other side acts;
 *   - ENOBUFS leaves the message at the head; get_alloc; NULL buffers;
 *   - shutdown: puts refused, gets drain then MPROC_E_CLOSED, sleepers woken;
 *   - argument checks; SimpleQueue; 4 producers x 4 consumers.
 *
 * "Asleep" is proved, not slept for: t_wait_sleeping() sees the thread
 * blocked in the kernel, which can only be inside the queue call it made.
 * Threads never assert: they record codes, and the test thread asserts after
 * a bounded wait or a join.  No fork here: this file also runs under TSan.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */
/* A woken sleeper returns in microseconds; the 2-vCPU CI runs other suites
 * alongside, so "at once" is asserted as < WAKE_SLACK. */
#define WAKE_SLACK 0.5
#define SMALL 4096 /* the smallest ring: cheap to fill, wraps often */
#define SMALL_MAX (SMALL / 2 - 8)

static const mproc_queue_options small_ring = {.capacity = SMALL};

/* ---- fixture: an anonymous or named queue ---- */

typedef struct fx {
    bool named;
    char name[96];
    mproc_queue *q;
} fx;

static void fx_open(fx *f, bool named, size_t maxsize, const mproc_queue_options *opts) {
    memset(f, 0, sizeof *f);
    f->named = named;
    int rc;
    if (named) {
        snprintf(f->name, sizeof f->name, "%s", t_name("qth"));
        rc = mproc_queue_open(&f->q, f->name, MPROC_CREATE | MPROC_EXCL, maxsize, opts);
    } else {
        rc = mproc_queue_create(&f->q, maxsize, opts);
    }
    cr_assert_eq(rc, 0, "%s", mproc_errname(rc));
}

/* A handle for another thread: its own open of the name (0/0 attaches to
 * whatever geometry the queue has), or the shared anonymous handle. */
static mproc_queue *fx_handle(fx *f) {
    if (!f->named)
        return f->q;
    mproc_queue *q = NULL;
    int rc = mproc_queue_open(&q, f->name, MPROC_ATTACH, 0, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_errname(rc));
    return q;
}

static void fx_drop(fx *f, mproc_queue *q) {
    if (q != f->q)
        cr_assert_eq(mproc_queue_close(q), 0);
}

static void fx_free(fx *f) {
    cr_assert_eq(mproc_queue_close(f->q), 0);
    if (f->named)
        cr_assert_eq(mproc_unlink(f->name), 0);
}

/* Each scenario as two tests, on an anonymous and on a named queue. */
#define BOTH(suite, test, fn, seconds)                                                             \
    Test(suite, test##_anonymous, .timeout = (seconds)) { fn(false); }                             \
    Test(suite, test##_named, .timeout = (seconds)) { fn(true); }

/* ---- messages ---- */

/* Byte i of message (who, seq): every byte depends on all three, so a torn,
 * shifted or swapped message fails the comparison. */
static unsigned char pattern(uint32_t who, uint32_t seq, size_t i) {
    return (unsigned char)(who * 151u + seq * 31u + i * 7u + (i >> 8) + 1u);
}

static void make_msg(unsigned char *buf, uint32_t who, uint32_t seq, size_t len) {
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(who, seq, i);
}

static bool is_msg(const unsigned char *buf, uint32_t who, uint32_t seq, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pattern(who, seq, i))
            return false;
    return true;
}

/* qsize, empty and full are exactly these (a macro: failures name the line). */
#define expect_state(q, qsize, empty, full) expect_state_at(__LINE__, q, qsize, empty, full)
static void expect_state_at(int line, const mproc_queue *q, size_t qsize, int empty, int full) {
    size_t n = 99;
    int e = -1, fl = -1;
    cr_assert_eq(mproc_queue_qsize(q, &n), 0);
    cr_assert_eq(mproc_queue_empty(q, &e), 0);
    cr_assert_eq(mproc_queue_full(q, &fl), 0);
    cr_assert(n == qsize && e == empty && fl == full,
              "line %d: qsize %zu empty %d full %d, expected %zu %d %d", line, n, e, fl,
              (size_t)(qsize), empty, full);
}

/* ---- a call made in another thread ---- */

enum { OP_PUT, OP_GET };

typedef struct call {
    mproc_queue *q;
    int op;
    double timeout;
    unsigned char buf[64]; /* put: the message; get: what came */
    size_t len;
    _Atomic pid_t tid; /* 0 until the thread runs */
    _Atomic int rc;    /* -1 until the call returned */
    double returned_at;
    pthread_t thread;
} call;

static void *call_main(void *arg) {
    call *c = arg;
    atomic_store(&c->tid, gettid());
    int rc = c->op == OP_PUT ? mproc_queue_put(c->q, c->buf, c->len, c->timeout)
                             : mproc_queue_get(c->q, c->buf, sizeof c->buf, &c->len, c->timeout);
    c->returned_at = t_now();
    atomic_store(&c->rc, rc);
    return NULL;
}

/* Starts put (of `len` bytes of message (9, seq)) or get in a thread, and
 * returns once that thread sleeps in the kernel, inside the call. */
static void start_asleep(call *c, mproc_queue *q, int op, double timeout, uint32_t seq,
                         size_t len) {
    memset(c, 0, sizeof *c);
    c->q = q;
    c->op = op;
    c->timeout = timeout;
    c->len = len;
    if (op == OP_PUT)
        make_msg(c->buf, 9, seq, len);
    atomic_store(&c->rc, -1);
    cr_assert_eq(pthread_create(&c->thread, NULL, call_main, c), 0);
    double end = t_now() + BOUND;
    while (atomic_load(&c->tid) == 0 && t_now() < end)
        sched_yield();
    cr_assert_neq(atomic_load(&c->tid), 0, "thread did not start");
    cr_assert(t_wait_sleeping(atomic_load(&c->tid), BOUND), "call never went to sleep");
    cr_assert_eq(atomic_load(&c->rc), -1, "call returned instead of blocking");
}

/* The call's code, once it returned (within `bound` s), thread joined. */
static int finish(call *c, double bound) {
    double end = t_now() + bound;
    while (atomic_load(&c->rc) == -1 && t_now() < end)
        sched_yield();
    int rc = atomic_load(&c->rc);
    cr_assert_neq(rc, -1, "the blocked call did not return within %.1f s", bound);
    cr_assert_eq(pthread_join(c->thread, NULL), 0);
    return rc;
}

static void put_msg(mproc_queue *q, uint32_t who, uint32_t seq, size_t len) {
    unsigned char buf[SMALL];
    cr_assert_leq(len, sizeof buf);
    make_msg(buf, who, seq, len);
    int rc = mproc_queue_put(q, buf, len, 0);
    cr_assert_eq(rc, 0, "%s", mproc_errname(rc));
}

static void get_msg(mproc_queue *q, uint32_t who, uint32_t seq, size_t len) {
    unsigned char buf[SMALL];
    size_t got = 12345;
    int rc = mproc_queue_get(q, buf, sizeof buf, &got, 0);
    cr_assert_eq(rc, 0, "%s", mproc_errname(rc));
    cr_assert_eq(got, len);
    cr_assert(is_msg(buf, who, seq, len), "message (%u, %u) damaged", who, seq);
}

/* ---- lengths ---- */

static void every_length_round_trips(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    cr_assert_eq(mproc_queue_max_message(f.q), SMALL_MAX);
    cr_assert_eq(mproc_queue_maxsize(f.q), 0);
    mproc_queue *other = fx_handle(&f);
    unsigned char in[SMALL_MAX], out[SMALL_MAX + 8];
    for (size_t len = 0; len <= SMALL_MAX; len++) {
        make_msg(in, 1, (uint32_t)len, len);
        cr_assert_eq(mproc_queue_put(f.q, in, len, 0), 0, "len %zu", len);
        memset(out, 0, sizeof out);
        size_t got = 12345;
        cr_assert_eq(mproc_queue_get(other, out, sizeof out, &got, 0), 0, "len %zu", len);
        cr_assert_eq(got, len);
        cr_assert(is_msg(out, 1, (uint32_t)len, len), "len %zu", len);
        cr_assert_eq(out[len], 0, "len %zu: wrote past the message", len);
    }
    /* The empty message: rc 0 and *len 0, with msg NULL too. */
    cr_assert_eq(mproc_queue_put(f.q, NULL, 0, 0), 0);
    size_t got = 77;
    cr_assert_eq(mproc_queue_get(other, out, sizeof out, &got, 0), 0);
    cr_assert_eq(got, 0);
    expect_state(f.q, 0, 1, 0);
    fx_drop(&f, other);
    fx_free(&f);
}
BOTH(queue_threads, every_length_from_empty_to_max_message_round_trips, every_length_round_trips,
     30)

static void oversized_message(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    put_msg(f.q, 1, 0, 3);
    unsigned char big[SMALL_MAX + 1] = {0};
    cr_assert_eq(mproc_queue_put(f.q, big, SMALL_MAX + 1, 0), EMSGSIZE);
    cr_assert_eq(mproc_queue_put(f.q, big, SMALL_MAX + 1, BOUND), EMSGSIZE); /* not FULL */
    cr_assert_eq(mproc_queue_put_nowait(f.q, big, SIZE_MAX), EMSGSIZE);
    expect_state(f.q, 1, 0, 0);
    get_msg(f.q, 1, 0, 3);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_threads, a_message_over_max_message_is_emsgsize_and_changes_nothing, oversized_message,
     30)

/* ---- FIFO over many wraps, against a byte model of the ring ---- */

/* The ring as layout.h defines it: positions grow without bound; a record
 * is 8 + payload rounded up to 8; one that would cross the end is preceded
 * by a PAD filling the rest of the ring. */
typedef struct model {
    uint64_t head, tail;
    uint32_t next_put, next_get;
    uint32_t bytes[1024]; /* ring bytes each queued message took, by seq % 1024 */
    unsigned pads;
} model;

static uint32_t record_bytes(size_t len) { return (uint32_t)(8 + ((len + 7) & ~(size_t)7)); }

/* Bytes a put of `len` takes now (PAD included), or 0 if it does not fit. */
static uint32_t model_fits(const model *m, size_t len, bool *pad) {
    uint32_t need = record_bytes(len), off = (uint32_t)(m->tail % SMALL), to_end = SMALL - off;
    uint32_t total = need <= to_end ? need : to_end + need;
    *pad = need > to_end;
    return SMALL - (m->tail - m->head) >= total ? total : 0;
}

/* Lengths that exercise padding: 0, around 8, odd, and up to the largest. */
static size_t length_of(uint32_t seq) {
    static const size_t lengths[] = {0,   1,   5,   7,    8,    9,    63,
                                     100, 255, 600, 1000, 1500, 2039, SMALL_MAX};
    uint32_t h = seq * 2654435761u;
    return lengths[(h >> 16) % (sizeof lengths / sizeof lengths[0])];
}

static void fifo_over_wraps(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    mproc_queue *consumer = fx_handle(&f);
    model m = {0};
    uint32_t rng = 12345;
    unsigned char buf[SMALL];
    for (int step = 0; step < 20000; step++) {
        rng = rng * 1103515245u + 12345u;
        if ((rng >> 16) % 3 != 0) { /* put twice as often as get: the ring fills */
            size_t len = length_of(m.next_put);
            bool pad;
            uint32_t total = model_fits(&m, len, &pad);
            make_msg(buf, 0, m.next_put, len);
            int rc = mproc_queue_put_nowait(f.q, buf, len);
            cr_assert_eq(rc, total != 0 ? 0 : MPROC_E_FULL, "step %d: put of %zu: %s", step, len,
                         mproc_errname(rc));
            if (rc == 0) {
                m.bytes[m.next_put++ % 1024] = total;
                m.tail += total;
                m.pads += pad;
            }
        } else {
            size_t got = 12345;
            int rc = mproc_queue_get_nowait(consumer, buf, sizeof buf, &got);
            if (m.next_get == m.next_put) {
                cr_assert_eq(rc, MPROC_E_EMPTY, "step %d: %s", step, mproc_errname(rc));
            } else {
                cr_assert_eq(rc, 0, "step %d: %s", step, mproc_errname(rc));
                cr_assert_eq(got, length_of(m.next_get), "step %d", step);
                cr_assert(is_msg(buf, 0, m.next_get, got), "step %d: message %u", step, m.next_get);
                m.head += m.bytes[m.next_get++ % 1024];
            }
        }
        uint32_t queued = m.next_put - m.next_get;
        expect_state(f.q, queued, queued == 0, SMALL - (m.tail - m.head) < 8);
    }
    /* Enough traffic for the claim "many wraps, with PADs". */
    cr_assert_gt(m.tail / SMALL, 200);
    cr_assert_gt(m.pads, 100);
    fx_drop(&f, consumer);
    fx_free(&f);
}
BOTH(queue_threads, fifo_and_fullness_are_exact_over_many_wraps_of_a_small_ring, fifo_over_wraps,
     30)

/* ---- bounds ---- */

static void maxsize_counts_messages(bool named) {
    fx f;
    fx_open(&f, named, 2, &small_ring);
    cr_assert_eq(mproc_queue_maxsize(f.q), 2);
    expect_state(f.q, 0, 1, 0);
    cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), 0);
    expect_state(f.q, 1, 0, 0);
    cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), 0);
    expect_state(f.q, 2, 0, 1);
    cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), MPROC_E_FULL);
    expect_state(f.q, 2, 0, 1);
    size_t got = 5;
    cr_assert_eq(mproc_queue_get_nowait(f.q, NULL, 0, &got), 0);
    cr_assert_eq(got, 0);
    expect_state(f.q, 1, 0, 0);
    cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), 0);
    expect_state(f.q, 2, 0, 1);
    fx_free(&f);
}
BOTH(queue_threads, maxsize_counts_messages_even_empty_ones, maxsize_counts_messages, 30)

static void byte_capacity_bounds(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    /* A 100-byte message takes 8 + 104 = 112 bytes: 36 fit (4032), 64 left. */
    uint32_t n = 0;
    unsigned char buf[100];
    for (;; n++) {
        make_msg(buf, 2, n, sizeof buf);
        int rc = mproc_queue_put(f.q, buf, sizeof buf, 0);
        if (rc != 0) {
            cr_assert_eq(rc, MPROC_E_FULL, "%s", mproc_errname(rc));
            break;
        }
        cr_assert_lt(n, 1000, "an unbounded queue took more than its bytes");
    }
    cr_assert_eq(n, 36);
    /* Not full(): an empty message (8 bytes) still fits. */
    expect_state(f.q, 36, 0, 0);
    get_msg(f.q, 2, 0, 100);
    /* Room for the PAD (64) and a record (112): exactly what is free now. */
    make_msg(buf, 2, n, sizeof buf);
    cr_assert_eq(mproc_queue_put(f.q, buf, sizeof buf, 0), 0);
    expect_state(f.q, 36, 0, 1);
    for (uint32_t seq = 1; seq <= 36; seq++)
        get_msg(f.q, 2, seq, 100);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_threads, the_byte_capacity_bounds_an_unbounded_queue, byte_capacity_bounds, 30)

static void full_when_nothing_fits(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    for (int i = 0; i < SMALL / 8; i++)
        cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), 0, "empty message %d", i);
    expect_state(f.q, SMALL / 8, 0, 1);
    cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), MPROC_E_FULL);
    fx_free(&f);
}
BOTH(queue_threads, an_unbounded_queue_is_full_when_not_even_an_empty_message_fits,
     full_when_nothing_fits, 30)

/* full() tells whether even the smallest put would find no room now: an
 * unbounded queue is full when its bytes run out (above), and so is a
 * bounded one whose bytes run out before its count does. */
static void bounded_full_by_bytes(bool named) {
    fx f;
    fx_open(&f, named, 3, &small_ring);
    put_msg(f.q, 1, 0, SMALL_MAX); /* 2048 ring bytes each */
    expect_state(f.q, 1, 0, 0);
    put_msg(f.q, 1, 1, SMALL_MAX);
    cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), MPROC_E_FULL); /* 2 < maxsize 3 */
    expect_state(f.q, 2, 0, 1);
    get_msg(f.q, 1, 0, SMALL_MAX);
    expect_state(f.q, 1, 0, 0);
    get_msg(f.q, 1, 1, SMALL_MAX);
    fx_free(&f);
}
BOTH(queue_threads, a_bounded_queue_whose_bytes_run_out_before_its_count_is_full,
     bounded_full_by_bytes, 30)

/* ---- timeouts and blocking ---- */

static void empty_timeouts(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    unsigned char buf[8];
    size_t got = 99;
    double t0 = t_now();
    cr_assert_eq(mproc_queue_get_nowait(f.q, buf, sizeof buf, &got), MPROC_E_EMPTY);
    cr_assert_eq(mproc_queue_get(f.q, buf, sizeof buf, &got, 0), MPROC_E_EMPTY);
    void *alloc = NULL;
    cr_assert_eq(mproc_queue_get_alloc(f.q, &alloc, &got, 0), MPROC_E_EMPTY);
    cr_assert_null(alloc);
    cr_assert_lt(t_now() - t0, WAKE_SLACK, "nowait did not answer at once");
    t0 = t_now();
    cr_assert_eq(mproc_queue_get(f.q, buf, sizeof buf, &got, 0.1), MPROC_E_EMPTY);
    double took = t_now() - t0;
    cr_assert_geq(took, 0.1);
    cr_assert_lt(took, 1.0);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_threads, get_on_empty_is_empty_at_once_or_after_its_timeout, empty_timeouts, 30)

static void full_timeouts(bool named) {
    fx f;
    fx_open(&f, named, 3, &small_ring);
    for (uint32_t i = 0; i < 3; i++)
        put_msg(f.q, 3, i, 10);
    unsigned char msg[10] = {0};
    double t0 = t_now();
    cr_assert_eq(mproc_queue_put_nowait(f.q, msg, sizeof msg), MPROC_E_FULL);
    cr_assert_eq(mproc_queue_put(f.q, msg, sizeof msg, 0), MPROC_E_FULL);
    cr_assert_lt(t_now() - t0, WAKE_SLACK, "nowait did not answer at once");
    t0 = t_now();
    cr_assert_eq(mproc_queue_put(f.q, msg, sizeof msg, 0.1), MPROC_E_FULL);
    double took = t_now() - t0;
    cr_assert_geq(took, 0.1);
    cr_assert_lt(took, 1.0);
    expect_state(f.q, 3, 0, 1);
    for (uint32_t i = 0; i < 3; i++)
        get_msg(f.q, 3, i, 10);
    fx_free(&f);
}
BOTH(queue_threads, put_on_full_is_full_at_once_or_after_its_timeout, full_timeouts, 30)

static void blocked_put_proceeds(bool named) {
    fx f;
    fx_open(&f, named, 3, &small_ring);
    mproc_queue *producer = fx_handle(&f);
    for (uint32_t i = 0; i < 3; i++)
        put_msg(f.q, 9, i, 20);
    call c;
    start_asleep(&c, producer, OP_PUT, BOUND, 3, 20);
    double t0 = t_now();
    get_msg(f.q, 9, 0, 20);
    cr_assert_eq(finish(&c, BOUND), 0);
    cr_assert_lt(c.returned_at - t0, WAKE_SLACK);
    expect_state(f.q, 3, 0, 1);
    for (uint32_t i = 1; i < 4; i++)
        get_msg(f.q, 9, i, 20);
    fx_drop(&f, producer);
    fx_free(&f);
}
BOTH(queue_threads, a_put_blocked_on_full_proceeds_when_a_get_makes_room, blocked_put_proceeds, 30)

static void blocked_get_receives(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    mproc_queue *consumer = fx_handle(&f);
    call c;
    start_asleep(&c, consumer, OP_GET, BOUND, 0, 0);
    double t0 = t_now();
    put_msg(f.q, 9, 5, 33);
    cr_assert_eq(finish(&c, BOUND), 0);
    cr_assert_lt(c.returned_at - t0, WAKE_SLACK);
    cr_assert_eq(c.len, 33);
    cr_assert(is_msg(c.buf, 9, 5, 33));
    expect_state(f.q, 0, 1, 0);
    fx_drop(&f, consumer);
    fx_free(&f);
}
BOTH(queue_threads, a_get_blocked_on_empty_receives_a_later_put, blocked_get_receives, 30)

/* queue.h: a consumer waiting (holding the get lock, nothing to take) makes
 * a non-blocking get answer MPROC_E_EMPTY at once, as Python's get_nowait
 * behind a blocked get. */
static void nowait_behind_waiter(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    mproc_queue *consumer = fx_handle(&f);
    call c;
    start_asleep(&c, consumer, OP_GET, BOUND, 0, 0);
    size_t got;
    double t0 = t_now();
    cr_assert_eq(mproc_queue_get_nowait(f.q, NULL, 0, &got), MPROC_E_EMPTY);
    cr_assert_lt(t_now() - t0, WAKE_SLACK);
    put_msg(f.q, 9, 6, 1);
    cr_assert_eq(finish(&c, BOUND), 0);
    cr_assert_eq(c.len, 1);
    cr_assert(is_msg(c.buf, 9, 6, 1));
    fx_drop(&f, consumer);
    fx_free(&f);
}
BOTH(queue_threads, get_nowait_behind_a_waiting_consumer_is_empty_at_once, nowait_behind_waiter, 30)

/* ---- buffers ---- */

static void small_buffer(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    put_msg(f.q, 4, 0, 100);
    put_msg(f.q, 4, 1, 5);
    unsigned char buf[100];
    size_t got = 0;
    cr_assert_eq(mproc_queue_get(f.q, buf, 50, &got, 0), ENOBUFS);
    cr_assert_eq(got, 100);
    cr_assert_eq(mproc_queue_get(f.q, buf, 99, &got, BOUND), ENOBUFS);
    cr_assert_eq(got, 100);
    got = 0;
    cr_assert_eq(mproc_queue_get(f.q, NULL, 0, &got, 0), ENOBUFS);
    cr_assert_eq(got, 100);
    expect_state(f.q, 2, 0, 0);
    get_msg(f.q, 4, 0, 100); /* still at the head: order intact */
    get_msg(f.q, 4, 1, 5);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_threads, a_too_small_buffer_is_enobufs_and_leaves_the_message_at_the_head, small_buffer,
     30)

static void null_buffer_and_alloc(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    cr_assert_eq(mproc_queue_put(f.q, NULL, 0, 0), 0);
    size_t got = 9;
    cr_assert_eq(mproc_queue_get(f.q, NULL, 0, &got, 0), 0);
    cr_assert_eq(got, 0);
    /* get_alloc: an exact-length copy; non-NULL for an empty message. */
    cr_assert_eq(mproc_queue_put(f.q, NULL, 0, 0), 0);
    put_msg(f.q, 5, 1, SMALL_MAX);
    void *msg = NULL;
    got = 9;
    cr_assert_eq(mproc_queue_get_alloc(f.q, &msg, &got, 0), 0);
    cr_assert_not_null(msg);
    cr_assert_eq(got, 0);
    free(msg);
    msg = NULL;
    cr_assert_eq(mproc_queue_get_alloc(f.q, &msg, &got, BOUND), 0);
    cr_assert_not_null(msg);
    cr_assert_eq(got, SMALL_MAX);
    cr_assert(is_msg(msg, 5, 1, SMALL_MAX));
    free(msg);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_threads, a_null_buffer_takes_an_empty_message_and_get_alloc_copies_exactly,
     null_buffer_and_alloc, 30)

/* ---- shutdown ---- */

static void shutdown_drains(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    mproc_queue *other = fx_handle(&f);
    for (uint32_t i = 0; i < 3; i++)
        put_msg(f.q, 6, i, 40 + i);
    cr_assert_eq(mproc_queue_shutdown(other), 0);
    cr_assert_eq(mproc_queue_shutdown(other), 0); /* idempotent */
    cr_assert_eq(mproc_queue_shutdown(f.q), 0);
    unsigned char msg[4] = {0};
    cr_assert_eq(mproc_queue_put(f.q, msg, sizeof msg, 0), MPROC_E_CLOSED);
    cr_assert_eq(mproc_queue_put(f.q, msg, sizeof msg, BOUND), MPROC_E_CLOSED);
    cr_assert_eq(mproc_queue_put_nowait(f.q, NULL, 0), MPROC_E_CLOSED);
    expect_state(f.q, 3, 0, 0);
    for (uint32_t i = 0; i < 3; i++)
        get_msg(f.q, 6, i, 40 + i);
    size_t got;
    void *alloc = NULL;
    double t0 = t_now();
    cr_assert_eq(mproc_queue_get(f.q, msg, sizeof msg, &got, BOUND), MPROC_E_CLOSED);
    cr_assert_eq(mproc_queue_get(other, msg, sizeof msg, &got, MPROC_FOREVER), MPROC_E_CLOSED);
    cr_assert_eq(mproc_queue_get_nowait(f.q, msg, sizeof msg, &got), MPROC_E_CLOSED);
    cr_assert_eq(mproc_queue_get_alloc(f.q, &alloc, &got, BOUND), MPROC_E_CLOSED);
    cr_assert_lt(t_now() - t0, WAKE_SLACK, "a drained, shut queue made a get wait");
    cr_assert_null(alloc);
    expect_state(f.q, 0, 1, 0);
    fx_drop(&f, other);
    fx_free(&f);
}
BOTH(queue_threads, shutdown_refuses_puts_and_gets_drain_in_order_then_closed, shutdown_drains, 30)

/* Two sleepers on each side: the lock holder waiting for the other side,
 * and a second caller asleep on the side's lock behind it. */
static void shutdown_wakes(bool named, int op) {
    fx f;
    fx_open(&f, named, 1, &small_ring);
    if (op == OP_PUT)
        put_msg(f.q, 7, 0, 8);
    mproc_queue *a = fx_handle(&f), *b = fx_handle(&f);
    call holder, behind;
    start_asleep(&holder, a, op, MPROC_FOREVER, 1, 8);
    start_asleep(&behind, b, op, MPROC_FOREVER, 2, 8);
    double t0 = t_now();
    cr_assert_eq(mproc_queue_shutdown(f.q), 0);
    cr_assert_eq(finish(&holder, BOUND), MPROC_E_CLOSED);
    cr_assert_eq(finish(&behind, BOUND), MPROC_E_CLOSED);
    cr_assert_lt(holder.returned_at - t0, WAKE_SLACK);
    cr_assert_lt(behind.returned_at - t0, WAKE_SLACK);
    expect_state(f.q, op == OP_PUT ? 1 : 0, op != OP_PUT, op == OP_PUT);
    fx_drop(&f, a);
    fx_drop(&f, b);
    fx_free(&f);
}
static void shutdown_wakes_getters(bool named) { shutdown_wakes(named, OP_GET); }
static void shutdown_wakes_putters(bool named) { shutdown_wakes(named, OP_PUT); }
BOTH(queue_threads, shutdown_wakes_getters_blocked_forever_on_empty_with_closed,
     shutdown_wakes_getters, 30)
BOTH(queue_threads, shutdown_wakes_putters_blocked_forever_on_full_with_closed,
     shutdown_wakes_putters, 30)

/* ---- SimpleQueue ---- */

static void simple_queue(bool named) {
    mproc_queue *q = NULL;
    const char *name = NULL;
    mproc_queue_options simple = {.flags = MPROC_QUEUE_SIMPLE, .capacity = SMALL};
    if (named) {
        name = t_name("qsimple");
        cr_assert_eq(mproc_queue_open(&q, name, MPROC_CREATE | MPROC_EXCL, 0, &simple), 0);
    } else {
        cr_assert_eq(mproc_simple_queue_create(&q, &small_ring), 0);
    }
    cr_assert_eq(mproc_queue_maxsize(q), 0);
    cr_assert_eq(mproc_queue_max_message(q), SMALL_MAX);
    put_msg(q, 8, 0, 0);
    put_msg(q, 8, 1, SMALL_MAX);
    expect_state(q, 2, 0, 0);
    get_msg(q, 8, 0, 0);
    get_msg(q, 8, 1, SMALL_MAX);
    cr_assert_eq(mproc_queue_task_done(q), EINVAL);
    cr_assert_eq(mproc_queue_join(q, 0), EINVAL);
    cr_assert_eq(mproc_queue_close(q), 0);
    if (named)
        cr_assert_eq(mproc_unlink(name), 0);
    cr_assert_eq(mproc_simple_queue_create(&q, NULL), 0); /* the default ring */
    cr_assert_eq(mproc_queue_max_message(q), MPROC_QUEUE_DEFAULT_CAPACITY / 2 - 8);
    cr_assert_eq(mproc_queue_close(q), 0);
}
BOTH(queue_threads, a_simple_queue_passes_messages_and_has_no_maxsize, simple_queue, 30)

Test(queue_threads, a_simple_queue_refuses_a_maxsize_and_joinable_flags) {
    mproc_queue *q = NULL;
    mproc_queue_options o = {.flags = MPROC_QUEUE_SIMPLE};
    cr_assert_eq(mproc_queue_create(&q, 1, &o), EINVAL);
    cr_assert_eq(mproc_queue_open(&q, t_name("qsimple"), MPROC_CREATE, 1, &o), EINVAL);
    o.flags = MPROC_QUEUE_JOINABLE;
    cr_assert_eq(mproc_simple_queue_create(&q, &o), EINVAL);
    cr_assert_null(q);
}

/* ---- arguments ---- */

Test(queue_threads, bad_arguments_are_einval) {
    mproc_queue *q = NULL;
    mproc_queue_options o = {0};
    cr_assert_eq(mproc_queue_create(NULL, 0, NULL), EINVAL);
    size_t bad_caps[] = {SMALL + 1,
                         SMALL * 3,
                         SMALL / 2,
                         8,
                         MPROC_QUEUE_MAX_CAPACITY * 2,
                         MPROC_QUEUE_MAX_CAPACITY + SMALL};
    for (size_t i = 0; i < sizeof bad_caps / sizeof bad_caps[0]; i++) {
        o = (mproc_queue_options){.capacity = bad_caps[i]};
        cr_assert_eq(mproc_queue_create(&q, 0, &o), EINVAL, "capacity %zu", bad_caps[i]);
    }
    o = (mproc_queue_options){.capacity = SMALL};
    cr_assert_eq(mproc_queue_create(&q, SMALL / 8 + 1, &o), EINVAL);
    cr_assert_eq(mproc_queue_create(&q, SMALL / 8, &o), 0); /* the largest maxsize */
    cr_assert_eq(mproc_queue_close(q), 0);
    q = NULL; /* a refused create must leave *out alone */
    o = (mproc_queue_options){.flags = MPROC_QUEUE_JOINABLE | MPROC_QUEUE_SIMPLE};
    cr_assert_eq(mproc_queue_create(&q, 0, &o), EINVAL);
    o = (mproc_queue_options){.flags = 4};
    cr_assert_eq(mproc_queue_create(&q, 0, &o), EINVAL);
    o = (mproc_queue_options){.max_consumers = 4};
    cr_assert_eq(mproc_queue_create(&q, 0, &o), EINVAL);
    o = (mproc_queue_options){.flags = MPROC_QUEUE_SIMPLE, .max_consumers = 4};
    cr_assert_eq(mproc_queue_create(&q, 0, &o), EINVAL);
    o = (mproc_queue_options){.reserved0 = 1};
    cr_assert_eq(mproc_queue_create(&q, 0, &o), EINVAL);
    for (int i = 0; i < 4; i++) {
        o = (mproc_queue_options){0};
        o.reserved[i] = 1;
        cr_assert_eq(mproc_queue_create(&q, 0, &o), EINVAL, "reserved[%d]", i);
    }
    cr_assert_eq(mproc_queue_open(&q, NULL, MPROC_CREATE, 0, NULL), EINVAL);
    cr_assert_null(q);

    cr_assert_eq(mproc_queue_create(&q, 0, &small_ring), 0);
    unsigned char buf[8] = {0};
    size_t len;
    void *msg;
    cr_assert_eq(mproc_queue_put(NULL, buf, 1, 0), EINVAL);
    cr_assert_eq(mproc_queue_put(q, NULL, 1, 0), EINVAL);
    cr_assert_eq(mproc_queue_put(q, buf, 1, NAN), EINVAL);
    cr_assert_eq(mproc_queue_put_nowait(NULL, buf, 1), EINVAL);
    cr_assert_eq(mproc_queue_get(NULL, buf, 8, &len, 0), EINVAL);
    cr_assert_eq(mproc_queue_get(q, buf, 8, NULL, 0), EINVAL);
    cr_assert_eq(mproc_queue_get(q, NULL, 8, &len, 0), EINVAL);
    cr_assert_eq(mproc_queue_get(q, buf, 8, &len, NAN), EINVAL);
    cr_assert_eq(mproc_queue_get_nowait(NULL, buf, 8, &len), EINVAL);
    cr_assert_eq(mproc_queue_get_alloc(NULL, &msg, &len, 0), EINVAL);
    cr_assert_eq(mproc_queue_get_alloc(q, NULL, &len, 0), EINVAL);
    cr_assert_eq(mproc_queue_get_alloc(q, &msg, NULL, 0), EINVAL);
    cr_assert_eq(mproc_queue_get_alloc(q, &msg, &len, NAN), EINVAL);
    int flag;
    cr_assert_eq(mproc_queue_qsize(NULL, &len), EINVAL);
    cr_assert_eq(mproc_queue_qsize(q, NULL), EINVAL);
    cr_assert_eq(mproc_queue_empty(NULL, &flag), EINVAL);
    cr_assert_eq(mproc_queue_empty(q, NULL), EINVAL);
    cr_assert_eq(mproc_queue_full(NULL, &flag), EINVAL);
    cr_assert_eq(mproc_queue_full(q, NULL), EINVAL);
    cr_assert_eq(mproc_queue_shutdown(NULL), EINVAL);
    cr_assert_eq(mproc_queue_close(NULL), EINVAL);
    cr_assert_eq(mproc_queue_maxsize(NULL), 0);
    cr_assert_eq(mproc_queue_max_message(NULL), 0);
    /* Joinable-only calls on a plain queue. */
    uint64_t count;
    cr_assert_eq(mproc_queue_task_done(q), EINVAL);
    cr_assert_eq(mproc_queue_join(q, 0), EINVAL);
    cr_assert_eq(mproc_queue_join(q, BOUND), EINVAL);
    cr_assert_eq(mproc_queue_unfinished(q, &count), EINVAL);
    cr_assert_eq(mproc_queue_abandoned(q, &count), EINVAL);
    cr_assert_eq(mproc_queue_forgive(q, 0), EINVAL);
    expect_state(q, 0, 1, 0); /* none of it touched the queue */
    cr_assert_eq(mproc_queue_close(q), 0);
}

/* ---- many producers, many consumers ---- */

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 1500

/* A tagged message: producer and seq in the first 8 bytes, then pattern
 * bytes; its length is a function of both, so a wrong length is caught. */
static size_t tagged_len(uint32_t who, uint32_t seq) { return 8 + (seq * 37u + who * 11u) % 300u; }

typedef struct mpmc {
    mproc_queue *handle[PRODUCERS + CONSUMERS];
    _Atomic uint8_t seen[PRODUCERS][PER_PRODUCER];
    int put_rc[PRODUCERS];
    int end_rc[CONSUMERS];    /* the code that ended the consumer's loop */
    long got[CONSUMERS];      /* messages it took */
    long bad[CONSUMERS];      /* damaged or unknown messages */
    long disorder[CONSUMERS]; /* a producer's seq not above its last one */
} mpmc;

typedef struct worker {
    mpmc *m;
    int index;
} worker;

static void *producer_main(void *arg) {
    worker *w = arg;
    unsigned char buf[320];
    int rc = 0;
    for (uint32_t seq = 0; seq < PER_PRODUCER && rc == 0; seq++) {
        uint32_t who = (uint32_t)w->index;
        size_t len = tagged_len(who, seq);
        make_msg(buf, who, seq, len);
        memcpy(buf, &who, 4);
        memcpy(buf + 4, &seq, 4);
        rc = mproc_queue_put(w->m->handle[w->index], buf, len, BOUND);
    }
    w->m->put_rc[w->index] = rc;
    return NULL;
}

static bool tagged_ok(const unsigned char *buf, size_t len, uint32_t *who, uint32_t *seq) {
    if (len < 8)
        return false;
    memcpy(who, buf, 4);
    memcpy(seq, buf + 4, 4);
    if (*who >= PRODUCERS || *seq >= PER_PRODUCER || len != tagged_len(*who, *seq))
        return false;
    for (size_t i = 8; i < len; i++)
        if (buf[i] != pattern(*who, *seq, i))
            return false;
    return true;
}

static void *consumer_main(void *arg) {
    worker *w = arg;
    mpmc *m = w->m;
    int c = w->index - PRODUCERS;
    long last[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++)
        last[p] = -1;
    unsigned char buf[320];
    size_t len;
    int rc;
    while ((rc = mproc_queue_get(m->handle[w->index], buf, sizeof buf, &len, BOUND)) == 0) {
        uint32_t who, seq;
        m->got[c]++;
        if (!tagged_ok(buf, len, &who, &seq)) {
            m->bad[c]++;
            continue;
        }
        if ((long)seq <= last[who])
            m->disorder[c]++;
        last[who] = seq;
        atomic_fetch_add(&m->seen[who][seq], 1);
    }
    m->end_rc[c] = rc;
    return NULL;
}

static void many_to_many(bool named) {
    fx f;
    mproc_queue_options ring = {.capacity = 8192}; /* small: producers block, records wrap */
    fx_open(&f, named, 0, &ring);
    mpmc *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    worker w[PRODUCERS + CONSUMERS];
    pthread_t th[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        m->handle[i] = fx_handle(&f);
        w[i] = (worker){m, i};
    }
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
        cr_assert_eq(
            pthread_create(&th[i], NULL, i < PRODUCERS ? producer_main : consumer_main, &w[i]), 0);
    /* Bounded: every put and get has a BOUND timeout. */
    for (int i = 0; i < PRODUCERS; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(mproc_queue_shutdown(f.q), 0); /* consumers drain, then see CLOSED */
    for (int i = PRODUCERS; i < PRODUCERS + CONSUMERS; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    long total = 0;
    for (int p = 0; p < PRODUCERS; p++)
        cr_assert_eq(m->put_rc[p], 0, "producer %d: %s", p, mproc_errname(m->put_rc[p]));
    for (int c = 0; c < CONSUMERS; c++) {
        cr_assert_eq(m->end_rc[c], MPROC_E_CLOSED, "consumer %d: %s", c,
                     mproc_errname(m->end_rc[c]));
        cr_assert_eq(m->bad[c], 0, "consumer %d", c);
        cr_assert_eq(m->disorder[c], 0, "consumer %d", c);
        total += m->got[c];
    }
    cr_assert_eq(total, (long)PRODUCERS * PER_PRODUCER);
    for (int p = 0; p < PRODUCERS; p++)
        for (int s = 0; s < PER_PRODUCER; s++)
            cr_assert_eq(atomic_load(&m->seen[p][s]), 1, "message (%d, %d)", p, s);
    expect_state(f.q, 0, 1, 0);
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
        fx_drop(&f, m->handle[i]);
    free(m);
    fx_free(&f);
}
BOTH(queue_threads, four_producers_four_consumers_deliver_each_message_once_in_producer_order,
     many_to_many, 60)

/* ---- early wrap: a big ring stays cache-sized while consumers keep up ---- */

/* A 64 MiB ring whose consumer keeps up goes back to offset 0 after its
 * first MiB (queue.c HOT_WINDOW) instead of streaming through all of it; a
 * consumer that falls behind lets it use the whole capacity.  Content and
 * order hold through both, and (named) the file reserves only the hot part:
 * 24 MiB of traffic leave under 4 MiB of blocks. */
static void early_wrap(bool named) {
    fx f;
    fx_open(&f, named, 0, NULL);
    enum { LEN = 3000, BATCH = 8 };
    uint32_t put_seq = 0, get_seq = 0;
    for (size_t traffic = 0; traffic < (size_t)24 << 20; traffic += BATCH * LEN) {
        for (int i = 0; i < BATCH; i++)
            put_msg(f.q, 7, put_seq++, LEN);
        for (int i = 0; i < BATCH; i++)
            get_msg(f.q, 7, get_seq++, LEN);
    }
    if (named) {
        char path[160];
        struct stat st;
        snprintf(path, sizeof path, "/dev/shm/mproc.%s", f.name);
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_lt((long long)st.st_blocks * 512, 4LL << 20, "%lld bytes reserved",
                     (long long)st.st_blocks * 512);
    }
    /* Falling behind: 3 MiB queued at once, more than the hot window. */
    for (int i = 0; i < 1000; i++)
        put_msg(f.q, 7, put_seq++, LEN);
    expect_state(f.q, 1000, 0, 0);
    while (get_seq != put_seq)
        get_msg(f.q, 7, get_seq++, LEN);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_threads, a_big_ring_wraps_early_while_consumers_keep_up, early_wrap, 60)
