/* SPDX-License-Identifier: MIT */
/*
 * The only place mproc talks to futex(2), and the spin that comes before a
 * sleep.
 *
 * Futex words live in MAP_SHARED memory and are used without
 * FUTEX_PRIVATE_FLAG, so a wait in one process is woken from another (the
 * kernel keys shared futexes by the page's inode or shmem object, not the
 * address).  Waits take an absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET
 * measures against CLOCK_MONOTONIC by default), so retries never stretch a
 * timeout.  Every caller loops on its own predicate: a return of 0 means only
 * "look again" (woken, value already different, or a signal interrupted).
 */
#ifndef MPROC_SYNC_FUTEX_H
#define MPROC_SYNC_FUTEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "internal.h"

/* Sleeps while *word == expect, until woken or `at` (NULL: no bound).
 * Returns 0 (look again) or ETIMEDOUT. */
int mproc__futex_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *at);

/* Wakes up to `n` sleepers on `word`.  Returns how many were woken. */
int mproc__futex_wake(_Atomic uint32_t *word, int n);

/* The deadline's instant for mproc__futex_wait (NULL for forever). */
static inline const struct timespec *mproc__deadline_at(const mproc__deadline *deadline) {
    return deadline->forever ? NULL : &deadline->at;
}

/* The end of a liveness slice: `ms` from now, or the deadline if sooner.
 * Waiters that must notice dead peers sleep in such slices. */
void mproc__slice_end(const mproc__deadline *deadline, long ms, struct timespec *at);

/*
 * Bounded spinning.  A futex wake-up that crosses CPUs costs 30-70 us on the
 * reference 2-vCPU machine (peer-baselines C7a), a cache-line hand-off well
 * under 1 us; a waiter that spins up to MPROC__SPIN_NS before sleeping turned
 * a 44 us ping-pong into 0.3-0.8 us (C7c), and costs at most 5 us of CPU when
 * the wait is long.  With one CPU online the other side cannot run while we
 * spin, so there is no spinning at all.
 *
 *   mproc__spin spin;
 *   for (mproc__spin_start(&spin, &deadline); mproc__spin_more(&spin);)
 *       if (condition) break;
 */
#define MPROC__SPIN_NS 5000

/* The CPU's spin-wait hint: frees the core's resources for its sibling
 * hyperthread and avoids the memory-order flush when the spin ends. */
#if defined(__x86_64__) || defined(__i386__)
#define MPROC__CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define MPROC__CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define MPROC__CPU_RELAX() atomic_signal_fence(memory_order_seq_cst)
#endif

typedef struct mproc__spin {
    struct timespec until;
    unsigned rounds; /* 0 = do not spin */
} mproc__spin;

/* Starts a spin bounded by MPROC__SPIN_NS and by `deadline`. */
void mproc__spin_start(mproc__spin *spin, const mproc__deadline *deadline);

/* Pauses once; false once the spin's time is over. */
bool mproc__spin_more_slow(mproc__spin *spin);

static inline bool mproc__spin_more(mproc__spin *spin) {
    if (spin->rounds == 0)
        return false;
    if (MPROC__LIKELY(++spin->rounds & 31)) {
        MPROC__CPU_RELAX();
        return true;
    }
    return mproc__spin_more_slow(spin);
}

#endif
