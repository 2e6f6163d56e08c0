/* SPDX-License-Identifier: MIT */
/*
 * mproc_semaphore: glibc's new_sem algorithm on shm/layout.h's semaphore
 * body (count in the low half of one 64-bit word, announced waiters in the
 * high half).
 *
 *   acquire: CAS count -> count-1 while count > 0.  Else spin a little; then
 *            add one announced waiter and loop { take a permit and drop the
 *            announcement in one CAS if count > 0; else FUTEX_WAIT(count, 0) }.
 *   release: CAS count -> count+n (refused past max); if the old word shows
 *            announced waiters, FUTEX_WAKE(n).
 *
 * No lost wake-up: a waiter announces itself and re-reads the count in the
 * same seq_cst RMW order as the releaser's CAS, and FUTEX_WAIT sleeps only if
 * the count is still 0.  A waiter that times out makes one last attempt at a
 * permit before it withdraws, so a wake meant for it is never dropped while
 * a permit waits.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "shm/segment.h"
#include "sync/futex.h"

#define COUNT_MASK 0xffffffffull
#define ONE_WAITER (1ull << 32)

struct mproc_semaphore {
    struct mproc__semaphore_body *body; /* first: the fast paths load nothing else */
    uint32_t max;                       /* private copy of body->max, validated */
    mproc__segment seg;
};

struct sem_init_arg {
    uint32_t value, max;
};

static int sem_init(void *body, size_t extra, const void *arg) {
    (void)extra;
    const struct sem_init_arg *init = arg;
    struct mproc__semaphore_body *sbody = body;
    atomic_init(&sbody->word, init->value);
    sbody->max = init->max;
    return 0;
}

static int sem_check(const void *body, size_t extra) {
    const struct mproc__semaphore_body *sbody = body;
    uint64_t word = atomic_load_explicit(&((struct mproc__semaphore_body *)sbody)->word,
                                         memory_order_relaxed);
    if (extra != 0 || sbody->max > MPROC_SEMAPHORE_VALUE_MAX || (word & COUNT_MASK) > sbody->max)
        return MPROC_E_CORRUPT;
    return 0;
}

static const mproc__kind_spec semaphore_kind = {
    .kind = MPROC__KIND_SEMAPHORE,
    .body_size = sizeof(struct mproc__semaphore_body),
    .init = sem_init,
    .check = sem_check,
};

static const mproc__kind_spec bounded_kind = {
    .kind = MPROC__KIND_BOUNDED_SEMAPHORE,
    .body_size = sizeof(struct mproc__semaphore_body),
    .init = sem_init,
    .check = sem_check,
};

static int make(mproc_semaphore **out, const mproc__kind_spec *spec, const char *name, int flags,
                int value, const mproc_semaphore_options *opts) {
    if (out == NULL || value < 0 || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    mproc_semaphore *sem = calloc(1, sizeof *sem);
    if (sem == NULL)
        return ENOMEM;
    struct sem_init_arg init = {
        .value = (uint32_t)value,
        .max = spec == &bounded_kind ? (uint32_t)value : MPROC_SEMAPHORE_VALUE_MAX,
    };
    unsigned mode = opts != NULL ? opts->mode : 0;
    int rc = name == NULL
                 ? mproc__segment_create(&sem->seg, spec, 0, &init)
                 : mproc__segment_open(&sem->seg, spec, name, flags, mode, 0, &init);
    if (rc != 0) {
        free(sem);
        return rc;
    }
    sem->body = mproc__segment_body(&sem->seg);
    sem->max = sem->body->max; /* checked by sem_check (or written by us) */
    *out = sem;
    return 0;
}

int mproc_semaphore_create(mproc_semaphore **out, int value, const mproc_semaphore_options *opts) {
    return make(out, &semaphore_kind, NULL, 0, value, opts);
}

int mproc_bounded_semaphore_create(mproc_semaphore **out, int value,
                                   const mproc_semaphore_options *opts) {
    return make(out, &bounded_kind, NULL, 0, value, opts);
}

int mproc_semaphore_open(mproc_semaphore **out, const char *name, int flags, int value,
                         const mproc_semaphore_options *opts) {
    return name == NULL ? EINVAL : make(out, &semaphore_kind, name, flags, value, opts);
}

int mproc_bounded_semaphore_open(mproc_semaphore **out, const char *name, int flags, int value,
                                 const mproc_semaphore_options *opts) {
    return name == NULL ? EINVAL : make(out, &bounded_kind, name, flags, value, opts);
}

/* Takes a permit if the word shows one.  acquire: what the releaser wrote
 * before its release CAS is visible to the new holder of the permit. */
static inline bool try_take(_Atomic uint64_t *word, uint64_t *seen, uint64_t announced) {
    while ((*seen & COUNT_MASK) > 0)
        if (atomic_compare_exchange_weak_explicit(word, seen, *seen - 1 - announced,
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    return false;
}

/* The count's half of the word: the futex word sleepers wait on. */
static inline _Atomic uint32_t *count_word(struct mproc__semaphore_body *body) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the count is the low half of the word: its address differs on big-endian"
#endif
    return (_Atomic uint32_t *)&body->word;
}

static int acquire_slow(struct mproc__semaphore_body *body, double timeout) {
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    _Atomic uint64_t *word = &body->word;
    uint64_t seen = atomic_load_explicit(word, memory_order_relaxed);
    if (try_take(word, &seen, 0))
        return 0;
    if (deadline.now)
        return ETIMEDOUT;
    mproc__spin spin;
    for (mproc__spin_start(&spin, &deadline); mproc__spin_more(&spin);) {
        seen = atomic_load_explicit(word, memory_order_relaxed);
        if (try_take(word, &seen, 0))
            return 0;
    }
    /* seq_cst: ordered with the releasers' CAS (one word, one order). */
    seen = atomic_fetch_add(word, ONE_WAITER) + ONE_WAITER;
    for (;;) {
        if (try_take(word, &seen, ONE_WAITER))
            return 0;
        /* In slices: a sleeper woken by a release and killed before it took
         * the permit takes the wake-up with it; the permit stays, and the
         * next slice of a living sleeper finds it. */
        struct timespec slice;
        mproc__slice_end(&deadline, MPROC_SEMAPHORE_LIVENESS_MS, &slice);
        if (mproc__futex_wait(count_word(body), 0, &slice) == ETIMEDOUT &&
            mproc__deadline_expired(&deadline)) {
            /* Withdraw, unless a permit arrived: then take it (and with it
             * the wake-up that may have been meant for us). */
            seen = atomic_load_explicit(word, memory_order_relaxed);
            for (;;) {
                if (try_take(word, &seen, ONE_WAITER))
                    return 0;
                if (atomic_compare_exchange_weak_explicit(word, &seen, seen - ONE_WAITER,
                                                          memory_order_relaxed,
                                                          memory_order_relaxed))
                    return ETIMEDOUT;
            }
        }
        seen = atomic_load_explicit(word, memory_order_relaxed);
    }
}

int mproc_semaphore_acquire(mproc_semaphore *sem, double timeout) {
    if (MPROC__UNLIKELY(sem == NULL))
        return EINVAL;
    _Atomic uint64_t *word = &sem->body->word;
    uint64_t seen = atomic_load_explicit(word, memory_order_relaxed);
    if (MPROC__LIKELY(!isnan(timeout)) && try_take(word, &seen, 0))
        return 0;
    return acquire_slow(sem->body, timeout);
}

int mproc_semaphore_release(mproc_semaphore *sem, unsigned n) {
    if (MPROC__UNLIKELY(sem == NULL || n == 0))
        return EINVAL;
    _Atomic uint64_t *word = &sem->body->word;
    uint64_t seen = atomic_load_explicit(word, memory_order_relaxed);
    do {
        /* Bound from the private copy: a corrupted body->max cannot lift it. */
        if ((seen & COUNT_MASK) > sem->max || n > sem->max - (seen & COUNT_MASK))
            return EOVERFLOW;
        /* seq_cst: the waiter's announce-then-recheck is ordered with this. */
    } while (!atomic_compare_exchange_weak(word, &seen, seen + n));
    if (seen >> 32)
        mproc__futex_wake(count_word(sem->body), n > INT_MAX ? INT_MAX : (int)n);
    return 0;
}

int mproc_semaphore_value(const mproc_semaphore *sem, int *value) {
    if (sem == NULL || value == NULL)
        return EINVAL;
    uint64_t word = atomic_load_explicit(&sem->body->word, memory_order_relaxed);
    uint64_t count = word & COUNT_MASK;
    *value = (int)(count < sem->max ? count : sem->max);
    return 0;
}

int mproc_semaphore_max(const mproc_semaphore *sem, int *max) {
    if (sem == NULL || max == NULL)
        return EINVAL;
    *max = (int)sem->max;
    return 0;
}

int mproc_semaphore_close(mproc_semaphore *sem) {
    if (sem == NULL)
        return EINVAL;
    mproc__segment_close(&sem->seg);
    free(sem);
    return 0;
}
