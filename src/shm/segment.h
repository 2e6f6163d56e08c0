/* SPDX-License-Identifier: MIT */
/*
 * The segment layer: one shared mapping per object, anonymous or named, with
 * a validated header (shm/layout.h) followed by the kind's body.  Every kind
 * of object (locks now; semaphores, queues, pools later) is built on it.
 */
#ifndef MPROC_SHM_SEGMENT_H
#define MPROC_SHM_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

/* How one kind builds and checks its body. */
typedef struct mproc__kind_spec {
    uint32_t kind;       /* enum mproc__kind */
    uint32_t body_size;  /* fixed part of the body */
    /* Builds a fresh body in private memory (nobody else sees it yet).
     * `extra` is the size of the variable part after the fixed body. */
    int (*init)(void *body, size_t extra, const void *arg);
    /* Validates the body of a segment found by name: 0 or MPROC_E_CORRUPT.
     * May be NULL when any content is valid. */
    int (*check)(const void *body, size_t extra);
    /* NULL: a named segment reserves all its pages in /dev/shm at creation.
     * Otherwise only the first eager_bytes(extra) bytes of the file; the kind
     * reserves the rest itself (mproc__segment_reserve) before touching it,
 * (`arg` is init's argument; only creation asks)
     * and its handles keep the file descriptor for that. */
    size_t (*eager_bytes)(size_t extra, const void *arg);
} mproc__kind_spec;

/* A process-private handle on a mapped segment.  The geometry comes from
 * the validated header, copied here once; later code takes bounds only from
 * this copy, never again from shared memory. */
typedef struct mproc__segment {
    void *base;
    size_t size;
    uint64_t uuid;
    int fd; /* named segment of a lazily reserved kind: its file; else -1 */
} mproc__segment;

/* Creates an anonymous segment of kind `spec` (shared with forked children). */
int mproc__segment_create(mproc__segment *seg, const mproc__kind_spec *spec, size_t extra,
                          const void *arg);

/* Opens the named segment `name` with MPROC_ATTACH/CREATE/EXCL `flags`;
 * `mode` 0 means MPROC_DEFAULT_MODE.  Codes as mproc_lock_open(). */
int mproc__segment_open(mproc__segment *seg, const mproc__kind_spec *spec, const char *name,
                        int flags, unsigned mode, size_t extra, const void *arg);

/* Reserves bytes [offset, offset + len) of the segment's file in /dev/shm, so
 * touching them can never SIGBUS.  A no-op (0) for anonymous segments, whose
 * pages come from memory on first touch.  Returns 0, ENOSPC, or an OS code. */
int mproc__segment_reserve(const mproc__segment *seg, size_t offset, size_t len);

/* Unmaps the segment (and closes its file, if kept). */
void mproc__segment_close(mproc__segment *seg);

/* Validates a header read from a file of `file_size` bytes against `spec`:
 * pure, never touches memory beyond `len` bytes of `bytes` (a fuzz target).
 * Returns 0 or the MPROC_E_* code that names the first problem found. */
int mproc__segment_validate(const void *bytes, size_t len, uint64_t file_size,
                            const mproc__kind_spec *spec);

static inline void *mproc__segment_body(const mproc__segment *seg) {
    return (char *)seg->base + MPROC__HEADER_SIZE;
}

#endif
