/* SPDX-License-Identifier: MIT */
/*
 * mproc_event on shm/layout.h's event word (gen << 2 | WAITERS | SET).
 *
 *   set:   CAS word -> (gen+1) << 2 | SET, dropping WAITERS; if WAITERS was
 *          there, FUTEX_WAKE everyone.  Already set: nothing.
 *   clear: fetch_and ~SET.
 *   wait:  return once SET or gen != the gen first seen.  Otherwise spin a
 *          little, then CAS in WAITERS and FUTEX_WAIT(word, what we saw).
 *
 * No lost wake-up: a sleeper's FUTEX_WAIT expects the exact word carrying
 * its WAITERS bit; a set() changes the word (gen, SET) and, having seen
 * WAITERS in the same CAS, wakes.  A dead waiter leaves WAITERS behind: the
 * next set() makes one spare wake call.
 */
#include <limits.h>
#include <stdlib.h>

#include "internal.h"
#include "shm/segment.h"
#include "sync/futex.h"

#define SET 1u
#define WAITERS 2u
#define GEN_ONE 4u

struct mproc_event {
    _Atomic uint32_t *word; /* first: the fast paths load nothing else */
    mproc__segment seg;
};

static int event_init(void *body, size_t extra, const void *arg) {
    (void)extra;
    (void)arg;
    atomic_init(&((struct mproc__event_body *)body)->word, 0);
    return 0;
}

static int event_check(const void *body, size_t extra) {
    (void)body; /* every word value is a valid event */
    return extra == 0 ? 0 : MPROC_E_CORRUPT;
}

static const mproc__kind_spec event_kind = {
    .kind = MPROC__KIND_EVENT,
    .body_size = sizeof(struct mproc__event_body),
    .init = event_init,
    .check = event_check,
};

static int make(mproc_event **out, const char *name, int flags, const mproc_event_options *opts) {
    if (out == NULL || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    mproc_event *event = calloc(1, sizeof *event);
    if (event == NULL)
        return ENOMEM;
    unsigned mode = opts != NULL ? opts->mode : 0;
    int rc = name == NULL ? mproc__segment_create(&event->seg, &event_kind, 0, NULL)
                          : mproc__segment_open(&event->seg, &event_kind, name, flags, mode, 0,
                                                NULL);
    if (rc != 0) {
        free(event);
        return rc;
    }
    event->word = &((struct mproc__event_body *)mproc__segment_body(&event->seg))->word;
    *out = event;
    return 0;
}

int mproc_event_create(mproc_event **out, const mproc_event_options *opts) {
    return make(out, NULL, 0, opts);
}

int mproc_event_open(mproc_event **out, const char *name, int flags,
                     const mproc_event_options *opts) {
    return name == NULL ? EINVAL : make(out, name, flags, opts);
}

int mproc_event_set(mproc_event *event) {
    if (MPROC__UNLIKELY(event == NULL))
        return EINVAL;
    uint32_t seen = atomic_load_explicit(event->word, memory_order_relaxed);
    do {
        if (seen & SET)
            return 0;
        /* release: what the setter wrote before set() is visible to every
         * waiter that sees SET or the new gen (acquire loads below). */
    } while (!atomic_compare_exchange_weak_explicit(event->word, &seen,
                                                    ((seen & ~WAITERS) + GEN_ONE) | SET,
                                                    memory_order_release, memory_order_relaxed));
    if (seen & WAITERS)
        mproc__futex_wake(event->word, INT_MAX);
    return 0;
}

int mproc_event_clear(mproc_event *event) {
    if (MPROC__UNLIKELY(event == NULL))
        return EINVAL;
    atomic_fetch_and_explicit(event->word, ~SET, memory_order_relaxed);
    return 0;
}

int mproc_event_is_set(const mproc_event *event, int *set) {
    if (event == NULL || set == NULL)
        return EINVAL;
    *set = (atomic_load_explicit(event->word, memory_order_acquire) & SET) != 0;
    return 0;
}

/* Released: the flag is up, or a set() happened since generation `gen`. */
static inline bool released(uint32_t word, uint32_t gen) {
    return (word & SET) || (word >> 2) != gen;
}

static int wait_slow(_Atomic uint32_t *word, uint32_t seen, double timeout) {
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (deadline.now)
        return ETIMEDOUT;
    uint32_t gen = seen >> 2;
    mproc__spin spin;
    for (mproc__spin_start(&spin, &deadline); mproc__spin_more(&spin);)
        if (released(atomic_load_explicit(word, memory_order_acquire), gen))
            return 0;
    seen = atomic_load_explicit(word, memory_order_acquire);
    for (;;) {
        if (released(seen, gen))
            return 0;
        if (!(seen & WAITERS) &&
            !atomic_compare_exchange_weak_explicit(word, &seen, seen | WAITERS,
                                                   memory_order_acquire, memory_order_acquire))
            continue;
        if (mproc__futex_wait(word, seen | WAITERS, mproc__deadline_at(&deadline)) == ETIMEDOUT)
            return released(atomic_load_explicit(word, memory_order_acquire), gen) ? 0
                                                                                    : ETIMEDOUT;
        seen = atomic_load_explicit(word, memory_order_acquire);
    }
}

int mproc_event_wait(mproc_event *event, double timeout) {
    if (MPROC__UNLIKELY(event == NULL))
        return EINVAL;
    uint32_t seen = atomic_load_explicit(event->word, memory_order_acquire);
    if (MPROC__LIKELY(seen & SET) && timeout == timeout) /* NaN is EINVAL even when set */
        return 0;
    return wait_slow(event->word, seen, timeout);
}

int mproc_event_close(mproc_event *event) {
    if (event == NULL)
        return EINVAL;
    mproc__segment_close(&event->seg);
    free(event);
    return 0;
}
