/* SPDX-License-Identifier: MIT */
/*
 * Every structure that lives in shared memory, in one place.
 *
 * Rules: fixed-width types only (no pointers, size_t, fds or pthread_t other
 * than the robust mutexes, whose ABI the header's lock_abi pins); every field
 * read from a segment is validated before use; a change that an older reader
 * would misread bumps MPROC__LAYOUT_MAJOR.  The _Static_asserts below freeze
 * the offsets: a layout change cannot slip in unnoticed.
 */
#ifndef MPROC_SHM_LAYOUT_H
#define MPROC_SHM_LAYOUT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MPROC__MAGIC "mprocSEG" /* 8 bytes, no terminator */
#define MPROC__MAGIC_LEN 8
#define MPROC__LAYOUT_MAJOR 1
#define MPROC__LAYOUT_MINOR 0
#define MPROC__HEADER_SIZE 64

/* The state word of a header.  A segment is built in private (an anonymous
 * mapping, or an O_TMPFILE file with no name) and set READY before anyone
 * else can reach it, so attachers only ever see READY; any other value is
 * corruption. */
enum mproc__seg_state {
    MPROC__SEG_CREATING = 0,
    MPROC__SEG_READY = 0x52454459, /* "READ" + "Y": not a value a zeroed file has */
};

/* What a segment holds.  Never renumber: the value is stored in files. */
enum mproc__kind {
    MPROC__KIND_LOCK = 1,
    MPROC__KIND_RLOCK = 2,
};

/*
 * C-library ABI of the robust mutexes a segment contains: libc tag, the size
 * of pthread_mutex_t and of a pointer.  Two programs whose lock_abi differ
 * must not share a segment (MPROC_E_ABI): their mutexes are different
 * structures.
 */
#define MPROC__LIBC_GLIBC 1u
#define MPROC__LOCK_ABI                                                                    \
    ((MPROC__LIBC_GLIBC << 24) | ((uint32_t)sizeof(pthread_mutex_t) << 8) |                \
     (uint32_t)sizeof(void *))

/*
 * The first 64 bytes of every segment.  All fields but `state` are written
 * once, by the creator, before the segment is published, and never again:
 * they are read without synchronisation.  `checksum` covers bytes [0, 48).
 */
struct mproc__seg_header {
    char magic[MPROC__MAGIC_LEN]; /* MPROC__MAGIC */
    uint16_t layout_major;        /* MPROC__LAYOUT_MAJOR; a different one is refused */
    uint16_t layout_minor;        /* additions that older readers may ignore */
    uint32_t kind;                /* enum mproc__kind */
    uint64_t total_size;          /* bytes of the whole segment == file size */
    uint32_t header_size;         /* offset of the body: MPROC__HEADER_SIZE */
    uint32_t body_size;           /* fixed part of the kind's body */
    uint32_t lock_abi;            /* MPROC__LOCK_ABI of the creator */
    uint32_t reserved0;           /* zero */
    uint64_t uuid;                /* random: tells one incarnation of a name from the next */
    uint32_t checksum;            /* FNV-1a 32 of bytes [0, 48) */
    _Atomic uint32_t state;       /* enum mproc__seg_state; READY stored with release */
    uint8_t reserved1[8];         /* zero */
};
_Static_assert(sizeof(struct mproc__seg_header) == MPROC__HEADER_SIZE, "header is 64 bytes");
_Static_assert(offsetof(struct mproc__seg_header, layout_major) == 8, "layout frozen");
_Static_assert(offsetof(struct mproc__seg_header, kind) == 12, "layout frozen");
_Static_assert(offsetof(struct mproc__seg_header, total_size) == 16, "layout frozen");
_Static_assert(offsetof(struct mproc__seg_header, lock_abi) == 32, "layout frozen");
_Static_assert(offsetof(struct mproc__seg_header, uuid) == 40, "layout frozen");
_Static_assert(offsetof(struct mproc__seg_header, checksum) == 48, "layout frozen");
_Static_assert(offsetof(struct mproc__seg_header, state) == 52, "layout frozen");
#define MPROC__CHECKSUM_SPAN 48

/*
 * Lock body.
 * mutex — a glibc robust, process-shared, error-checking mutex.  Its futex
 *   word (__data.__lock) is the kernel's robust-futex word:
 *     0                free;
 *     TID              held by thread TID, nobody asleep;
 *     TID | WAITERS    held, someone may sleep: unlock must FUTEX_WAKE;
 *     OWNER_DIED (|WAITERS)  set by the kernel when TID died holding it; it
 *                      wakes one sleeper; the next acquirer gets EOWNERDEAD,
 *                      and mproc marks the mutex consistent at once.
 *   Ownership is checked by TID: EDEADLK on relock, EPERM on foreign unlock.
 */
struct mproc__lock_body {
    pthread_mutex_t mutex;
    uint8_t reserved[64 - sizeof(pthread_mutex_t)];
};
_Static_assert(sizeof(struct mproc__lock_body) == 64, "lock body frozen");

/*
 * RLock body.
 * mutex — as in the Lock body.  Held exactly while owner != 0.
 * owner — identity (mproc__self()) of the owning thread, 0 when free.  Written
 *   only by the thread holding `mutex`: set right after locking, zeroed right
 *   before unlocking.  Other threads read it relaxed to ask "is it me?"; the
 *   answer can only be yes for the thread that stored it (identities are
 *   unique and a thread sees its own stores in order), so staleness is
 *   harmless.  After the owner dies the field keeps its dead identity, which
 *   matches no living thread; the next owner overwrites it.
 * depth — recursion count, read and written only by the owner.
 */
struct mproc__rlock_body {
    pthread_mutex_t mutex;
    alignas(8) _Atomic uint64_t owner;
    uint32_t depth;
    uint8_t reserved[64 - 48 - 4];
};
_Static_assert(offsetof(struct mproc__rlock_body, owner) == 40, "rlock body frozen");
_Static_assert(sizeof(struct mproc__rlock_body) == 64, "rlock body frozen");

#endif
