/* SPDX-License-Identifier: MIT */
/*
 * mproc_process: Python's multiprocessing.Process for C functions.
 *
 *   mproc_process *p;
 *   mproc_process_create(&p, worker, &arg, NULL);   // name "Process-1"
 *   mproc_process_start(p);                         // fork(); the child runs worker(&arg)
 *   mproc_process_join(p, MPROC_FOREVER);
 *   int code = mproc_process_exitcode(p);           // worker's return, or -SIGNAL
 *   mproc_process_close(p);
 *
 * The child is a fork() of the caller: it sees the caller's memory as it was
 * at start (so `arg` may point anywhere), runs target(arg), flushes stdout
 * and stderr (other FILE streams are the target's to flush or close, as in
 * Python's child) and ends with _exit(return value & 0xff).  The parent's atexit handlers do not
 * run in the child (as Python's os._exit); the child's own non-daemon
 * children are joined first, as at any process's exit (below).
 *
 * Names: "Process-N", N counting the processes this process created (from
 * 1); a child's children are "Process-N:M".  The main process is
 * "MainProcess".
 *
 * Exit codes: 0..255 from the target, -N when signal N ended the child, and
 * MPROC_EXITCODE_NONE before start and while it runs.
 *
 * Daemon children end when their parent ends, also when the parent is
 * SIGKILLed (PR_SET_PDEATHSIG, checked against a race at start).  The
 * kernel sends that signal when the *thread* that forked ends, so start
 * daemons from a thread that lives as long as the process (the main thread,
 * typically).  A daemon may not start children (EPERM).
 *
 * At a normal exit of a process (exit(), return from main), its non-daemon
 * children still running are joined, and its daemon children terminated, as
 * Python does; mproc_join_children_at_exit(0) opts out.
 *
 * Reaping: no SIGCHLD handler is installed, and mproc only ever waits for
 * its own children, by pidfd (or by pid where pidfds are missing).  A
 * waitpid(-1) elsewhere in the program can steal a child's status: its
 * exitcode is then unknown and reported as MPROC_EXITCODE_LOST.
 *
 * Handles are for the creating process (join from another process is
 * ECHILD) and not for concurrent use by several threads, except is_alive,
 * pid, name and exitcode, which are safe.
 */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include <mproc/export.h>
#include <mproc/error.h>

MPROC_EXTERN_C_BEGIN

#define MPROC_PROCESS_NAME_MAX 128
#define MPROC_EXITCODE_NONE (-1000) /* not started, or still running */
#define MPROC_EXITCODE_LOST (-1001) /* reaped by someone else: unknown */

/* Option flags. */
#define MPROC_PROCESS_DAEMON 1u     /* a daemon child */
#define MPROC_PROCESS_NOT_DAEMON 2u /* explicitly not; neither: inherit this process's flag */

typedef struct mproc_process mproc_process;

/* A process's work: its return value (0..255) becomes the exit code. */
typedef int (*mproc_target)(void *arg);

typedef struct mproc_process_options {
    const char *name;     /* NULL: "Process-N"; copied; at most MPROC_PROCESS_NAME_MAX - 1 bytes */
    unsigned flags;       /* MPROC_PROCESS_DAEMON or MPROC_PROCESS_NOT_DAEMON, or 0 */
    unsigned reserved[5]; /* must be zero */
} mproc_process_options;

/* Makes a process object (nothing runs yet).  Returns 0, EINVAL (NULL
 * target, both daemon flags, a name too long, bad options), ENOMEM. */
MPROC_API int mproc_process_create(mproc_process **out, mproc_target target, void *arg,
                                   const mproc_process_options *opts);

/* Starts it.  Returns 0, EALREADY (started before), EPERM (this process is
 * a daemon), ECHILD (the object belongs to another process), EINVAL, and
 * fork's EAGAIN / ENOMEM. */
MPROC_API int mproc_process_start(mproc_process *process);

/* Waits up to `timeout` seconds (MPROC_FOREVER; 0 polls) for the child to
 * end, and reaps it.  Returns 0 (ended), ETIMEDOUT (still running), ESRCH
 * (not started), EDEADLK (joining oneself), ECHILD (not our child), EINVAL.
 * May be called again after it ended (0 at once). */
MPROC_API int mproc_process_join(mproc_process *process, double timeout);

/* 1 while the child runs (started and not ended; reaps it if it ended),
 * else 0; 0 for NULL. */
MPROC_API int mproc_process_is_alive(mproc_process *process);

/* The exit code (see above); reaps the child if it ended.
 * MPROC_EXITCODE_NONE for NULL. */
MPROC_API int mproc_process_exitcode(mproc_process *process);

/* The child's pid (0 before start), name, daemon flag (1/0). */
MPROC_API int mproc_process_pid(const mproc_process *process);
MPROC_API const char *mproc_process_name(const mproc_process *process);
MPROC_API int mproc_process_daemon(const mproc_process *process);

/* SIGTERM / SIGKILL to the child.  0 also when it already ended (nothing
 * sent); ESRCH before start; ECHILD (not our child); EINVAL. */
MPROC_API int mproc_process_terminate(mproc_process *process);
MPROC_API int mproc_process_kill(mproc_process *process);

/* Frees the object.  EBUSY while the child runs (join or kill it first);
 * 0 before start or after it ended. */
MPROC_API int mproc_process_close(mproc_process *process);

/* ---- this process ---- */

/* This process's name ("MainProcess", or the name its parent gave it) and
 * daemon flag. */
MPROC_API const char *mproc_current_process_name(void);
MPROC_API int mproc_current_process_daemon(void);

/* The parent's pid if this process was started by mproc_process_start and
 * its parent is still alive, else 0. */
MPROC_API int mproc_parent_process_pid(void);

/* Fills list[0, cap) with the children this process started that still run
 * (reaping those that ended) and stores their number in *count (which may
 * exceed cap).  Returns 0 or EINVAL. */
MPROC_API int mproc_active_children(mproc_process **list, unsigned cap, unsigned *count);

/* CPUs this process may run on (its affinity mask), at least 1. */
MPROC_API int mproc_cpu_count(void);

/* enable != 0 (the default): at normal exit, join non-daemon children and
 * terminate daemon ones.  0: leave them (orphans keep running, daemons still
 * die with us by PDEATHSIG). */
MPROC_API void mproc_join_children_at_exit(int enable);

MPROC_EXTERN_C_END

#endif
