/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *t_name(const char *tag) {
    static __thread char buf[8][96];
    static _Atomic unsigned counter;
    unsigned n = counter++;
    char *out = buf[n % 8];
    /* The clock part keeps a recycled PID from meeting a name that a
     * failed earlier run left behind (EEXIST on an exclusive create). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, sizeof buf[0], "t-%s-%d-%lx-%u", tag, (int)getpid(),
             (unsigned long)(ts.tv_sec * 1000000000L + ts.tv_nsec) & 0xffffffffffUL, n);
    return out;
}

double t_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void *t_shared(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    return p;
}

static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

pid_t t_fork(void) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
    }
    return pid;
}

int t_wait(pid_t pid, double timeout) {
    double end = t_now() + timeout;
    double pause = 0.0001;
    for (;;) {
        int status;
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return status;
        if (got < 0 && errno != EINTR)
            return -1;
        if (t_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nap(pause); /* polling a bound, not ordering anything */
        if (pause < 0.01)
            pause *= 2;
    }
}

int t_exit_code(pid_t pid, double timeout) {
    int status = t_wait(pid, timeout);
    if (status == -1)
        return -1;
    if (WIFSIGNALED(status))
        return -1000 - WTERMSIG(status);
    return WEXITSTATUS(status);
}

void t_pipe_open(t_pipe *p) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("pipe2");
        abort();
    }
    p->rd = fds[0];
    p->wr = fds[1];
}

void t_pipe_close(t_pipe *p) {
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0)
        close(p->wr);
    p->rd = p->wr = -1;
}

void t_signal(t_pipe *p, char byte) {
    while (write(p->wr, &byte, 1) < 0 && errno == EINTR) {
    }
}

int t_await(t_pipe *p, double timeout) {
    double end = t_now() + timeout;
    for (;;) {
        double left = end - t_now();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = p->rd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        unsigned char byte;
        ssize_t got = read(p->rd, &byte, 1);
        if (got == 1)
            return byte;
        if (got < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static char task_state(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)getpid(), (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
        f = fopen(path, "r");
    }
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    return close_paren != NULL && close_paren[1] == ' ' ? close_paren[2] : '?';
}

bool t_wait_sleeping(pid_t tid, double timeout) {
    double end = t_now() + timeout;
    while (t_now() < end) {
        if (task_state(tid) == 'S')
            return true;
        sched_yield();
    }
    return false;
}

bool t_gone_within(pid_t pid, double timeout) {
    double end = t_now() + timeout;
    do {
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return true;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *paren = strrchr(buf, ')');
        if (paren != NULL && (paren[2] == 'Z' || paren[2] == 'X'))
            return true;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    } while (t_now() < end);
    return false;
}

/* Child side: runs fn only in the process that got the wanted PID. */
static pid_t fork_if_pid(pid_t want, int (*fn)(void *), void *arg) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(getpid() == want ? fn(arg) : 0);
    if (pid > 0 && pid != want)
        waitpid(pid, NULL, 0);
    return pid;
}

pid_t t_fork_with_pid(pid_t want, int (*fn)(void *), void *arg) {
    /* Bounded in time, so a PID that cannot be had fails the test instead
     * of running into its timeout. */
    double end = t_now() + 20;
    /* Another process may fork between our write and our fork (ctest runs
     * tests in parallel), or hold the PID for a while: retry until the
     * bound.  Tests using this share CTest's RESOURCE_LOCK "pids" with the
     * fork-heavy kill tests, so such races stay rare. */
    bool have_ns_last_pid = true;
    while (have_ns_last_pid && t_now() < end) {
        if (kill(want, 0) == 0) { /* someone else has it now */
            nap(0.001);
            continue;
        }
        int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%d", (int)want - 1);
        have_ns_last_pid = write(fd, buf, (size_t)len) == len;
        close(fd);
        if (!have_ns_last_pid)
            break;
        pid_t pid = fork_if_pid(want, fn, arg);
        if (pid == want || pid < 0)
            return pid;
    }
    /* No ns_last_pid: fork short-lived children until the PID comes round. */
    while (t_now() < end) {
        pid_t pid = fork_if_pid(want, fn, arg);
        if (pid == want || pid < 0)
            return pid;
    }
    return -1;
}

const char *t_helper_path(const char *program) {
    static char path[PATH_MAX + 64];
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return program;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    snprintf(path, sizeof path, "%s/%s", self, program);
    return path;
}
