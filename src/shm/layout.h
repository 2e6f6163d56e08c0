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
    MPROC__KIND_SEMAPHORE = 3,
    MPROC__KIND_BOUNDED_SEMAPHORE = 4,
    MPROC__KIND_EVENT = 5,
    MPROC__KIND_CONDITION = 6,
    MPROC__KIND_BARRIER = 7,
    MPROC__KIND_VALUE = 8,
    MPROC__KIND_ARRAY = 9,
    MPROC__KIND_SHM = 10,
    MPROC__KIND_QUEUE = 11,
    MPROC__KIND_JOINABLE_QUEUE = 12,
    MPROC__KIND_SIMPLE_QUEUE = 13,
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

/*
 * Semaphore body (both kinds).  `word` is glibc's new_sem layout:
 *   low 32 bits   the count, 0..max; the futex word (little-endian: the
 *                 first 4 bytes), which sleepers wait on while it is 0;
 *   high 32 bits  how many waiters announced they may sleep.  A waiter adds
 *                 1 before its final check of the count and removes itself
 *                 in the same CAS that takes a permit (or when it gives up).
 *                 A dead waiter leaves it too high: spare wakes, never a
 *                 missed one.
 * Both halves change in one 64-bit atomic, so a release sees the count it
 * raised and the waiters to wake together (no Dekker fence needed).
 * max — the bound, written once: the initial value (bounded) or
 *   MPROC_SEMAPHORE_VALUE_MAX.
 */
struct mproc__semaphore_body {
    alignas(8) _Atomic uint64_t word;
    uint32_t max;
    uint8_t reserved[64 - 12];
};
_Static_assert(sizeof(struct mproc__semaphore_body) == 64, "semaphore body frozen");

/*
 * Event body.  word = gen << 2 | WAITERS << 1 | SET:
 *   SET      the flag;
 *   WAITERS  someone may sleep in FUTEX_WAIT on `word`: set() must wake;
 *   gen      30 bits, +1 on every set() that raised the flag.  A waiter that
 *            saw generation g returns when SET is seen or gen != g, so
 *            set(); clear(); still releases everyone who waited before.
 */
struct mproc__event_body {
    _Atomic uint32_t word;
    uint8_t reserved[60];
};
_Static_assert(sizeof(struct mproc__event_body) == 64, "event body frozen");

/* Condition: what its lock is. */
enum mproc__condition_lock {
    MPROC__COND_OWN_RLOCK = 0, /* own_lock below */
    MPROC__COND_LOCK = 1,      /* an mproc_lock, whose segment uuid is lock_uuid */
    MPROC__COND_RLOCK = 2,     /* an mproc_rlock, likewise */
};

/*
 * Condition body, followed by `max_waiters` waiter records (the extra part).
 * Everything but the records' `state` words is read and written only by a
 * thread holding the condition's lock.
 * hiwater — records [hiwater, max) are all FREE; raised after a record is
 *   filled, lowered after one is freed, so a holder dying in between leaves
 *   it too high (longer scans), never too low.
 * ticket — the next waiter's ticket: notify wakes the smallest tickets first.
 */
struct mproc__condition_body {
    uint32_t lock_kind;   /* enum mproc__condition_lock, written once */
    uint32_t max_waiters; /* == records in the extra part, written once */
    uint64_t lock_uuid;   /* the given lock's segment uuid, 0 for own_lock */
    uint32_t hiwater;
    uint32_t reserved0;
    uint64_t ticket;
    uint8_t reserved1[32];
    struct mproc__rlock_body own_lock;
};
_Static_assert(offsetof(struct mproc__condition_body, own_lock) == 64, "condition body frozen");
_Static_assert(sizeof(struct mproc__condition_body) == 128, "condition body frozen");

/*
 * A condition waiter record.  state (the waiter's futex word):
 *   FREE      unused;                         token unlocked
 *   WAITING   filled, waiter may be spinning;  token held by the waiter
 *   SLEEPING  waiter is (about to be) in FUTEX_WAIT: notify must wake it
 *   NOTIFIED  chosen by a notify; the waiter frees the record itself
 * FREE <-> WAITING and back to FREE happen under the lock; WAITING ->
 * SLEEPING is the waiter's CAS without it; WAITING/SLEEPING -> NOTIFIED is
 * an exchange by a lock holder.  A record whose token a trylock can take
 * (EOWNERDEAD, or free while the record is not FREE) belongs to a dead
 * waiter: the lock holder frees it.
 */
enum mproc__waiter_state {
    MPROC__WAITER_FREE = 0,
    MPROC__WAITER_WAITING = 1,
    MPROC__WAITER_SLEEPING = 2,
    MPROC__WAITER_NOTIFIED = 3,
};
struct mproc__condition_waiter {
    pthread_mutex_t token;
    _Atomic uint32_t state;
    uint32_t reserved0;
    uint64_t ticket;
    uint8_t reserved1[64 - 56];
};
_Static_assert(offsetof(struct mproc__condition_waiter, state) == 40, "waiter frozen");
_Static_assert(sizeof(struct mproc__condition_waiter) == 64, "waiter frozen");

/* Barrier states, Python's: filling 0, draining 1, resetting -1, broken -2. */
enum mproc__barrier_state {
    MPROC__BARRIER_FILLING = 0,
    MPROC__BARRIER_DRAINING = 1,
    MPROC__BARRIER_RESETTING = 2,
    MPROC__BARRIER_BROKEN = 3,
};

/*
 * Barrier body, followed by 2 * `parties` party slots (the extra part):
 * arrival slots [0, parties), then entry tokens [parties, 2 * parties).
 * mutex — internal robust lock over everything below but `seq`'s futex use.
 *   EOWNERDEAD on it breaks the barrier and recounts the slots.
 * count — occupied arrival slots: arrivals while FILLING, parties still to
 *   leave while DRAINING or RESETTING.  While FILLING the occupied arrival
 *   slots are exactly [0, count), so a new arrival's index is `count`.
 * Entry tokens: a party holds one for its whole wait() call, taken by
 *   trylock without the mutex (their `occupied` is unused).  A dead holder
 *   shows FUTEX_OWNER_DIED: while FILLING the round breaks; while the
 *   previous round DRAINS or RESETS that round stands and the next one is
 *   `doomed`: it opens BROKEN instead of FILLING.
 * seq — futex word, +1 (release) on every state change; waiters sleep on it
 *   in slices of MPROC_BARRIER_LIVENESS_MS and check their peers' tokens.
 */
struct mproc__barrier_body {
    pthread_mutex_t mutex;
    uint32_t parties; /* written once; 2 * parties == slots in the extra part */
    uint32_t state;   /* enum mproc__barrier_state */
    uint32_t count;
    _Atomic uint32_t seq;
    uint32_t doomed;  /* a pending party died: the next round cannot complete */
    uint8_t reserved[64 - 60];
};
_Static_assert(offsetof(struct mproc__barrier_body, parties) == 40, "barrier body frozen");
_Static_assert(sizeof(struct mproc__barrier_body) == 64, "barrier body frozen");

/* A party slot: `token` is held by the party from arrival until it leaves;
 * `occupied` (under the barrier mutex) says it should be. */
struct mproc__barrier_slot {
    pthread_mutex_t token;
    uint32_t occupied;
    uint8_t reserved[64 - 44];
};
_Static_assert(sizeof(struct mproc__barrier_slot) == 64, "barrier slot frozen");

/* Value / Array: what synchronises them. */
enum mproc__array_lock {
    MPROC__ARRAY_OWN_RLOCK = 0, /* own_lock below */
    MPROC__ARRAY_LOCK = 1,      /* an mproc_lock, whose segment uuid is lock_uuid */
    MPROC__ARRAY_RLOCK = 2,     /* an mproc_rlock, likewise */
    MPROC__ARRAY_RAW = 3,       /* none */
};

/*
 * Value and Array body (one element for Value), followed by the elements
 * (the extra part, length * elem_size bytes, 64-byte aligned).  All fields
 * but own_lock are written once, at creation; the handle copies and checks
 * them (type known, elem_size matching the type, length * elem_size == extra)
 * and takes bounds only from its copy.
 */
struct mproc__array_body {
    uint32_t type;       /* enum mproc_type */
    uint32_t elem_size;  /* bytes per element */
    uint64_t length;     /* elements */
    uint32_t lock_kind;  /* enum mproc__array_lock */
    uint32_t reserved0;
    uint64_t lock_uuid;  /* the given lock's segment uuid, 0 otherwise */
    uint8_t reserved1[32];
    struct mproc__rlock_body own_lock;
};
_Static_assert(offsetof(struct mproc__array_body, own_lock) == 64, "array body frozen");
_Static_assert(sizeof(struct mproc__array_body) == 128, "array body frozen");

/*
 * Queue body (all three flavours), followed by `max_consumers` consumer
 * records (joinable only) and then the ring of `capacity` bytes.  Producer
 * and consumer fields sit 128 bytes apart (adjacent-line prefetch).
 *
 * tail = put_seq << 32 | tpos, head = get_seq << 32 | hpos.  tpos / hpos are
 * byte positions modulo 2^32 (capacity, a power of two <= 2^30, divides
 * 2^32; the offset in the ring is pos & (capacity - 1)); put_seq / get_seq
 * count messages modulo 2^32, so qsize = put_seq - get_seq.  Each is written
 * only by the holder of its side's lock, and only by one release store: the
 * commit.  Bytes in [hpos, tpos) are committed records; bytes outside it
 * belong to nobody until a commit says otherwise, which is what makes a
 * SIGKILL harmless at any instruction.
 *
 * Records: struct mproc__queue_record, then the payload padded to 8 bytes.
 * A record never wraps: a producer that lacks contiguous room at the end
 * writes a PAD record filling it and starts again at offset 0 (one commit
 * covers both).
 *
 * Eventcounts: not_empty / not_full are futex words bumped by the other side
 * after a commit when *_waiters says someone may sleep.  Only the holder of a
 * side's lock ever sleeps on its eventcount (the others sleep in the robust
 * mutex), so one wake is enough.  Sleeps are sliced (50 ms): a waker killed
 * between its commit and its wake costs one slice.
 *
 * put_waiting / get_waiting — 1 while the side's lock holder waits for the
 *   other side (room / a message).  A non-blocking call that finds the lock
 *   busy reads it: waiting means the queue is full / empty now, so it answers
 *   at once; otherwise the holder is only copying, and the call waits for it
 *   (queue.c side_lock) rather than report a state the queue is not in.  A
 *   holder killed while waiting leaves it 1 until the next holder, which got
 *   EOWNERDEAD, clears it.
 * state — SHUTDOWN bit, set once.
 * committed — ring bytes [0, committed) reserved in the file (named queues
 *   reserve lazily, in steps, before writing; only the put lock holder
 *   changes it, and a death between reserving and storing it only makes the
 *   next producer reserve again).
 * get_holder — joinable: record index + 1 of the process whose thread holds
 *   the get lock (0: none known); read on EOWNERDEAD to settle its pending get.
 * registry — joinable: robust mutex over consumer record claims and reaping.
 * fold — joinable: abandoned << 32 | gen << 16 | record: `abandoned` counts
 *   the tasks dead consumers took and never finished (mod 2^32); the low half
 *   names the last record folded into it (record index + 1 and its claim
 *   generation), so a reaper killed between the fold and freeing the record
 *   is recognised by the next one and nothing is counted twice.
 * forgiven — joinable: abandoned tasks the user acknowledged (mod 2^32).
 * joined — joinable: futex bumped by task_done when join() waiters may be
 *   done; join_waiters says someone may sleep on it.
 */
#define MPROC__QUEUE_SHUTDOWN 1u
struct mproc__queue_body {
    uint64_t capacity;       /* ring bytes, written once */
    uint64_t maxsize;        /* 0 = unbounded, written once */
    uint32_t max_consumers;  /* records, written once (0 unless joinable) */
    uint32_t flavour;        /* enum mproc__kind of the queue, written once */
    uint64_t ring_offset;    /* offset of the ring from the body, written once */
    _Atomic uint32_t state;
    uint8_t reserved0[92];
    /* producers: 128 */
    pthread_mutex_t put_lock;
    alignas(8) _Atomic uint64_t tail;
    uint64_t cached_head;    /* put lock holder's last view of head */
    uint64_t committed;
    _Atomic uint32_t put_waiting; /* the put lock holder waits for room */
    uint8_t reserved1[128 - 40 - 28];
    /* consumers: 256 */
    pthread_mutex_t get_lock;
    alignas(8) _Atomic uint64_t head;
    uint64_t cached_tail;    /* get lock holder's last view of tail */
    _Atomic uint32_t get_holder;
    _Atomic uint32_t get_waiting; /* the get lock holder waits for a message */
    uint8_t reserved2[128 - 40 - 24];
    /* eventcounts: 384 */
    _Atomic uint32_t not_empty;
    _Atomic uint32_t not_empty_waiters;
    uint8_t reserved3[120];
    _Atomic uint32_t not_full; /* 512 */
    _Atomic uint32_t not_full_waiters;
    uint8_t reserved4[120];
    /* joinable: 640 */
    pthread_mutex_t registry;
    alignas(8) _Atomic uint64_t fold;
    _Atomic uint64_t forgiven;
    _Atomic uint32_t joined;
    _Atomic uint32_t join_waiters;
    uint8_t reserved5[128 - 40 - 24];
};
_Static_assert(offsetof(struct mproc__queue_body, put_lock) == 128, "queue body frozen");
_Static_assert(offsetof(struct mproc__queue_body, get_lock) == 256, "queue body frozen");
_Static_assert(offsetof(struct mproc__queue_body, not_empty) == 384, "queue body frozen");
_Static_assert(offsetof(struct mproc__queue_body, not_full) == 512, "queue body frozen");
_Static_assert(offsetof(struct mproc__queue_body, registry) == 640, "queue body frozen");
_Static_assert(sizeof(struct mproc__queue_body) == 768, "queue body frozen");

/*
 * JoinableQueue consumer record: one per consumer process.
 * owner — gen << 32 | pid of the owning process, pid 0 = free; gen counts
 *   claims of this record (kept when freed).  owner_start — the owner's start
 *   time in clock ticks since boot (/proc/<pid>/stat field 22), which tells
 *   it from a later process with its PID.  Claimed and freed under
 *   `registry`; while claimed, the owner's threads use it without the lock.
 * taken — hi 32 bits: items this process got (mod 2^32); lo 32 bits: a
 *   pending get, 0 or PENDING | (get_seq & 0x7fffffff), written by the get
 *   lock holder before its commit; after the commit one store makes it
 *   (taken + 1) << 32.  So a death between the two stores is settled by
 *   comparing the pending seq with head's get_seq.
 * done — items it finished (task_done), mod 2^32; outstanding = taken - done.
 */
#define MPROC__QUEUE_PENDING 0x80000000u
struct mproc__queue_consumer {
    _Atomic uint64_t owner;
    uint64_t owner_start;
    _Atomic uint64_t taken;
    _Atomic uint64_t done;
};
_Static_assert(sizeof(struct mproc__queue_consumer) == 32, "consumer record frozen");

/* A record's header in the ring. */
#define MPROC__QUEUE_DATA 0x41544144u /* "DATA" */
#define MPROC__QUEUE_PAD 0x20444150u  /* "PAD " */
struct mproc__queue_record {
    uint32_t len;  /* payload bytes (DATA), or bytes to the ring's end (PAD) */
    uint32_t kind; /* MPROC__QUEUE_DATA or MPROC__QUEUE_PAD */
};
_Static_assert(sizeof(struct mproc__queue_record) == 8, "record header frozen");

#endif
