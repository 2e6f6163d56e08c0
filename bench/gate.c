/* SPDX-License-Identifier: MIT */
/*
 * The fork gate, shared memory and the clock for multi-process benches.
 *
 * Forking and reaping cost ~0.15 ms each on the 2-core VM, far more than the
 * operations measured, so children are forked before the clock starts and
 * reaped after it stops: each child reports ready through one pipe, then
 * blocks reading another until the parent lets all of them go at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *bench_shared_alloc(size_t size) {
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return mem == MAP_FAILED ? NULL : mem;
}

void bench_shared_free(void *mem, size_t size) {
    if (mem != NULL)
        munmap(mem, size);
}

static int read_full(int fd, char *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t got = read(fd, buf + done, len - done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        done += (size_t)got;
    }
    return 0;
}

static int write_full(int fd, const char *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t put = write(fd, buf + done, len - done);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return -1;
        done += (size_t)put;
    }
    return 0;
}

static void child_main(int ready_wr, int go_rd, int (*fn)(void *, int), void *arg, int index) {
    char byte = 'r';
    /* Closing the ready pipe at once lets the parent see EOF instead of
     * waiting forever when a sibling dies before reporting ready. */
    int ready = write_full(ready_wr, &byte, 1);
    close(ready_wr);
    if (ready != 0 || read_full(go_rd, &byte, 1) != 0)
        _exit(3); /* the parent gave up before opening the gate */
    close(go_rd);
    /* _exit: the parent's stdio buffers and atexit handlers are not ours. */
    _exit(fn(arg, index));
}

int bench_gate_start(bench_gate *gate, int nproc, int (*fn)(void *arg, int index), void *arg) {
    int ready[2], go[2];
    if (nproc < 1 || nproc > BENCH_GATE_MAX)
        return -1;
    if (pipe2(ready, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(go, O_CLOEXEC) != 0) {
        close(ready[0]), close(ready[1]);
        return -1;
    }
    /* A child that prints and flushes would also repeat what the parent had
     * buffered at fork time. */
    fflush(NULL);
    gate->nproc = 0;
    gate->ready_fd = ready[0];
    gate->go_fd = go[1];
    for (int i = 0; i < nproc; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(ready[0]);
            close(go[1]);
            child_main(ready[1], go[0], fn, arg, i);
        }
        if (pid < 0)
            break;
        gate->pid[gate->nproc++] = pid;
    }
    close(ready[1]);
    close(go[0]);
    if (gate->nproc == nproc)
        return 0;
    bench_gate_join(gate); /* closing go_fd sends the forked ones home */
    return -1;
}

int bench_gate_open(bench_gate *gate) {
    char bytes[BENCH_GATE_MAX];
    if (read_full(gate->ready_fd, bytes, (size_t)gate->nproc) != 0)
        return -1;
    memset(bytes, 'g', sizeof bytes);
    return write_full(gate->go_fd, bytes, (size_t)gate->nproc);
}

int bench_gate_join(bench_gate *gate) {
    int failed = 0;
    if (gate->go_fd >= 0)
        close(gate->go_fd);
    if (gate->ready_fd >= 0)
        close(gate->ready_fd);
    gate->go_fd = gate->ready_fd = -1;
    for (int i = 0; i < gate->nproc; i++) {
        int status;
        pid_t got;
        do
            got = waitpid(gate->pid[i], &status, 0);
        while (got < 0 && errno == EINTR);
        if (got < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (got >= 0 && WIFSIGNALED(status))
                fprintf(stderr, "mproc-bench: child %d died of signal %d\n", (int)gate->pid[i],
                        WTERMSIG(status));
            failed = 1;
        }
    }
    gate->nproc = 0;
    return failed ? -1 : 0;
}
