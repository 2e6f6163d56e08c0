/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: unique names, bounded waits for children and pipes, shared
 * scratch memory.  Every wait here has a bound, so a bug fails a test
 * instead of hanging CI.
 */
#ifndef MPROC_TEST_SUPPORT_H
#define MPROC_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh object name, unique per process and call: "t-<tag>-<pid>-<clock>-<n>". */
const char *t_name(const char *tag);

/* Seconds on CLOCK_MONOTONIC. */
double t_now(void);

/* Zeroed MAP_SHARED|MAP_ANONYMOUS memory, shared with children forked later. */
void *t_shared(size_t size);

/* fork() for tests: the child gets SIGKILL when the test process dies, so a
 * failed assertion never leaves a child behind holding CTest's output pipe. */
pid_t t_fork(void);

/* Waits up to `timeout` seconds for child `pid`; on time-out SIGKILLs and
 * reaps it and returns -1.  Otherwise returns the raw wait status. */
int t_wait(pid_t pid, double timeout);

/* Exit code of a child that must have exited normally within `timeout`;
 * -1000 - signal if it was killed by a signal, -1 on time-out. */
int t_exit_code(pid_t pid, double timeout);

/* A one-byte signalling pipe between processes. */
typedef struct t_pipe {
    int rd, wr;
} t_pipe;
void t_pipe_open(t_pipe *p);
void t_pipe_close(t_pipe *p);
void t_signal(t_pipe *p, char byte);
/* Reads one byte within `timeout` s: the byte, or -1 (time-out or EOF). */
int t_await(t_pipe *p, double timeout);

/* Waits (bounded) until thread or process `tid` sleeps in the kernel
 * (state 'S' in /proc), i.e. is blocked in its futex wait. */
bool t_wait_sleeping(pid_t tid, double timeout);

/* Waits (bounded) until process `pid` exists no more or is a zombie (an
 * orphan's reaper may take its time).  True if so within `timeout`. */
bool t_gone_within(pid_t pid, double timeout);

/* Forks a child whose PID is `pid` (which must be free): via
 * /proc/sys/kernel/ns_last_pid when writable, else by cycling through PIDs.
 * The child runs fn(arg) and _exits with its result.  Returns the PID, or
 * -1 if it could not be had within 20 s. */
pid_t t_fork_with_pid(pid_t pid, int (*fn)(void *), void *arg);

/* Path of a helper program built next to the tests (argv[0]'s directory). */
const char *t_helper_path(const char *program);

#endif
