/* SPDX-License-Identifier: MIT */
/*
 * Pipe between the threads of one process: message boundaries and order,
 * empty and maximal messages, ENOBUFS leaving the message queued, one-way
 * directions, poll, end of file, timeouts, blocked senders and receivers
 * woken by the peer's close, many senders and receivers on one end, and
 * named pipes opened twice in one process (names, probes, stale rules).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

static void make_pipe(mproc_conn **a, mproc_conn **b, int duplex) {
    int rc = mproc_pipe(a, b, duplex, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
}

static void send_str(mproc_conn *conn, const char *s) {
    cr_assert_eq(mproc_conn_send(conn, s, strlen(s), BOUND), 0);
}

/* Receives one message and checks it is exactly `want`. */
static void expect(mproc_conn *conn, const char *want) {
    char buf[64];
    size_t len = 999;
    int rc = mproc_conn_recv(conn, buf, sizeof buf, &len, BOUND);
    cr_assert_eq(rc, 0, "%s", mproc_errname(rc));
    cr_assert_eq(len, strlen(want));
    cr_assert_eq(memcmp(buf, want, len), 0);
}

static int recv_code(mproc_conn *conn, double timeout) {
    char buf[64];
    size_t len;
    return mproc_conn_recv(conn, buf, sizeof buf, &len, timeout);
}

static int poll_ready(mproc_conn *conn, double timeout) {
    int ready = -1;
    cr_assert_eq(mproc_conn_poll(conn, timeout, &ready), 0);
    return ready;
}

/* ---- messages ---- */

Test(pipe, three_sends_are_three_receives_in_order) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    send_str(w, "a");
    send_str(w, "b");
    send_str(w, "cd");
    expect(r, "a");
    expect(r, "b");
    expect(r, "cd");
    cr_assert_eq(recv_code(r, 0), ETIMEDOUT, "nothing more was sent");
    mproc_conn_close(r);
    mproc_conn_close(w);
}

Test(pipe, an_empty_message_is_a_message_not_eof) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    cr_assert_eq(mproc_conn_send(w, NULL, 0, BOUND), 0);
    cr_assert_eq(mproc_conn_send(w, "", 0, BOUND), 0);
    cr_assert_eq(mproc_conn_close(w), 0);
    size_t len = 999;
    cr_assert_eq(mproc_conn_recv(r, NULL, 0, &len, BOUND), 0);
    cr_assert_eq(len, 0);
    void *msg = NULL;
    cr_assert_eq(mproc_conn_recv_alloc(r, &msg, &len, BOUND), 0);
    cr_assert_eq(len, 0);
    cr_assert_not_null(msg, "recv_alloc never returns NULL");
    free(msg);
    cr_assert_eq(mproc_conn_recv(r, NULL, 0, &len, BOUND), MPROC_E_EOF);
    mproc_conn_close(r);
}

Test(pipe, a_message_of_max_size_works_and_one_byte_more_is_emsgsize) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    size_t max = mproc_conn_max_message(w);
    cr_assert_geq(max, 100 * 1024, "at least 100 KiB with any sane wmem_max");
    cr_assert_eq(mproc_conn_max_message(r), max);
    unsigned char *out = malloc(max + 1), *in = malloc(max + 1);
    for (size_t i = 0; i <= max; i++)
        out[i] = (unsigned char)(i * 7 + i / 251);
    cr_assert_eq(mproc_conn_send(w, out, max + 1, BOUND), EMSGSIZE);
    cr_assert_eq(mproc_conn_send(w, out, max, BOUND), 0, "fits an empty pipe, nobody reading");
    size_t len = 0;
    cr_assert_eq(mproc_conn_recv(r, in, max + 1, &len, BOUND), 0);
    cr_assert_eq(len, max);
    cr_assert_eq(memcmp(in, out, max), 0);
    cr_assert_eq(mproc_conn_send(w, out, max + 1, 0), EMSGSIZE);
    send_str(w, "still works");
    expect(r, "still works");
    free(out);
    free(in);
    mproc_conn_close(r);
    mproc_conn_close(w);
}

Test(pipe, a_too_small_buffer_gets_enobufs_and_the_message_stays) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    send_str(w, "0123456789");
    send_str(w, "next");
    char buf[16] = "untouched";
    size_t len = 0;
    cr_assert_eq(mproc_conn_recv(r, buf, 3, &len, BOUND), ENOBUFS);
    cr_assert_eq(len, 10, "the real length is reported");
    cr_assert_eq(mproc_conn_recv(r, NULL, 0, &len, 0), ENOBUFS);
    cr_assert_eq(len, 10);
    expect(r, "0123456789");
    void *msg = NULL;
    cr_assert_eq(mproc_conn_recv_alloc(r, &msg, &len, BOUND), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(msg, "next", 4), 0);
    free(msg);
    mproc_conn_close(r);
    mproc_conn_close(w);
}

/* ---- directions ---- */

Test(pipe, a_one_way_pipe_refuses_the_wrong_direction_with_ebadf) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    int ready;
    size_t len;
    void *msg;
    char buf[8];
    cr_assert_eq(mproc_conn_send(r, "x", 1, 0), EBADF);
    cr_assert_eq(mproc_conn_recv(w, buf, sizeof buf, &len, 0), EBADF);
    cr_assert_eq(mproc_conn_recv_alloc(w, &msg, &len, 0), EBADF);
    cr_assert_eq(mproc_conn_poll(w, 0, &ready), EBADF);
    send_str(w, "right way");
    expect(r, "right way");
    mproc_conn_close(r);
    mproc_conn_close(w);
}

Test(pipe, a_duplex_pipe_carries_messages_both_ways) {
    mproc_conn *a, *b;
    make_pipe(&a, &b, 1);
    send_str(a, "to b");
    send_str(b, "to a");
    expect(b, "to b");
    expect(a, "to a");
    cr_assert_geq(mproc_conn_fileno(a), 0);
    cr_assert_neq(mproc_conn_fileno(a), mproc_conn_fileno(b));
    mproc_conn_close(a);
    mproc_conn_close(b);
}

/* ---- poll, timeouts, end of file ---- */

Test(pipe, poll_with_timeout_zero_answers_at_once) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    double t0 = t_now();
    cr_assert_eq(poll_ready(r, 0), 0);
    cr_assert_lt(t_now() - t0, 0.1, "no wait (slack for a loaded machine)");
    mproc_conn_close(r);
    mproc_conn_close(w);
}

Test(pipe, poll_and_recv_time_out_after_their_timeout) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    double t0 = t_now();
    cr_assert_eq(poll_ready(r, 0.1), 0);
    double waited = t_now() - t0;
    cr_assert(waited >= 0.1 && waited < 1.0, "poll waited %.3f s", waited);
    t0 = t_now();
    cr_assert_eq(recv_code(r, 0.1), ETIMEDOUT);
    waited = t_now() - t0;
    cr_assert(waited >= 0.1 && waited < 1.0, "recv waited %.3f s", waited);
    cr_assert_eq(recv_code(r, 0), ETIMEDOUT);
    mproc_conn_close(r);
    mproc_conn_close(w);
}

Test(pipe, poll_sees_a_waiting_message_and_does_not_consume_it) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    send_str(w, "m");
    cr_assert_eq(poll_ready(r, 0), 1);
    cr_assert_eq(poll_ready(r, BOUND), 1);
    expect(r, "m");
    cr_assert_eq(poll_ready(r, 0), 0);
    mproc_conn_close(w);
    cr_assert_eq(poll_ready(r, 0), 1, "end of file is ready too");
    cr_assert_eq(recv_code(r, 0), MPROC_E_EOF);
    mproc_conn_close(r);
}

Test(pipe, after_the_peer_closes_pending_messages_come_then_eof) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    send_str(w, "one");
    send_str(w, "two");
    cr_assert_eq(mproc_conn_close(w), 0);
    expect(r, "one");
    expect(r, "two");
    cr_assert_eq(recv_code(r, BOUND), MPROC_E_EOF);
    cr_assert_eq(recv_code(r, 0), MPROC_E_EOF, "and stays at end of file");
    void *msg = NULL;
    size_t len;
    cr_assert_eq(mproc_conn_recv_alloc(r, &msg, &len, 0), MPROC_E_EOF);
    cr_assert_null(msg);
    mproc_conn_close(r);
}

Test(pipe, a_peer_that_closes_with_our_messages_unread_still_delivers_its_own) {
    mproc_conn *a, *b;
    make_pipe(&a, &b, 1);
    send_str(a, "never read"); /* the kernel reports ECONNRESET to a ... */
    send_str(b, "last words");
    cr_assert_eq(mproc_conn_close(b), 0);
    cr_assert_eq(poll_ready(a, 0), 1);
    expect(a, "last words"); /* ... which must not hide this message */
    cr_assert_eq(recv_code(a, BOUND), MPROC_E_EOF);
    mproc_conn_close(a);
}

Test(pipe, send_to_a_closed_peer_is_eof) {
    mproc_conn *a, *b;
    make_pipe(&a, &b, 1);
    send_str(a, "unread"); /* left in b's queue when b closes */
    cr_assert_eq(mproc_conn_close(b), 0);
    cr_assert_eq(mproc_conn_send(a, "x", 1, BOUND), MPROC_E_EOF);
    cr_assert_eq(mproc_conn_send(a, NULL, 0, 0), MPROC_E_EOF);
    cr_assert_eq(recv_code(a, BOUND), MPROC_E_EOF);
    mproc_conn_close(a);
}

/* A thread blocked in recv or send, for the wake-up tests. */
typedef struct blocked {
    mproc_conn *conn;
    bool sender;
    _Atomic pid_t tid;
    _Atomic int rc;
    pthread_t thread;
} blocked;

static void *blocked_main(void *arg) {
    blocked *b = arg;
    atomic_store(&b->tid, gettid());
    static const char payload[1024];
    int rc = b->sender ? mproc_conn_send(b->conn, payload, sizeof payload, MPROC_FOREVER)
                       : recv_code(b->conn, MPROC_FOREVER);
    atomic_store(&b->rc, rc);
    return NULL;
}

static void start_blocked(blocked *b, mproc_conn *conn, bool sender) {
    *b = (blocked){.conn = conn, .sender = sender, .rc = -1};
    cr_assert_eq(pthread_create(&b->thread, NULL, blocked_main, b), 0);
    double end = t_now() + BOUND;
    while (atomic_load(&b->tid) == 0 && t_now() < end)
        sched_yield();
    cr_assert(t_wait_sleeping(atomic_load(&b->tid), BOUND), "the thread never blocked");
}

/* The thread returns promptly once woken (its call has no bound). */
static int join_blocked(blocked *b, double since) {
    double end = t_now() + BOUND;
    while (atomic_load(&b->rc) == -1 && t_now() < end)
        sched_yield();
    cr_assert_lt(t_now() - since, 1.0, "woken promptly (slack for a loaded machine)");
    cr_assert_neq(atomic_load(&b->rc), -1, "still blocked: a hang");
    pthread_join(b->thread, NULL);
    return atomic_load(&b->rc);
}

Test(pipe, a_blocked_recv_gets_eof_when_the_peer_closes) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    blocked b;
    start_blocked(&b, r, false);
    double t0 = t_now();
    cr_assert_eq(mproc_conn_close(w), 0);
    cr_assert_eq(join_blocked(&b, t0), MPROC_E_EOF);
    mproc_conn_close(r);
}

/* Fills w's socket with 1 KiB messages; returns how many fit. */
static int fill(mproc_conn *w) {
    static const char payload[1024];
    int n = 0, rc;
    while ((rc = mproc_conn_send(w, payload, sizeof payload, 0)) == 0)
        cr_assert_lt(++n, 1000000, "the pipe never filled");
    cr_assert_eq(rc, ETIMEDOUT);
    return n;
}

Test(pipe, a_send_on_a_full_pipe_times_out_then_gets_eof_when_the_reader_closes) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    int n = fill(w);
    cr_assert_gt(n, 10);
    double t0 = t_now();
    cr_assert_eq(mproc_conn_send(w, "x", 1, 0.1), ETIMEDOUT);
    double waited = t_now() - t0;
    cr_assert(waited >= 0.1 && waited < 1.0, "send waited %.3f s", waited);
    blocked b;
    start_blocked(&b, w, true);
    t0 = t_now();
    cr_assert_eq(mproc_conn_close(r), 0);
    cr_assert_eq(join_blocked(&b, t0), MPROC_E_EOF);
    mproc_conn_close(w);
}

Test(pipe, a_blocked_sender_resumes_when_the_reader_drains) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    int n = fill(w);
    blocked b;
    start_blocked(&b, w, true);
    char buf[1024];
    size_t len;
    for (int i = 0; i < n; i++)
        cr_assert_eq(mproc_conn_recv(r, buf, sizeof buf, &len, BOUND), 0);
    cr_assert_eq(join_blocked(&b, t_now()), 0);
    cr_assert_eq(mproc_conn_recv(r, buf, sizeof buf, &len, BOUND), 0);
    cr_assert_eq(len, sizeof buf);
    mproc_conn_close(r);
    mproc_conn_close(w);
}

/* ---- many senders and receivers on one end ---- */

#define SENDERS 4
#define RECEIVERS 3
#define PER_SENDER 2000
#define BODY_MAX 300

/* A message: who sent it, its number, a checksum of the body. */
typedef struct message {
    uint32_t sender, seq;
    uint64_t sum;
    unsigned char body[BODY_MAX];
} message;

static uint64_t fnv(const unsigned char *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static size_t make_message(message *m, uint32_t sender, uint32_t seq) {
    size_t body = (sender * 131u + seq * 17u) % BODY_MAX;
    m->sender = sender;
    m->seq = seq;
    for (size_t i = 0; i < body; i++)
        m->body[i] = (unsigned char)(sender ^ (seq * 13u) ^ i);
    m->sum = fnv(m->body, body, (uint64_t)sender << 32 | seq);
    return offsetof(message, body) + body;
}

static bool message_ok(const message *m, size_t len) {
    return len >= offsetof(message, body) &&
           m->sum == fnv(m->body, len - offsetof(message, body),
                         (uint64_t)m->sender << 32 | m->seq);
}

typedef struct crowd {
    mproc_conn *r, *w;
    _Atomic int seen[SENDERS][PER_SENDER];
    _Atomic int bad, order, stops;
} crowd;

typedef struct member {
    crowd *c;
    uint32_t id;
    pthread_t thread;
} member;

static void *sender_main(void *arg) {
    member *m = arg;
    message msg;
    for (uint32_t seq = 0; seq < PER_SENDER; seq++)
        if (mproc_conn_send(m->c->w, &msg, make_message(&msg, m->id, seq), BOUND) != 0)
            atomic_fetch_add(&m->c->bad, 1);
    return NULL;
}

/* Takes messages until a stop message (sender == SENDERS); a small buffer
 * now and then exercises the peek path next to the others' plain receives. */
static void *receiver_main(void *arg) {
    member *m = arg;
    crowd *c = m->c;
    int64_t last[SENDERS];
    for (int s = 0; s < SENDERS; s++)
        last[s] = -1;
    message msg;
    for (uint32_t k = 0;; k++) {
        size_t len = 0;
        size_t cap = k % 3 == 0 ? sizeof msg : k % 3 == 1 ? offsetof(message, body) + 50 : 8;
        int rc = mproc_conn_recv(c->r, &msg, cap, &len, BOUND);
        if (rc == ENOBUFS)
            continue;
        if (rc != 0 || !message_ok(&msg, len) || msg.sender > SENDERS || msg.seq >= PER_SENDER) {
            atomic_fetch_add(&c->bad, 1);
            return NULL;
        }
        if (msg.sender == SENDERS)
            return NULL;
        if ((int64_t)msg.seq <= last[msg.sender])
            atomic_fetch_add(&c->order, 1);
        last[msg.sender] = msg.seq;
        atomic_fetch_add(&c->seen[msg.sender][msg.seq], 1);
    }
}

Test(pipe, many_threads_send_and_receive_each_message_exactly_once_in_order, .timeout = 60) {
    crowd *c = calloc(1, sizeof *c);
    make_pipe(&c->r, &c->w, 0);
    member senders[SENDERS], receivers[RECEIVERS];
    for (int i = 0; i < RECEIVERS; i++) {
        receivers[i] = (member){.c = c, .id = (uint32_t)i};
        cr_assert_eq(pthread_create(&receivers[i].thread, NULL, receiver_main, &receivers[i]), 0);
    }
    for (int i = 0; i < SENDERS; i++) {
        senders[i] = (member){.c = c, .id = (uint32_t)i};
        cr_assert_eq(pthread_create(&senders[i].thread, NULL, sender_main, &senders[i]), 0);
    }
    for (int i = 0; i < SENDERS; i++)
        pthread_join(senders[i].thread, NULL); /* each send is bounded */
    message stop;
    for (int i = 0; i < RECEIVERS; i++)
        cr_assert_eq(mproc_conn_send(c->w, &stop, make_message(&stop, SENDERS, (uint32_t)i), BOUND),
                     0);
    for (int i = 0; i < RECEIVERS; i++)
        pthread_join(receivers[i].thread, NULL); /* each recv is bounded */
    cr_assert_eq(atomic_load(&c->bad), 0);
    cr_assert_eq(atomic_load(&c->order), 0, "a receiver saw a sender's messages out of order");
    for (int s = 0; s < SENDERS; s++)
        for (int q = 0; q < PER_SENDER; q++)
            cr_assert_eq(atomic_load(&c->seen[s][q]), 1, "message %d.%d seen %d times", s, q,
                         atomic_load(&c->seen[s][q]));
    cr_assert_eq(recv_code(c->r, 0), ETIMEDOUT, "nothing left over");
    mproc_conn_close(c->r);
    mproc_conn_close(c->w);
    free(c);
}

/* ---- arguments ---- */

Test(pipe, bad_arguments_are_einval) {
    mproc_conn *r, *w;
    mproc_pipe_options opts = {0};
    opts.reserved[3] = 1;
    cr_assert_eq(mproc_pipe(NULL, &w, 1, NULL), EINVAL);
    cr_assert_eq(mproc_pipe(&r, NULL, 1, NULL), EINVAL);
    cr_assert_eq(mproc_pipe(&r, &w, 1, &opts), EINVAL);
    make_pipe(&r, &w, 1);
    char buf[4];
    size_t len;
    void *msg;
    int ready;
    cr_assert_eq(mproc_conn_send(NULL, "x", 1, 0), EINVAL);
    cr_assert_eq(mproc_conn_send(w, NULL, 1, 0), EINVAL);
    cr_assert_eq(mproc_conn_send(w, "x", 1, NAN), EINVAL);
    cr_assert_eq(mproc_conn_recv(NULL, buf, 4, &len, 0), EINVAL);
    cr_assert_eq(mproc_conn_recv(r, NULL, 4, &len, 0), EINVAL);
    cr_assert_eq(mproc_conn_recv(r, buf, 4, NULL, 0), EINVAL);
    cr_assert_eq(mproc_conn_recv(r, buf, 4, &len, NAN), EINVAL);
    cr_assert_eq(mproc_conn_recv_alloc(NULL, &msg, &len, 0), EINVAL);
    cr_assert_eq(mproc_conn_recv_alloc(r, NULL, &len, 0), EINVAL);
    cr_assert_eq(mproc_conn_recv_alloc(r, &msg, NULL, 0), EINVAL);
    cr_assert_eq(mproc_conn_recv_alloc(r, &msg, &len, NAN), EINVAL);
    cr_assert_eq(mproc_conn_poll(NULL, 0, &ready), EINVAL);
    cr_assert_eq(mproc_conn_poll(r, 0, NULL), EINVAL);
    cr_assert_eq(mproc_conn_poll(r, NAN, &ready), EINVAL);
    cr_assert_eq(mproc_conn_close(NULL), EINVAL);
    cr_assert_eq(mproc_conn_fileno(NULL), -1);
    cr_assert_eq(mproc_conn_max_message(NULL), 0);
    mproc_conn_close(r);
    mproc_conn_close(w);
}

/* ---- named pipes, both ends in this process ---- */

static mproc_conn *open_named(const char *name, int flags) {
    mproc_conn *conn = NULL;
    int rc = mproc_pipe_open(&conn, name, flags, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_errname(rc));
    return conn;
}

static bool name_exists(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/mproc.%s", name);
    struct stat st;
    return lstat(path, &st) == 0;
}

Test(pipe_named, two_openers_get_the_two_ends_and_the_name_goes) {
    const char *name = t_name("pn");
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    mproc_conn *a = open_named(name, MPROC_ATTACH);
    send_str(a, "hello listener"); /* queued before the listener accepts */
    expect(l, "hello listener");
    send_str(l, "hello attacher");
    expect(a, "hello attacher");
    cr_assert_not(name_exists(name), "removed once the peer connected");
    mproc_conn *x = NULL;
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_ATTACH, NULL), ENOENT);
    cr_assert_eq(mproc_unlink(name), ENOENT);
    cr_assert_eq(mproc_conn_close(a), 0);
    cr_assert_eq(recv_code(l, BOUND), MPROC_E_EOF);
    mproc_conn_close(l);
}

Test(pipe_named, create_while_someone_listens_connects_to_them) {
    const char *name = t_name("pn");
    mproc_conn *l = open_named(name, MPROC_CREATE);
    mproc_conn *b = open_named(name, MPROC_CREATE);
    send_str(l, "ping");
    expect(b, "ping");
    send_str(b, "pong");
    expect(l, "pong");
    mproc_conn_close(l);
    mproc_conn_close(b);
}

Test(pipe_named, create_excl_while_someone_listens_is_eexist_and_costs_them_nothing) {
    const char *name = t_name("pn");
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    mproc_conn *x = NULL;
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_CREATE | MPROC_EXCL, NULL), EEXIST);
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_CREATE | MPROC_EXCL, NULL), EEXIST);
    /* The probes' connections are dropped: the listener's peer is `a`. */
    mproc_conn *a = open_named(name, MPROC_ATTACH);
    send_str(a, "real peer");
    expect(l, "real peer");
    mproc_conn_close(a);
    mproc_conn_close(l);
}

Test(pipe_named, the_listener_times_out_without_a_peer_then_gets_one) {
    const char *name = t_name("pn");
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    double t0 = t_now();
    cr_assert_eq(recv_code(l, 0.1), ETIMEDOUT);
    double waited = t_now() - t0;
    cr_assert(waited >= 0.1 && waited < 1.0, "waited %.3f s", waited);
    cr_assert_eq(mproc_conn_send(l, "x", 1, 0), ETIMEDOUT);
    cr_assert_eq(poll_ready(l, 0), 0);
    int fd = mproc_conn_fileno(l);
    mproc_conn *a = open_named(name, MPROC_ATTACH);
    cr_assert_eq(poll_ready(l, 0), 0, "takes the waiting peer; nothing sent yet");
    cr_assert_eq(mproc_conn_fileno(l), fd, "the descriptor number is kept");
    send_str(a, "late");
    expect(l, "late");
    mproc_conn_close(a);
    mproc_conn_close(l);
}

Test(pipe_named, closing_a_listener_that_never_connected_removes_its_name) {
    const char *name = t_name("pn");
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    cr_assert(name_exists(name));
    cr_assert_eq(mproc_conn_close(l), 0);
    cr_assert_not(name_exists(name));
    mproc_conn *x = NULL;
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_ATTACH, NULL), ENOENT);
}

Test(pipe_named, attach_with_nobody_listening_is_enoent) {
    mproc_conn *x = NULL;
    cr_assert_eq(mproc_pipe_open(&x, t_name("pn"), MPROC_ATTACH, NULL), ENOENT);
    cr_assert_null(x);
}

Test(pipe_named, the_mode_is_applied_to_the_name) {
    const char *name = t_name("pn");
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/mproc.%s", name);
    struct stat st;
    mproc_conn *l = open_named(name, MPROC_CREATE);
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, MPROC_DEFAULT_MODE);
    cr_assert(S_ISSOCK(st.st_mode));
    mproc_conn_close(l);
    mproc_pipe_options opts = {.mode = 0640};
    cr_assert_eq(mproc_pipe_open(&l, name, MPROC_CREATE, &opts), 0);
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640);
    mproc_conn_close(l);
}

Test(pipe_named, bad_names_flags_and_options_are_refused) {
    mproc_conn *x = NULL;
    const char *bad[] = {"", ".", "..", "a/b", "sp ace", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(mproc_pipe_open(&x, bad[i], MPROC_CREATE, NULL), MPROC_E_BADNAME, "%s",
                     bad[i]);
    cr_assert_eq(mproc_pipe_open(&x, NULL, MPROC_CREATE, NULL), EINVAL);
    cr_assert_eq(mproc_pipe_open(NULL, "ok", MPROC_CREATE, NULL), EINVAL);
    cr_assert_eq(mproc_pipe_open(&x, "ok", MPROC_EXCL, NULL), EINVAL);
    cr_assert_eq(mproc_pipe_open(&x, "ok", 1 << 6, NULL), EINVAL);
    mproc_pipe_options opts = {.mode = 010000};
    cr_assert_eq(mproc_pipe_open(&x, "ok", MPROC_CREATE, &opts), EINVAL);
    opts = (mproc_pipe_options){.reserved = {0, 1}};
    cr_assert_eq(mproc_pipe_open(&x, "ok", MPROC_CREATE, &opts), EINVAL);
    /* sun_path holds 107 characters: "/dev/shm/mproc." leaves 92 for the name. */
    char name[MPROC_NAME_MAX + 2];
    snprintf(name, sizeof name, "%s", t_name("pn"));
    memset(name + strlen(name), 'x', 93 - strlen(name));
    name[93] = '\0';
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_CREATE, NULL), ENAMETOOLONG);
    name[92] = '\0';
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    mproc_conn_close(l);
    memset(name, 'y', MPROC_NAME_MAX + 1);
    name[MPROC_NAME_MAX + 1] = '\0';
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_CREATE, NULL), ENAMETOOLONG);
    cr_assert_null(x);
}

Test(pipe_named, a_name_held_by_another_kind_is_mproc_e_kind) {
    const char *name = t_name("pn");
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
    mproc_conn *x = NULL;
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_ATTACH, NULL), MPROC_E_KIND);
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_CREATE, NULL), MPROC_E_KIND);
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_CREATE | MPROC_EXCL, NULL), EEXIST);
    mproc_lock_close(lock);
    cr_assert_eq(mproc_unlink(name), 0);
}
