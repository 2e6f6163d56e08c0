/* SPDX-License-Identifier: MIT */
/*
 * Internal declarations shared by the library's files (mproc__ names).
 * Never included by public headers.
 */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mproc.h>

#define MPROC__LIKELY(x) __builtin_expect(!!(x), 1)
#define MPROC__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- deadline.c: relative double timeouts -> absolute CLOCK_MONOTONIC ---- */

/* An absolute deadline.  `forever` waits without bound; `now` means try once
 * (timeout 0); otherwise `at` is the CLOCK_MONOTONIC instant to give up at. */
typedef struct mproc__deadline {
    bool forever;
    bool now;
    struct timespec at;
} mproc__deadline;

/* Converts `timeout` (see MPROC_FOREVER) once, at API entry.  EINVAL for NaN. */
int mproc__deadline_init(mproc__deadline *deadline, double timeout);

/* Seconds left before the deadline, clamped at 0 (never negative, which
 * would read as "forever"); a negative value only for a forever deadline. */
double mproc__deadline_remaining(const mproc__deadline *deadline);

/* True once the deadline has passed (always true for `now`). */
bool mproc__deadline_expired(const mproc__deadline *deadline);

/* ---- name.c: object names and their files ---- */

/* Where named objects live: /dev/shm/mproc.<name>. */
#define MPROC__SHM_DIR "/dev/shm"
#define MPROC__NAME_PREFIX "mproc."
#define MPROC__PATH_MAX (sizeof(MPROC__SHM_DIR "/" MPROC__NAME_PREFIX) + MPROC_NAME_MAX)

/* Validates `name` and writes its file's path.  Returns 0, EINVAL (NULL),
 * MPROC_E_BADNAME or ENAMETOOLONG. */
int mproc__name_path(const char *name, char path[MPROC__PATH_MAX]);

/* ---- identity.c: who the calling thread is ---- */

/* A 64-bit random identity of the calling thread, never 0, new in every
 * thread and in the child after fork().  Owners of recursive locks are
 * recorded by it: unlike a TID it is never reused. */
uint64_t mproc__self_slow(void);
extern __thread uint64_t mproc__self_id __attribute__((tls_model("initial-exec")));

static inline uint64_t mproc__self(void) {
    uint64_t self = mproc__self_id;
    return MPROC__LIKELY(self != 0) ? self : mproc__self_slow();
}

/* The calling thread's kernel TID, cached per thread and forgotten in a
 * forked child (same atfork handler as the identity). */
int32_t mproc__self_tid_slow(void);
extern __thread int32_t mproc__self_tid_cache __attribute__((tls_model("initial-exec")));

static inline int32_t mproc__self_tid(void) {
    int32_t tid = mproc__self_tid_cache;
    return MPROC__LIKELY(tid != 0) ? tid : mproc__self_tid_slow();
}

/* The calling process's PID, cached and forgotten in a forked child (same
 * atfork handler): glibc no longer caches getpid(), a system call. */
int32_t mproc__self_pid_slow(void);
extern _Atomic int32_t mproc__self_pid_cache;

static inline int32_t mproc__self_pid(void) {
    int32_t pid = __atomic_load_n((int32_t *)&mproc__self_pid_cache, __ATOMIC_RELAXED);
    return MPROC__LIKELY(pid != 0) ? pid : mproc__self_pid_slow();
}

/* 64 random bits from the kernel, or from a mix of clocks and ids if
 * getrandom() is unavailable.  Never 0. */
uint64_t mproc__random64(void);

/* ---- process.c: process identities that survive PID reuse ---- */

/* The start time of process `pid` (clock ticks since boot), 0 if there is
 * no such process.  With the PID it names one process for ever. */
uint64_t mproc__process_start(int32_t pid);

/* True while process (pid, start) exists and is not a zombie. */
bool mproc__process_alive(int32_t pid, uint64_t start);

/* ---- proc/process.c, pool/pool.c ---- */

/* A pidfd for process `pid` (Linux 5.3), or -1 (no pidfds, no such
 * process, no fd left).  Race-free only for our own unreaped child. */
int mproc__pidfd_open(int pid);

/* Registers the process module's fork and exit handlers (once). */
void mproc__process_setup(void);

/* Terminates and joins every pool this process still has open. */
void mproc__pools_at_exit(void);

/* ---- options shared by every kind ---- */

/* Every kind's options struct is {unsigned mode; unsigned reserved[N]}:
 * NULL or zeroed means defaults; reserved words must be zero. */
static inline bool mproc__options_ok(unsigned mode, const unsigned *reserved, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (reserved[i] != 0)
            return false;
    return (mode & ~07777u) == 0;
}
#define MPROC__OPTIONS_OK(opts)                                                            \
    ((opts) == NULL ||                                                                     \
     mproc__options_ok((opts)->mode, (opts)->reserved,                                     \
                       sizeof (opts)->reserved / sizeof (opts)->reserved[0]))

/* ---- error.c ---- */

/* True for every code in MPROC_ERROR_MAP. */
bool mproc__is_mproc_error(int code);

#endif
