/* SPDX-License-Identifier: MIT */
/*
 * mproc_value and mproc_array on shm/layout.h's array body: a 128-byte body
 * (type, element size, length, lock choice, an embedded RLock) followed by
 * the elements, which therefore start 64-byte aligned (header 64 + body 128).
 *
 * A Value is an Array of one element with a kind of its own, so that opening
 * one as the other is MPROC_E_KIND.  Both handles are the same private
 * struct; every bound (length, element size) comes from it, copied once from
 * the validated body, never re-read from shared memory.
 *
 * Locking: the own RLock (embedded like Condition's), a given Lock or RLock
 * (recorded by its segment's uuid), or none (raw).  get/set/read/write take
 * the lock without a bound for the copy alone; a thread that already holds a
 * given Lock copies under that hold (a second acquire would be EDEADLK).
 *
 * Zeroing: every object is its own fresh segment (a new anonymous mapping or
 * a new file), whose pages the kernel zeroes; no memory is ever reused
 * (Python's bpo-11675 was a RawArray built on a recycled heap).  Without an
 * initial value nothing is written, so a large array costs no page touches.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "shm/segment.h"
#include "sync/handles.h"
#include "sync/robust_mutex.h"

/* The handle of both kinds.  struct mproc_value is never defined: an
 * mproc_value * is an mproc_array * of length 1, converted at the API.
 * Read-only after creation, so any number of threads may share a handle;
 * the bounds are the request's, checked equal to the segment's. */
struct mproc_array {
    unsigned char *data;       /* first: the elements */
    size_t length;             /* elements */
    size_t elem_size;          /* bytes per element */
    int type;                  /* enum mproc_type */
    uint32_t lock_kind;        /* enum mproc__array_lock */
    struct mproc_lock *lock;   /* MPROC__ARRAY_LOCK: given, not ours to close */
    struct mproc_rlock *rlock; /* OWN_RLOCK: &own; ARRAY_RLOCK: given */
    struct mproc_rlock own;    /* embedded: seg.base == NULL, never closed */
    mproc__segment seg;
};

static mproc_array *of(const mproc_value *value) {
    return (mproc_array *)value;
}

size_t mproc_type_size(int type) {
    switch (type) {
    case MPROC_TYPE_CHAR: return sizeof(char);
    case MPROC_TYPE_SCHAR: return sizeof(signed char);
    case MPROC_TYPE_UCHAR: return sizeof(unsigned char);
    case MPROC_TYPE_SHORT: return sizeof(short);
    case MPROC_TYPE_USHORT: return sizeof(unsigned short);
    case MPROC_TYPE_INT: return sizeof(int);
    case MPROC_TYPE_UINT: return sizeof(unsigned int);
    case MPROC_TYPE_LONG: return sizeof(long);
    case MPROC_TYPE_ULONG: return sizeof(unsigned long);
    case MPROC_TYPE_LONGLONG: return sizeof(long long);
    case MPROC_TYPE_ULONGLONG: return sizeof(unsigned long long);
    case MPROC_TYPE_FLOAT: return sizeof(float);
    case MPROC_TYPE_DOUBLE: return sizeof(double);
    default: return 0;
    }
}

/* The element size of `type`, or 0 when the pair is invalid. */
static size_t elem_size_of(int64_t type, uint64_t bytes_elem_size) {
    if (type == MPROC_TYPE_BYTES)
        return bytes_elem_size >= 1 && bytes_elem_size <= MPROC_ELEM_SIZE_MAX
                   ? (size_t)bytes_elem_size
                   : 0;
    if (type < 0 || type > 0x7f || bytes_elem_size != 0)
        return 0;
    return mproc_type_size((int)type);
}

/* ---- the segment ---- */

/* What a creator asks for; also what an attacher must find. */
struct array_init {
    struct mproc__array_body want; /* type .. lock_uuid; own_lock unused */
    const void *initial;           /* length * elem_size bytes, or NULL */
};

static int array_init(void *body, size_t extra, const void *arg) {
    const struct array_init *init = arg;
    struct mproc__array_body *abody = body;
    abody->type = init->want.type;
    abody->elem_size = init->want.elem_size;
    abody->length = init->want.length;
    abody->lock_kind = init->want.lock_kind;
    abody->lock_uuid = init->want.lock_uuid;
    if (init->initial != NULL)
        memcpy(abody + 1, init->initial, extra); /* the pages are fresh zeros otherwise */
    return init->want.lock_kind == MPROC__ARRAY_OWN_RLOCK
               ? mproc__rlock_body_init(&abody->own_lock)
               : 0;
}

/* Validates a body found by name: everything a handle copies is in range
 * and agrees with the segment's size. */
static int array_check(const void *body, size_t extra) {
    const struct mproc__array_body *abody = body;
    size_t elem_size = elem_size_of(abody->type, abody->type == MPROC_TYPE_BYTES
                                                     ? abody->elem_size
                                                     : 0);
    if (elem_size == 0 || elem_size != abody->elem_size || abody->length == 0 ||
        abody->length > MPROC_ARRAY_BYTES_MAX / elem_size ||
        abody->length * elem_size != extra || abody->lock_kind > MPROC__ARRAY_RAW)
        return MPROC_E_CORRUPT;
    bool given = abody->lock_kind == MPROC__ARRAY_LOCK || abody->lock_kind == MPROC__ARRAY_RLOCK;
    if (given != (abody->lock_uuid != 0))
        return MPROC_E_CORRUPT;
    if (abody->lock_kind == MPROC__ARRAY_OWN_RLOCK)
        return mproc__rmutex_check(&abody->own_lock.mutex);
    return 0;
}

static int value_check(const void *body, size_t extra) {
    const struct mproc__array_body *abody = body;
    return abody->length == 1 ? array_check(body, extra) : MPROC_E_CORRUPT;
}

static const mproc__kind_spec array_kind = {
    .kind = MPROC__KIND_ARRAY,
    .body_size = sizeof(struct mproc__array_body),
    .init = array_init,
    .check = array_check,
};

static const mproc__kind_spec value_kind = {
    .kind = MPROC__KIND_VALUE,
    .body_size = sizeof(struct mproc__array_body),
    .init = array_init,
    .check = value_check,
};

/* Checks the arguments and fills `init`.  0 or EINVAL. */
static int prepare(struct array_init *init, int type, size_t length, const void *initial,
                   mproc_lock *lock, mproc_rlock *rlock, const mproc_value_options *opts) {
    unsigned flags = opts != NULL ? opts->flags : 0;
    unsigned bytes_elem_size = opts != NULL ? opts->elem_size : 0;
    if (!MPROC__OPTIONS_OK(opts) || (flags & ~MPROC_RAW) != 0 || (lock != NULL && rlock != NULL) ||
        ((flags & MPROC_RAW) && (lock != NULL || rlock != NULL)))
        return EINVAL;
    size_t elem_size = elem_size_of(type, bytes_elem_size);
    if (elem_size == 0 || length == 0 || length > MPROC_ARRAY_BYTES_MAX / elem_size)
        return EINVAL;
    memset(init, 0, sizeof *init);
    init->want.type = (uint32_t)type;
    init->want.elem_size = (uint32_t)elem_size;
    init->want.length = length;
    init->want.lock_kind = flags & MPROC_RAW ? MPROC__ARRAY_RAW
                           : lock != NULL    ? MPROC__ARRAY_LOCK
                           : rlock != NULL   ? MPROC__ARRAY_RLOCK
                                             : MPROC__ARRAY_OWN_RLOCK;
    init->want.lock_uuid = lock != NULL ? lock->seg.uuid : rlock != NULL ? rlock->seg.uuid : 0;
    init->initial = initial;
    return 0;
}

/* Creates (name NULL) or opens the segment and builds the handle. */
static int make(mproc_array **out, const mproc__kind_spec *spec, const char *name, int flags,
                int type, size_t length, const void *initial, mproc_lock *lock,
                mproc_rlock *rlock, const mproc_value_options *opts) {
    struct array_init init;
    if (out == NULL)
        return EINVAL;
    int rc = prepare(&init, type, length, initial, lock, rlock, opts);
    if (rc != 0)
        return rc;
    mproc_array *array = calloc(1, sizeof *array);
    if (array == NULL)
        return ENOMEM;
    size_t extra = length * init.want.elem_size;
    unsigned mode = opts != NULL ? opts->mode : 0;
    rc = name == NULL ? mproc__segment_create(&array->seg, spec, extra, &init)
                      : mproc__segment_open(&array->seg, spec, name, flags, mode, extra, &init);
    if (rc != 0) {
        free(array);
        return rc;
    }
    /* An attached object must be the one asked for.  The handle's bounds are
     * the request's, which must also match the segment's own size. */
    struct mproc__array_body *body = mproc__segment_body(&array->seg);
    if (body->type != init.want.type || body->elem_size != init.want.elem_size ||
        body->length != init.want.length || body->lock_kind != init.want.lock_kind ||
        body->lock_uuid != init.want.lock_uuid ||
        array->seg.size != MPROC__HEADER_SIZE + sizeof *body + extra) {
        mproc__segment_close(&array->seg);
        free(array);
        return EINVAL;
    }
    array->data = (unsigned char *)(body + 1);
    array->length = length;
    array->elem_size = init.want.elem_size;
    array->type = type;
    array->lock_kind = init.want.lock_kind;
    array->lock = lock;
    array->own.body = &body->own_lock;
    array->rlock = rlock != NULL ? rlock : &array->own;
    *out = array;
    return 0;
}

/* ---- locking ---- */

static int acquire(mproc_array *array, double timeout) {
    switch (array->lock_kind) {
    case MPROC__ARRAY_LOCK: return mproc_lock_acquire(array->lock, timeout);
    case MPROC__ARRAY_RAW: return ENOTSUP;
    default: return mproc_rlock_acquire(array->rlock, timeout);
    }
}

static int release(mproc_array *array) {
    switch (array->lock_kind) {
    case MPROC__ARRAY_LOCK: return mproc_lock_release(array->lock);
    case MPROC__ARRAY_RAW: return ENOTSUP;
    default: return mproc_rlock_release(array->rlock);
    }
}

/* Copies `len` bytes at `offset` (already bounds-checked) out of or into the
 * elements, holding the lock for the copy.  0, EOWNERDEAD (copied), or the
 * acquire's failure (nothing copied). */
static int copy(mproc_array *array, size_t offset, size_t len, void *out, const void *in) {
    bool locked = false;
    int rc = 0;
    if (array->lock_kind == MPROC__ARRAY_LOCK && mproc__lock_held(array->lock)) {
        /* already ours: the copy runs under the caller's hold */
    } else if (array->lock_kind != MPROC__ARRAY_RAW) {
        rc = acquire(array, MPROC_FOREVER);
        if (rc != 0 && rc != EOWNERDEAD)
            return rc;
        locked = true;
    }
    if (out != NULL)
        memcpy(out, array->data + offset, len);
    else
        memcpy(array->data + offset, in, len);
    if (locked)
        release(array);
    return rc;
}

/* ---- Array ---- */

int mproc_array_create(mproc_array **out, int type, size_t length, const void *initial,
                       mproc_lock *lock, mproc_rlock *rlock, const mproc_value_options *opts) {
    return make(out, &array_kind, NULL, 0, type, length, initial, lock, rlock, opts);
}

int mproc_array_open(mproc_array **out, const char *name, int flags, int type, size_t length,
                     const void *initial, mproc_lock *lock, mproc_rlock *rlock,
                     const mproc_value_options *opts) {
    if (name == NULL)
        return EINVAL;
    return make(out, &array_kind, name, flags, type, length, initial, lock, rlock, opts);
}

int mproc_array_get(mproc_array *array, size_t index, void *out) {
    if (array == NULL || out == NULL)
        return EINVAL;
    if (index >= array->length)
        return ERANGE;
    return copy(array, index * array->elem_size, array->elem_size, out, NULL);
}

int mproc_array_set(mproc_array *array, size_t index, const void *in) {
    if (array == NULL || in == NULL)
        return EINVAL;
    if (index >= array->length)
        return ERANGE;
    return copy(array, index * array->elem_size, array->elem_size, NULL, in);
}

/* 0 when [start, start + count) lies inside the array; no overflow. */
static int slice_ok(const mproc_array *array, size_t start, size_t count) {
    return start <= array->length && count <= array->length - start ? 0 : ERANGE;
}

int mproc_array_read(mproc_array *array, size_t start, size_t count, void *out) {
    if (array == NULL || (out == NULL && count != 0))
        return EINVAL;
    int rc = slice_ok(array, start, count);
    if (rc != 0 || count == 0)
        return rc;
    return copy(array, start * array->elem_size, count * array->elem_size, out, NULL);
}

int mproc_array_write(mproc_array *array, size_t start, size_t count, const void *in) {
    if (array == NULL || (in == NULL && count != 0))
        return EINVAL;
    int rc = slice_ok(array, start, count);
    if (rc != 0 || count == 0)
        return rc;
    return copy(array, start * array->elem_size, count * array->elem_size, NULL, in);
}

void *mproc_array_data(const mproc_array *array) {
    return array != NULL ? array->data : NULL;
}

size_t mproc_array_len(const mproc_array *array) {
    return array != NULL ? array->length : 0;
}

size_t mproc_array_elem_size(const mproc_array *array) {
    return array != NULL ? array->elem_size : 0;
}

int mproc_array_type(const mproc_array *array) {
    return array != NULL ? array->type : -1;
}

int mproc_array_acquire(mproc_array *array, double timeout) {
    return array != NULL ? acquire(array, timeout) : EINVAL;
}

int mproc_array_release(mproc_array *array) {
    return array != NULL ? release(array) : EINVAL;
}

int mproc_array_close(mproc_array *array) {
    if (array == NULL)
        return EINVAL;
    mproc__segment_close(&array->seg);
    free(array);
    return 0;
}

/* ---- Value: an Array of one, under its own kind ---- */

/* name NULL: anonymous (the create path). */
static int value_make(mproc_value **out, const char *name, int flags, int type,
                      const void *initial, mproc_lock *lock, mproc_rlock *rlock,
                      const mproc_value_options *opts) {
    mproc_array *array = NULL;
    if (out == NULL)
        return EINVAL;
    int rc = make(&array, &value_kind, name, flags, type, 1, initial, lock, rlock, opts);
    if (rc == 0)
        *out = (mproc_value *)array;
    return rc;
}

int mproc_value_create(mproc_value **out, int type, const void *initial, mproc_lock *lock,
                       mproc_rlock *rlock, const mproc_value_options *opts) {
    return value_make(out, NULL, 0, type, initial, lock, rlock, opts);
}

int mproc_value_open(mproc_value **out, const char *name, int flags, int type,
                     const void *initial, mproc_lock *lock, mproc_rlock *rlock,
                     const mproc_value_options *opts) {
    if (name == NULL)
        return EINVAL;
    return value_make(out, name, flags, type, initial, lock, rlock, opts);
}

int mproc_value_get(mproc_value *value, void *out) {
    return mproc_array_get(of(value), 0, out);
}

int mproc_value_set(mproc_value *value, const void *in) {
    return mproc_array_set(of(value), 0, in);
}

void *mproc_value_ptr(const mproc_value *value) {
    return mproc_array_data(of(value));
}

size_t mproc_value_size(const mproc_value *value) {
    return mproc_array_elem_size(of(value));
}

int mproc_value_type(const mproc_value *value) {
    return mproc_array_type(of(value));
}

int mproc_value_acquire(mproc_value *value, double timeout) {
    return mproc_array_acquire(of(value), timeout);
}

int mproc_value_release(mproc_value *value) {
    return mproc_array_release(of(value));
}

int mproc_value_close(mproc_value *value) {
    return mproc_array_close(of(value));
}
