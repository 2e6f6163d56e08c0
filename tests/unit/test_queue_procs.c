/* SPDX-License-Identifier: MIT */
/*
 * Queue between processes, anonymous (children use the inherited handle) and
 * named (children open the name themselves):
 *   - qsize/empty/full are exact in another process the moment put or get
 *     returned (no feeder thread, no lag: checked with no sleep);
 *   - several producer and consumer processes: every message exactly once,
 *     each producer's order kept;
 *   - calls blocked in one process proceed when another acts; shutdown
 *     wakes getters and putters blocked forever, with MPROC_E_CLOSED; a get
 *     that cannot have the lock of a shut queue still holding messages is
 *     not told CLOSED;
 *   - named: two processes both creating, an unrelated (exec'd) program,
 *     flavour and geometry checks, EEXIST, and a ring reserved lazily;
 *   - a consumer SIGKILLed asleep in get, or a producer asleep in put, keeps
 *     nobody from the queue, and loses or duplicates no message.
 * Children never assert; they report through exit codes and shared memory.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
        snprintf(f->name, sizeof f->name, "%s", t_name("qpr"));
        rc = mproc_queue_open(&f->q, f->name, MPROC_CREATE | MPROC_EXCL, maxsize, opts);
    } else {
        rc = mproc_queue_create(&f->q, maxsize, opts);
    }
    cr_assert_eq(rc, 0, "%s", mproc_errname(rc));
}

static void fx_free(fx *f) {
    cr_assert_eq(mproc_queue_close(f->q), 0);
    if (f->named)
        cr_assert_eq(mproc_unlink(f->name), 0);
}

/* In a child: its own open of the name (0/0: whatever geometry the queue
 * has), or the inherited handle.  Exits 90 if the open fails. */
static mproc_queue *child_queue(const fx *f) {
    if (!f->named)
        return f->q;
    mproc_queue *q;
    if (mproc_queue_open(&q, f->name, MPROC_ATTACH, 0, NULL) != 0)
        _exit(90);
    return q;
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

/* Varied lengths, the largest included, so records wrap with PADs. */
static size_t length_of(uint32_t seq) {
    static const size_t lengths[] = {0, 1, 9, 100, 255, 1000, 1500, SMALL_MAX};
    return lengths[((seq * 2654435761u) >> 16) % (sizeof lengths / sizeof lengths[0])];
}

/* Puts (who, seq) of `len` bytes within BOUND: the code. */
static int put_one(mproc_queue *q, uint32_t who, uint32_t seq, size_t len) {
    unsigned char buf[SMALL_MAX];
    make_msg(buf, who, seq, len);
    return mproc_queue_put(q, buf, len, BOUND);
}

/* Gets within `timeout`: 0 if it is (who, seq) of `len` bytes, 1 if another
 * message came, else the code. */
static int get_one(mproc_queue *q, uint32_t who, uint32_t seq, size_t len, double timeout) {
    unsigned char buf[SMALL_MAX];
    size_t got = 0;
    int rc = mproc_queue_get(q, buf, sizeof buf, &got, timeout);
    if (rc != 0)
        return rc;
    return got == len && is_msg(buf, who, seq, len) ? 0 : 1;
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

static bool state_is(const mproc_queue *q, size_t qsize, int empty, int full) {
    size_t n = 99;
    int e = -1, fl = -1;
    return mproc_queue_qsize(q, &n) == 0 && mproc_queue_empty(q, &e) == 0 &&
           mproc_queue_full(q, &fl) == 0 && n == qsize && e == empty && fl == full;
}

/* ---- exact state across processes ---- */

#define ROUNDS 300

/* Each round: the parent puts, and the child, told so through a pipe, must
 * see qsize 1 at once; the child gets, and the parent, told so, must see 0.
 * No sleep anywhere: a lagging count (Python's feeder thread) fails. */
static void state_is_exact(bool named) {
    fx f;
    fx_open(&f, named, 1, &small_ring);
    t_pipe to_child, to_parent;
    t_pipe_open(&to_child);
    t_pipe_open(&to_parent);
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_queue *q = child_queue(&f);
        for (uint32_t r = 0; r < ROUNDS; r++) {
            if (t_await(&to_child, BOUND) != 'p')
                _exit(10);
            if (!state_is(q, 1, 0, 1))
                _exit(11);
            if (get_one(q, 1, r, length_of(r), 0) != 0)
                _exit(12);
            t_signal(&to_parent, 'g');
        }
        _exit(0);
    }
    for (uint32_t r = 0; r < ROUNDS; r++) {
        expect_state(f.q, 0, 1, 0);
        cr_assert_eq(put_one(f.q, 1, r, length_of(r)), 0);
        t_signal(&to_child, 'p');
        cr_assert_eq(t_await(&to_parent, BOUND), 'g', "round %u", r);
        expect_state(f.q, 0, 1, 0);
    }
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    t_pipe_close(&to_child);
    t_pipe_close(&to_parent);
    fx_free(&f);
}
BOTH(queue_procs, qsize_empty_full_are_exact_in_another_process_right_after_put_and_get,
     state_is_exact, 30)

/* ---- many producer and consumer processes ---- */

#define PRODUCERS 3
#define CONSUMERS 2
#define PER_PRODUCER 2000

static size_t tagged_len(uint32_t who, uint32_t seq) { return 8 + (seq * 37u + who * 11u) % 300u; }

struct tally {
    _Atomic uint8_t seen[PRODUCERS][PER_PRODUCER];
    _Atomic long got;
};

static int producer(mproc_queue *q, uint32_t who) {
    unsigned char buf[320];
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        size_t len = tagged_len(who, seq);
        make_msg(buf, who, seq, len);
        memcpy(buf, &who, 4);
        memcpy(buf + 4, &seq, 4);
        if (mproc_queue_put(q, buf, len, BOUND) != 0)
            return 20;
    }
    return 0;
}

/* Gets until MPROC_E_CLOSED; 0, or what went wrong. */
static int consumer(mproc_queue *q, struct tally *t) {
    long last[PRODUCERS] = {-1, -1, -1};
    unsigned char buf[320];
    size_t len;
    int rc;
    while ((rc = mproc_queue_get(q, buf, sizeof buf, &len, BOUND)) == 0) {
        uint32_t who, seq;
        if (len < 8)
            return 30;
        memcpy(&who, buf, 4);
        memcpy(&seq, buf + 4, 4);
        if (who >= PRODUCERS || seq >= PER_PRODUCER || len != tagged_len(who, seq))
            return 31;
        for (size_t i = 8; i < len; i++)
            if (buf[i] != pattern(who, seq, i))
                return 32;
        if ((long)seq <= last[who])
            return 33; /* a producer's order broken */
        last[who] = seq;
        atomic_fetch_add(&t->seen[who][seq], 1);
        atomic_fetch_add(&t->got, 1);
    }
    return rc == MPROC_E_CLOSED ? 0 : 34;
}

static void many_to_many(bool named) {
    fx f;
    mproc_queue_options ring = {.capacity = 8192}; /* small: producers block, records wrap */
    fx_open(&f, named, 0, &ring);
    struct tally *t = t_shared(sizeof *t);
    pid_t kids[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        kids[i] = t_fork();
        if (kids[i] == 0) {
            mproc_queue *q = child_queue(&f);
            _exit(i < PRODUCERS ? producer(q, (uint32_t)i) : consumer(q, t));
        }
    }
    for (int i = 0; i < PRODUCERS; i++)
        cr_assert_eq(t_exit_code(kids[i], 60), 0, "producer %d", i);
    cr_assert_eq(mproc_queue_shutdown(f.q), 0); /* consumers drain, then see CLOSED */
    for (int i = PRODUCERS; i < PRODUCERS + CONSUMERS; i++)
        cr_assert_eq(t_exit_code(kids[i], 60), 0, "consumer %d", i - PRODUCERS);
    cr_assert_eq(atomic_load(&t->got), (long)PRODUCERS * PER_PRODUCER);
    for (int p = 0; p < PRODUCERS; p++)
        for (int s = 0; s < PER_PRODUCER; s++)
            cr_assert_eq(atomic_load(&t->seen[p][s]), 1, "message (%d, %d)", p, s);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_procs, producer_and_consumer_processes_deliver_each_message_once_in_producer_order,
     many_to_many, 90)

/* ---- blocking across processes ---- */

struct outcome {
    _Atomic int rc[2]; /* -1 until that child's call returned */
    double returned_at[2];
};

/* Forks child `slot`, which makes one call (put of (9, seq) or get expecting
 * (9, seq)), records its code and time, and exits; returns once the child
 * sleeps in the kernel, inside the call. */
static pid_t spawn_asleep(const fx *f, struct outcome *o, int slot, bool put, double timeout,
                          uint32_t seq) {
    atomic_store(&o->rc[slot], -1);
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_queue *q = child_queue(f);
        unsigned char buf[16];
        make_msg(buf, 9, seq, sizeof buf);
        size_t len = 0;
        int rc = put ? mproc_queue_put(q, buf, sizeof buf, timeout)
                     : mproc_queue_get(q, buf, sizeof buf, &len, timeout);
        if (rc == 0 && !put && (len != sizeof buf || !is_msg(buf, 9, seq, len)))
            rc = 1;
        o->returned_at[slot] = t_now();
        atomic_store(&o->rc[slot], rc);
        _exit(0);
    }
    cr_assert(t_wait_sleeping(pid, BOUND), "child %d never went to sleep", slot);
    cr_assert_eq(atomic_load(&o->rc[slot]), -1, "child %d returned instead of blocking", slot);
    return pid;
}

static void blocked_get_receives(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    struct outcome *o = t_shared(sizeof *o);
    pid_t pid = spawn_asleep(&f, o, 0, false, BOUND, 4);
    double t0 = t_now();
    cr_assert_eq(put_one(f.q, 9, 4, 16), 0);
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    cr_assert_eq(atomic_load(&o->rc[0]), 0, "%s", mproc_errname(o->rc[0]));
    cr_assert_lt(o->returned_at[0] - t0, WAKE_SLACK);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_procs, a_get_blocked_in_one_process_receives_a_put_from_another, blocked_get_receives,
     30)

static void blocked_put_proceeds(bool named) {
    fx f;
    fx_open(&f, named, 2, &small_ring);
    struct outcome *o = t_shared(sizeof *o);
    cr_assert_eq(put_one(f.q, 9, 0, 16), 0);
    cr_assert_eq(put_one(f.q, 9, 1, 16), 0);
    pid_t pid = spawn_asleep(&f, o, 0, true, BOUND, 2);
    double t0 = t_now();
    cr_assert_eq(get_one(f.q, 9, 0, 16, 0), 0);
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    cr_assert_eq(atomic_load(&o->rc[0]), 0, "%s", mproc_errname(o->rc[0]));
    cr_assert_lt(o->returned_at[0] - t0, WAKE_SLACK);
    expect_state(f.q, 2, 0, 1);
    cr_assert_eq(get_one(f.q, 9, 1, 16, 0), 0);
    cr_assert_eq(get_one(f.q, 9, 2, 16, 0), 0);
    fx_free(&f);
}
BOTH(queue_procs, a_put_blocked_on_full_in_one_process_proceeds_when_another_gets,
     blocked_put_proceeds, 30)

/* Two sleepers: the side's lock holder waiting for the other side, and a
 * second process asleep on the side's lock behind it; both blocked forever. */
static void shutdown_wakes(bool named, bool put) {
    fx f;
    fx_open(&f, named, 1, &small_ring);
    struct outcome *o = t_shared(sizeof *o);
    if (put)
        cr_assert_eq(put_one(f.q, 9, 0, 16), 0);
    pid_t kids[2];
    for (int i = 0; i < 2; i++)
        kids[i] = spawn_asleep(&f, o, i, put, MPROC_FOREVER, 1);
    double t0 = t_now();
    cr_assert_eq(mproc_queue_shutdown(f.q), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t_exit_code(kids[i], BOUND), 0, "child %d", i);
        cr_assert_eq(atomic_load(&o->rc[i]), MPROC_E_CLOSED, "child %d: %s", i,
                     mproc_errname(o->rc[i]));
        cr_assert_lt(o->returned_at[i] - t0, WAKE_SLACK, "child %d", i);
    }
    expect_state(f.q, put ? 1 : 0, !put, put);
    if (put) /* drained after shutdown, then closed */
        cr_assert_eq(get_one(f.q, 9, 0, 16, BOUND), 0);
    cr_assert_eq(get_one(f.q, 9, 0, 16, BOUND), MPROC_E_CLOSED);
    fx_free(&f);
}
static void shutdown_wakes_getters(bool named) { shutdown_wakes(named, false); }
static void shutdown_wakes_putters(bool named) { shutdown_wakes(named, true); }
BOTH(queue_procs, shutdown_from_another_process_wakes_getters_blocked_forever,
     shutdown_wakes_getters, 30)
BOTH(queue_procs, shutdown_from_another_process_wakes_putters_blocked_on_full,
     shutdown_wakes_putters, 30)

/* Stops child `pid` and returns once it is stopped (bounded). */
static void stop_child(pid_t pid) {
    cr_assert_eq(kill(pid, SIGSTOP), 0);
    double end = t_now() + BOUND;
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, WUNTRACED | WNOHANG)) == 0 && t_now() < end)
        sched_yield();
    cr_assert(got == pid && WIFSTOPPED(status), "child did not stop");
}

static bool drained(const mproc_queue *q) {
    size_t n = 1;
    return mproc_queue_qsize(q, &n) == 0 && n == 0;
}

#define CHUNK ((size_t)8 << 20)
#define CHUNKS 7

/*
 * queue.h: after shutdown, "gets drain what is left, then return
 * MPROC_E_CLOSED".  So a get that cannot have the get lock in time, because
 * another consumer holds it while copying, must not answer CLOSED while
 * messages are left: a consumer loop that stops at CLOSED would quit with
 * work undone.  The other consumer is a child copying 8 MiB messages into
 * fresh buffers (milliseconds under the lock); it counts the gets it
 * begins, and the parent stops it (SIGSTOP) as soon as it begins one, so it
 * is stopped inside get, nearly always holding the lock.  The parent's
 * get_nowait then either gets a message (the child had not taken the lock
 * yet) or cannot have the lock: MPROC_E_EMPTY, as behind any busy consumer.
 */
Test(queue_procs, a_get_behind_a_busy_consumer_of_a_shut_queue_with_messages_left_is_not_closed,
     .timeout = 30) {
    mproc_queue *q;
    cr_assert_eq(mproc_queue_create(&q, 0, NULL), 0); /* 64 MiB */
    unsigned char *buf = malloc(CHUNK);
    cr_assert_not_null(buf);
    for (uint32_t i = 0; i < CHUNKS; i++) {
        memset(buf, (int)i, CHUNK);
        cr_assert_eq(mproc_queue_put(q, buf, CHUNK, 0), 0);
    }
    cr_assert_eq(mproc_queue_shutdown(q), 0);
    _Atomic int *started = t_shared(sizeof *started); /* gets the child began */
    t_pipe done;
    t_pipe_open(&done);
    pid_t pid = t_fork();
    if (pid == 0) {
        size_t len;
        int rc;
        do {
            void *fresh = malloc(CHUNK); /* its pages fault in during the copy */
            atomic_fetch_add(started, 1);
            rc = fresh != NULL ? mproc_queue_get(q, fresh, CHUNK, &len, BOUND) : ENOMEM;
            free(fresh);
        } while (rc == 0);
        t_await(&done, BOUND); /* stays stoppable until the parent is done */
        _exit(rc == MPROC_E_CLOSED ? 0 : 1);
    }
    int behind = 0; /* gets made while the child held the lock */
    for (int seen = 0; !drained(q); seen = atomic_load(started)) {
        double end = t_now() + BOUND; /* until the child is in a get it had not begun */
        while (atomic_load(started) == seen && !drained(q) && t_now() < end)
            sched_yield();
        stop_child(pid);
        size_t left = 0, len;
        cr_assert_eq(mproc_queue_qsize(q, &left), 0);
        int rc = mproc_queue_get_nowait(q, buf, CHUNK, &len);
        cr_assert_eq(kill(pid, SIGCONT), 0);
        if (rc != 0 && left > 0) {
            behind++;
            cr_assert_eq(rc, MPROC_E_EMPTY, "%s with %zu messages left", mproc_errname(rc), left);
        }
    }
    t_signal(&done, 'x');
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    cr_assert_gt(behind, 0, "the child was never caught holding the lock");
    t_pipe_close(&done);
    free(buf);
    cr_assert_eq(mproc_queue_close(q), 0);
}

/* ---- named queues ---- */

#define NAMED_MSGS 300

/* Producer and consumer processes both open with MPROC_CREATE, released
 * together: whichever creates, both reach the same queue. */
Test(queue_procs, producer_and_consumer_processes_both_creating_a_name_share_one_queue,
     .timeout = 30) {
    const char *name = t_name("qboth");
    t_pipe go;
    t_pipe_open(&go);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = t_fork();
        if (kids[i] != 0)
            continue;
        if (t_await(&go, BOUND) != 'g')
            _exit(10);
        mproc_queue *q;
        if (mproc_queue_open(&q, name, MPROC_CREATE, 0, &small_ring) != 0)
            _exit(11);
        for (uint32_t seq = 0; seq < NAMED_MSGS; seq++) {
            int rc = i == 0 ? put_one(q, 3, seq, length_of(seq))
                            : get_one(q, 3, seq, length_of(seq), BOUND);
            if (rc != 0)
                _exit(12);
        }
        _exit(mproc_queue_close(q) == 0 ? 0 : 13);
    }
    t_signal(&go, 'g');
    t_signal(&go, 'g');
    cr_assert_eq(t_exit_code(kids[0], BOUND * 2), 0, "producer");
    cr_assert_eq(t_exit_code(kids[1], BOUND * 2), 0, "consumer");
    mproc_queue *q;
    cr_assert_eq(mproc_queue_open(&q, name, MPROC_ATTACH, 0, NULL), 0);
    cr_assert_eq(mproc_queue_max_message(q), SMALL_MAX);
    expect_state(q, 0, 1, 0);
    cr_assert_eq(mproc_queue_close(q), 0);
    cr_assert_eq(mproc_unlink(name), 0);
    t_pipe_close(&go);
}

/*
 * The unrelated program: this test binary exec'd with MPROC_QUEUE_PEER set,
 * caught by a constructor before Criterion's main.  It attaches to the named
 * queue (0/0), gets NAMED_MSGS messages (1, seq) in order, then puts one
 * reply (2, 0) and exits 0; any other outcome is its exit code.
 */
static int peer_main(const char *name) {
    mproc_queue *q;
    if (mproc_queue_open(&q, name, MPROC_ATTACH, 0, NULL) != 0)
        return 40;
    for (uint32_t seq = 0; seq < NAMED_MSGS; seq++)
        if (get_one(q, 1, seq, length_of(seq), BOUND) != 0)
            return 41;
    if (put_one(q, 2, 0, 77) != 0)
        return 42;
    return mproc_queue_close(q) == 0 ? 0 : 43;
}

__attribute__((constructor)) static void maybe_be_the_peer(void) {
    const char *name = getenv("MPROC_QUEUE_PEER");
    if (name != NULL)
        _exit(peer_main(name));
}

Test(queue_procs, an_unrelated_program_opens_the_name_and_exchanges_messages, .timeout = 30) {
    fx f;
    fx_open(&f, true, 0, &small_ring);
    pid_t pid = t_fork();
    if (pid == 0) {
        setenv("MPROC_QUEUE_PEER", f.name, 1);
        execl("/proc/self/exe", "mproc-queue-peer", (char *)NULL);
        _exit(127);
    }
    for (uint32_t seq = 0; seq < NAMED_MSGS; seq++) /* blocks while the ring is full */
        cr_assert_eq(put_one(f.q, 1, seq, length_of(seq)), 0, "message %u", seq);
    cr_assert_eq(t_exit_code(pid, BOUND * 2), 0);
    expect_state(f.q, 1, 0, 0);
    cr_assert_eq(get_one(f.q, 2, 0, 77, 0), 0);
    fx_free(&f);
}

Test(queue_procs, a_named_queue_opened_as_another_flavour_is_kind) {
    const char *names[3] = {t_name("qplain"), t_name("qsimple"), t_name("qjoin")};
    unsigned flavours[3] = {0, MPROC_QUEUE_SIMPLE, MPROC_QUEUE_JOINABLE};
    mproc_queue *q[3];
    for (int i = 0; i < 3; i++) {
        mproc_queue_options o = {.flags = flavours[i], .capacity = SMALL};
        cr_assert_eq(mproc_queue_open(&q[i], names[i], MPROC_CREATE | MPROC_EXCL, 0, &o), 0);
    }
    for (int i = 0; i < 3; i++)
        for (int as = 0; as < 3; as++) {
            mproc_queue_options o = {.flags = flavours[as]};
            int want = as == i ? 0 : MPROC_E_KIND;
            for (int create = 0; create < 2; create++) {
                mproc_queue *other = NULL;
                cr_assert_eq(
                    mproc_queue_open(&other, names[i], create ? MPROC_CREATE : MPROC_ATTACH, 0, &o),
                    want, "queue %d opened as %d (create %d)", i, as, create);
                if (want == 0)
                    cr_assert_eq(mproc_queue_close(other), 0);
            }
        }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mproc_queue_close(q[i]), 0);
        cr_assert_eq(mproc_unlink(names[i]), 0);
    }
}

Test(queue_procs, a_named_queue_opened_with_other_geometry_is_einval_and_zero_attaches) {
    const char *name = t_name("qgeo");
    mproc_queue *q, *other = NULL;
    mproc_queue_options ring = {.capacity = 2 * SMALL};
    cr_assert_eq(mproc_queue_open(&q, name, MPROC_CREATE | MPROC_EXCL, 5, &ring), 0);
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_CREATE | MPROC_EXCL, 5, &ring), EEXIST);
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_ATTACH, 6, &ring), EINVAL);
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_CREATE, 6, NULL), EINVAL);
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_ATTACH, 5, &small_ring), EINVAL);
    mproc_queue_options bigger = {.capacity = 4 * SMALL};
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_ATTACH, 0, &bigger), EINVAL);
    cr_assert_null(other);
    /* 0 and 0 (or the same values) attach to what is there. */
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_ATTACH, 0, NULL), 0);
    cr_assert_eq(mproc_queue_maxsize(other), 5);
    cr_assert_eq(mproc_queue_max_message(other), SMALL - 8);
    cr_assert_eq(put_one(q, 5, 0, 300), 0);
    cr_assert_eq(get_one(other, 5, 0, 300, 0), 0);
    cr_assert_eq(mproc_queue_close(other), 0);
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_CREATE, 5, &ring), 0);
    cr_assert_eq(mproc_queue_close(other), 0);
    cr_assert_eq(mproc_queue_close(q), 0);
    cr_assert_eq(mproc_unlink(name), 0);
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_ATTACH, 0, NULL), ENOENT);
    cr_assert_eq(mproc_queue_open(&other, name, MPROC_EXCL, 0, NULL), EINVAL);
}

/* Bytes of /dev/shm the named queue's file really holds. */
static long long file_bytes(const char *name) {
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/mproc.%s", name);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (long long)st.st_blocks * 512;
}

/* queue.h: the ring's pages are committed lazily, as messages first reach
 * them; a large capacity costs address space, not memory, until used. */
Test(queue_procs, a_named_queue_reserves_its_ring_only_as_messages_reach_it) {
    const char *name = t_name("qlazy");
    mproc_queue *q;
    mproc_queue_options ring = {.capacity = (size_t)64 << 20};
    cr_assert_eq(mproc_queue_open(&q, name, MPROC_CREATE | MPROC_EXCL, 0, &ring), 0);
    long long fresh = file_bytes(name);
    cr_assert_lt(fresh, 256 << 10, "a fresh 64 MiB queue holds %lld bytes", fresh);
    cr_assert_eq(put_one(q, 6, 0, 1000), 0);
    long long one = file_bytes(name);
    cr_assert_gt(one, fresh, "putting a message reserved nothing");
    /* 40 x 64 KiB = 2.5 MiB of messages: reserved as reached, far from 64 MiB. */
    static unsigned char chunk[64 << 10];
    for (uint32_t i = 0; i < 40; i++) {
        make_msg(chunk, 6, i + 1, sizeof chunk);
        cr_assert_eq(mproc_queue_put(q, chunk, sizeof chunk, 0), 0);
    }
    long long used = file_bytes(name);
    cr_assert_geq(used, 40LL << 16, "holds %lld bytes", used);
    cr_assert_lt(used, 16LL << 20, "holds %lld bytes for 2.5 MiB of messages", used);
    cr_assert_eq(get_one(q, 6, 0, 1000, 0), 0);
    size_t len;
    for (uint32_t i = 0; i < 40; i++) {
        cr_assert_eq(mproc_queue_get(q, chunk, sizeof chunk, &len, 0), 0);
        cr_assert(len == sizeof chunk && is_msg(chunk, 6, i + 1, len), "chunk %u", i);
    }
    cr_assert_eq(mproc_queue_close(q), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

/* ---- death ---- */

/* Kills child `pid` and reaps it: it must have died of the SIGKILL. */
static void kill_child(pid_t pid) {
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status = t_wait(pid, BOUND);
    cr_assert(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "child did not die of SIGKILL");
}

/*
 * A consumer SIGKILLed asleep in get (holding the get lock): the consumer
 * asleep behind it on the lock, and later a fresh get, take the next
 * messages promptly.  The product promises within 100 ms (robust lock, one
 * liveness slice at most); asserted as < 1 s for a loaded CI machine.
 */
static void dead_consumer(bool named) {
    fx f;
    fx_open(&f, named, 0, &small_ring);
    struct outcome *o = t_shared(sizeof *o);
    pid_t victim = spawn_asleep(&f, o, 0, false, MPROC_FOREVER, 0);
    pid_t next = spawn_asleep(&f, o, 1, false, BOUND, 0);
    kill_child(victim);
    double t0 = t_now();
    for (uint32_t seq = 0; seq < 5; seq++)
        cr_assert_eq(put_one(f.q, 9, seq, 16), 0);
    cr_assert_eq(t_exit_code(next, BOUND), 0);
    cr_assert_eq(atomic_load(&o->rc[1]), 0, "%s", mproc_errname(o->rc[1]));
    cr_assert_lt(o->returned_at[1] - t0, 1.0);
    for (uint32_t seq = 1; seq < 5; seq++) /* the rest, in order, exactly once */
        cr_assert_eq(get_one(f.q, 9, seq, 16, BOUND), 0, "message %u", seq);
    expect_state(f.q, 0, 1, 0);

    /* Nobody waiting behind it this time: a later get is not held up. */
    victim = spawn_asleep(&f, o, 0, false, MPROC_FOREVER, 0);
    kill_child(victim);
    t0 = t_now();
    cr_assert_eq(put_one(f.q, 9, 5, 16), 0);
    cr_assert_eq(get_one(f.q, 9, 5, 16, BOUND), 0);
    cr_assert_lt(t_now() - t0, 1.0);
    size_t len;
    cr_assert_eq(mproc_queue_get(f.q, NULL, 0, &len, 0.05), MPROC_E_EMPTY);
    fx_free(&f);
}
BOTH(queue_procs, a_consumer_killed_asleep_in_get_holds_up_no_other_consumer, dead_consumer, 30)

/* A producer SIGKILLed asleep in put on a full queue: the producer behind it
 * puts once a get makes room; the dead one's message never appears, and the
 * ones put before are delivered once, in order. */
static void dead_producer(bool named) {
    fx f;
    fx_open(&f, named, 2, &small_ring);
    struct outcome *o = t_shared(sizeof *o);
    cr_assert_eq(put_one(f.q, 9, 0, 16), 0);
    cr_assert_eq(put_one(f.q, 9, 1, 16), 0);
    pid_t victim = spawn_asleep(&f, o, 0, true, MPROC_FOREVER, 99);
    pid_t next = spawn_asleep(&f, o, 1, true, BOUND, 2);
    kill_child(victim);
    double t0 = t_now();
    cr_assert_eq(get_one(f.q, 9, 0, 16, 0), 0);
    cr_assert_eq(t_exit_code(next, BOUND), 0);
    cr_assert_eq(atomic_load(&o->rc[1]), 0, "%s", mproc_errname(o->rc[1]));
    cr_assert_lt(o->returned_at[1] - t0, 1.0);
    expect_state(f.q, 2, 0, 1);

    /* Nobody waiting behind it this time: a later put is not held up. */
    victim = spawn_asleep(&f, o, 0, true, MPROC_FOREVER, 99);
    kill_child(victim);
    cr_assert_eq(get_one(f.q, 9, 1, 16, 0), 0);
    t0 = t_now();
    cr_assert_eq(put_one(f.q, 9, 3, 16), 0);
    cr_assert_lt(t_now() - t0, 1.0);
    cr_assert_eq(get_one(f.q, 9, 2, 16, 0), 0);
    cr_assert_eq(get_one(f.q, 9, 3, 16, 0), 0);
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_procs, a_producer_killed_asleep_in_put_holds_up_no_other_producer, dead_producer, 30)

/* A side lock left by a dead holder, taken first by a call with timeout 0:
 * it must be made consistent like any other, or glibc marks it unrecoverable
 * at the unlock and every later call fails (ENOTRECOVERABLE, then EDEADLK
 * with the lock held for good).  Found by the Pool, whose scheduler drains a
 * dead worker's task queue with get_nowait. */
static void nowait_after_dead_holder(bool named) {
    fx f;
    fx_open(&f, named, 1, &small_ring);
    struct outcome *o = t_shared(sizeof *o);
    pid_t victim = spawn_asleep(&f, o, 0, false, MPROC_FOREVER, 0); /* holds the get lock */
    kill_child(victim);
    for (uint32_t seq = 0; seq < 3; seq++) {
        cr_assert_eq(put_one(f.q, 9, seq, 16), 0);
        cr_assert_eq(get_one(f.q, 9, seq, 16, 0), 0, "get_nowait %u after the dead consumer", seq);
    }
    cr_assert_eq(put_one(f.q, 9, 3, 16), 0); /* full now (maxsize 1) */
    victim = spawn_asleep(&f, o, 0, true, MPROC_FOREVER, 99); /* holds the put lock */
    kill_child(victim);
    cr_assert_eq(get_one(f.q, 9, 3, 16, 0), 0);
    for (uint32_t seq = 4; seq < 7; seq++) {
        unsigned char buf[16];
        make_msg(buf, 9, seq, sizeof buf);
        cr_assert_eq(mproc_queue_put_nowait(f.q, buf, sizeof buf), 0,
                     "put_nowait %u after the dead producer", seq);
        cr_assert_eq(get_one(f.q, 9, seq, 16, 0), 0);
    }
    expect_state(f.q, 0, 1, 0);
    fx_free(&f);
}
BOTH(queue_procs, a_nowait_call_first_to_find_a_dead_holders_lock_recovers_it, nowait_after_dead_holder, 30)
