/* SPDX-License-Identifier: MIT */
/*
 * mproc_process, against Python's multiprocessing.Process (research §1.2):
 * create's checks and default names, start / join / exit codes (the target's
 * return & 0xff, -signal), terminate / kill / close in every state, the
 * child's view (memory snapshot, name, parent pid, daemon flag, names of its
 * own children), joining oneself and foreign handles, what a parent's exit
 * does to its children, active_children, cpu_count, a foreign waitpid(-1)
 * stealing a status, no SIGCHLD handler, and stdio not duplicated by fork.
 *
 * Code running in a child never uses cr_assert: it reports through its exit
 * code, a pipe or the `seen` page (MAP_SHARED), and the test checks that.
 * Children that must stay up wait on a gate pipe with a bound, so a failed
 * test never leaves one behind for long.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */
#define NAME_MAX_ MPROC_PROCESS_NAME_MAX

/* What children saw, written by them into shared memory. */
struct who {
    char name[NAME_MAX_]; /* mproc_current_process_name() */
    int pid, parent_pid, daemon;
};
struct seen {
    struct who who[4];
    char names[4][NAME_MAX_]; /* mproc_process_name() of handles made in children */
    int rc[8];
};
static struct seen *seen; /* t_shared, set by a test before it starts children */

static t_pipe gate;   /* children waiting to be released read one byte each */
static t_pipe report; /* children's messages to the test */
static t_pipe ready;  /* a grandchild's "I'm set up" to its parent */

static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- helpers ---- */

/* create in a child: no cr_assert there. */
static mproc_process *make_quiet(mproc_target target, void *arg, const char *name,
                                 unsigned flags) {
    mproc_process_options opts = {.name = name, .flags = flags};
    mproc_process *p = NULL;
    return mproc_process_create(&p, target, arg, &opts) == 0 ? p : NULL;
}

static mproc_process *make(mproc_target target, void *arg, const char *name, unsigned flags) {
    mproc_process *p = make_quiet(target, arg, name, flags);
    cr_assert_not_null(p);
    return p;
}

static void start(mproc_process *p) {
    int rc = mproc_process_start(p);
    cr_assert_eq(rc, 0, "start: %s", mproc_strerror(rc));
}

static void join_and_close(mproc_process *p) {
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(mproc_process_close(p), 0);
}

/* N of a default name "Process-N". */
static unsigned number_of(const mproc_process *p) {
    unsigned n = 0;
    cr_assert_eq(sscanf(mproc_process_name(p), "Process-%u", &n), 1, "%s", mproc_process_name(p));
    return n;
}

static void open_pipes(void) {
    t_pipe_open(&gate);
    t_pipe_open(&report);
    t_pipe_open(&ready);
    seen = t_shared(sizeof *seen);
}

/* Bytes readable right now (no waiting), up to `max`. */
static size_t read_now(int fd, char *buf, size_t max) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) != 1)
        return 0;
    ssize_t n = read(fd, buf, max);
    return n > 0 ? (size_t)n : 0;
}

/* True if every write end of `fd`'s pipe is closed within `timeout`
 * (data before the EOF is drained). */
static bool eof_within(int fd, double timeout) {
    double end = t_now() + timeout;
    for (;;) {
        double left = end - t_now();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) != 1)
            continue;
        char buf[64];
        if (read(fd, buf, sizeof buf) == 0)
            return true;
    }
}

/* Reads exactly `size` bytes within `timeout`. */
static bool read_exact(int fd, void *buf, size_t size, double timeout) {
    double end = t_now() + timeout;
    size_t got = 0;
    while (got < size) {
        double left = end - t_now();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) != 1)
            return false;
        ssize_t n = read(fd, (char *)buf + got, size - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* Waits (bounded) until `pid` ended, without reaping it. */
static bool ended_within(pid_t pid, double timeout) {
    double end = t_now() + timeout;
    do {
        siginfo_t info = {0};
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT | WNOHANG) == 0 && info.si_pid == pid)
            return true;
        nap(0.001);
    } while (t_now() < end);
    return false;
}

/* ---- targets ---- */

static int return_int(void *arg) {
    return *(int *)arg;
}

static int wait_gate(void *arg) {
    (void)arg;
    return t_await(&gate, BOUND) == 'g' ? 0 : 99;
}

/* Records this process's view in seen->who[slot]. */
static int report_self(void *arg) {
    struct who *w = &seen->who[(intptr_t)arg];
    snprintf(w->name, sizeof w->name, "%s", mproc_current_process_name());
    w->pid = getpid();
    w->parent_pid = mproc_parent_process_pid();
    w->daemon = mproc_current_process_daemon();
    return 0;
}

/* ---- create ---- */

Test(process, default_names_count_up_per_creating_process) {
    mproc_process *a = make(return_int, NULL, NULL, 0);
    unsigned n = number_of(a);
    cr_assert_geq(n, 1);
    mproc_process *b = make(return_int, NULL, NULL, 0);
    cr_assert_eq(number_of(b), n + 1);
    /* As in Python, a named process takes a number too (its identity)... */
    mproc_process *named = make(return_int, NULL, "worker", 0);
    mproc_process *c = make(return_int, NULL, NULL, 0);
    cr_assert_eq(number_of(c), n + 3);
    /* ...but a failed create takes none. */
    mproc_process *bad = NULL;
    cr_assert_eq(mproc_process_create(&bad, NULL, NULL, NULL), EINVAL);
    mproc_process *d = make(return_int, NULL, NULL, 0);
    cr_assert_eq(number_of(d), n + 4);
    mproc_process *all[] = {a, b, named, c, d};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(mproc_process_close(all[i]), 0);
}

Test(process, create_copies_the_given_name_up_to_name_max_minus_1) {
    char name[NAME_MAX_ + 1];
    memset(name, 'x', sizeof name);
    name[NAME_MAX_ - 1] = '\0'; /* 127 bytes: the longest allowed */
    mproc_process *p = make(return_int, NULL, name, 0);
    name[0] = 'y'; /* copied: the caller's buffer may change */
    cr_assert_eq(strlen(mproc_process_name(p)), NAME_MAX_ - 1);
    cr_assert_eq(mproc_process_name(p)[0], 'x');
    cr_assert_eq(mproc_process_close(p), 0);

    name[NAME_MAX_ - 1] = 'x';
    name[NAME_MAX_] = '\0'; /* 128 bytes */
    mproc_process_options opts = {.name = name};
    p = NULL;
    cr_assert_eq(mproc_process_create(&p, return_int, NULL, &opts), EINVAL);
    cr_assert_null(p);
}

Test(process, create_rejects_bad_arguments_with_einval) {
    mproc_process *p = NULL;
    cr_assert_eq(mproc_process_create(NULL, return_int, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_process_create(&p, NULL, NULL, NULL), EINVAL);
    mproc_process_options both = {.flags = MPROC_PROCESS_DAEMON | MPROC_PROCESS_NOT_DAEMON};
    cr_assert_eq(mproc_process_create(&p, return_int, NULL, &both), EINVAL);
    mproc_process_options unknown = {.flags = 4};
    cr_assert_eq(mproc_process_create(&p, return_int, NULL, &unknown), EINVAL);
    for (int i = 0; i < 5; i++) {
        mproc_process_options reserved = {0};
        reserved.reserved[i] = 1;
        cr_assert_eq(mproc_process_create(&p, return_int, NULL, &reserved), EINVAL,
                     "reserved[%d]", i);
    }
    cr_assert_null(p);
}

Test(process, daemon_flag_explicit_or_inherited_from_the_main_process) {
    mproc_process *d = make(return_int, NULL, NULL, MPROC_PROCESS_DAEMON);
    mproc_process *nd = make(return_int, NULL, NULL, MPROC_PROCESS_NOT_DAEMON);
    mproc_process *inherit = make(return_int, NULL, NULL, 0);
    mproc_process *no_opts = NULL;
    cr_assert_eq(mproc_process_create(&no_opts, return_int, NULL, NULL), 0);
    cr_assert_eq(mproc_process_daemon(d), 1);
    cr_assert_eq(mproc_process_daemon(nd), 0);
    cr_assert_eq(mproc_process_daemon(inherit), 0); /* main is not a daemon */
    cr_assert_eq(mproc_process_daemon(no_opts), 0);
    mproc_process *all[] = {d, nd, inherit, no_opts};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(mproc_process_close(all[i]), 0);
}

Test(process, null_handle) {
    cr_assert_eq(mproc_process_start(NULL), EINVAL);
    cr_assert_eq(mproc_process_join(NULL, 0), EINVAL);
    cr_assert_eq(mproc_process_is_alive(NULL), 0);
    cr_assert_eq(mproc_process_exitcode(NULL), MPROC_EXITCODE_NONE);
    cr_assert_eq(mproc_process_pid(NULL), 0);
    cr_assert_null(mproc_process_name(NULL));
    cr_assert_eq(mproc_process_daemon(NULL), 0);
    cr_assert_eq(mproc_process_terminate(NULL), EINVAL);
    cr_assert_eq(mproc_process_kill(NULL), EINVAL);
    cr_assert_eq(mproc_process_close(NULL), EINVAL);
}

/* ---- start, join, exit codes ---- */

Test(process, exitcode_is_the_targets_return_value_and_0xff, .timeout = 30) {
    static int returns[] = {0, 1, 7, 255, 256, -1, 1000};
    static const int expected[] = {0, 1, 7, 255, 0, 255, 232};
    for (size_t i = 0; i < sizeof returns / sizeof returns[0]; i++) {
        mproc_process *p = make(return_int, &returns[i], NULL, 0);
        start(p);
        cr_assert_eq(mproc_process_join(p, MPROC_FOREVER), 0);
        cr_assert_eq(mproc_process_exitcode(p), expected[i], "return %d", returns[i]);
        cr_assert_eq(mproc_process_close(p), 0);
    }
}

Test(process, before_start_nothing_runs_and_calls_say_esrch) {
    mproc_process *p = make(return_int, NULL, NULL, 0);
    cr_assert_eq(mproc_process_exitcode(p), MPROC_EXITCODE_NONE);
    cr_assert_eq(mproc_process_is_alive(p), 0);
    cr_assert_eq(mproc_process_pid(p), 0);
    cr_assert_eq(mproc_process_join(p, 0), ESRCH);
    cr_assert_eq(mproc_process_join(p, MPROC_FOREVER), ESRCH);
    cr_assert_eq(mproc_process_terminate(p), ESRCH);
    cr_assert_eq(mproc_process_kill(p), ESRCH);
    cr_assert_eq(mproc_process_close(p), 0);
}

Test(process, running_then_ended_state_join_timeouts_and_close, .timeout = 30) {
    open_pipes();
    mproc_process *p = make(wait_gate, NULL, NULL, 0);
    start(p);
    cr_assert_eq(mproc_process_start(p), EALREADY);
    cr_assert_eq(mproc_process_is_alive(p), 1);
    cr_assert_eq(mproc_process_exitcode(p), MPROC_EXITCODE_NONE);
    cr_assert_eq(mproc_process_close(p), EBUSY);

    cr_assert_eq(mproc_process_join(p, NAN), EINVAL);
    double t0 = t_now();
    cr_assert_eq(mproc_process_join(p, 0), ETIMEDOUT);
    cr_assert_lt(t_now() - t0, 0.1, "join(0) polls: returns at once (0.1 s: load slack)");
    t0 = t_now();
    cr_assert_eq(mproc_process_join(p, 0.2), ETIMEDOUT);
    double took = t_now() - t0;
    cr_assert_geq(took, 0.2);
    cr_assert_lt(took, 1.0);
    cr_assert_eq(mproc_process_is_alive(p), 1); /* a timed-out join leaves it alone */

    t_signal(&gate, 'g');
    cr_assert_eq(mproc_process_join(p, MPROC_FOREVER), 0);
    cr_assert_eq(mproc_process_exitcode(p), 0);
    cr_assert_eq(mproc_process_is_alive(p), 0);
    t0 = t_now();
    cr_assert_eq(mproc_process_join(p, MPROC_FOREVER), 0); /* again: at once */
    cr_assert_eq(mproc_process_join(p, 0), 0);
    cr_assert_lt(t_now() - t0, 0.1);
    cr_assert_eq(mproc_process_start(p), EALREADY);
    cr_assert_eq(mproc_process_close(p), 0);
}

Test(process, exitcode_and_is_alive_reap_an_ended_child_without_join) {
    int seven = 7;
    mproc_process *p = make(return_int, &seven, NULL, 0);
    start(p);
    cr_assert(ended_within(mproc_process_pid(p), BOUND)); /* ended, not reaped */
    cr_assert_eq(mproc_process_is_alive(p), 0);
    cr_assert_eq(mproc_process_exitcode(p), 7);
    siginfo_t info = {0};
    cr_assert_eq(waitid(P_PID, (id_t)mproc_process_pid(p), &info, WEXITED | WNOHANG), -1);
    cr_assert_eq(errno, ECHILD, "reaped by is_alive");
    cr_assert_eq(mproc_process_close(p), 0); /* ended, never joined */
}

Test(process, join_0_reaps_a_child_that_already_ended) {
    int seven = 7;
    mproc_process *p = make(return_int, &seven, NULL, 0);
    start(p);
    cr_assert(ended_within(mproc_process_pid(p), BOUND));
    cr_assert_eq(mproc_process_join(p, 0), 0);
    cr_assert_eq(mproc_process_exitcode(p), 7);
    cr_assert_eq(mproc_process_close(p), 0);
}

/* Counts SIGUSR1s (in the shared page: the helper waits for it). */
static void on_usr1(int sig) {
    (void)sig;
    __atomic_fetch_add(&seen->rc[0], 1, __ATOMIC_SEQ_CST);
}

/* Python's PY-025: a signal handled during join (no SA_RESTART) does not end
 * the join.  A helper process signals the test's thread once it sleeps in
 * the join, waits until it sleeps there again, then lets the child end. */
Test(process, join_survives_a_signal_handler_running_during_the_wait) {
    open_pipes();
    struct sigaction sa = {.sa_handler = on_usr1};
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    pid_t me = getpid(), tid = (pid_t)syscall(SYS_gettid);
    for (int bounded = 0; bounded < 2; bounded++) {
        seen->rc[0] = 0;
        mproc_process *p = make(wait_gate, NULL, NULL, 0);
        start(p);
        fflush(NULL);
        pid_t helper = t_fork();
        if (helper == 0) {
            if (!t_wait_sleeping(tid, BOUND))
                _exit(90);
            syscall(SYS_tgkill, me, tid, SIGUSR1);
            double end = t_now() + BOUND;
            while (__atomic_load_n(&seen->rc[0], __ATOMIC_SEQ_CST) == 0)
                if (t_now() > end)
                    _exit(91);
            if (!t_wait_sleeping(tid, BOUND)) /* back in the join */
                _exit(92);
            t_signal(&gate, 'g');
            _exit(0);
        }
        cr_assert_eq(mproc_process_join(p, bounded ? BOUND : MPROC_FOREVER), 0);
        cr_assert_eq(mproc_process_exitcode(p), 0);
        cr_assert_eq(seen->rc[0], 1);
        cr_assert_eq(t_exit_code(helper, BOUND), 0);
        cr_assert_eq(mproc_process_close(p), 0);
    }
}

static int open_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    cr_assert_not_null(dir);
    int n = 0;
    while (readdir(dir) != NULL)
        n++;
    closedir(dir);
    return n;
}

Test(process, close_releases_every_descriptor) {
    open_pipes();
    int before = open_fds();
    for (int i = 0; i < 3; i++) {
        mproc_process *p = make(wait_gate, NULL, NULL, 0);
        start(p);
        cr_assert_eq(mproc_process_join(p, 0.01), ETIMEDOUT); /* a bounded wait: by pidfd */
        if (i == 1)
            cr_assert_eq(mproc_process_terminate(p), 0);
        else
            t_signal(&gate, 'g');
        cr_assert_eq(mproc_process_join(p, BOUND), 0);
        cr_assert_eq(mproc_process_close(p), 0);
    }
    cr_assert_eq(open_fds(), before);
}

Test(process, pid_is_the_childs_own_and_stays_after_the_end) {
    open_pipes();
    mproc_process *p = make(report_self, (void *)0, NULL, 0);
    start(p);
    int pid = mproc_process_pid(p);
    cr_assert_gt(pid, 0);
    cr_assert_neq(pid, getpid());
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(seen->who[0].pid, pid);
    cr_assert_eq(mproc_process_pid(p), pid);
    cr_assert_eq(mproc_process_close(p), 0);
}

Test(process, terminate_gives_minus_sigterm_then_is_a_no_op) {
    open_pipes();
    mproc_process *p = make(wait_gate, NULL, NULL, 0);
    start(p);
    cr_assert_eq(mproc_process_terminate(p), 0);
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(p), -SIGTERM);
    cr_assert_eq(mproc_process_is_alive(p), 0);
    cr_assert_eq(mproc_process_terminate(p), 0); /* ended: nothing sent */
    cr_assert_eq(mproc_process_kill(p), 0);
    cr_assert_eq(mproc_process_exitcode(p), -SIGTERM);
    cr_assert_eq(mproc_process_close(p), 0);
}

Test(process, kill_gives_minus_sigkill_and_close_after_ebusy) {
    open_pipes();
    mproc_process *p = make(wait_gate, NULL, NULL, 0);
    start(p);
    cr_assert_eq(mproc_process_close(p), EBUSY); /* the handle stays usable */
    cr_assert_eq(mproc_process_kill(p), 0);
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(p), -SIGKILL);
    cr_assert_eq(mproc_process_kill(p), 0);
    cr_assert_eq(mproc_process_close(p), 0);
}

/* Dies of signal *arg: SIG_DFL first (ASan handles SIGSEGV itself), and no
 * core file left behind. */
static int die_of(void *arg) {
    int sig = *(int *)arg;
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    if (sig == SIGABRT)
        abort();
    raise(sig);
    return 0;
}

Test(process, a_crashing_target_gives_minus_its_signal) {
    static int signals[] = {SIGSEGV, SIGABRT};
    for (size_t i = 0; i < 2; i++) {
        mproc_process *p = make(die_of, &signals[i], NULL, 0);
        start(p);
        cr_assert_eq(mproc_process_join(p, BOUND), 0);
        cr_assert_eq(mproc_process_exitcode(p), -signals[i]);
        cr_assert_eq(mproc_process_close(p), 0);
    }
}

/* ---- the child's view ---- */

static int read_then_write(void *arg) {
    int *value = arg;
    int was = *value;
    *value = 99; /* the child's copy only */
    return was;
}

Test(process, child_sees_memory_as_at_start_and_its_writes_stay_its_own) {
    int local = 42;
    mproc_process *p = make(read_then_write, &local, NULL, 0);
    start(p);
    local = 43; /* after the fork: not seen by the child */
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(p), 42);
    cr_assert_eq(local, 43);
    cr_assert_eq(mproc_process_close(p), 0);
}

Test(process, main_process_is_mainprocess_without_parent) {
    cr_assert_str_eq(mproc_current_process_name(), "MainProcess");
    cr_assert_eq(mproc_current_process_daemon(), 0);
    cr_assert_eq(mproc_parent_process_pid(), 0);
}

Test(process, child_knows_its_name_parent_and_daemon_flag) {
    open_pipes();
    mproc_process *p = make(report_self, (void *)0, NULL, 0);
    mproc_process *named = make(report_self, (void *)1, "named one", 0);
    mproc_process *daemon = make(report_self, (void *)2, NULL, MPROC_PROCESS_DAEMON);
    start(p);
    start(named);
    start(daemon);
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(mproc_process_join(named, BOUND), 0);
    join_and_close(daemon);
    cr_assert_str_eq(seen->who[0].name, mproc_process_name(p));
    cr_assert_str_eq(seen->who[1].name, "named one");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(seen->who[i].parent_pid, getpid(), "who[%d]", i);
    cr_assert_eq(seen->who[0].daemon, 0);
    cr_assert_eq(seen->who[2].daemon, 1);
    cr_assert_eq(mproc_process_close(p), 0);
    cr_assert_eq(mproc_process_close(named), 0);
}

/* Records its view in who[1], and the name of a handle of its own in names[3]. */
static int report_and_name_a_child(void *arg) {
    report_self(arg);
    mproc_process *kid = make_quiet(return_int, NULL, NULL, 0);
    if (kid == NULL)
        return 90;
    snprintf(seen->names[3], NAME_MAX_, "%s", mproc_process_name(kid));
    return mproc_process_close(kid) == 0 ? 0 : 91;
}

/* In a child (who[0]): starts two children of its own (who[1], who[2]). */
static int start_grandchildren(void *arg) {
    report_self(arg);
    mproc_process *g1 = make_quiet(report_and_name_a_child, (void *)1, NULL, 0);
    mproc_process *g2 = make_quiet(report_self, (void *)2, NULL, 0);
    if (g1 == NULL || g2 == NULL)
        return 90;
    snprintf(seen->names[1], NAME_MAX_, "%s", mproc_process_name(g1));
    snprintf(seen->names[2], NAME_MAX_, "%s", mproc_process_name(g2));
    if (mproc_process_start(g1) != 0 || mproc_process_start(g2) != 0)
        return 91;
    if (mproc_process_join(g1, BOUND) != 0 || mproc_process_join(g2, BOUND) != 0)
        return 92;
    if (mproc_process_exitcode(g1) != 0 || mproc_process_exitcode(g2) != 0)
        return 93;
    return mproc_process_close(g1) == 0 && mproc_process_close(g2) == 0 ? 0 : 94;
}

Test(process, a_childs_children_are_named_process_n_colon_m) {
    open_pipes();
    mproc_process *p = make(start_grandchildren, (void *)0, NULL, 0);
    unsigned n = number_of(p);
    start(p);
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(p), 0);
    char want[64];
    snprintf(want, sizeof want, "Process-%u:1", n);
    cr_assert_str_eq(seen->names[1], want);
    cr_assert_str_eq(seen->who[1].name, want);
    snprintf(want, sizeof want, "Process-%u:2", n);
    cr_assert_str_eq(seen->names[2], want);
    cr_assert_str_eq(seen->who[2].name, want);
    snprintf(want, sizeof want, "Process-%u:1:1", n);
    cr_assert_str_eq(seen->names[3], want);
    /* Each one's parent is the process that started it. */
    cr_assert_eq(seen->who[0].parent_pid, getpid());
    cr_assert_eq(seen->who[1].parent_pid, seen->who[0].pid);
    cr_assert_eq(seen->who[2].parent_pid, seen->who[0].pid);
    /* The child's counter restarted; ours went on. */
    mproc_process *next = make(return_int, NULL, NULL, 0);
    cr_assert_eq(number_of(next), n + 1);
    cr_assert_eq(mproc_process_close(next), 0);
    cr_assert_eq(mproc_process_close(p), 0);
}

/* A grandchild: reports (who[1]), waits until its parent has ended, then
 * records mproc_parent_process_pid() in rc[0]. */
static int outlive_parent(void *arg) {
    report_self(arg);
    t_signal(&ready, 'r');
    if (t_await(&gate, BOUND) != 'g')
        return 90;
    seen->rc[0] = mproc_parent_process_pid();
    t_signal(&report, 'd');
    return 0;
}

static int leave_an_orphan(void *arg) {
    report_self(arg);
    mproc_join_children_at_exit(0);
    mproc_process *orphan = make_quiet(outlive_parent, (void *)1, NULL, 0);
    if (orphan == NULL || mproc_process_start(orphan) != 0 || t_await(&ready, BOUND) != 'r')
        return 90;
    return 0;
}

Test(process, parent_process_pid_is_0_once_the_parent_ended) {
    open_pipes();
    seen->rc[0] = -1;
    mproc_process *c = make(leave_an_orphan, (void *)0, NULL, 0);
    start(c);
    cr_assert_eq(mproc_process_join(c, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(c), 0);
    cr_assert_eq(seen->who[1].parent_pid, seen->who[0].pid, "while the parent lived");
    t_signal(&gate, 'g');
    cr_assert_eq(t_await(&report, BOUND), 'd');
    cr_assert_eq(seen->rc[0], 0, "after it ended");
    cr_assert_eq(mproc_process_close(c), 0);
}

/* ---- daemons ---- */

/* In a daemon: its handles inherit the flag, and it may start nothing. */
static int daemon_probe(void *arg) {
    (void)arg;
    seen->rc[0] = mproc_current_process_daemon();
    mproc_process *inherit = make_quiet(return_int, NULL, NULL, 0);
    mproc_process *not_daemon = make_quiet(return_int, NULL, NULL, MPROC_PROCESS_NOT_DAEMON);
    if (inherit == NULL || not_daemon == NULL)
        return 90;
    seen->rc[1] = mproc_process_daemon(inherit);
    seen->rc[2] = mproc_process_start(inherit);
    seen->rc[3] = mproc_process_daemon(not_daemon);
    seen->rc[4] = mproc_process_start(not_daemon);
    seen->rc[5] = mproc_process_close(inherit) + mproc_process_close(not_daemon);
    return 0;
}

Test(process, a_daemon_may_not_start_children) {
    open_pipes();
    mproc_process *d = make(daemon_probe, NULL, NULL, MPROC_PROCESS_DAEMON);
    start(d);
    cr_assert_eq(mproc_process_join(d, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(d), 0);
    cr_assert_eq(seen->rc[0], 1, "current_process_daemon in a daemon");
    cr_assert_eq(seen->rc[1], 1, "0 flags inherit the daemon flag");
    cr_assert_eq(seen->rc[2], EPERM);
    cr_assert_eq(seen->rc[3], 0);
    cr_assert_eq(seen->rc[4], EPERM, "not even an explicitly non-daemon child");
    cr_assert_eq(seen->rc[5], 0);
    cr_assert_eq(mproc_process_close(d), 0);
}

/* In a non-daemon child: 0 flags give non-daemons; daemons may be started. */
static int nondaemon_probe(void *arg) {
    (void)arg;
    seen->rc[0] = mproc_current_process_daemon();
    mproc_process *inherit = make_quiet(return_int, &seen->rc[7], NULL, 0);
    mproc_process *daemon = make_quiet(report_self, (void *)1, NULL, MPROC_PROCESS_DAEMON);
    if (inherit == NULL || daemon == NULL)
        return 90;
    seen->rc[1] = mproc_process_daemon(inherit);
    seen->rc[2] = mproc_process_start(inherit);
    seen->rc[3] = mproc_process_start(daemon);
    seen->rc[4] = mproc_process_join(inherit, BOUND) + mproc_process_join(daemon, BOUND);
    seen->rc[5] = mproc_process_exitcode(inherit) + mproc_process_exitcode(daemon);
    seen->rc[6] = mproc_process_close(inherit) + mproc_process_close(daemon);
    return 0;
}

Test(process, a_non_daemon_child_has_non_daemon_children_by_default) {
    open_pipes();
    mproc_process *c = make(nondaemon_probe, NULL, NULL, 0);
    start(c);
    join_and_close(c);
    cr_assert_eq(seen->rc[0], 0);
    cr_assert_eq(seen->rc[1], 0);
    cr_assert_eq(seen->rc[2], 0);
    cr_assert_eq(seen->rc[3], 0);
    cr_assert_eq(seen->rc[4], 0);
    cr_assert_eq(seen->rc[5], 0);
    cr_assert_eq(seen->rc[6], 0);
    cr_assert_eq(seen->who[1].daemon, 1);
}

/* ---- joining oneself, other processes' handles ---- */

static int join_self(void *arg) {
    mproc_process *me = *(mproc_process **)arg; /* the inherited copy of our handle */
    seen->rc[0] = mproc_process_join(me, 0);
    seen->rc[1] = mproc_process_join(me, 1.0);
    return 0;
}

Test(process, joining_oneself_is_edeadlk) {
    open_pipes();
    mproc_process *handle = NULL; /* the child reads it after start */
    mproc_process *p = make(join_self, &handle, NULL, 0);
    handle = p;
    start(p);
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(p), 0);
    cr_assert_eq(seen->rc[0], EDEADLK, "join(self, 0): %s", mproc_strerror(seen->rc[0]));
    cr_assert_eq(seen->rc[1], EDEADLK, "join(self, 1.0): %s", mproc_strerror(seen->rc[1]));
    cr_assert_eq(mproc_process_close(p), 0);
}

/* Tries the test's handle of a running sibling (rc[base..base+3]); at
 * base 0 it starts a child of its own to try again one generation down. */
struct foreign {
    mproc_process *const *sibling;
    int base;
};

static int use_foreign(void *arg) {
    const struct foreign *f = arg;
    mproc_process *sibling = *f->sibling;
    seen->rc[f->base] = mproc_process_start(sibling);
    seen->rc[f->base + 1] = mproc_process_join(sibling, 0);
    seen->rc[f->base + 2] = mproc_process_join(sibling, 1.0);
    unsigned count = 99; /* the test's children are not ours */
    seen->rc[f->base + 3] = mproc_active_children(NULL, 0, &count) == 0 ? (int)count : -1;
    if (f->base != 0)
        return 0;
    struct foreign down = {f->sibling, 4};
    mproc_process *grandchild = make_quiet(use_foreign, &down, NULL, 0);
    if (grandchild == NULL || mproc_process_start(grandchild) != 0 ||
        mproc_process_join(grandchild, BOUND) != 0)
        return 90;
    return mproc_process_exitcode(grandchild) == 0 && mproc_process_close(grandchild) == 0 ? 0 : 91;
}

Test(process, another_processs_handle_is_echild_for_start_and_join) {
    open_pipes();
    mproc_process *sibling = make(wait_gate, NULL, NULL, 0);
    start(sibling);
    struct foreign f = {&sibling, 0};
    mproc_process *user = make(use_foreign, &f, NULL, 0);
    start(user);
    cr_assert_eq(mproc_process_join(user, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(user), 0);
    for (int base = 0; base <= 4; base += 4) {
        const char *who = base == 0 ? "child" : "grandchild";
        cr_assert_eq(seen->rc[base], ECHILD, "start in the %s", who);
        cr_assert_eq(seen->rc[base + 1], ECHILD, "join(0) in the %s", who);
        cr_assert_eq(seen->rc[base + 2], ECHILD, "join(1) in the %s", who);
        cr_assert_eq(seen->rc[base + 3], 0, "active children of the %s", who);
    }
    cr_assert_eq(mproc_process_is_alive(sibling), 1, "untouched by the others");
    t_signal(&gate, 'g');
    join_and_close(sibling);
    cr_assert_eq(mproc_process_close(user), 0);
}

/* ---- what a parent's end does to its children ---- */

/* A daemon: sends its pid on `report`, tells its parent on `ready`, waits. */
static int daemon_report_and_wait(void *arg) {
    (void)arg;
    int pid = getpid();
    if (write(report.wr, &pid, sizeof pid) != sizeof pid)
        return 90;
    t_signal(&ready, 'r');
    return wait_gate(NULL);
}

/* How the parent of a daemon ends. */
enum parent_end {
    END_UNCLEAN,    /* _exit: no atexit handlers, so only PDEATHSIG can end D */
    END_KILLED,     /* SIGKILLed by the test */
    END_OPTED_OUT,  /* exit() after mproc_join_children_at_exit(0) */
};

/* Forks a parent P, which starts a daemon D and, once D is set up, ends as
 * `how` says.  Returns P; *daemon is D. */
static pid_t fork_parent_of_daemon(enum parent_end how, pid_t *daemon) {
    open_pipes();
    fflush(NULL);
    pid_t parent = t_fork();
    cr_assert_geq(parent, 0);
    if (parent == 0) {
        mproc_process *d = make_quiet(daemon_report_and_wait, NULL, NULL, MPROC_PROCESS_DAEMON);
        if (d == NULL || mproc_process_start(d) != 0 || t_await(&ready, BOUND) != 'r')
            _exit(90);
        if (how == END_KILLED)
            t_await(&gate, BOUND);
        if (how == END_OPTED_OUT) {
            mproc_join_children_at_exit(0);
            exit(0);
        }
        _exit(0);
    }
    close(report.wr); /* D's copy is then the only one left (P's ends with P) */
    report.wr = -1;
    int pid = 0;
    cr_assert(read_exact(report.rd, &pid, sizeof pid, BOUND));
    *daemon = pid;
    return parent;
}

/* The issue asks for "within 1 s" after the parent's end. */
static void assert_gone_within_1s(pid_t daemon) {
    double t0 = t_now();
    cr_assert(eof_within(report.rd, 1.0), "the daemon still holds its pipe");
    cr_assert(t_gone_within(daemon, 1.0 - (t_now() - t0)), "daemon %d still there", (int)daemon);
}

Test(process, a_daemon_dies_within_1s_when_its_parent_exits_without_cleanup) {
    pid_t daemon;
    pid_t parent = fork_parent_of_daemon(END_UNCLEAN, &daemon);
    cr_assert_eq(t_exit_code(parent, BOUND), 0);
    assert_gone_within_1s(daemon);
}

Test(process, a_daemon_dies_within_1s_when_its_parent_is_sigkilled) {
    pid_t daemon;
    pid_t parent = fork_parent_of_daemon(END_KILLED, &daemon);
    cr_assert_eq(kill(parent, SIGKILL), 0);
    cr_assert_eq(t_exit_code(parent, BOUND), -1000 - SIGKILL);
    assert_gone_within_1s(daemon);
}

Test(process, a_daemon_dies_within_1s_with_its_parent_that_opted_out_of_joining) {
    pid_t daemon;
    pid_t parent = fork_parent_of_daemon(END_OPTED_OUT, &daemon);
    cr_assert_eq(t_exit_code(parent, BOUND), 0);
    assert_gone_within_1s(daemon);
}

/* SIGTERM says 'T' on `report` and ends the process. */
static void on_sigterm(int sig) {
    (void)sig;
    char t = 'T';
    ssize_t n = write(report.wr, &t, 1);
    (void)n;
    _exit(0);
}

/* A daemon that tells SIGTERM (the parent's at-exit terminate) from
 * SIGKILL (its PDEATHSIG). */
static int daemon_catch_sigterm(void *arg) {
    (void)arg;
    struct sigaction sa = {.sa_handler = on_sigterm};
    sigaction(SIGTERM, &sa, NULL);
    t_signal(&ready, 'r');
    return wait_gate(NULL);
}

Test(process, a_daemon_gets_sigterm_at_its_parents_normal_exit) {
    open_pipes();
    fflush(NULL);
    pid_t parent = t_fork();
    if (parent == 0) {
        mproc_process *d = make_quiet(daemon_catch_sigterm, NULL, NULL, MPROC_PROCESS_DAEMON);
        if (d == NULL || mproc_process_start(d) != 0 || t_await(&ready, BOUND) != 'r')
            _exit(90);
        exit(0); /* atexit: terminate daemons, join children */
    }
    close(report.wr);
    report.wr = -1;
    cr_assert_eq(t_exit_code(parent, BOUND), 0);
    char got[4];
    cr_assert_eq(read_now(report.rd, got, sizeof got), 1, "SIGTERM was handled before the exit");
    cr_assert_eq(got[0], 'T');
    cr_assert(eof_within(report.rd, 1.0));
}

static int nap_then_report(void *arg) {
    nap(*(double *)arg);
    t_signal(&report, 'd');
    return 0;
}

/* Forks P, which starts a non-daemon child C that naps `child_nap` s and
 * then says 'd', and returns through exit(0) at once. */
static pid_t fork_parent_exiting_normally(double child_nap, bool join_at_exit) {
    open_pipes();
    fflush(NULL);
    pid_t parent = t_fork();
    cr_assert_geq(parent, 0);
    if (parent == 0) {
        if (!join_at_exit)
            mproc_join_children_at_exit(0);
        mproc_process *c = make_quiet(nap_then_report, &child_nap, NULL, 0);
        if (c == NULL || mproc_process_start(c) != 0)
            _exit(90);
        exit(0);
    }
    close(report.wr);
    report.wr = -1;
    return parent;
}

Test(process, a_normal_exit_joins_non_daemon_children_first) {
    double t0 = t_now();
    pid_t parent = fork_parent_exiting_normally(0.3, true);
    cr_assert_eq(t_exit_code(parent, BOUND), 0);
    cr_assert_geq(t_now() - t0, 0.3);
    char got[4];
    cr_assert_eq(read_now(report.rd, got, sizeof got), 1, "the child finished before the parent");
    cr_assert_eq(got[0], 'd');
}

Test(process, join_children_at_exit_0_exits_at_once_leaving_the_child_to_finish) {
    double t0 = t_now();
    pid_t parent = fork_parent_exiting_normally(0.5, false);
    cr_assert_eq(t_exit_code(parent, BOUND), 0);
    /* The parent exits without waiting; 0.5 s of the child's nap is the slack. */
    cr_assert_lt(t_now() - t0, 0.5);
    char got[4];
    cr_assert_eq(read_now(report.rd, got, sizeof got), 0);
    cr_assert_eq(t_await(&report, BOUND), 'd', "the orphan still finishes");
}

/* A child whose target returns while its children still run. */
static int leave_children_behind(void *arg) {
    (void)arg;
    static double child_nap = 0.3;
    mproc_process *kid = make_quiet(nap_then_report, &child_nap, NULL, 0);
    mproc_process *daemon = make_quiet(daemon_catch_sigterm, NULL, NULL, MPROC_PROCESS_DAEMON);
    if (kid == NULL || daemon == NULL || mproc_process_start(kid) != 0 ||
        mproc_process_start(daemon) != 0 || t_await(&ready, BOUND) != 'r')
        return 90;
    return 5;
}

Test(process, a_child_ends_after_joining_its_children_and_terminating_its_daemons) {
    open_pipes();
    mproc_process *c = make(leave_children_behind, NULL, NULL, 0);
    start(c);
    cr_assert_eq(mproc_process_join(c, BOUND), 0);
    cr_assert_eq(mproc_process_exitcode(c), 5);
    char got[4];
    cr_assert_eq(read_now(report.rd, got, sizeof got), 2);
    cr_assert(memchr(got, 'd', 2) != NULL, "the non-daemon child was joined");
    cr_assert(memchr(got, 'T', 2) != NULL, "the daemon child got SIGTERM");
    cr_assert_eq(mproc_process_close(c), 0);
}

/* ---- active children, cpu count ---- */

static bool among(mproc_process *p, mproc_process *const *set, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        if (set[i] == p)
            return true;
    return false;
}

/* list[0, n) holds exactly the handles want[0, n), each once. */
static void assert_same_handles(mproc_process *const *list, mproc_process *const *want,
                                unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        cr_assert(among(list[i], want, n), "list[%u] is not a running child", i);
        cr_assert_not(among(list[i], list, i), "list[%u] twice", i);
    }
}

Test(process, active_children_lists_exactly_the_running_ones) {
    open_pipes();
    mproc_process *running[3];
    for (int i = 0; i < 3; i++) {
        running[i] = make(wait_gate, NULL, NULL, 0);
        start(running[i]);
    }
    int zero = 0;
    mproc_process *ended = make(return_int, &zero, NULL, 0);
    mproc_process *unstarted = make(return_int, &zero, NULL, 0);
    start(ended);
    cr_assert(ended_within(mproc_process_pid(ended), BOUND));

    mproc_process *list[8] = {0};
    unsigned count = 99;
    cr_assert_eq(mproc_active_children(list, 8, &count), 0);
    cr_assert_eq(count, 3);
    assert_same_handles(list, running, 3);
    siginfo_t info = {0};
    cr_assert_eq(waitid(P_PID, (id_t)mproc_process_pid(ended), &info, WEXITED | WNOHANG), -1,
                 "the ended child was reaped on the way");
    cr_assert_eq(mproc_process_exitcode(ended), 0);

    mproc_process *two[2] = {0};
    cr_assert_eq(mproc_active_children(two, 2, &count), 0);
    cr_assert_eq(count, 3, "the count may exceed cap");
    cr_assert(among(two[0], running, 3) && among(two[1], running, 3) && two[0] != two[1]);
    count = 0;
    cr_assert_eq(mproc_active_children(NULL, 0, &count), 0);
    cr_assert_eq(count, 3);
    cr_assert_eq(mproc_active_children(list, 8, NULL), EINVAL);
    cr_assert_eq(mproc_active_children(NULL, 1, &count), EINVAL);

    cr_assert_eq(mproc_process_terminate(running[0]), 0);
    cr_assert_eq(mproc_process_join(running[0], BOUND), 0);
    cr_assert_eq(mproc_active_children(list, 8, &count), 0);
    cr_assert_eq(count, 2);
    assert_same_handles(list, running + 1, 2);

    t_signal(&gate, 'g');
    t_signal(&gate, 'g');
    for (int i = 1; i < 3; i++)
        cr_assert_eq(mproc_process_join(running[i], BOUND), 0);
    cr_assert_eq(mproc_active_children(list, 8, &count), 0);
    cr_assert_eq(count, 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(mproc_process_close(running[i]), 0);
    cr_assert_eq(mproc_process_close(ended), 0);
    cr_assert_eq(mproc_process_close(unstarted), 0);
}

static int affinity_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    return CPU_COUNT(&set);
}

Test(process, cpu_count_is_the_affinity_masks_count) {
    cr_assert_geq(mproc_cpu_count(), 1);
    cr_assert_eq(mproc_cpu_count(), affinity_count());
    fflush(NULL);
    pid_t pid = t_fork();
    if (pid == 0) { /* pinned to its first allowed CPU */
        cpu_set_t set, one;
        CPU_ZERO(&one);
        if (sched_getaffinity(0, sizeof set, &set) != 0)
            _exit(90);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
            if (CPU_ISSET(cpu, &set)) {
                CPU_SET(cpu, &one);
                break;
            }
        if (sched_setaffinity(0, sizeof one, &one) != 0)
            _exit(91);
        _exit(mproc_cpu_count());
    }
    cr_assert_eq(t_exit_code(pid, BOUND), 1);
}

/* ---- reaping: only our own children, no SIGCHLD handler ---- */

/* waitpid(-1) as a careless library elsewhere in the program would do. */
static void steal_status(pid_t pid) {
    double end = t_now() + BOUND;
    for (;;) {
        int status;
        pid_t got = waitpid(-1, &status, WNOHANG);
        if (got == pid)
            return;
        cr_assert_eq(got, 0, "waitpid(-1) took %d", (int)got);
        cr_assert_lt(t_now(), end);
        nap(0.001);
    }
}

Test(process, a_status_stolen_by_waitpid_minus_1_is_lost_not_a_hang) {
    for (int join_first = 0; join_first < 2; join_first++) {
        int three = 3;
        mproc_process *p = make(return_int, &three, NULL, 0);
        start(p);
        steal_status(mproc_process_pid(p));
        double t0 = t_now();
        if (join_first)
            cr_assert_eq(mproc_process_join(p, MPROC_FOREVER), 0);
        cr_assert_eq(mproc_process_exitcode(p), MPROC_EXITCODE_LOST);
        cr_assert_eq(mproc_process_is_alive(p), 0);
        cr_assert_eq(mproc_process_join(p, MPROC_FOREVER), 0);
        cr_assert_eq(mproc_process_join(p, 0), 0);
        cr_assert_lt(t_now() - t0, 1.0);
        cr_assert_eq(mproc_process_terminate(p), 0); /* ended: nothing sent */
        cr_assert_eq(mproc_process_exitcode(p), MPROC_EXITCODE_LOST);
        cr_assert_eq(mproc_process_close(p), 0);
    }
}

Test(process, a_status_stolen_while_a_bounded_join_polls_is_lost) {
    open_pipes();
    mproc_process *p = make(wait_gate, NULL, NULL, 0);
    start(p);
    cr_assert_eq(mproc_process_join(p, 0.05), ETIMEDOUT); /* now waits by pidfd */
    t_signal(&gate, 'g');
    steal_status(mproc_process_pid(p));
    double t0 = t_now();
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_lt(t_now() - t0, 1.0);
    cr_assert_eq(mproc_process_exitcode(p), MPROC_EXITCODE_LOST);
    cr_assert_eq(mproc_process_close(p), 0);
}

Test(process, no_sigchld_handler_is_installed) {
    struct sigaction before, during, after;
    cr_assert_eq(sigaction(SIGCHLD, NULL, &before), 0);
    cr_assert(before.sa_handler == SIG_DFL);
    int zero = 0;
    mproc_process *p = make(return_int, &zero, NULL, 0);
    start(p);
    cr_assert_eq(sigaction(SIGCHLD, NULL, &during), 0);
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    cr_assert_eq(sigaction(SIGCHLD, NULL, &after), 0);
    cr_assert(during.sa_handler == SIG_DFL && after.sa_handler == SIG_DFL);
    cr_assert_eq(during.sa_flags, before.sa_flags);
    cr_assert_eq(after.sa_flags, before.sa_flags);
    cr_assert_eq(mproc_process_close(p), 0);
}

/* ---- stdio ---- */

static int print_child(void *arg) {
    (void)arg;
    printf("child"); /* no newline: written by the child's flush at its end */
    return 0;
}

Test(process, buffered_stdout_is_not_written_twice) {
    open_pipes();
    fflush(NULL);
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* stdout into `report`, fully buffered as for any pipe */
        if (dup2(report.wr, STDOUT_FILENO) < 0)
            _exit(90);
        setvbuf(stdout, NULL, _IOFBF, BUFSIZ);
        printf("before"); /* still in the buffer when start() forks */
        mproc_process *p = make_quiet(print_child, NULL, NULL, 0);
        if (p == NULL || mproc_process_start(p) != 0 || mproc_process_join(p, BOUND) != 0 ||
            mproc_process_exitcode(p) != 0 || mproc_process_close(p) != 0)
            _exit(91);
        printf("after");
        fflush(stdout);
        _exit(0);
    }
    close(report.wr);
    report.wr = -1;
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    char out[64];
    size_t n = read_now(report.rd, out, sizeof out - 1);
    out[n] = '\0';
    cr_assert_str_eq(out, "beforechildafter");
}
