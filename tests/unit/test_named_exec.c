/* SPDX-License-Identifier: MIT */
/* Named locks between separately started programs (fork + exec of
 * mproc-test-peer): attach by name, exclusion, death of an exec'd holder. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

typedef struct peer {
    pid_t pid;
    int out;  /* the peer's stdout */
    int in;   /* the peer's stdin */
} peer;

static peer run_peer(const char *kind, const char *name, const char *verb, const char *arg) {
    int out[2], in[2];
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    const char *path = t_helper_path("mproc-test-peer");
    pid_t pid = t_fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        execl(path, "mproc-test-peer", kind, name, verb, arg, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    return (peer){.pid = pid, .out = out[0], .in = in[1]};
}

/* One line of the peer's output, read with a bound. */
static const char *peer_line(peer *p) {
    static char line[128];
    size_t len = 0;
    t_pipe reader = {.rd = p->out, .wr = -1};
    while (len < sizeof line - 1) {
        int c = t_await(&reader, 10);
        if (c < 0 || c == '\n')
            break;
        line[len++] = (char)c;
    }
    line[len] = '\0';
    return line;
}

static int peer_finish(peer *p) {
    close(p->in);
    int code = t_exit_code(p->pid, 10);
    close(p->out);
    return code;
}

static void check_exec_peer(const char *kind, bool rlock) {
    const char *name = t_name("exec");
    /* An unrelated program creates it; this one attaches. */
    peer creator = run_peer(kind, name, "create", NULL);
    cr_assert_str_eq(peer_line(&creator), "created");
    cr_assert_eq(peer_finish(&creator), 0);
    mproc_lock *lock = NULL;
    mproc_rlock *rl = NULL;
    cr_assert_eq(rlock ? mproc_rlock_open(&rl, name, MPROC_ATTACH, NULL)
                       : mproc_lock_open(&lock, name, MPROC_ATTACH, NULL),
                 0);
#define ACQ(t) (rlock ? mproc_rlock_acquire(rl, t) : mproc_lock_acquire(lock, t))
#define REL() (rlock ? mproc_rlock_release(rl) : mproc_lock_release(lock))
    /* While this program holds it, the peer times out. */
    cr_assert_eq(ACQ(0), 0);
    peer trier = run_peer(kind, name, "try", "0.1");
    cr_assert_str_eq(peer_line(&trier), "ETIMEDOUT");
    cr_assert_eq(peer_finish(&trier), 0);
    cr_assert_eq(REL(), 0);
    /* A peer holds it and releases it on request. */
    peer holder = run_peer(kind, name, "hold", NULL);
    cr_assert_str_eq(peer_line(&holder), "held");
    cr_assert_eq(ACQ(0), ETIMEDOUT);
    close(holder.in);
    holder.in = -1;
    cr_assert_str_eq(peer_line(&holder), "released");
    cr_assert_eq(t_exit_code(holder.pid, 10), 0);
    close(holder.out);
    cr_assert_eq(ACQ(1), 0);
    cr_assert_eq(REL(), 0);
    /* A peer killed while holding it: EOWNERDEAD here. */
    holder = run_peer(kind, name, "hold", NULL);
    cr_assert_str_eq(peer_line(&holder), "held");
    kill(holder.pid, SIGKILL);
    cr_assert_eq(peer_finish(&holder), -1000 - SIGKILL);
    cr_assert_eq(ACQ(1), EOWNERDEAD);
    cr_assert_eq(REL(), 0);
    /* And a wrong-kind attach from the other side is refused. */
    peer wrong = run_peer(rlock ? "lock" : "rlock", name, "try", "0");
    cr_assert_str_eq(peer_line(&wrong), "MPROC_E_KIND");
    cr_assert_eq(peer_finish(&wrong), 1);
    rlock ? mproc_rlock_close(rl) : mproc_lock_close(lock);
    cr_assert_eq(mproc_unlink(name), 0);
    peer gone = run_peer(kind, name, "try", "0");
    cr_assert_str_eq(peer_line(&gone), "ENOENT");
    cr_assert_eq(peer_finish(&gone), 1);
#undef ACQ
#undef REL
}

Test(named_exec, unrelated_programs_share_a_named_lock) { check_exec_peer("lock", false); }
Test(named_exec, unrelated_programs_share_a_named_rlock) { check_exec_peer("rlock", true); }
