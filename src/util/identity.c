/* SPDX-License-Identifier: MIT */
/*
 * Thread identities.  mproc__self_id is 0 until a thread first needs its
 * identity; then it holds 64 random bits.  A forked child inherits the
 * forking thread's TLS, so an atfork handler (registered once, lazily, never
 * at load time) zeroes it in the child: the child is a new owner and must not
 * believe it holds its parent's recursive locks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

__thread uint64_t mproc__self_id __attribute__((tls_model("initial-exec")));
__thread int32_t mproc__self_tid_cache __attribute__((tls_model("initial-exec")));

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

_Atomic int32_t mproc__self_pid_cache;

static void forget_identity_in_child(void) {
    mproc__self_id = 0;
    mproc__self_tid_cache = 0;
    atomic_store_explicit(&mproc__self_pid_cache, 0, memory_order_relaxed);
}

static void register_atfork(void) {
    pthread_atfork(NULL, NULL, forget_identity_in_child);
}

/* splitmix64's finaliser: spreads the fallback's inputs over all 64 bits. */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t mproc__random64(void) {
    uint64_t value = 0;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) != (ssize_t)sizeof value) {
        static _Atomic uint64_t counter;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        value = mix64((uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 30) ^
                      ((uint64_t)getpid() << 40) ^ (uint64_t)syscall(SYS_gettid) ^
                      mix64(atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed)));
    }
    return value != 0 ? value : 1;
}

uint64_t mproc__self_slow(void) {
    pthread_once(&atfork_once, register_atfork);
    mproc__self_id = mproc__random64();
    return mproc__self_id;
}

int32_t mproc__self_tid_slow(void) {
    pthread_once(&atfork_once, register_atfork);
    mproc__self_tid_cache = (int32_t)syscall(SYS_gettid);
    return mproc__self_tid_cache;
}

int32_t mproc__self_pid_slow(void) {
    pthread_once(&atfork_once, register_atfork);
    int32_t pid = (int32_t)getpid();
    atomic_store_explicit(&mproc__self_pid_cache, pid, memory_order_relaxed);
    return pid;
}
