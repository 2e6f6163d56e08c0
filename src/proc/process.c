/* SPDX-License-Identifier: MIT */
/*
 * mproc_process: fork(), then a pidfd for waiting and signalling
 * (reliability.md §5).
 *
 * Reaping.  Only ever our own children, one at a time per handle (reap_lock),
 * with waitid(WNOHANG) on its pidfd or pid.  Until we reap it, a child that
 * ended stays a zombie, so its pid cannot be reused and kill(pid) / the pidfd
 * reach the right process.  A join without timeout waits with
 * waitid(WNOWAIT); a bounded one polls a pidfd (Linux 5.3), opened then, or
 * without pidfds checks with a backoff.  No SIGCHLD handler is installed.
 *
 * This process's own state (`self`: name, identity for "Process-N:M", daemon
 * flag, the children it started) is process-local; the child rewrites it
 * right after fork, and an atfork handler forgets the list in any other
 * fork's child (it holds the parent's handles, which are not its children).
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum { STATE_NEW, STATE_RUNNING, STATE_ENDED };

struct mproc_process {
    mproc_target target;
    void *arg;
    char name[MPROC_PROCESS_NAME_MAX];
    unsigned number; /* N of Process-N: this object's place among its creator's */
    bool daemon;
    int creator;            /* pid of the process that made it: only it starts / joins */
    _Atomic int state;
    _Atomic int pid;
    _Atomic int exitcode;
    int pidfd;              /* opened by the first bounded wait (-1 before, or without pidfds); open until close */
    pthread_mutex_t reap_lock;
    struct mproc_process *next, *prev; /* self.children, while started and open */
};

static struct {
    pthread_mutex_t lock; /* children, counter */
    struct mproc_process *children;
    unsigned counter;
    char identity[64]; /* "" in the main process, "4", "4:1" ... (deeper truncated) */
    char name[MPROC_PROCESS_NAME_MAX];
    bool daemon;
    int parent_pid; /* 0 unless started by mproc_process_start */
    _Atomic bool join_at_exit;
} self = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .name = "MainProcess",
    .join_at_exit = true,
};

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

/* Any fork's child: the list is the parent's, not ours, and another thread
 * may have held the lock at the fork.  (No prepare/parent handlers: a write
 * in the parent after fork costs a copy-on-write fault per page, and the
 * child throws the list away anyway.) */
static void after_fork_child(void) {
    pthread_mutex_init(&self.lock, NULL);
    self.children = NULL;
}

static void at_exit(void);

static void setup(void) {
    pthread_atfork(NULL, NULL, after_fork_child);
    atexit(at_exit);
}

/* ---- reaping ---- */

int mproc__pidfd_open(int pid) {
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd >= 0 ? fd : -1;
#else
    (void)pid;
    return -1;
#endif
}

/* One WNOHANG look; marks the process ENDED (with its exit code) when it
 * ended.  Returns true once ended.  Caller holds reap_lock. */
static bool reap_locked(mproc_process *p) {
    if (atomic_load_explicit(&p->state, memory_order_acquire) != STATE_RUNNING)
        return atomic_load_explicit(&p->state, memory_order_acquire) == STATE_ENDED;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc = p->pidfd >= 0 ? waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &info, WEXITED | WNOHANG)
                           : waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG);
    int code;
    if (rc == 0 && info.si_pid == 0)
        return false; /* still running */
    if (rc == 0)
        code = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
    else if (errno == EINTR)
        return false;
    else
        code = MPROC_EXITCODE_LOST; /* ECHILD: someone else's waitpid(-1) took it */
    atomic_store_explicit(&p->exitcode, code, memory_order_relaxed);
    atomic_store_explicit(&p->state, STATE_ENDED, memory_order_release);
    return true; /* the pidfd stays open until close: joiners may poll it */
}

static bool reap(mproc_process *p) {
    pthread_mutex_lock(&p->reap_lock);
    bool ended = reap_locked(p);
    pthread_mutex_unlock(&p->reap_lock);
    return ended;
}

/* Takes `p` off self.children. */
static void unlist(mproc_process *p) {
    pthread_mutex_lock(&self.lock);
    if (p->prev != NULL)
        p->prev->next = p->next;
    else if (self.children == p)
        self.children = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    pthread_mutex_unlock(&self.lock);
}

/* ---- create, start ---- */

int mproc_process_create(mproc_process **out, mproc_target target, void *arg,
                         const mproc_process_options *opts) {
    if (out == NULL || target == NULL)
        return EINVAL;
    unsigned flags = opts != NULL ? opts->flags : 0;
    if (opts != NULL)
        for (size_t i = 0; i < sizeof opts->reserved / sizeof opts->reserved[0]; i++)
            if (opts->reserved[i] != 0)
                return EINVAL;
    if (flags & ~(MPROC_PROCESS_DAEMON | MPROC_PROCESS_NOT_DAEMON) ||
        flags == (MPROC_PROCESS_DAEMON | MPROC_PROCESS_NOT_DAEMON))
        return EINVAL;
    if (opts != NULL && opts->name != NULL && strlen(opts->name) >= MPROC_PROCESS_NAME_MAX)
        return EINVAL;
    pthread_once(&setup_once, setup);
    mproc_process *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ENOMEM;
    p->target = target;
    p->arg = arg;
    p->creator = mproc__self_pid();
    p->pidfd = -1;
    atomic_init(&p->state, STATE_NEW);
    atomic_init(&p->exitcode, MPROC_EXITCODE_NONE);
    pthread_mutex_init(&p->reap_lock, NULL);
    pthread_mutex_lock(&self.lock);
    p->number = ++self.counter;
    p->daemon = flags & MPROC_PROCESS_DAEMON ? true
                : flags & MPROC_PROCESS_NOT_DAEMON ? false
                                                   : self.daemon;
    if (opts != NULL && opts->name != NULL)
        snprintf(p->name, sizeof p->name, "%s", opts->name);
    else
        snprintf(p->name, sizeof p->name, "Process-%s%s%u", self.identity,
                 self.identity[0] != '\0' ? ":" : "", p->number);
    pthread_mutex_unlock(&self.lock);
    *out = p;
    return 0;
}

static void exit_children(void);

/* The child, right after fork: becomes `p`, runs the target, exits. */
static _Noreturn void child_main(mproc_process *p, int parent) {
    if (p->daemon) {
        /* Dies with the parent.  The parent may have died before the prctl:
         * then we were re-parented, and go the same way. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            raise(SIGKILL);
    }
    char identity[MPROC_PROCESS_NAME_MAX];
    snprintf(identity, sizeof identity, "%s%s%u", self.identity,
             self.identity[0] != '\0' ? ":" : "", p->number);
    memcpy(self.identity, identity, sizeof self.identity - 1);
    self.identity[sizeof self.identity - 1] = '\0';
    snprintf(self.name, sizeof self.name, "%s", p->name);
    self.daemon = p->daemon;
    self.parent_pid = parent;
    self.counter = 0;
    /* Our copy of our own handle: running, with our pid (so joining it is
     * EDEADLK, as Python's "can only join a child process"). */
    atomic_store_explicit(&p->pid, (int)getpid(), memory_order_relaxed);
    atomic_store_explicit(&p->state, STATE_RUNNING, memory_order_relaxed);
    int code = p->target(p->arg);
    if (self.children != NULL)
        exit_children();
    /* stdout and stderr, as Python's child flushes sys.stdout/stderr; only
     * when they hold something (flushing writes to libc's pages, each a
     * copy-on-write fault in a fresh child). */
    if (__fpending(stdout) != 0)
        fflush(stdout);
    if (__fpending(stderr) != 0)
        fflush(stderr);
    _exit(code & 0xff);
}

int mproc_process_start(mproc_process *p) {
    if (p == NULL)
        return EINVAL;
    int me = mproc__self_pid();
    if (p->creator != me)
        return ECHILD;
    if (atomic_load_explicit(&p->state, memory_order_acquire) != STATE_NEW)
        return EALREADY;
    if (self.daemon)
        return EPERM;
    fflush(NULL); /* or buffered output would be written twice */
    /* Listed before the fork (after it, every page written in the parent is
     * a copy-on-write fault); listed while NEW, it is skipped by readers. */
    pthread_mutex_lock(&self.lock);
    p->next = self.children;
    p->prev = NULL;
    if (self.children != NULL)
        self.children->prev = p;
    self.children = p;
    pthread_mutex_unlock(&self.lock);
    pid_t pid = fork();
    if (pid == 0)
        child_main(p, me);
    if (pid < 0) {
        int rc = errno;
        unlist(p);
        return rc;
    }
    atomic_store_explicit(&p->pid, pid, memory_order_relaxed);
    atomic_store_explicit(&p->state, STATE_RUNNING, memory_order_release);
    return 0;
}

/* ---- join, state ---- */

/* Waits, at most until the deadline, for the child to end, without reaping
 * it.  Forever: waitid(WNOWAIT) blocks until it is a zombie.  Bounded: poll
 * on its pidfd, opened on the first bounded wait (while the child is ours
 * and unreaped, so the pid is still its own); without pidfds, sleeps a
 * growing step (up to 10 ms). */
static void wait_end(mproc_process *p, const mproc__deadline *deadline, long *step_us) {
    if (deadline->forever) {
        siginfo_t info;
        waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOWAIT); /* EINTR: look again */
        return;
    }
    pthread_mutex_lock(&p->reap_lock);
    if (p->pidfd < 0 && atomic_load_explicit(&p->state, memory_order_acquire) == STATE_RUNNING)
        p->pidfd = mproc__pidfd_open(p->pid);
    int fd = p->pidfd;
    pthread_mutex_unlock(&p->reap_lock);
    double left = mproc__deadline_remaining(deadline);
    if (fd >= 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        double ms = left * 1000.0 + 0.999; /* the caller loops: a cap is only a slice */
        poll(&pfd, 1, ms > 3600e3 ? 3600 * 1000 : (int)ms); /* EINTR: look again */
        return;
    }
    long us = *step_us;
    if (left * 1e6 < (double)us)
        us = (long)(left * 1e6) + 1;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    if (*step_us < 10000)
        *step_us *= 2;
}

int mproc_process_join(mproc_process *p, double timeout) {
    if (p == NULL)
        return EINVAL;
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    int state = atomic_load_explicit(&p->state, memory_order_acquire);
    if (state == STATE_NEW)
        return ESRCH;
    int me = mproc__self_pid();
    if (atomic_load_explicit(&p->pid, memory_order_relaxed) == me)
        return EDEADLK;
    if (p->creator != me)
        return ECHILD;
    long step_us = 50;
    /* The wait itself holds no lock, so is_alive and the like from other
     * threads never wait behind a join.  A forever join waits first: the
     * child has rarely ended already, and that saves a system call. */
    if (deadline.forever && atomic_load_explicit(&p->state, memory_order_acquire) == STATE_RUNNING)
        wait_end(p, &deadline, &step_us);
    while (!reap(p)) {
        if (mproc__deadline_expired(&deadline))
            return reap(p) ? 0 : ETIMEDOUT;
        wait_end(p, &deadline, &step_us);
    }
    return 0;
}

int mproc_process_is_alive(mproc_process *p) {
    if (p == NULL || atomic_load_explicit(&p->state, memory_order_acquire) == STATE_NEW)
        return 0;
    if (p->creator != mproc__self_pid())
        return atomic_load_explicit(&p->state, memory_order_acquire) == STATE_RUNNING;
    return !reap(p);
}

int mproc_process_exitcode(mproc_process *p) {
    if (p == NULL)
        return MPROC_EXITCODE_NONE;
    if (atomic_load_explicit(&p->state, memory_order_acquire) == STATE_RUNNING &&
        p->creator == mproc__self_pid())
        reap(p);
    return atomic_load_explicit(&p->exitcode, memory_order_relaxed);
}

int mproc_process_pid(const mproc_process *p) {
    return p != NULL ? atomic_load_explicit(&((mproc_process *)p)->pid, memory_order_relaxed) : 0;
}

const char *mproc_process_name(const mproc_process *p) {
    return p != NULL ? p->name : NULL;
}

int mproc_process_daemon(const mproc_process *p) {
    return p != NULL && p->daemon;
}

static int send_signal(mproc_process *p, int sig) {
    if (p == NULL)
        return EINVAL;
    if (atomic_load_explicit(&p->state, memory_order_acquire) == STATE_NEW)
        return ESRCH;
    if (p->creator != mproc__self_pid())
        return ECHILD;
    int rc = 0;
    pthread_mutex_lock(&p->reap_lock);
    /* Not reaped yet, so the pid is still this child's (a zombie at worst). */
    if (!reap_locked(p)) {
#ifdef SYS_pidfd_send_signal
        if (p->pidfd >= 0)
            rc = syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0 ? 0 : errno;
        else
#endif
            rc = kill(p->pid, sig) == 0 ? 0 : errno;
        if (rc == ESRCH)
            rc = 0; /* ended meanwhile */
    }
    pthread_mutex_unlock(&p->reap_lock);
    return rc;
}

int mproc_process_terminate(mproc_process *p) {
    return send_signal(p, SIGTERM);
}

int mproc_process_kill(mproc_process *p) {
    return send_signal(p, SIGKILL);
}

int mproc_process_close(mproc_process *p) {
    if (p == NULL)
        return EINVAL;
    int state = atomic_load_explicit(&p->state, memory_order_acquire);
    if (state == STATE_RUNNING && p->creator == mproc__self_pid() && !reap(p))
        return EBUSY;
    if (state != STATE_NEW && p->creator == mproc__self_pid())
        unlist(p);
    if (p->pidfd >= 0)
        close(p->pidfd);
    pthread_mutex_destroy(&p->reap_lock);
    free(p);
    return 0;
}

/* ---- this process ---- */

const char *mproc_current_process_name(void) {
    return self.name;
}

int mproc_current_process_daemon(void) {
    return self.daemon;
}

int mproc_parent_process_pid(void) {
    return self.parent_pid != 0 && getppid() == self.parent_pid ? self.parent_pid : 0;
}

int mproc_active_children(mproc_process **list, unsigned cap, unsigned *count) {
    if (count == NULL || (list == NULL && cap != 0))
        return EINVAL;
    unsigned n = 0;
    pthread_mutex_lock(&self.lock);
    for (mproc_process *p = self.children; p != NULL; p = p->next) {
        if (atomic_load_explicit(&p->state, memory_order_acquire) == STATE_NEW || reap(p))
            continue; /* NEW: being started by another thread */
        if (n < cap)
            list[n] = p;
        n++;
    }
    pthread_mutex_unlock(&self.lock);
    *count = n;
    return 0;
}

int mproc_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void mproc_join_children_at_exit(int enable) {
    atomic_store_explicit(&self.join_at_exit, enable != 0, memory_order_relaxed);
}

/* Python's _exit_function: terminate daemon children, then join every
 * child.  The list is copied first: joins must not hold self.lock. */
static void exit_children(void) {
    if (!atomic_load_explicit(&self.join_at_exit, memory_order_relaxed))
        return;
    unsigned n = 0, cap = 0;
    mproc_process **running = NULL;
    for (;;) {
        if (mproc_active_children(running, cap, &n) != 0)
            return;
        if (n <= cap)
            break;
        free(running);
        cap = n + 16;
        running = malloc(cap * sizeof *running);
        if (running == NULL)
            return;
    }
    for (unsigned i = 0; i < n; i++)
        if (running[i]->daemon)
            mproc_process_terminate(running[i]);
    for (unsigned i = 0; i < n; i++)
        mproc_process_join(running[i], MPROC_FOREVER);
    free(running);
}

static void at_exit(void) {
    mproc__pools_at_exit(); /* first: a live pool would replace the workers killed below */
    exit_children();
}

void mproc__process_setup(void) {
    pthread_once(&setup_once, setup);
}
