/* SPDX-License-Identifier: MIT */
/*
 * Kill tests for Queue and JoinableQueue (issue 5, section 3).
 *
 *   1. Random kills: 2 producers and 2 consumers under KILLS random
 *      SIGKILLs, every message accounted for (this comment; run()).
 *   2. Every instruction: one put, get, joinable get or reaper killed after
 *      each of its instructions in turn (ptrace; see "every instruction").
 *
 * 2 producer and 2 consumer processes pass messages through a small ring
 * (64 KiB, maxsize 32, messages of 16 B to 4 KiB, so producers often find it
 * full and records often wrap behind a PAD) while the parent SIGKILLs a
 * random worker at a random moment KILLS times and starts a fresh one at
 * once.  Workers also kill themselves now and then inside the two windows
 * the accounting below allows for (after put returned, before DONE; after
 * get returned, before recording).  Named runs attach every worker by name.
 *
 * Messages.  A producer generation p (a new id for every process) sends
 * message k = 0, 1, 2, ... as {p, k, len, checksum} + len - 16 bytes that
 * depend on (p, k); the checksum covers the whole message, so a torn one
 * is caught by whoever receives it.
 *
 * Journal (shared memory mapped before forking; every entry one store):
 *   state[p][k]  producer: INTENT before put, then DONE (put returned 0) or
 *                REFUSED (put returned an error: must never be delivered).
 *                A producer killed inside put, or between its return and the
 *                DONE store, leaves INTENT: such a message may arrive at most
 *                once, and it can only be that generation's last message.
 *   slot[c]      consumer generation c gets *into* its own journal slot, so
 *                the message is in the journal the moment get commits
 *                (get copies before its commit store).  The header is
 *                cleared before each get, so a slot holds the last message
 *                c received, a torn copy (killed inside get, before the
 *                commit), or nothing.
 *   got_by[p][k] after get returned and the message checked out, the
 *                receiver records itself with one CAS 0 -> c + 1 (DRAINER
 *                for the final drain).  A failed CAS is a duplicate.
 *   log[t]       delivery tickets, for the global FIFO check (below).
 *
 * Accounting, after the parent stopped killing, let the consumers finish,
 * then the producers, shut the queue down and drained what was left as a
 * fresh consumer (the parent; a new handle when named).  A message is
 * *lost to a dead consumer* when a dead consumer's slot holds it intact and
 * got_by is 0: that consumer's get committed and it died before recording,
 * the allowed window ("delivered" means get passed its commit store; a
 * consumer killed before its commit left the message queued, so it turned
 * up elsewhere).  Then for every (p, k):
 *   DONE      got_by != 0 or lost to a dead consumer: exactly once (the CAS
 *             makes a second delivery a failure on the spot);
 *   INTENT    at most once, and only as its dead producer's last message;
 *   REFUSED, or never sent: nowhere;
 * and a slot of a consumer that exited normally never holds an unrecorded
 * message.  What this cannot see: a dead consumer's intact but unrecorded
 * copy that also reached someone else is read as "copied, not committed";
 * a queue that re-delivered a message whose get had committed but not yet
 * returned looks the same from outside, and the definition above allows it.
 *
 * Order (global FIFO).  Each consumer sees each producer's k strictly
 * increasing, and so does the drain.  Across receivers: a receiver loads the
 * ticket counter before its get (b) and takes ticket t after recording; if
 * t1 < b2, get 1 returned before get 2 began, so k1 < k2 for one producer.
 * Lost messages precede every drained one of their producer.
 *
 * Liveness.  Every put and get waits at most BOUND (2 s).  Each side keeps
 * running (dead workers replaced) while the other does, so FULL before the
 * consumers were stopped, or EMPTY at all, is a hang and fails the test.
 * The longest call and the longest gap between two completed puts (gets)
 * are printed; the gaps are asserted below STALL_BOUND (see there).
 *
 * JoinableQueue runs: consumers hold 0-3 items before task_done and record
 * td_intent[c] before each task_done and td_ret[c] after it.  Items taken by
 * c = got_by entries of c + messages lost in c's slot: exact, as above (the
 * get's own window, commit to journal, is closed by the slot).  A death
 * between td_intent and td_ret would leave one task_done unknown, so the
 * parent stops each consumer victim first (SIGSTOP) and spares it there;
 * every other point, inside get and put included, is fair game.  So the
 * check is exact: the queue's abandoned count equals the sum over dead
 * consumers of taken - td_ret, and join returns MPROC_E_ABANDONED (0 if
 * none) within its bound after the drain, never ETIMEDOUT.
 *
 * The seed is printed; MPROC_KILL_SEED=N reproduces a run.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define PRODUCERS 2
#define WORKERS 4                     /* 0..1 produce, 2..3 consume */
#define KILLS 520                     /* parent's SIGKILLs per queue run (>= 500) */
#define JOINABLE_KILLS 200            /* the shorter JoinableQueue runs */
#define CAPACITY ((size_t)64 << 10)   /* ring bytes */
/* The named plain-queue run uses a ring big enough for queue.c's early wrap
 * (4 windows of 1 MiB): with at most MAXSIZE small messages queued, its
 * producers go back to offset 0 after each MiB, through a PAD. */
#define EARLY_WRAP_CAPACITY ((size_t)4 << 20)
static size_t run_capacity = CAPACITY;
#define MAXSIZE 32                    /* messages */
#define MAX_CONSUMERS 8               /* joinable records: dead ones get reaped often */
#define MSG_MAX 4096
#define BOUND 2.0                     /* longest allowed put / get / join */
#define STALL_BOUND 1.0               /* longest allowed gap in progress, see run() */
#define NAP_MAX_US 6000               /* between kills */
#define SELF_KILL_ODDS 1500           /* a worker kills itself in a window, 1 in N */
#define MAX_SELF_KILLS 400            /* per run, so generations stay bounded */
#define MAXK 8192                     /* messages per producer generation */
#define MAX_GEN 2048                  /* generations per kind */
#define MAX_LOG ((size_t)4 << 20)     /* delivery tickets logged */
#define DRAINER 0xffffu
#define NO_K (-1)

enum msg_state { UNSENT, INTENT, DONE, REFUSED };

enum phase { OPENING, OUTSIDE, PUTTING, PUT_RETURNED, GETTING, GOT, TASK_DONE, NPHASES };
static const char *phase_names[NPHASES] = {"open",  "outside",   "put", "put-returned",
                                           "get",   "recording", "task_done"};

enum failure { F_HANG = 1, F_RC, F_TORN, F_PHANTOM, F_DUP, F_ORDER, F_OPEN, F_TASK_DONE };
static const char *failure_names[] = {"",          "hang (2 s)", "unexpected code",
                                      "torn",      "phantom",    "duplicate",
                                      "order",     "open",       "task_done"};

struct head {
    uint32_t producer, seq, len, sum;
};

struct slot {
    uint64_t buf[MSG_MAX / 8]; /* the get's destination */
};

struct note {
    int code, rc, pstop, cstop;
    uint32_t p, k, who;
    uint64_t at_us; /* since the start */
};

struct state {
    _Atomic int pstop, cstop;
    uint64_t start_us;
    _Atomic int failures;
    struct note notes[8];
    _Atomic int phase[WORKERS];
    _Atomic uint64_t max_put_us, max_get_us, max_put_gap_us, max_get_gap_us;
    _Atomic uint64_t last_put_us, last_get_us, gaps_over_100ms;
    _Atomic uint64_t found_full, ring_bytes, self_kills, excused;
    _Atomic uint64_t ticket;
    _Atomic uint32_t td_intent[MAX_GEN], td_ret[MAX_GEN];
    uint8_t msg[MAX_GEN][MAXK];           /* enum msg_state */
    _Atomic uint16_t got_by[MAX_GEN][MAXK];
    struct slot slots[MAX_GEN];
    _Atomic uint64_t log[MAX_LOG];        /* (p + 1) << 48 | k << 32 | b */
};

/* What the parent knows about the run: shared through fork, read-only in
 * the workers. */
struct run {
    struct state *st;
    mproc_queue *queue; /* the parent's handle (inherited when anonymous) */
    const char *name;   /* named runs: workers open this */
    bool joinable;
    mproc_queue_options opts;
};

#define PUT(lv, v) __atomic_store_n(&(lv), (v), __ATOMIC_SEQ_CST)
#define GET(lv) __atomic_load_n(&(lv), __ATOMIC_SEQ_CST)

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t now_us(void) {
    return (uint64_t)(t_now() * 1e6);
}

static void fail(struct state *st, int code, int rc, uint32_t p, uint32_t k, uint32_t who) {
    int n = atomic_fetch_add(&st->failures, 1);
    if (n < 8)
        st->notes[n] = (struct note){code,         rc, atomic_load(&st->pstop),
                                     atomic_load(&st->cstop), p, k, who,
                                     now_us() - st->start_us};
}

/* A worker may kill itself here (1 in SELF_KILL_ODDS, MAX_SELF_KILLS per run). */
static void maybe_self_kill(struct state *st, uint64_t *rng) {
    if (xorshift(rng) % SELF_KILL_ODDS == 0 &&
        atomic_fetch_add(&st->self_kills, 1) < MAX_SELF_KILLS)
        raise(SIGKILL);
}

static void note_max(_Atomic uint64_t *max, uint64_t value) {
    uint64_t seen = atomic_load(max);
    while (value > seen && !atomic_compare_exchange_weak(max, &seen, value)) {
    }
}

/* After a completed put or get: the gap since the previous one on that side. */
static void note_progress(struct state *st, _Atomic uint64_t *last, _Atomic uint64_t *max_gap) {
    uint64_t now = now_us(), prev = atomic_exchange(last, now);
    if (prev != 0 && now > prev) {
        note_max(max_gap, now - prev);
        if (now - prev > 100000)
            atomic_fetch_add(&st->gaps_over_100ms, 1);
    }
}

/* ---- messages ---- */

static uint32_t checksum(const unsigned char *bytes, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a over everything but the sum field */
    for (size_t i = 0; i < len; i++)
        if (i < 12 || i >= 16)
            h = (h ^ bytes[i]) * 16777619u;
    return h;
}

static void make_message(uint64_t *buf, uint32_t p, uint32_t k, size_t len) {
    uint64_t fill = ((uint64_t)p << 32 | k) * 0x9e3779b97f4a7c15ull | 1;
    for (size_t i = 2; i < (len + 7) / 8; i++)
        buf[i] = xorshift(&fill);
    struct head h = {p, k, (uint32_t)len, 0};
    memcpy(buf, &h, sizeof h);
    h.sum = checksum((const unsigned char *)buf, len);
    memcpy(buf, &h, sizeof h);
}

/* An intact message of `len` bytes naming a message of the journal. */
static bool message_ok(const void *buf, size_t len, struct head *h) {
    if (len < sizeof *h || len > MSG_MAX)
        return false;
    memcpy(h, buf, sizeof *h);
    return h->len == len && h->producer < MAX_GEN && h->seq < MAXK &&
           h->sum == checksum(buf, len);
}

/* ---- workers ---- */

static mproc_queue *worker_queue(const struct run *r, int w) {
    if (r->name == NULL)
        return r->queue;
    atomic_store(&r->st->phase[w], OPENING);
    mproc_queue *q;
    int rc = mproc_queue_open(&q, r->name, 0, MAXSIZE, &r->opts);
    if (rc != 0) {
        fail(r->st, F_OPEN, rc, 0, 0, (uint32_t)w);
        _exit(1);
    }
    return q;
}

static void producer(const struct run *r, int w, uint32_t p, uint64_t seed) {
    struct state *st = r->st;
    mproc_queue *q = worker_queue(r, w);
    uint64_t rng = seed | 1;
    static uint64_t msg[MSG_MAX / 8];
    for (uint32_t k = 0; k < MAXK && !atomic_load(&st->pstop); k++) {
        atomic_store(&st->phase[w], OUTSIDE);
        size_t len = sizeof(struct head) + xorshift(&rng) % (MSG_MAX - sizeof(struct head) + 1);
        make_message(msg, p, k, len);
        int full = 0;
        if (mproc_queue_full(q, &full) == 0 && full)
            atomic_fetch_add(&st->found_full, 1);
        PUT(st->msg[p][k], INTENT);
        atomic_store(&st->phase[w], PUTTING);
        double t0 = t_now();
        int rc = mproc_queue_put(q, msg, len, BOUND);
        note_max(&st->max_put_us, (uint64_t)((t_now() - t0) * 1e6));
        atomic_store(&st->phase[w], PUT_RETURNED);
        if (rc == 0) {
            note_progress(st, &st->last_put_us, &st->max_put_gap_us);
            maybe_self_kill(st, &rng); /* put returned 0, DONE not stored: INTENT stays */
        }
        PUT(st->msg[p][k], rc == 0 ? DONE : REFUSED);
        if ((rc == MPROC_E_FULL && atomic_load(&st->cstop)) ||
            (rc == MPROC_E_CLOSED && atomic_load(&st->pstop)))
            atomic_fetch_add(&st->excused, 1); /* consumers gone, or shut down */
        else if (rc != 0) /* consumers run as long as producers: FULL is a hang */
            fail(st, rc == MPROC_E_FULL ? F_HANG : F_RC, rc, p, k, 0);
    }
    _exit(0);
}

/*
 * Checks and records a message just received into `buf` by `who` (c + 1 or
 * DRAINER): intact, sent, not seen before, in order for this receiver, and
 * logged with a ticket for the cross-receiver order check.
 */
static void record(struct state *st, const void *buf, size_t len, uint16_t who,
                   int32_t *last_k, uint64_t before) {
    struct head h;
    if (!message_ok(buf, len, &h)) {
        fail(st, F_TORN, 0, 0, 0, who);
        return;
    }
    uint8_t sent = GET(st->msg[h.producer][h.seq]);
    if (sent != INTENT && sent != DONE)
        fail(st, F_PHANTOM, sent, h.producer, h.seq, who);
    uint16_t expected = 0;
    if (!atomic_compare_exchange_strong(&st->got_by[h.producer][h.seq], &expected, who))
        fail(st, F_DUP, expected, h.producer, h.seq, who);
    if (last_k[h.producer] >= (int32_t)h.seq)
        fail(st, F_ORDER, last_k[h.producer], h.producer, h.seq, who);
    last_k[h.producer] = (int32_t)h.seq;
    atomic_fetch_add(&st->ring_bytes, 8 + ((len + 7) & ~(size_t)7));
    uint64_t t = atomic_fetch_add(&st->ticket, 1);
    if (t < MAX_LOG)
        PUT(st->log[t], (uint64_t)(h.producer + 1) << 48 | (uint64_t)h.seq << 32 |
                           (uint32_t)before);
}

/* The TASK_DONE phase covers both journal stores: the parent never kills
 * a consumer stopped in it (see kill_loop), so td_intent == td_ret for
 * every dead consumer. */
static void task_done_one(const struct run *r, mproc_queue *q, int w, uint32_t c) {
    struct state *st = r->st;
    atomic_store(&st->phase[w], TASK_DONE);
    uint32_t n = atomic_load(&st->td_intent[c]) + 1;
    atomic_store(&st->td_intent[c], n);
    int rc = mproc_queue_task_done(q);
    if (rc != 0)
        fail(st, F_TASK_DONE, rc, 0, n, c + 1);
    atomic_store(&st->td_ret[c], n);
    atomic_store(&st->phase[w], OUTSIDE);
}

static void consumer(const struct run *r, int w, uint32_t c, uint64_t seed) {
    struct state *st = r->st;
    mproc_queue *q = worker_queue(r, w);
    uint64_t rng = seed | 1;
    static int32_t last_k[MAX_GEN];
    for (int i = 0; i < MAX_GEN; i++)
        last_k[i] = NO_K;
    struct slot *slot = &st->slots[c];
    unsigned held = 0, hold = 0; /* joinable: items got and not task_done yet */
    while (!atomic_load(&st->cstop)) {
        atomic_store(&st->phase[w], OUTSIDE);
        uint64_t before = atomic_load(&st->ticket);
        memset(slot->buf, 0xff, sizeof(struct head)); /* no stale message in the slot */
        atomic_store(&st->phase[w], GETTING);
        double t0 = t_now();
        size_t len = 0;
        int rc = mproc_queue_get(q, slot->buf, sizeof slot->buf, &len, BOUND);
        note_max(&st->max_get_us, (uint64_t)((t_now() - t0) * 1e6));
        atomic_store(&st->phase[w], GOT);
        if (rc != 0) { /* producers run as long as consumers: EMPTY is a hang */
            fail(st, rc == MPROC_E_EMPTY ? F_HANG : F_RC, rc, 0, 0, c + 1);
            continue;
        }
        note_progress(st, &st->last_get_us, &st->max_get_gap_us);
        maybe_self_kill(st, &rng); /* committed, not recorded: lost to a dead consumer */
        record(st, slot->buf, len, (uint16_t)(c + 1), last_k, before);
        if (r->joinable) {
            for (held++; held > hold; held--)
                task_done_one(r, q, w, c);
            if (xorshift(&rng) % 8 == 0)
                hold = (unsigned)(xorshift(&rng) % 4);
        }
    }
    for (; held > 0; held--)
        task_done_one(r, q, w, c);
    _exit(0);
}

/* ---- the parent ---- */

struct gens {
    pid_t pid[WORKERS];
    uint32_t gen[WORKERS];
    uint32_t count[2];           /* generations started: [0] producers, [1] consumers */
    bool died[2][MAX_GEN];       /* killed (by us or itself), not exited */
    int landed[2][NPHASES];
    int kills[2], spared;
    int bad_exits; /* workers that exited non-zero (their failure is noted) */
};

static void spawn(const struct run *r, struct gens *g, int w, uint64_t seed) {
    int kind = w >= PRODUCERS;
    cr_assert_lt(g->count[kind], MAX_GEN, "out of %s generations", kind ? "consumer" : "producer");
    uint32_t gen = g->count[kind]++;
    atomic_store(&r->st->phase[w], OPENING);
    pid_t pid = t_fork();
    if (pid == 0) {
        if (kind == 0)
            producer(r, w, gen, seed);
        consumer(r, w, gen, seed);
    }
    cr_assert_gt(pid, 0);
    g->pid[w] = pid;
    g->gen[w] = gen;
}

/* Books a finished worker: killed, or exited 0 (a producer past MAXK). */
static void settle(struct gens *g, int w, int status) {
    int kind = w >= PRODUCERS;
    cr_assert_neq(status, -1, "worker %d did not die", w);
    if (WIFSIGNALED(status))
        g->died[kind][g->gen[w]] = true;
    else if (WEXITSTATUS(status) != 0)
        g->bad_exits++;
}

static void nap_us(uint64_t us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL); /* randomises when the kill lands; orders nothing */
}

/* SIGSTOPs `pid` and waits until it stopped (true) or died (false, with
 * its wait status in *status). */
static bool stop_worker(pid_t pid, int *status) {
    kill(pid, SIGSTOP);
    double end = t_now() + 10;
    for (;;) {
        if (waitpid(pid, status, WNOHANG | WUNTRACED) == pid)
            return WIFSTOPPED(*status);
        cr_assert_lt(t_now(), end, "worker %d did not stop", (int)pid);
        nap_us(50); /* polling a bound */
    }
}

/*
 * Kills a random worker at a random moment, `kills` times, starting a fresh
 * one at once.  Joinable runs stop a consumer victim first and spare it
 * (resume it and try again later) when it is inside task_done, whose effect
 * the journal cannot see: that keeps the abandoned count exact.
 */
static void kill_loop(const struct run *r, struct gens *g, int kills, uint64_t *rng) {
    for (int n = 0; n < kills;) {
        for (int w = 0; w < WORKERS; w++) { /* replace self-killed and retired workers */
            int status;
            if (waitpid(g->pid[w], &status, WNOHANG) == g->pid[w]) {
                settle(g, w, status);
                spawn(r, g, w, xorshift(rng));
            }
        }
        nap_us(xorshift(rng) % NAP_MAX_US);
        int w = (int)(xorshift(rng) % WORKERS), status;
        if (r->joinable && w >= PRODUCERS) {
            if (!stop_worker(g->pid[w], &status)) {
                settle(g, w, status);
                spawn(r, g, w, xorshift(rng));
                continue;
            }
            if (atomic_load(&r->st->phase[w]) == TASK_DONE) {
                kill(g->pid[w], SIGCONT);
                g->spared++;
                continue;
            }
        }
        n++;
        g->landed[w >= PRODUCERS][atomic_load(&r->st->phase[w])]++;
        g->kills[w >= PRODUCERS]++;
        kill(g->pid[w], SIGKILL);
        settle(g, w, t_wait(g->pid[w], 10));
        spawn(r, g, w, xorshift(rng));
    }
}

/* Stops the consumers, replacing producers that die or retire meanwhile
 * (a consumer waits for producers, so they must keep running). */
static void stop_consumers(const struct run *r, struct gens *g, uint64_t *rng) {
    atomic_store(&r->st->cstop, 1);
    bool running[WORKERS] = {true, true, true, true};
    int left = WORKERS - PRODUCERS;
    double end = t_now() + 10;
    while (left > 0) {
        cr_assert_lt(t_now(), end, "consumers did not stop");
        for (int w = 0; w < WORKERS; w++) {
            int status;
            if (!running[w] || waitpid(g->pid[w], &status, WNOHANG) != g->pid[w])
                continue;
            settle(g, w, status);
            if (w < PRODUCERS) {
                spawn(r, g, w, xorshift(rng));
            } else {
                running[w] = false;
                left--;
            }
        }
        nap_us(200); /* polling a bound, not ordering anything */
    }
}

/* Stops the consumers, then the producers (shutting the queue down ends a
 * put waiting for room), then drains what is left as a fresh consumer.
 * Returns the count drained. */
static uint64_t finish(const struct run *r, struct gens *g, uint64_t *rng) {
    struct state *st = r->st;
    stop_consumers(r, g, rng);
    atomic_store(&st->pstop, 1);
    cr_assert_eq(mproc_queue_shutdown(r->queue), 0);
    for (int w = 0; w < PRODUCERS; w++)
        settle(g, w, t_wait(g->pid[w], 10));
    mproc_queue *q = r->queue;
    if (r->name != NULL)
        cr_assert_eq(mproc_queue_open(&q, r->name, 0, MAXSIZE, &r->opts), 0);
    static int32_t last_k[MAX_GEN];
    for (int i = 0; i < MAX_GEN; i++)
        last_k[i] = NO_K;
    static struct slot buf;
    uint64_t drained = 0;
    for (;;) {
        size_t len = 0;
        uint64_t before = atomic_load(&st->ticket);
        int rc = mproc_queue_get(q, buf.buf, sizeof buf.buf, &len, BOUND);
        if (rc == MPROC_E_CLOSED)
            break;
        cr_assert_eq(rc, 0, "drain: %s", mproc_errname(rc));
        record(st, buf.buf, len, DRAINER, last_k, before);
        if (r->joinable)
            cr_assert_eq(mproc_queue_task_done(q), 0);
        drained++;
    }
    size_t left = 1;
    cr_assert_eq(mproc_queue_qsize(q, &left), 0);
    cr_assert_eq(left, 0);
    if (q != r->queue)
        mproc_queue_close(q);
    return drained;
}

/* Cross-receiver FIFO (see the top): for each producer, the largest k with
 * ticket t < b must be below the k of a delivery whose get began at b. */
static void check_ticket_order(const struct state *st) {
    uint64_t tickets = GET(st->ticket);
    if (tickets > MAX_LOG)
        tickets = MAX_LOG;
    /* Per producer, in ticket order: tickets, and the running max of k. */
    uint32_t **ts = calloc(MAX_GEN, sizeof *ts), **maxk = calloc(MAX_GEN, sizeof *maxk);
    size_t *n = calloc(MAX_GEN, sizeof *n), *cap = calloc(MAX_GEN, sizeof *cap);
    cr_assert(ts != NULL && maxk != NULL && n != NULL && cap != NULL);
    for (uint64_t t = 0; t < tickets; t++) {
        uint64_t e = GET(st->log[t]);
        if (e == 0)
            continue; /* its receiver died between the ticket and the log store */
        uint32_t p = (uint32_t)(e >> 48) - 1, k = (uint32_t)(e >> 32) & 0xffff;
        uint32_t b = (uint32_t)e;
        size_t lo = 0, hi = n[p]; /* entries [0, lo) have ticket < b */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ts[p][mid] < b)
                lo = mid + 1;
            else
                hi = mid;
        }
        cr_assert(lo == 0 || maxk[p][lo - 1] < k,
                  "FIFO broken: producer %u message %u delivered after %u", p, k,
                  maxk[p][lo - 1]);
        if (n[p] == cap[p]) {
            cap[p] = cap[p] ? 2 * cap[p] : 256;
            ts[p] = realloc(ts[p], cap[p] * sizeof *ts[p]);
            maxk[p] = realloc(maxk[p], cap[p] * sizeof *maxk[p]);
            cr_assert(ts[p] != NULL && maxk[p] != NULL);
        }
        ts[p][n[p]] = (uint32_t)t;
        maxk[p][n[p]] = n[p] > 0 && maxk[p][n[p] - 1] > k ? maxk[p][n[p] - 1] : k;
        n[p]++;
    }
    for (int p = 0; p < MAX_GEN; p++) {
        free(ts[p]);
        free(maxk[p]);
    }
    free(ts);
    free(maxk);
    free(n);
    free(cap);
}

struct tally {
    uint64_t done, delivered, drained, lost, intent_arrived, intent_absent, refused;
    uint64_t taken[MAX_GEN]; /* per consumer generation */
    uint64_t ambiguous;      /* lost messages found in more than one dead slot */
    int problems;            /* broken guarantees, the first few printed */
};

__attribute__((format(printf, 2, 3))) static void problem(struct tally *t, const char *fmt,
                                                         ...) {
    if (t->problems++ >= 10)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("  PROBLEM: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* Messages lost to dead consumers: intact in a dead consumer's slot and
 * recorded nowhere.  Marks them in `lost` and counts them in t->taken. */
static void find_lost(const struct state *st, const struct gens *g, uint8_t *lost,
                      struct tally *t) {
    for (uint32_t c = 0; c < g->count[1]; c++) {
        struct head h;
        const struct slot *slot = &st->slots[c];
        memcpy(&h, slot->buf, sizeof h);
        if (!message_ok(slot->buf, h.len, &h) ||
            GET(st->got_by[h.producer][h.seq]) != 0)
            continue;
        if (!g->died[1][c])
            problem(t, "consumer %u exited with message %u/%u unrecorded", c, h.producer, h.seq);
        uint8_t *mark = &lost[(size_t)h.producer * MAXK + h.seq];
        if (*mark) {
            /* A copy that did not commit and one that did, both in dead
             * consumers: which took it is unknown, but sums over dead
             * consumers count it once either way. */
            t->ambiguous++;
            continue;
        }
        *mark = 1;
        t->lost++;
        t->taken[c]++;
    }
}

/* Every message accounted for (see the top of the file). */
static void check_messages(const struct state *st, const struct gens *g, struct tally *t) {
    uint8_t *lost = calloc((size_t)MAX_GEN * MAXK, 1);
    cr_assert_not_null(lost);
    find_lost(st, g, lost, t);
    for (uint32_t p = 0; p < g->count[0]; p++) {
        int32_t last = NO_K, max_delivered = NO_K, min_drained = MAXK;
        for (int32_t k = 0; k < MAXK; k++)
            if (st->msg[p][k] != UNSENT)
                last = k;
        for (int32_t k = 0; k < MAXK; k++) {
            uint8_t sent = st->msg[p][k];
            uint16_t by = GET(st->got_by[p][k]);
            bool arrived = by != 0 || lost[(size_t)p * MAXK + k];
            if (by == DRAINER) {
                t->drained++;
                if (k < min_drained)
                    min_drained = k;
            } else if (arrived) {
                max_delivered = k;
                if (by != 0) {
                    t->delivered++;
                    t->taken[by - 1]++;
                }
            }
            switch (sent) {
            case DONE:
                if (!arrived)
                    problem(t, "message %u/%d: put returned 0, never delivered", p, k);
                t->done++;
                break;
            case INTENT:
                if (k != last || !g->died[0][p])
                    problem(t, "message %u/%d: intent only, but its producer went on", p, k);
                if (arrived)
                    t->intent_arrived++;
                else
                    t->intent_absent++;
                break;
            default:
                t->refused += sent == REFUSED;
                if (arrived)
                    problem(t, "message %u/%d (state %d) was never put, yet delivered", p, k,
                            sent);
            }
        }
        if (max_delivered >= min_drained)
            problem(t, "producer %u: message %d drained, %d delivered before the drain", p,
                    min_drained, max_delivered);
    }
    free(lost);
}

/* JoinableQueue: the queue's abandoned count against the journal's, and
 * join's verdict. */
static void check_abandoned(const struct run *r, const struct gens *g, const struct tally *t) {
    const struct state *st = r->st;
    uint64_t expected = 0;
    for (uint32_t c = 0; c < g->count[1]; c++) {
        uint32_t done = GET(st->td_ret[c]);
        cr_assert_eq(GET(st->td_intent[c]), done, "consumer %u died inside task_done", c);
        cr_assert_leq(done, t->taken[c], "consumer %u: task_done beyond items got", c);
        if (g->died[1][c])
            expected += t->taken[c] - done;
        else
            cr_assert_eq(done, t->taken[c], "consumer %u exited with items not done", c);
    }
    uint64_t abandoned = 0, unfinished = 1;
    cr_assert_eq(mproc_queue_abandoned(r->queue, &abandoned), 0);
    double t0 = t_now();
    int rc = mproc_queue_join(r->queue, BOUND);
    double took = t_now() - t0;
    cr_assert_eq(mproc_queue_unfinished(r->queue, &unfinished), 0);
    printf("  joinable: abandoned=%llu (journal: %llu), %d kills spared inside task_done; "
           "join %s in %.1f ms\n",
           (unsigned long long)abandoned, (unsigned long long)expected, g->spared,
           mproc_errname(rc), took * 1000);
    fflush(stdout);
    cr_assert_eq(abandoned, expected);
    cr_assert_eq(rc, abandoned > 0 ? MPROC_E_ABANDONED : 0, "join: %s", mproc_errname(rc));
    cr_assert_eq(unfinished, 0);
    cr_assert_gt(expected, 0, "no consumer died holding an item");
}

static void print_summary(const struct state *st, const struct gens *g, const struct tally *t,
                          double seconds) {
    printf("  kills: %d producers, %d consumers (+%llu self-kills) in %.1f s, "
           "generations %u/%u\n",
           g->kills[0], g->kills[1],
           (unsigned long long)(st->self_kills < MAX_SELF_KILLS ? st->self_kills : MAX_SELF_KILLS),
           seconds, g->count[0],
           g->count[1]);
    for (int kind = 0; kind < 2; kind++) {
        printf("  %s kills landed:", kind ? "consumer" : "producer");
        for (int ph = 0; ph < NPHASES; ph++)
            if (g->landed[kind][ph])
                printf(" %s=%d", phase_names[ph], g->landed[kind][ph]);
        printf("\n");
    }
    printf("  messages: put=%llu delivered=%llu drained=%llu lost-to-dead-consumers=%llu "
           "(ambiguous %llu); killed inside put: arrived=%llu absent=%llu; refused=%llu\n",
           (unsigned long long)t->done, (unsigned long long)t->delivered,
           (unsigned long long)t->drained, (unsigned long long)t->lost,
           (unsigned long long)t->ambiguous, (unsigned long long)t->intent_arrived,
           (unsigned long long)t->intent_absent, (unsigned long long)t->refused);
    printf("  %llu MiB through a %zu KiB ring; producers found it full %llu times; FULL/CLOSED "
           "while stopping: %llu\n",
           (unsigned long long)(st->ring_bytes >> 20), run_capacity >> 10,
           (unsigned long long)st->found_full,
           (unsigned long long)st->excused);
    printf("  longest put %.1f ms, get %.1f ms; longest gap between puts %.1f ms, gets %.1f ms; "
           "gaps over 100 ms: %llu\n",
           (double)st->max_put_us / 1000, (double)st->max_get_us / 1000,
           (double)st->max_put_gap_us / 1000, (double)st->max_get_gap_us / 1000,
           (unsigned long long)st->gaps_over_100ms);
    fflush(stdout);
}

static const char *queue_name; /* named runs: unlinked by unlink_name, pass or fail */

static void unlink_name(void) {
    if (queue_name != NULL)
        mproc_unlink(queue_name);
}

static void run(bool named, bool joinable, int kills) {
    const char *env = getenv("MPROC_KILL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("queue kill test %s%s: seed %llu (MPROC_KILL_SEED=%llu to reproduce)\n",
           joinable ? "joinable " : "", named ? "named" : "anonymous",
           (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    struct run r = {.st = t_shared(sizeof(struct state)), .joinable = joinable};
    run_capacity = named && !joinable ? EARLY_WRAP_CAPACITY : CAPACITY;
    r.opts.capacity = run_capacity;
    if (joinable) {
        r.opts.flags = MPROC_QUEUE_JOINABLE;
        r.opts.max_consumers = MAX_CONSUMERS;
    }
    if (named) {
        r.name = queue_name = t_name("kq");
        cr_assert_eq(mproc_queue_open(&r.queue, r.name, MPROC_CREATE | MPROC_EXCL, MAXSIZE,
                                      &r.opts), 0);
    } else {
        cr_assert_eq(mproc_queue_create(&r.queue, MAXSIZE, &r.opts), 0);
    }
    struct gens *g = calloc(1, sizeof *g);
    cr_assert_not_null(g);
    double started = t_now();
    r.st->start_us = now_us();
    for (int w = 0; w < WORKERS; w++)
        spawn(&r, g, w, xorshift(&rng));
    kill_loop(&r, g, kills, &rng);
    double seconds = t_now() - started;
    uint64_t drained = finish(&r, g, &rng);

    struct state *st = r.st;
    for (int i = 0; i < st->failures && i < 8; i++)
        printf("  failure at %.3f s (pstop %d cstop %d): %s (%s) message %u/%u receiver %u\n",
               (double)st->notes[i].at_us / 1e6, st->notes[i].pstop, st->notes[i].cstop,
               failure_names[st->notes[i].code], mproc_errname(st->notes[i].rc),
               st->notes[i].p, st->notes[i].k, st->notes[i].who);
    struct tally *t = calloc(1, sizeof *t);
    cr_assert_not_null(t);
    check_messages(st, g, t);
    print_summary(st, g, t, seconds);
    cr_assert_eq(st->failures, 0, "%d failures (above)", st->failures);
    cr_assert_eq(g->bad_exits, 0);
    cr_assert_eq(t->problems, 0, "%d problems (above)", t->problems);
    cr_assert_eq(t->drained, drained);
    cr_assert_eq(t->done + t->intent_arrived, t->delivered + t->drained + t->lost);
    check_ticket_order(st);
    if (joinable)
        check_abandoned(&r, g, t);
    cr_assert_geq(g->kills[0] + g->kills[1], kills);
    cr_assert_gt(t->delivered, 5000, "too little traffic to mean anything");
    cr_assert_gt(g->landed[0][PUTTING], 0, "no kill landed inside a put");
    cr_assert_gt(g->landed[1][GETTING], 0, "no kill landed inside a get");
    /* The issue bounds a dead process's cost to the others at 100 ms (one
     * 50 ms liveness slice in the design).  Gaps in progress also include
     * forks and the scheduling of 5 processes on 2 shared vCPUs, so assert
     * 10x that, and print the count over 100 ms.  Joinable runs only print
     * them: there the parent itself holds victims stopped for a moment,
     * perhaps holding a lock, and under load that moment can be long. */
    if (!joinable) {
        cr_assert_lt(st->max_put_gap_us, (uint64_t)(STALL_BOUND * 1e6));
        cr_assert_lt(st->max_get_gap_us, (uint64_t)(STALL_BOUND * 1e6));
    }
    free(t);
    free(g);
    mproc_queue_close(r.queue);
}

/* ---- every instruction (reliability.md section 7, item 3) ----
 *
 * Random kills almost never land between two adjacent stores, such as a
 * joinable get's commit and the store that counts the item as taken.  So a
 * child also stops itself (traced) right before one put or get, and the
 * parent single-steps it k instructions and SIGKILLs it, for k = 0, 1, 2, ...
 * until the operation completes within k steps.  After each death:
 *   - the message is queued whole or not at all (put), queued or taken (get);
 *   - there is one commit point: once a k left it put (taken), every larger
 *     k does too;
 *   - the parent's own put and get go through within BOUND (robust locks);
 *   - a joinable queue counts the item as abandoned iff the get committed,
 *     and join then returns at once.
 * Waits on the stepped child are plain waitpid: it runs only when stepped,
 * and its operation uses timeout 0, so it never sleeps; the test's own
 * timeout bounds the whole.
 */
enum sweep { SWEEP_PUT, SWEEP_GET, SWEEP_JOINABLE_GET };
#define SWEEP_LEN 40 /* bytes per message */

static void sweep_child(mproc_queue *q, enum sweep kind, uint32_t k) {
    uint64_t buf[SWEEP_LEN / 8];
    size_t len;
    make_message(buf, 0, k, SWEEP_LEN);
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
        _exit(2);
    /* Joinable: claim this process's consumer record outside the sweep. */
    if (kind == SWEEP_JOINABLE_GET && (mproc_queue_get(q, buf, sizeof buf, &len, 0) != 0 ||
                                       mproc_queue_task_done(q) != 0))
        _exit(3);
    /* Through a pointer: a first call through the PLT would step through
     * the dynamic linker's lazy binding. */
    void (*volatile leave)(int) = _exit;
    __asm__ volatile("int3"); /* the tracer takes over here */
    int rc = kind == SWEEP_PUT ? mproc_queue_put(q, buf, SWEEP_LEN, 0)
                               : mproc_queue_get(q, buf, sizeof buf, &len, 0);
    leave(rc == 0 ? 0 : 4);
}

/* Lets the stopped child run through `syscalls` system calls, then steps
 * it k instructions and kills it.  Returns the steps it took to finish
 * (exit 0) if it did within k, else -1. */
static long step_then_kill(pid_t pid, int syscalls, long k) {
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
        cr_skip_test("ptrace is not permitted here");
    cr_assert(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP, "child did not stop: %#x",
              status);
    for (int i = 0; i < 2 * syscalls; i++) { /* entry and exit stops */
        cr_assert_eq(ptrace(PTRACE_SYSCALL, pid, NULL, NULL), 0);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP, "syscall stop: %#x",
                  status);
    }
    for (long i = 0; i < k; i++) {
        cr_assert_eq(ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL), 0);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            cr_assert_eq(WEXITSTATUS(status), 0, "stepped child failed (%d)",
                         WEXITSTATUS(status));
            return i + 1;
        }
        cr_assert(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP, "step %ld: %#x", i,
                  status);
    }
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status));
    return -1;
}

/* Takes the next message (within BOUND) and checks it is message 0/k of
 * SWEEP_LEN bytes, intact. */
static void expect_message(mproc_queue *q, uint32_t k) {
    uint64_t buf[SWEEP_LEN / 8 + 1];
    size_t len = 0;
    struct head h;
    double t0 = t_now();
    int rc = mproc_queue_get(q, buf, sizeof buf, &len, BOUND);
    cr_assert_eq(rc, 0, "k=%u: get %s", k, mproc_errname(rc));
    cr_assert_lt(t_now() - t0, 1.0, "k=%u: a dead process held the get side", k);
    cr_assert(message_ok(buf, len, &h) && h.producer == 0 && h.seq == k,
              "k=%u: torn or wrong message", k);
}

static void put_message(mproc_queue *q, uint32_t k) {
    uint64_t buf[SWEEP_LEN / 8];
    make_message(buf, 0, k, SWEEP_LEN);
    double t0 = t_now();
    int rc = mproc_queue_put(q, buf, SWEEP_LEN, BOUND);
    cr_assert_eq(rc, 0, "k=%u: put %s", k, mproc_errname(rc));
    cr_assert_lt(t_now() - t0, 1.0, "k=%u: a dead process held the put side", k);
}

/* One sweep step, on a fresh queue so that every child runs the same
 * instructions: what the child's death at k left behind.  Returns whether
 * its operation took effect (message put, or taken). */
static bool sweep_once(enum sweep kind, uint32_t k, bool *finished) {
    const uint32_t marker = MAXK - 1;
    mproc_queue_options opts = {.capacity = MPROC_QUEUE_MIN_CAPACITY};
    if (kind == SWEEP_JOINABLE_GET)
        opts.flags = MPROC_QUEUE_JOINABLE;
    mproc_queue *q;
    cr_assert_eq(mproc_queue_create(&q, 0, &opts), 0);
    if (kind == SWEEP_JOINABLE_GET)
        put_message(q, marker); /* the child's warm-up item */
    if (kind != SWEEP_PUT)
        put_message(q, k);
    pid_t pid = t_fork();
    if (pid == 0)
        sweep_child(q, kind, k);
    cr_assert_gt(pid, 0);
    *finished = step_then_kill(pid, 0, k) >= 0;
    size_t queued = 9;
    cr_assert_eq(mproc_queue_qsize(q, &queued), 0);
    cr_assert_leq(queued, 1, "k=%u: %zu messages queued", k, queued);
    bool effect = kind == SWEEP_PUT ? queued == 1 : queued == 0;
    if (kind == SWEEP_JOINABLE_GET) {
        uint64_t abandoned = 9;
        cr_assert_eq(mproc_queue_abandoned(q, &abandoned), 0);
        cr_assert_eq(abandoned, effect ? 1 : 0, "k=%u: taken %d, abandoned %llu", k, effect,
                     (unsigned long long)abandoned);
        cr_assert_eq(mproc_queue_forgive(q, abandoned), 0);
    }
    if (queued == 1)
        expect_message(q, k);
    put_message(q, marker); /* both sides are free again */
    expect_message(q, marker);
    if (kind == SWEEP_JOINABLE_GET) {
        for (size_t i = 0; i < 1 + queued; i++)
            cr_assert_eq(mproc_queue_task_done(q), 0);
        double t0 = t_now();
        int rc = mproc_queue_join(q, BOUND);
        cr_assert_eq(rc, 0, "k=%u: join %s", k, mproc_errname(rc));
        cr_assert_lt(t_now() - t0, 1.0);
    }
    mproc_queue_close(q);
    return effect;
}

static void sweep(enum sweep kind) {
    static const char *names[] = {"put", "get", "joinable get"};
    long first_effect = -1;
    bool finished = false;
    uint32_t k;
    for (k = 0; !finished; k++) {
        cr_assert_lt(k, 100000, "%s never finished", names[kind]);
        bool effect = sweep_once(kind, k, &finished);
        if (effect && first_effect < 0)
            first_effect = k;
        cr_assert(effect == (first_effect >= 0), "%s: took effect at %ld steps, not at %u",
                  names[kind], first_effect, k);
    }
    cr_assert_geq(first_effect, 0, "%s never took effect", names[kind]);
    printf("%s: killed after each of %u instructions; it takes effect at instruction %ld\n",
           names[kind], k - 1, first_effect);
    fflush(stdout);
}

/*
 * The reaper: a process folding a dead consumer's unfinished item into the
 * abandoned count and freeing its record (mproc_queue_abandoned does both).
 * It runs free up to its first system call, the check that the consumer is
 * dead, and is killed after each instruction from there (stepping through
 * the snprintf before it would cost thousands of steps per kill).  The next
 * reaper must count the item exactly once, and the record must be free for
 * the next consumer (max_consumers is 1).
 */
static void reap_child(mproc_queue *q) {
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
        _exit(2);
    void (*volatile leave)(int) = _exit; /* see sweep_child */
    uint64_t abandoned = 0;
    __asm__ volatile("int3");
    int rc = mproc_queue_abandoned(q, &abandoned);
    leave(rc == 0 && abandoned == 1 ? 0 : 4);
}

/* One reaper killed after k steps; returns the steps a whole run took, or -1. */
static long reap_once(long k) {
    mproc_queue_options opts = {.capacity = MPROC_QUEUE_MIN_CAPACITY,
                                .flags = MPROC_QUEUE_JOINABLE,
                                .max_consumers = 1};
    mproc_queue *q;
    cr_assert_eq(mproc_queue_create(&q, 0, &opts), 0);
    put_message(q, 0);
    put_message(q, 1);
    pid_t consumer = t_fork();
    if (consumer == 0) { /* takes both, finishes one, exits: one abandoned */
        uint64_t buf[SWEEP_LEN / 8];
        size_t len;
        _exit(mproc_queue_get(q, buf, sizeof buf, &len, 0) == 0 &&
                      mproc_queue_get(q, buf, sizeof buf, &len, 0) == 0 &&
                      mproc_queue_task_done(q) == 0
                  ? 0
                  : 1);
    }
    cr_assert_eq(t_exit_code(consumer, 10), 0);
    pid_t reaper = t_fork();
    if (reaper == 0)
        reap_child(q);
    cr_assert_gt(reaper, 0);
    long steps = step_then_kill(reaper, 1, k);
    uint64_t abandoned = 9, unfinished = 9;
    cr_assert_eq(mproc_queue_abandoned(q, &abandoned), 0);
    cr_assert_eq(abandoned, 1, "k=%ld: abandoned %llu", k, (unsigned long long)abandoned);
    cr_assert_eq(mproc_queue_unfinished(q, &unfinished), 0);
    cr_assert_eq(unfinished, 0);
    double t0 = t_now();
    cr_assert_eq(mproc_queue_join(q, BOUND), MPROC_E_ABANDONED);
    cr_assert_lt(t_now() - t0, 1.0);
    cr_assert_eq(mproc_queue_forgive(q, 1), 0);
    put_message(q, 2); /* the only record is free again */
    expect_message(q, 2);
    cr_assert_eq(mproc_queue_task_done(q), 0);
    cr_assert_eq(mproc_queue_join(q, BOUND), 0);
    mproc_queue_close(q);
    return steps;
}

static void reap_sweep(void) {
    reap_once(LONG_MAX); /* binds the reaper's library calls here, before forking */
    long whole = reap_once(LONG_MAX);
    cr_assert_gt(whole, 0);
    for (long k = 0; k < whole; k++) /* every reaper runs the same instructions */
        cr_assert_eq(reap_once(k), -1, "the reaper finished early at k=%ld", k);
    printf("reaper: killed after each of its %ld instructions past its first system call\n",
           whole);
    fflush(stdout);
}

Test(kill, queue_anonymous_delivers_exactly_once_under_sigkills, .timeout = 120) {
    run(false, false, KILLS);
}
Test(kill, queue_named_delivers_exactly_once_under_sigkills, .timeout = 120,
     .fini = unlink_name) {
    run(true, false, KILLS);
}
Test(kill, joinable_queue_join_reports_abandoned_items_of_killed_consumers, .timeout = 120) {
    run(false, true, JOINABLE_KILLS);
}
Test(kill, joinable_named_queue_join_reports_abandoned_items_of_killed_consumers,
     .timeout = 120, .fini = unlink_name) {
    run(true, true, JOINABLE_KILLS);
}
Test(kill, put_killed_at_every_instruction_is_all_or_nothing, .timeout = 120) {
    sweep(SWEEP_PUT);
}
Test(kill, get_killed_at_every_instruction_leaves_it_or_takes_it, .timeout = 120) {
    sweep(SWEEP_GET);
}
Test(kill, joinable_get_killed_at_every_instruction_is_abandoned_iff_taken, .timeout = 120) {
    sweep(SWEEP_JOINABLE_GET);
}
Test(kill, reaper_killed_at_every_instruction_counts_once_and_frees, .timeout = 120) {
    reap_sweep();
}
