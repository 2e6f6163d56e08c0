/* SPDX-License-Identifier: MIT */
/*
 * Kill test for Pipe.
 *
 * Phase A: two sender processes share the sending end, one receiver process
 * the other; the parent SIGKILLs a random sender at a random moment KILLS
 * times and starts a replacement with a new sender id.  Each message carries
 * (sender, seq, length, checksum) over a pseudo-random body, small or up to
 * the pipe's maximum.  What it proves:
 *   - no message is ever torn or corrupted (length and checksum), even from
 *     a sender killed inside sendmsg;
 *   - no message is lost or duplicated: each sender's messages arrive as
 *     0, 1, 2, ... without a gap, and every message whose send returned 0
 *     arrives (at most the one being sent when the kill came is missing);
 *   - once every sender is dead and the parent closed its copy of the end,
 *     the receiver drains the pipe and gets MPROC_E_EOF: never a hang.
 *
 * Phase B: ROUNDS times, two receiver processes share the receiving end of
 * a fresh pipe and stop reading; two senders fill the pipe and block.  The
 * parent kills one receiver (the senders must stay blocked: the other still
 * holds the end), then the other: both senders must get MPROC_E_EOF within
 * EOF_BOUND.
 *
 * Both phases run on an anonymous pipe and on a named one.  The seed is
 * printed; MPROC_KILL_SEED=N reproduces a run's choices.
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

#define SLOTS 2              /* senders alive at any time */
#define KILLS 300            /* phase A's SIGKILLs per run (>= 150 asked) */
#define IDS (KILLS + SLOTS)  /* one sender id per sender process */
#define ROUNDS 6             /* phase B */
#define BOUND 10.0           /* any send or recv longer than this fails the test */
#define EOF_BOUND 2.0        /* end of file after the last holder died (slack: loaded CI) */
#define SMALL 256

enum phase { BUILDING, SENDING, NPHASES };
static const char *phase_names[NPHASES] = {"building", "sending"};

/* A message: header, then `len - sizeof header` pseudo-random bytes. */
typedef struct header {
    uint32_t sender, seq, len, pad;
    uint64_t sum;
} header;

struct state {
    /* Per sender id: written by that sender, or by the receiver. */
    _Atomic int64_t attempted[IDS], acked[IDS]; /* senders: seq being sent, last sent */
    _Atomic int64_t last[IDS];                  /* receiver: last seq received */
    _Atomic int phase[SLOTS];
    _Atomic int failures, last_failure;
    _Atomic uint64_t messages, big, enobufs, allocs;
    _Atomic int64_t eof_us; /* receiver: when end of file came (t_now() * 1e6) */
};

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

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static size_t build(unsigned char *buf, size_t len, uint32_t sender, uint32_t seq) {
    uint64_t s = ((uint64_t)sender << 32 | seq) * 0x9e3779b97f4a7c15ull | 1;
    for (size_t i = sizeof(header); i < len; i++)
        buf[i] = (unsigned char)xorshift(&s);
    header h = {.sender = sender, .seq = seq, .len = (uint32_t)len,
                .sum = fnv(buf + sizeof h, len - sizeof h)};
    memcpy(buf, &h, sizeof h);
    return len;
}

/* ---- the processes ---- */

static void nap_us(uint64_t us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL); /* randomises timing (kills, a full pipe); orders nothing */
}

static void sender(struct state *st, mproc_conn *r, mproc_conn *w, int slot, uint32_t id,
                   uint64_t seed) {
    mproc_conn_close(r);
    uint64_t rng = seed | 1;
    size_t max = mproc_conn_max_message(w);
    unsigned char *buf = malloc(max);
    for (uint32_t seq = 0;; seq++) {
        atomic_store(&st->phase[slot], BUILDING);
        size_t len = xorshift(&rng) % 16 == 0 ? max - xorshift(&rng) % 1000
                                                : sizeof(header) + xorshift(&rng) % SMALL;
        build(buf, len, id, seq);
        atomic_store(&st->attempted[id], seq);
        atomic_store(&st->phase[slot], SENDING);
        int rc = mproc_conn_send(w, buf, len, BOUND);
        if (rc != 0) {
            fail(st, rc);
            _exit(1);
        }
        atomic_store(&st->acked[id], seq);
    }
}

/* Checks one received message; 0 or a failure code. */
static int check(struct state *st, const unsigned char *buf, size_t len) {
    header h;
    if (len < sizeof h)
        return 1001; /* torn */
    memcpy(&h, buf, sizeof h);
    if (h.sender >= IDS || h.len != len || h.sum != fnv(buf + sizeof h, len - sizeof h))
        return 1002; /* torn or corrupted */
    if ((int64_t)h.seq != atomic_load(&st->last[h.sender]) + 1)
        return 1003; /* lost, duplicated or out of order */
    if ((int64_t)h.seq > atomic_load(&st->attempted[h.sender]))
        return 1004; /* never sent */
    atomic_store(&st->last[h.sender], h.seq);
    atomic_fetch_add(&st->messages, 1);
    if (len > SMALL + sizeof h)
        atomic_fetch_add(&st->big, 1);
    return 0;
}

/* Phase A's receiver: until end of file, with a too small buffer now and
 * then (ENOBUFS, then the same message whole) and recv_alloc now and then;
 * it also dawdles now and then, so that kills find senders blocked on a
 * full pipe. */
static void receiver(struct state *st, mproc_conn *r, mproc_conn *w, uint64_t seed) {
    mproc_conn_close(w);
    uint64_t rng = seed | 1;
    size_t max = mproc_conn_max_message(r);
    unsigned char *buf = malloc(max);
    for (;;) {
        size_t len = 0, peeked = 0;
        void *alloc = NULL;
        uint64_t how = xorshift(&rng) % 8;
        if (xorshift(&rng) % 64 == 0)
            nap_us(2000);
        int rc = how == 0 ? mproc_conn_recv(r, buf, 16, &peeked, BOUND) : 0;
        if (rc == ENOBUFS)
            atomic_fetch_add(&st->enobufs, 1);
        if (rc == 0 || rc == ENOBUFS)
            rc = how == 1 ? mproc_conn_recv_alloc(r, &alloc, &len, BOUND)
                          : mproc_conn_recv(r, buf, max, &len, BOUND);
        if (rc == MPROC_E_EOF) {
            atomic_store(&st->eof_us, (int64_t)(t_now() * 1e6));
            _exit(0);
        }
        if (rc == 0 && how == 0 && len != peeked)
            rc = 1005; /* ENOBUFS reported another message's length */
        if (rc == 0 && alloc != NULL) {
            atomic_fetch_add(&st->allocs, 1);
            rc = check(st, alloc, len);
            free(alloc);
        } else if (rc == 0) {
            rc = check(st, buf, len);
        }
        if (rc != 0) {
            fail(st, rc);
            _exit(1);
        }
    }
}

/* ---- set-up ---- */

/* The two ends: r receives, w sends.  Named: both opened here, and the
 * creating end connected before anything is forked (see pipe.h). */
static void make_ends(bool named, mproc_conn **r, mproc_conn **w) {
    if (!named) {
        cr_assert_eq(mproc_pipe(r, w, 0, NULL), 0);
        return;
    }
    const char *name = t_name("kpipe");
    cr_assert_eq(mproc_pipe_open(r, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
    cr_assert_eq(mproc_pipe_open(w, name, MPROC_ATTACH, NULL), 0);
    int ready = -1; /* the peer is already connected: even a poll of 0 s takes it */
    cr_assert_eq(mproc_conn_poll(*r, 0, &ready), 0);
    cr_assert_eq(ready, 0, "connected, nothing sent");
    cr_assert_eq(mproc_unlink(name), ENOENT, "the name went when the peer connected");
}

static pid_t spawn_sender(struct state *st, mproc_conn *r, mproc_conn *w, int slot, uint32_t id,
                          uint64_t seed) {
    atomic_store(&st->attempted[id], -1);
    atomic_store(&st->acked[id], -1);
    atomic_store(&st->last[id], -1);
    pid_t pid = t_fork();
    if (pid == 0)
        sender(st, r, w, slot, id, seed);
    cr_assert_gt(pid, 0);
    return pid;
}

/* ---- phase A ---- */

static void kill_senders(struct state *st, bool named, uint64_t *rng) {
    mproc_conn *r, *w;
    make_ends(named, &r, &w);
    pid_t recv_pid = t_fork();
    if (recv_pid == 0)
        receiver(st, r, w, xorshift(rng));
    cr_assert_gt(recv_pid, 0);
    pid_t pids[SLOTS];
    uint32_t next_id = 0;
    for (int s = 0; s < SLOTS; s++)
        pids[s] = spawn_sender(st, r, w, s, next_id++, xorshift(rng));
    int landed[NPHASES] = {0};
    double started = t_now();
    for (int k = 0; k < KILLS; k++) {
        /* The last SLOTS kills take each sender left in turn, and leave every
         * slot empty; the others hit a random slot and refill it. */
        bool last_round = k >= KILLS - SLOTS;
        int s = last_round ? k - (KILLS - SLOTS) : (int)(xorshift(rng) % SLOTS);
        nap_us(xorshift(rng) % 3000);
        landed[atomic_load(&st->phase[s])]++;
        cr_assert_gt(pids[s], 0);
        kill(pids[s], SIGKILL);
        cr_assert_eq(t_exit_code(pids[s], BOUND), -1000 - SIGKILL, "sender failed: %s",
                     mproc_errname(atomic_load(&st->last_failure)));
        pids[s] = last_round ? -1 : spawn_sender(st, r, w, s, next_id++, xorshift(rng));
    }
    double closed = t_now();
    cr_assert_eq(mproc_conn_close(w), 0, "the last holder of the sending end");
    cr_assert_eq(t_exit_code(recv_pid, BOUND), 0, "receiver: %d failures, last %s",
                 atomic_load(&st->failures), mproc_errname(atomic_load(&st->last_failure)));
    double eof_after = (double)atomic_load(&st->eof_us) / 1e6 - closed;
    printf("  phase A: %d kills in %.1f s; landed: %s=%d %s=%d; %llu messages (%llu big, "
           "%llu ENOBUFS, %llu allocated); EOF %.1f ms after the last close\n",
           KILLS, t_now() - started, phase_names[0], landed[0], phase_names[1], landed[1],
           (unsigned long long)st->messages, (unsigned long long)st->big,
           (unsigned long long)st->enobufs, (unsigned long long)st->allocs, eof_after * 1e3);
    fflush(stdout);
    cr_assert_eq(atomic_load(&st->failures), 0);
    cr_assert_lt(eof_after, EOF_BOUND, "end of file came late");
    for (uint32_t id = 0; id < next_id; id++) {
        int64_t last = st->last[id], acked = st->acked[id], attempted = st->attempted[id];
        cr_assert(last >= acked && last <= attempted,
                  "sender %u: received up to %lld, sent %lld, attempted %lld", id,
                  (long long)last, (long long)acked, (long long)attempted);
    }
    cr_assert_gt(st->messages, 1000, "too little traffic to mean anything");
    cr_assert_gt(st->big, 10);
    cr_assert_gt(landed[SENDING], 0, "no kill landed in a send");
    mproc_conn_close(r);
}

/* ---- phase B ---- */

/* A receiver that takes `n` messages, then stops reading until killed. */
static pid_t stalled_receiver(mproc_conn *r, mproc_conn *w, int n, t_pipe *ready) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn_close(w);
        unsigned char *buf = malloc(mproc_conn_max_message(r));
        size_t len;
        for (int i = 0; i < n; i++)
            if (mproc_conn_recv(r, buf, mproc_conn_max_message(r), &len, BOUND) != 0)
                _exit(1);
        t_signal(ready, 'r');
        pause();
        _exit(0);
    }
    cr_assert_gt(pid, 0);
    return pid;
}

/* A sender that sends until its send fails: exit 0 on MPROC_E_EOF. */
static pid_t eof_sender(mproc_conn *r, mproc_conn *w, uint32_t id) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn_close(r);
        unsigned char buf[sizeof(header) + SMALL];
        for (uint32_t seq = 0;; seq++) {
            int rc = mproc_conn_send(w, buf, build(buf, sizeof buf, id, seq), MPROC_FOREVER);
            if (rc != 0)
                _exit(rc == MPROC_E_EOF ? 0 : 1);
        }
    }
    cr_assert_gt(pid, 0);
    return pid;
}

static void kill_receivers(bool named, uint64_t *rng) {
    double worst = 0;
    for (int round = 0; round < ROUNDS; round++) {
        mproc_conn *r, *w;
        make_ends(named, &r, &w);
        t_pipe ready;
        t_pipe_open(&ready);
        pid_t receivers[2], senders[2];
        for (int i = 0; i < 2; i++)
            senders[i] = eof_sender(r, w, (uint32_t)i);
        for (int i = 0; i < 2; i++)
            receivers[i] = stalled_receiver(r, w, (int)(xorshift(rng) % 50), &ready);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(t_await(&ready, BOUND), 'r');
        mproc_conn_close(r);
        mproc_conn_close(w);
        for (int i = 0; i < 2; i++)
            cr_assert(t_wait_sleeping(senders[i], BOUND), "sender %d never blocked", i);
        kill(receivers[0], SIGKILL);
        cr_assert_eq(t_exit_code(receivers[0], BOUND), -1000 - SIGKILL);
        for (int i = 0; i < 2; i++) { /* the other receiver still holds the end */
            cr_assert(t_wait_sleeping(senders[i], BOUND), "sender %d woke", i);
            cr_assert_eq(waitpid(senders[i], NULL, WNOHANG), 0, "sender %d ended early", i);
        }
        double t0 = t_now();
        kill(receivers[1], SIGKILL);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(t_exit_code(senders[i], EOF_BOUND), 0, "sender %d: no EOF", i);
        if (t_now() - t0 > worst)
            worst = t_now() - t0;
        cr_assert_eq(t_exit_code(receivers[1], BOUND), -1000 - SIGKILL);
        t_pipe_close(&ready);
    }
    printf("  phase B: %d rounds; blocked senders got EOF within %.1f ms of the last "
           "receiver's death\n", ROUNDS, worst * 1e3);
    fflush(stdout);
}

static void run(bool named) {
    const char *env = getenv("MPROC_KILL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("pipe kill test %s: seed %llu (MPROC_KILL_SEED=%llu to reproduce)\n",
           named ? "named" : "anonymous", (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    uint64_t rng = seed | 1;
    struct state *st = t_shared(sizeof *st);
    kill_senders(st, named, &rng);
    kill_receivers(named, &rng);
}

Test(kill, pipe_anonymous_survives_random_sigkills, .timeout = 120) { run(false); }
Test(kill, pipe_named_survives_random_sigkills, .timeout = 120) { run(true); }
