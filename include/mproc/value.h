/* SPDX-License-Identifier: MIT */
/*
 * mproc_value and mproc_array: Python's Value / Array / RawValue / RawArray.
 *
 * Typed memory in shared memory: one element (Value) or a fixed-length run of
 * elements (Array), zeroed or initialised at creation, shared with forked
 * children (anonymous) or with any process that opens the same name.
 *
 * Element types are Python's typecodes (below), or MPROC_TYPE_BYTES with any
 * fixed element size (a struct, say) given in the options.
 *
 * Synchronisation, chosen at creation (as Python's lock= argument):
 *   lock == NULL && rlock == NULL   its own RLock (Python's default, lock=True);
 *   lock or rlock given             that lock (lock=<Lock/RLock>): get/set take
 *                                   it, and several objects may share one;
 *   opts->flags & MPROC_RAW         no lock at all (RawValue/RawArray, lock=False):
 *                                   acquire/release return ENOTSUP.
 * get/set and read/write hold the lock for the copy (unless raw; a thread
 * that already holds a given Lock copies under its hold).  As in Python, a
 * read-modify-write such as `v += 1` is not atomic by itself: hold the lock
 * across it (mproc_value_acquire/release, or MPROC_WITH(value)).
 *
 * Direct access: mproc_value_ptr() / mproc_array_data() give the storage
 * itself (aligned for the type; 64-byte aligned), for code that holds the lock
 * or needs no lock.  Bounds come from the handle, never from shared memory.
 *
 * A named object records its type, element size, length and lock choice;
 * opening it with any of them different is EINVAL (a given lock is recorded by
 * its identity, as for Condition).  The own RLock is robust: a holder that
 * dies makes the next acquire return EOWNERDEAD, holding the lock.
 */
#ifndef MPROC_VALUE_H
#define MPROC_VALUE_H

#include <stddef.h>

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>
#include <mproc/lock.h>
#include <mproc/rlock.h>

MPROC_EXTERN_C_BEGIN

/* Element types: Python's typecodes, and any fixed size. */
enum mproc_type {
    MPROC_TYPE_BYTES = 0,       /* opts->elem_size bytes, 1..MPROC_ELEM_SIZE_MAX */
    MPROC_TYPE_CHAR = 'c',      /* char */
    MPROC_TYPE_SCHAR = 'b',     /* signed char */
    MPROC_TYPE_UCHAR = 'B',     /* unsigned char */
    MPROC_TYPE_SHORT = 'h',     /* short */
    MPROC_TYPE_USHORT = 'H',    /* unsigned short */
    MPROC_TYPE_INT = 'i',       /* int */
    MPROC_TYPE_UINT = 'I',      /* unsigned int */
    MPROC_TYPE_LONG = 'l',      /* long */
    MPROC_TYPE_ULONG = 'L',     /* unsigned long */
    MPROC_TYPE_LONGLONG = 'q',  /* long long */
    MPROC_TYPE_ULONGLONG = 'Q', /* unsigned long long */
    MPROC_TYPE_FLOAT = 'f',     /* float */
    MPROC_TYPE_DOUBLE = 'd',    /* double */
};

#define MPROC_ELEM_SIZE_MAX 65536u
/* Most bytes an Array may hold (elements * element size). */
#define MPROC_ARRAY_BYTES_MAX ((size_t)1 << 40)

/* Option flags. */
#define MPROC_RAW 1u /* no lock: RawValue / RawArray */

typedef struct mproc_value_options {
    unsigned mode;         /* named objects: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned flags;        /* MPROC_RAW or 0 */
    unsigned elem_size;    /* MPROC_TYPE_BYTES: the element size; other types: 0 */
    unsigned reserved[5];  /* must be zero */
} mproc_value_options;

typedef struct mproc_value mproc_value;
typedef struct mproc_array mproc_array;

/* Size in bytes of one element of `type` (0 for MPROC_TYPE_BYTES or an
 * unknown code). */
MPROC_API size_t mproc_type_size(int type);

/* ---- Value: one element ---- */

/*
 * Creates an anonymous Value of `type`, set from `initial` (one element, or
 * NULL for zero).  At most one of lock / rlock; none with MPROC_RAW.
 * Returns 0, EINVAL (unknown type, bad element size, lock and rlock both
 * given, a lock with MPROC_RAW, bad options), ENOMEM.
 */
MPROC_API int mproc_value_create(mproc_value **out, int type, const void *initial,
                                 mproc_lock *lock, mproc_rlock *rlock,
                                 const mproc_value_options *opts);

/* Opens the named Value `name`; `initial` is used only when it is created.
 * Codes as mproc_value_create() and mproc_lock_open(); EINVAL when the
 * existing object has another type, element size or lock. */
MPROC_API int mproc_value_open(mproc_value **out, const char *name, int flags, int type,
                               const void *initial, mproc_lock *lock, mproc_rlock *rlock,
                               const mproc_value_options *opts);

/* Copies the element out / in, holding the lock (unless raw).
 * Returns 0, EOWNERDEAD (copied; the lock's previous owner died), EINVAL. */
MPROC_API int mproc_value_get(mproc_value *value, void *out);
MPROC_API int mproc_value_set(mproc_value *value, const void *in);

/* The element itself, and its size; NULL / 0 for a NULL handle. */
MPROC_API void *mproc_value_ptr(const mproc_value *value);
MPROC_API size_t mproc_value_size(const mproc_value *value);
MPROC_API int mproc_value_type(const mproc_value *value);

/* Acquires / releases the value's lock (its own, or the given one).  Codes as
 * mproc_rlock_acquire / mproc_lock_acquire; ENOTSUP for a raw value. */
MPROC_API int mproc_value_acquire(mproc_value *value, double timeout);
MPROC_API int mproc_value_release(mproc_value *value);

/* Drops this handle (not a lock it was given).  Returns 0 or EINVAL. */
MPROC_API int mproc_value_close(mproc_value *value);

/* ---- Array: `length` elements ---- */

/*
 * Creates an anonymous Array of `length` elements (1 or more), set from
 * `initial` (length elements, or NULL for zeros).  Lock rules as Value.
 * Returns 0, EINVAL (also length 0, or length * size over
 * MPROC_ARRAY_BYTES_MAX), ENOMEM.
 */
MPROC_API int mproc_array_create(mproc_array **out, int type, size_t length, const void *initial,
                                 mproc_lock *lock, mproc_rlock *rlock,
                                 const mproc_value_options *opts);

/* Opens the named Array `name`; EINVAL when the existing one differs in type,
 * element size, length or lock. */
MPROC_API int mproc_array_open(mproc_array **out, const char *name, int flags, int type,
                               size_t length, const void *initial, mproc_lock *lock,
                               mproc_rlock *rlock, const mproc_value_options *opts);

/* Element `index` out / in, under the lock.  Returns 0, EOWNERDEAD, ERANGE
 * (index >= length: nothing touched), EINVAL. */
MPROC_API int mproc_array_get(mproc_array *array, size_t index, void *out);
MPROC_API int mproc_array_set(mproc_array *array, size_t index, const void *in);

/* Copies elements [start, start + count) out / in, under the lock, as one
 * step.  Returns 0, EOWNERDEAD, ERANGE (past the end, overflow included:
 * nothing touched), EINVAL.  count 0 with start <= length is a no-op. */
MPROC_API int mproc_array_read(mproc_array *array, size_t start, size_t count, void *out);
MPROC_API int mproc_array_write(mproc_array *array, size_t start, size_t count, const void *in);

/* The elements themselves, their count, one element's size, the type. */
MPROC_API void *mproc_array_data(const mproc_array *array);
MPROC_API size_t mproc_array_len(const mproc_array *array);
MPROC_API size_t mproc_array_elem_size(const mproc_array *array);
MPROC_API int mproc_array_type(const mproc_array *array);

MPROC_API int mproc_array_acquire(mproc_array *array, double timeout);
MPROC_API int mproc_array_release(mproc_array *array);
MPROC_API int mproc_array_close(mproc_array *array);

MPROC_EXTERN_C_END

#endif
