/* SPDX-License-Identifier: MIT */
/*
 * Pipe between processes: messages and their boundaries across fork, end of
 * file when the process holding the other end is SIGKILLed (a blocked recv
 * and a sender blocked on a full pipe both wake), many sender and receiver
 * processes sharing the two ends, and named pipes between a creating and an
 * attaching process (stale names of killed listeners, MPROC_EXCL probes, a
 * forked child closing its copy of a listener).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

static void make_pipe(mproc_conn **a, mproc_conn **b, int duplex) {
    int rc = mproc_pipe(a, b, duplex, NULL);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
}

/* Child side: 0 if the next message is exactly `want`, else a failure code. */
static int got(mproc_conn *conn, const void *want, size_t want_len) {
    static unsigned char buf[1 << 20];
    size_t len = 0;
    int rc = mproc_conn_recv(conn, buf, sizeof buf, &len, BOUND);
    if (rc != 0)
        return rc;
    return len == want_len && memcmp(buf, want, len) == 0 ? 0 : 200;
}

static void expect(mproc_conn *conn, const char *want) {
    cr_assert_eq(got(conn, want, strlen(want)), 0, "expected \"%s\"", want);
}

static int recv_code(mproc_conn *conn, double timeout) {
    char buf[64];
    size_t len;
    return mproc_conn_recv(conn, buf, sizeof buf, &len, timeout);
}

/* ---- anonymous pipes across fork ---- */

Test(pipe_procs, messages_cross_processes_whole_and_in_order) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    size_t max = mproc_conn_max_message(w);
    unsigned char *big = malloc(max);
    for (size_t i = 0; i < max; i++)
        big[i] = (unsigned char)(i % 253);
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn_close(r);
        bool ok = mproc_conn_send(w, "a", 1, BOUND) == 0 &&
                  mproc_conn_send(w, "b", 1, BOUND) == 0 &&
                  mproc_conn_send(w, "cd", 2, BOUND) == 0 &&
                  mproc_conn_send(w, NULL, 0, BOUND) == 0 &&
                  mproc_conn_send(w, big, max, BOUND) == 0 &&
                  mproc_conn_send(w, "tail", 4, BOUND) == 0;
        _exit(ok ? 0 : 1);
    }
    cr_assert_eq(mproc_conn_close(w), 0, "only the child holds the writing end now");
    expect(r, "a");
    expect(r, "b");
    expect(r, "cd");
    expect(r, "");
    size_t len = 0;
    cr_assert_eq(mproc_conn_recv(r, big, 100, &len, BOUND), ENOBUFS);
    cr_assert_eq(len, max);
    cr_assert_eq(got(r, big, max), 0);
    expect(r, "tail");
    cr_assert_eq(recv_code(r, BOUND), MPROC_E_EOF, "the child exited");
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    mproc_conn_close(r);
    free(big);
}

Test(pipe_procs, a_duplex_pipe_plays_ping_pong_with_a_child) {
    mproc_conn *a, *b;
    make_pipe(&a, &b, 1);
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn_close(a);
        for (int i = 0; i < 1000; i++) {
            int n;
            size_t len;
            if (mproc_conn_recv(b, &n, sizeof n, &len, BOUND) != 0 || len != sizeof n || n != i)
                _exit(1);
            n = -n;
            if (mproc_conn_send(b, &n, sizeof n, BOUND) != 0)
                _exit(2);
        }
        _exit(0);
    }
    mproc_conn_close(b);
    for (int i = 0; i < 1000; i++) {
        int n = i;
        size_t len;
        cr_assert_eq(mproc_conn_send(a, &n, sizeof n, BOUND), 0);
        cr_assert_eq(mproc_conn_recv(a, &n, sizeof n, &len, BOUND), 0);
        cr_assert_eq(n, -i);
    }
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    cr_assert_eq(recv_code(a, BOUND), MPROC_E_EOF);
    cr_assert_eq(mproc_conn_send(a, "x", 1, BOUND), MPROC_E_EOF);
    mproc_conn_close(a);
}

/* A child that holds `keep` (closing `drop`) and waits until killed. */
static pid_t holder(mproc_conn *keep, mproc_conn *drop, t_pipe *ready) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn_close(drop);
        t_signal(ready, 'r');
        pause();
        _exit(0);
    }
    cr_assert_eq(t_await(ready, BOUND), 'r');
    (void)keep;
    return pid;
}

/* A thread of this process blocked in recv or send without a bound. */
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

static int join_blocked(blocked *b, double since) {
    double end = t_now() + BOUND;
    while (atomic_load(&b->rc) == -1 && t_now() < end)
        sched_yield();
    cr_assert_neq(atomic_load(&b->rc), -1, "still blocked: a hang");
    cr_assert_lt(t_now() - since, 1.0, "woken promptly (slack for a loaded machine)");
    pthread_join(b->thread, NULL);
    return atomic_load(&b->rc);
}

Test(pipe_procs, a_blocked_recv_gets_eof_when_the_child_holding_the_writer_is_killed) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    t_pipe ready;
    t_pipe_open(&ready);
    pid_t pid = holder(w, r, &ready);
    cr_assert_eq(mproc_conn_close(w), 0, "else this process would keep the writer alive");
    blocked b;
    start_blocked(&b, r, false);
    double t0 = t_now();
    kill(pid, SIGKILL);
    cr_assert_eq(join_blocked(&b, t0), MPROC_E_EOF);
    cr_assert_eq(t_exit_code(pid, BOUND), -1000 - SIGKILL);
    mproc_conn_close(r);
    t_pipe_close(&ready);
}

Test(pipe_procs, a_sender_blocked_on_a_full_pipe_gets_eof_when_the_reader_is_killed) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    t_pipe ready;
    t_pipe_open(&ready);
    pid_t pid = holder(r, w, &ready);
    cr_assert_eq(mproc_conn_close(r), 0);
    static const char payload[1024];
    int n = 0, rc;
    while ((rc = mproc_conn_send(w, payload, sizeof payload, 0)) == 0)
        cr_assert_lt(++n, 1000000, "the pipe never filled");
    cr_assert_eq(rc, ETIMEDOUT);
    blocked b;
    start_blocked(&b, w, true);
    double t0 = t_now();
    kill(pid, SIGKILL);
    cr_assert_eq(join_blocked(&b, t0), MPROC_E_EOF);
    cr_assert_eq(mproc_conn_send(w, "x", 1, 0), MPROC_E_EOF);
    cr_assert_eq(t_exit_code(pid, BOUND), -1000 - SIGKILL);
    mproc_conn_close(w);
    t_pipe_close(&ready);
}

/* ---- many processes on both ends ---- */

#define SENDERS 4
#define RECEIVERS 3
#define PER_SENDER 3000
#define BODY_MAX 2000

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
    size_t body = (sender * 131u + seq * 977u) % BODY_MAX;
    m->sender = sender;
    m->seq = seq;
    for (size_t i = 0; i < body; i++)
        m->body[i] = (unsigned char)(sender ^ (seq * 13u) ^ i);
    m->sum = fnv(m->body, body, (uint64_t)sender << 32 | seq);
    return offsetof(message, body) + body;
}

static bool message_ok(const message *m, size_t len) {
    return len >= offsetof(message, body) && m->sender < SENDERS && m->seq < PER_SENDER &&
           m->sum == fnv(m->body, len - offsetof(message, body),
                         (uint64_t)m->sender << 32 | m->seq);
}

typedef struct tally {
    _Atomic int seen[SENDERS][PER_SENDER];
} tally;

static int sender_child(mproc_conn *w, uint32_t id) {
    message msg;
    for (uint32_t seq = 0; seq < PER_SENDER; seq++)
        if (mproc_conn_send(w, &msg, make_message(&msg, id, seq), BOUND) != 0)
            return 1;
    return 0;
}

/* Receives until end of file: 0, or a failure code.  Every third receive
 * uses a buffer too small for most messages, and every third allocates. */
static int receiver_child(mproc_conn *r, tally *t) {
    int64_t last[SENDERS] = {-1, -1, -1, -1};
    message msg;
    for (uint32_t k = 0;; k++) {
        size_t len = 0;
        void *alloc = NULL;
        int rc = k % 3 == 2 ? mproc_conn_recv_alloc(r, &alloc, &len, BOUND)
                            : mproc_conn_recv(r, &msg, k % 3 ? 64 : sizeof msg, &len, BOUND);
        if (rc == MPROC_E_EOF)
            return 0;
        if (rc == ENOBUFS)
            continue;
        if (rc != 0)
            return 2;
        if (alloc != NULL) {
            memcpy(&msg, alloc, len <= sizeof msg ? len : sizeof msg);
            free(alloc);
        }
        if (!message_ok(&msg, len))
            return 3;
        if ((int64_t)msg.seq <= last[msg.sender])
            return 4;
        last[msg.sender] = msg.seq;
        atomic_fetch_add(&t->seen[msg.sender][msg.seq], 1);
    }
}

Test(pipe_procs, many_processes_send_and_receive_each_message_exactly_once, .timeout = 90) {
    mproc_conn *r, *w;
    make_pipe(&r, &w, 0);
    tally *t = t_shared(sizeof *t);
    pid_t receivers[RECEIVERS], senders[SENDERS];
    for (int i = 0; i < RECEIVERS; i++)
        if ((receivers[i] = t_fork()) == 0) {
            mproc_conn_close(w); /* else end of file never comes */
            _exit(receiver_child(r, t));
        }
    for (int i = 0; i < SENDERS; i++)
        if ((senders[i] = t_fork()) == 0) {
            mproc_conn_close(r);
            _exit(sender_child(w, (uint32_t)i));
        }
    mproc_conn_close(r);
    mproc_conn_close(w); /* the receivers see end of file once the senders exit */
    for (int i = 0; i < SENDERS; i++) {
        int code = t_exit_code(senders[i], 60);
        cr_assert_eq(code, 0, "sender %d: %d", i, code);
    }
    for (int i = 0; i < RECEIVERS; i++) {
        int code = t_exit_code(receivers[i], BOUND);
        cr_assert_eq(code, 0, "receiver %d: %d", i, code);
    }
    for (int s = 0; s < SENDERS; s++)
        for (int q = 0; q < PER_SENDER; q++)
            cr_assert_eq(atomic_load(&t->seen[s][q]), 1, "message %d.%d seen %d times", s, q,
                         atomic_load(&t->seen[s][q]));
}

/* ---- named pipes between processes ---- */

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

/* A child that attaches to `name`, answers "ping" with "pong" and exits:
 * exit 0, or which step failed. */
static pid_t pong_child(const char *name, int flags) {
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn *c = NULL;
        int rc = mproc_pipe_open(&c, name, flags, NULL);
        if (rc != 0)
            _exit(rc == ENOENT ? 102 : 101);
        if (got(c, "ping", 4) != 0)
            _exit(103);
        if (mproc_conn_send(c, "pong", 4, BOUND) != 0)
            _exit(104);
        _exit(0);
    }
    return pid;
}

static void ping(mproc_conn *l, pid_t peer) {
    cr_assert_eq(mproc_conn_send(l, "ping", 4, BOUND), 0, "waits for the peer to connect");
    expect(l, "pong");
    cr_assert_eq(t_exit_code(peer, BOUND), 0);
    cr_assert_eq(recv_code(l, BOUND), MPROC_E_EOF, "the peer exited");
}

Test(pipe_named_procs, a_forked_process_attaches_and_both_talk) {
    const char *name = t_name("pnp");
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    ping(l, pong_child(name, MPROC_ATTACH));
    cr_assert_not(name_exists(name));
    mproc_conn_close(l);
}

Test(pipe_named_procs, a_child_closing_its_copy_of_the_listener_keeps_the_name) {
    const char *name = t_name("pnp");
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    pid_t pid = t_fork();
    if (pid == 0) { /* only the creating process removes the name */
        mproc_conn_close(l);
        mproc_conn *c = NULL;
        if (mproc_pipe_open(&c, name, MPROC_ATTACH, NULL) != 0)
            _exit(1);
        _exit(mproc_conn_send(c, "from child", 10, BOUND) == 0 ? 0 : 2);
    }
    expect(l, "from child");
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    mproc_conn_close(l);
}

Test(pipe_named_procs, a_killed_listeners_stale_name_is_replaced_by_create) {
    const char *name = t_name("pnp");
    t_pipe ready;
    t_pipe_open(&ready);
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn *c = NULL;
        if (mproc_pipe_open(&c, name, MPROC_CREATE | MPROC_EXCL, NULL) != 0)
            _exit(1);
        t_signal(&ready, 'l');
        pause();
        _exit(0);
    }
    cr_assert_eq(t_await(&ready, BOUND), 'l');
    kill(pid, SIGKILL);
    cr_assert_eq(t_exit_code(pid, BOUND), -1000 - SIGKILL);
    cr_assert(name_exists(name), "the dead listener's socket file is left behind");
    mproc_conn *x = NULL;
    cr_assert_eq(mproc_pipe_open(&x, name, MPROC_ATTACH, NULL), ENOENT, "nobody listens");
    mproc_conn *l = open_named(name, MPROC_CREATE | MPROC_EXCL);
    ping(l, pong_child(name, MPROC_ATTACH));
    mproc_conn_close(l);
    t_pipe_close(&ready);
}

Test(pipe_named_procs, create_excl_from_another_process_is_eexist_while_someone_listens) {
    const char *name = t_name("pnp");
    mproc_conn *l = open_named(name, MPROC_CREATE);
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_conn *c = NULL;
        _exit(mproc_pipe_open(&c, name, MPROC_CREATE | MPROC_EXCL, NULL) == EEXIST ? 0 : 1);
    }
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    /* MPROC_CREATE from another process connects to the live listener. */
    ping(l, pong_child(name, MPROC_CREATE));
    mproc_conn_close(l);
}
