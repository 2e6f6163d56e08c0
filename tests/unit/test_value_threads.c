/* SPDX-License-Identifier: MIT */
/*
 * Value and Array in one process (threads), anonymous and named: every
 * typecode's size and round trip, zeroed creation, exact counters under each
 * lock flavour (own RLock, given Lock, given RLock; one Lock shared by a
 * Value and an Array), raw objects without a lock, MPROC_WITH on a value,
 * Array bounds (ERANGE touches nothing, overflow included), slices, element
 * structs, argument checks, named-object mismatches, and a thread that exits
 * holding the lock (EOWNERDEAD with the data, then normal again).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no acquire in these tests may take longer */
#define THREADS 4
#define ITERATIONS 20000

enum flavour { OWN_RLOCK, GIVEN_LOCK, GIVEN_RLOCK, RAW };

/* The lock objects a flavour needs, and the options it passes. */
typedef struct locks {
    enum flavour flavour;
    mproc_lock *lock;
    mproc_rlock *rlock;
    mproc_value_options opts;
} locks;

static void locks_make(locks *l, enum flavour flavour) {
    memset(l, 0, sizeof *l);
    l->flavour = flavour;
    if (flavour == GIVEN_LOCK)
        cr_assert_eq(mproc_lock_create(&l->lock, NULL), 0);
    if (flavour == GIVEN_RLOCK)
        cr_assert_eq(mproc_rlock_create(&l->rlock, NULL), 0);
    if (flavour == RAW)
        l->opts.flags = MPROC_RAW;
}

static void locks_free(locks *l) {
    if (l->lock != NULL)
        cr_assert_eq(mproc_lock_close(l->lock), 0);
    if (l->rlock != NULL)
        cr_assert_eq(mproc_rlock_close(l->rlock), 0);
}

/* A Value of `type` under `l`, anonymous (name NULL) or created by name. */
static mproc_value *value_make(const char *name, int type, const void *initial, locks *l) {
    mproc_value *v = NULL;
    int rc = name == NULL ? mproc_value_create(&v, type, initial, l->lock, l->rlock, &l->opts)
                          : mproc_value_open(&v, name, MPROC_CREATE | MPROC_EXCL, type, initial,
                                             l->lock, l->rlock, &l->opts);
    cr_assert_eq(rc, 0, "value create: %s", mproc_errname(rc));
    return v;
}

static mproc_array *array_make(const char *name, int type, size_t len, const void *initial,
                               locks *l) {
    mproc_array *a = NULL;
    int rc = name == NULL
                 ? mproc_array_create(&a, type, len, initial, l->lock, l->rlock, &l->opts)
                 : mproc_array_open(&a, name, MPROC_CREATE | MPROC_EXCL, type, len, initial,
                                    l->lock, l->rlock, &l->opts);
    cr_assert_eq(rc, 0, "array create: %s", mproc_errname(rc));
    return a;
}

static void unlink_if(const char *name) {
    if (name != NULL)
        cr_assert_eq(mproc_unlink(name), 0);
}

/* acquire(0) from another thread: its code (released again if it got it). */
struct try_arg {
    mproc_value *value;
    mproc_array *array;
    int rc;
};

static void *try_acquire(void *arg) {
    struct try_arg *t = arg;
    t->rc = t->value != NULL ? mproc_value_acquire(t->value, 0) : mproc_array_acquire(t->array, 0);
    if (t->rc == 0 || t->rc == EOWNERDEAD)
        t->value != NULL ? mproc_value_release(t->value) : mproc_array_release(t->array);
    return NULL;
}

static int try_from_other_thread(mproc_value *value, mproc_array *array) {
    struct try_arg t = {value, array, -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, try_acquire, &t), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    return t.rc;
}

/* ---- types ---- */

union scalar {
    char c;
    signed char b;
    unsigned char B;
    short h;
    unsigned short H;
    int i;
    unsigned int I;
    long l;
    unsigned long L;
    long long q;
    unsigned long long Q;
    float f;
    double d;
};

/* Each typecode with its C size and two values that use the whole width. */
static const struct typecase {
    int type;
    size_t size;
    union scalar first, second;
} cases[] = {
    {MPROC_TYPE_CHAR, sizeof(char), {.c = 'x'}, {.c = 'Z'}},
    {MPROC_TYPE_SCHAR, sizeof(signed char), {.b = -128}, {.b = 127}},
    {MPROC_TYPE_UCHAR, sizeof(unsigned char), {.B = 255}, {.B = 1}},
    {MPROC_TYPE_SHORT, sizeof(short), {.h = SHRT_MIN}, {.h = 12345}},
    {MPROC_TYPE_USHORT, sizeof(unsigned short), {.H = USHRT_MAX}, {.H = 2}},
    {MPROC_TYPE_INT, sizeof(int), {.i = INT_MIN}, {.i = 987654321}},
    {MPROC_TYPE_UINT, sizeof(unsigned int), {.I = UINT_MAX}, {.I = 3}},
    {MPROC_TYPE_LONG, sizeof(long), {.l = LONG_MIN}, {.l = 0x123456789abL}},
    {MPROC_TYPE_ULONG, sizeof(unsigned long), {.L = ULONG_MAX}, {.L = 4}},
    {MPROC_TYPE_LONGLONG, sizeof(long long), {.q = LLONG_MIN}, {.q = -5}},
    {MPROC_TYPE_ULONGLONG, sizeof(unsigned long long), {.Q = ULLONG_MAX - 1}, {.Q = 6}},
    {MPROC_TYPE_FLOAT, sizeof(float), {.f = 1.5f}, {.f = -3.0e38f}},
    {MPROC_TYPE_DOUBLE, sizeof(double), {.d = 3.141592653589793}, {.d = -1e300}},
};
#define NCASES (sizeof cases / sizeof cases[0])

Test(value_threads, type_size_is_the_c_size_and_zero_for_bytes_or_unknown) {
    for (size_t k = 0; k < NCASES; k++)
        cr_assert_eq(mproc_type_size(cases[k].type), cases[k].size, "type '%c'", cases[k].type);
    cr_assert_eq(mproc_type_size(MPROC_TYPE_BYTES), 0);
    cr_assert_eq(mproc_type_size('x'), 0);
    cr_assert_eq(mproc_type_size(-1), 0);
    cr_assert_eq(mproc_type_size(0x100 + 'i'), 0);
}

static void check_round_trips(bool named) {
    locks l;
    locks_make(&l, OWN_RLOCK);
    for (size_t k = 0; k < NCASES; k++) {
        const struct typecase *c = &cases[k];
        const char *name = named ? t_name("vrt") : NULL;
        mproc_value *v = value_make(name, c->type, &c->first, &l);
        cr_assert_eq(mproc_value_type(v), c->type);
        cr_assert_eq(mproc_value_size(v), c->size);
        union scalar out;
        memset(&out, 0xa5, sizeof out);
        cr_assert_eq(mproc_value_get(v, &out), 0);
        cr_assert_eq(memcmp(&out, &c->first, c->size), 0, "initial of '%c'", c->type);
        cr_assert_eq(mproc_value_set(v, &c->second), 0);
        cr_assert_eq(mproc_value_get(v, &out), 0);
        cr_assert_eq(memcmp(&out, &c->second, c->size), 0, "set/get of '%c'", c->type);
        cr_assert_eq(memcmp(mproc_value_ptr(v), &c->second, c->size), 0);
        cr_assert_eq((uintptr_t)mproc_value_ptr(v) % 64, 0, "storage is 64-byte aligned");
        cr_assert_eq(mproc_value_close(v), 0);
        unlink_if(name);
    }
    locks_free(&l);
}

Test(value_threads, every_typecode_round_trips_anonymous) { check_round_trips(false); }
Test(value_threads, every_typecode_round_trips_named) { check_round_trips(true); }

Test(value_threads, float_and_double_keep_their_exact_bits) {
    locks l;
    locks_make(&l, OWN_RLOCK);
    float f = 0.1f, fo = 0;
    double d = 1.0 / 3.0, d_out = 0;
    mproc_value *vf = value_make(NULL, MPROC_TYPE_FLOAT, &f, &l);
    mproc_value *vd = value_make(NULL, MPROC_TYPE_DOUBLE, &d, &l);
    cr_assert_eq(mproc_value_get(vf, &fo), 0);
    cr_assert_eq(mproc_value_get(vd, &d_out), 0);
    cr_assert_eq(fo, f);
    cr_assert_eq(d_out, d);
    *(double *)mproc_value_ptr(vd) += 1.0;
    cr_assert_eq(mproc_value_get(vd, &d_out), 0);
    cr_assert_eq(d_out, d + 1.0);
    mproc_value_close(vf);
    mproc_value_close(vd);
    locks_free(&l);
}

static void check_zeroed(bool named) {
    for (enum flavour fl = OWN_RLOCK; fl <= RAW; fl++) {
        locks l;
        locks_make(&l, fl);
        const char *vname = named ? t_name("vz") : NULL, *aname = named ? t_name("az") : NULL;
        mproc_value *v = value_make(vname, MPROC_TYPE_DOUBLE, NULL, &l);
        mproc_array *a = array_make(aname, MPROC_TYPE_LONGLONG, 1000, NULL, &l);
        double d = -1;
        cr_assert_eq(mproc_value_get(v, &d), 0);
        cr_assert_eq(d, 0.0);
        const unsigned char *bytes = mproc_array_data(a);
        for (size_t i = 0; i < 1000 * sizeof(long long); i++)
            cr_assert_eq(bytes[i], 0, "byte %zu of a fresh array", i);
        mproc_value_close(v);
        mproc_array_close(a);
        unlink_if(vname);
        unlink_if(aname);
        locks_free(&l);
    }
}

Test(value_threads, new_objects_without_initial_are_zeroed_anonymous) { check_zeroed(false); }
Test(value_threads, new_objects_without_initial_are_zeroed_named) { check_zeroed(true); }

/* ---- counters: Python's Value('i', 0) with `with v.get_lock(): v.value += 1` ---- */

struct counting {
    const char *name; /* named: each thread opens its own handle */
    mproc_value *shared;
    locks *l;
    int errors;
};

static void *count(void *arg) {
    struct counting *c = arg;
    mproc_value *v = c->shared;
    if (c->name != NULL &&
        mproc_value_open(&v, c->name, MPROC_ATTACH, MPROC_TYPE_INT, NULL, c->l->lock,
                         c->l->rlock, &c->l->opts) != 0) {
        __atomic_fetch_add(&c->errors, ITERATIONS, __ATOMIC_RELAXED);
        return NULL;
    }
    int *counter = mproc_value_ptr(v);
    for (int i = 0; i < ITERATIONS; i++) {
        if (mproc_value_acquire(v, BOUND) != 0) {
            __atomic_fetch_add(&c->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        int seen = *counter;
        if ((i & 63) == 0)
            sched_yield(); /* widen the window a broken lock would lose updates in */
        *counter = seen + 1;
        mproc_value_release(v);
    }
    if (c->name != NULL)
        mproc_value_close(v);
    return NULL;
}

static void check_counter(enum flavour flavour, bool named) {
    locks l;
    locks_make(&l, flavour);
    const char *name = named ? t_name("vcnt") : NULL;
    int zero = 0;
    struct counting c = {name, value_make(name, MPROC_TYPE_INT, &zero, &l), &l, 0};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, count, &c), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    int total = -1;
    cr_assert_eq(mproc_value_get(c.shared, &total), 0);
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(total, THREADS * ITERATIONS);
    mproc_value_close(c.shared);
    unlink_if(name);
    locks_free(&l);
}

Test(value_threads, counter_is_exact_under_its_own_rlock) {
    check_counter(OWN_RLOCK, false);
    check_counter(OWN_RLOCK, true);
}
Test(value_threads, counter_is_exact_under_a_given_lock) {
    check_counter(GIVEN_LOCK, false);
    check_counter(GIVEN_LOCK, true);
}
Test(value_threads, counter_is_exact_under_a_given_rlock) {
    check_counter(GIVEN_RLOCK, false);
    check_counter(GIVEN_RLOCK, true);
}

/* Half the threads lock through the Value, half through the Array: one
 * Lock, so every update of both is exclusive. */
struct pair {
    mproc_value *value;
    mproc_array *array;
    int errors;
};

static void *count_pair(void *arg) {
    struct pair *p = arg;
    static _Atomic int next;
    bool via_value = atomic_fetch_add(&next, 1) % 2 == 0;
    long *value = mproc_value_ptr(p->value), *slots = mproc_array_data(p->array);
    for (int i = 0; i < ITERATIONS; i++) {
        int rc = via_value ? mproc_value_acquire(p->value, BOUND)
                           : mproc_array_acquire(p->array, BOUND);
        if (rc != 0) {
            __atomic_fetch_add(&p->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        long seen = *value;
        if ((i & 63) == 0)
            sched_yield();
        *value = seen + 1;
        slots[i % 3]++;
        via_value ? mproc_value_release(p->value) : mproc_array_release(p->array);
    }
    return NULL;
}

Test(value_threads, one_given_lock_guards_a_value_and_an_array_together) {
    locks l;
    locks_make(&l, GIVEN_LOCK);
    struct pair p = {value_make(NULL, MPROC_TYPE_LONG, NULL, &l),
                     array_make(NULL, MPROC_TYPE_LONG, 3, NULL, &l), 0};
    /* The same non-recursive Lock: held through one, the other is EDEADLK
     * for this thread and busy for any other. */
    cr_assert_eq(mproc_value_acquire(p.value, 0), 0);
    cr_assert_eq(mproc_array_acquire(p.array, 0), EDEADLK);
    cr_assert_eq(mproc_lock_acquire(l.lock, 0), EDEADLK);
    cr_assert_eq(try_from_other_thread(NULL, p.array), ETIMEDOUT);
    cr_assert_eq(mproc_array_release(p.array), 0); /* same lock: releases it */
    cr_assert_eq(mproc_value_release(p.value), EPERM);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, count_pair, &p), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    long total = 0, slots[3];
    cr_assert_eq(p.errors, 0);
    cr_assert_eq(mproc_value_get(p.value, &total), 0);
    cr_assert_eq(total, (long)THREADS * ITERATIONS);
    cr_assert_eq(mproc_array_read(p.array, 0, 3, slots), 0);
    cr_assert_eq(slots[0] + slots[1] + slots[2], (long)THREADS * ITERATIONS);
    mproc_value_close(p.value);
    mproc_array_close(p.array);
    locks_free(&l);
}

Test(value_threads, a_given_rlock_is_shared_and_reentered_through_both_objects) {
    locks l;
    locks_make(&l, GIVEN_RLOCK);
    mproc_value *v = value_make(NULL, MPROC_TYPE_INT, NULL, &l);
    mproc_array *a = array_make(NULL, MPROC_TYPE_INT, 2, NULL, &l);
    unsigned depth = 0;
    cr_assert_eq(mproc_value_acquire(v, 0), 0);
    cr_assert_eq(mproc_array_acquire(a, 0), 0);
    cr_assert_eq(mproc_rlock_count(l.rlock, &depth), 0);
    cr_assert_eq(depth, 2);
    cr_assert_eq(try_from_other_thread(v, NULL), ETIMEDOUT);
    cr_assert_eq(mproc_array_release(a), 0);
    cr_assert_eq(mproc_value_release(v), 0);
    cr_assert_eq(mproc_rlock_count(l.rlock, &depth), 0);
    cr_assert_eq(depth, 0);
    cr_assert_eq(try_from_other_thread(v, NULL), 0);
    mproc_value_close(v);
    mproc_array_close(a);
    locks_free(&l);
}

Test(value_threads, get_and_set_inside_a_held_given_lock_copy_under_that_hold) {
    locks l;
    locks_make(&l, GIVEN_LOCK);
    int seven = 7, out = 0;
    mproc_value *v = value_make(NULL, MPROC_TYPE_INT, NULL, &l);
    cr_assert_eq(mproc_value_acquire(v, BOUND), 0);
    cr_assert_eq(mproc_value_set(v, &seven), 0, "not EDEADLK: the caller holds the lock");
    cr_assert_eq(mproc_value_get(v, &out), 0);
    cr_assert_eq(out, 7);
    cr_assert_eq(try_from_other_thread(v, NULL), ETIMEDOUT, "still held after get/set");
    cr_assert_eq(mproc_value_release(v), 0);
    cr_assert_eq(try_from_other_thread(v, NULL), 0);
    mproc_value_close(v);
    locks_free(&l);
}

/* ---- raw objects and MPROC_WITH ---- */

Test(value_threads, a_raw_value_has_no_lock_but_its_storage_works) {
    locks l;
    locks_make(&l, RAW);
    short initial = 11, out = 0, twelve = 12;
    mproc_value *v = value_make(NULL, MPROC_TYPE_SHORT, &initial, &l);
    mproc_array *a = array_make(NULL, MPROC_TYPE_SHORT, 4, NULL, &l);
    cr_assert_eq(mproc_value_acquire(v, BOUND), ENOTSUP);
    cr_assert_eq(mproc_value_release(v), ENOTSUP);
    cr_assert_eq(mproc_array_acquire(a, 0), ENOTSUP);
    cr_assert_eq(mproc_array_release(a), ENOTSUP);
    cr_assert_eq(mproc_value_get(v, &out), 0);
    cr_assert_eq(out, 11);
    *(short *)mproc_value_ptr(v) = 99;
    cr_assert_eq(mproc_value_get(v, &out), 0);
    cr_assert_eq(out, 99);
    cr_assert_eq(mproc_value_set(v, &twelve), 0);
    cr_assert_eq(*(short *)mproc_value_ptr(v), 12);
    cr_assert_eq(mproc_array_set(a, 3, &twelve), 0);
    cr_assert_eq(((short *)mproc_array_data(a))[3], 12);
    int ran = 0, rc = -1;
    MPROC_WITH(v) { ran = 1; }
    cr_assert_eq(ran, 0, "the body of a with on a raw value is skipped");
    MPROC_WITH_RC(a, rc) { ran = 1; }
    cr_assert_eq(ran, 0);
    cr_assert_eq(rc, ENOTSUP);
    mproc_value_close(v);
    mproc_array_close(a);
    locks_free(&l);
}

static int with_and_return(mproc_value *v) {
    MPROC_WITH(v) {
        return try_from_other_thread(v, NULL);
    }
    return -1;
}

Test(value_threads, with_on_a_value_or_array_holds_its_lock_and_releases_on_exit) {
    for (enum flavour fl = OWN_RLOCK; fl <= GIVEN_RLOCK; fl++) {
        locks l;
        locks_make(&l, fl);
        mproc_value *v = value_make(NULL, MPROC_TYPE_INT, NULL, &l);
        mproc_array *a = array_make(NULL, MPROC_TYPE_INT, 2, NULL, &l);
        int ran = 0, rc = -1;
        MPROC_WITH_RC(v, rc) {
            ran++;
            cr_assert_eq(rc, 0);
            cr_assert_eq(try_from_other_thread(v, NULL), ETIMEDOUT, "flavour %d", fl);
            (*(int *)mproc_value_ptr(v))++;
        }
        cr_assert_eq(ran, 1);
        cr_assert_eq(try_from_other_thread(v, NULL), 0, "released after the body");
        for (int i = 0; i < 3; i++) {
            MPROC_WITH(a) {
                cr_assert_eq(try_from_other_thread(NULL, a), ETIMEDOUT);
                break; /* leaves the with-block, releasing */
            }
        }
        cr_assert_eq(try_from_other_thread(NULL, a), 0);
        cr_assert_eq(with_and_return(v), ETIMEDOUT);
        cr_assert_eq(try_from_other_thread(v, NULL), 0, "released by the return");
        cr_assert_eq(*(int *)mproc_value_ptr(v), 1);
        mproc_value_close(v);
        mproc_array_close(a);
        locks_free(&l);
    }
}

/* ---- Array: elements, bounds, slices ---- */

static void check_elements(bool named) {
    locks l;
    locks_make(&l, OWN_RLOCK);
    const char *name = named ? t_name("ael") : NULL;
    const int initial[5] = {10, 20, 30, 40, 50};
    mproc_array *a = array_make(name, MPROC_TYPE_INT, 5, initial, &l);
    cr_assert_eq(mproc_array_len(a), 5);
    cr_assert_eq(mproc_array_elem_size(a), sizeof(int));
    cr_assert_eq(mproc_array_type(a), MPROC_TYPE_INT);
    cr_assert_eq((uintptr_t)mproc_array_data(a) % 64, 0, "elements are 64-byte aligned");
    cr_assert_eq(memcmp(mproc_array_data(a), initial, sizeof initial), 0, "initial copied");
    for (size_t i = 0; i < 5; i++) {
        int out = -1, in = (int)(i * i) - 7;
        cr_assert_eq(mproc_array_get(a, i, &out), 0);
        cr_assert_eq(out, initial[i]);
        cr_assert_eq(mproc_array_set(a, i, &in), 0);
        cr_assert_eq(mproc_array_get(a, i, &out), 0);
        cr_assert_eq(out, in);
        cr_assert_eq(((int *)mproc_array_data(a))[i], in);
    }
    int out = 1234, in = 5678;
    cr_assert_eq(mproc_array_get(a, 5, &out), ERANGE);
    cr_assert_eq(mproc_array_get(a, SIZE_MAX, &out), ERANGE);
    cr_assert_eq(out, 1234, "ERANGE leaves the buffer alone");
    cr_assert_eq(mproc_array_set(a, 5, &in), ERANGE);
    cr_assert_eq(mproc_array_set(a, SIZE_MAX, &in), ERANGE);
    mproc_array_close(a);
    unlink_if(name);
    locks_free(&l);
}

Test(value_threads, array_elements_get_and_set_at_every_index_anonymous) { check_elements(false); }
Test(value_threads, array_elements_get_and_set_at_every_index_named) { check_elements(true); }

Test(value_threads, an_index_or_slice_past_the_end_writes_nothing_after_the_array) {
    for (enum flavour fl = OWN_RLOCK; fl <= RAW; fl++) {
        locks l;
        locks_make(&l, fl);
        /* 3 ints: bytes [12, 16) after them are still in the mapping's page
         * (the segment is 64 + 128 + 12 bytes), so they can hold a sentinel. */
        mproc_array *a = array_make(NULL, MPROC_TYPE_INT, 3, NULL, &l);
        int *data = mproc_array_data(a), sentinel = 0x5a5a5a5a, in[4] = {1, 2, 3, 4};
        data[3] = sentinel;
        cr_assert_eq(mproc_array_set(a, 3, &in[0]), ERANGE);
        cr_assert_eq(mproc_array_write(a, 0, 4, in), ERANGE);
        cr_assert_eq(mproc_array_write(a, 3, 1, in), ERANGE);
        cr_assert_eq(mproc_array_write(a, 1, SIZE_MAX, in), ERANGE);
        cr_assert_eq(mproc_array_write(a, SIZE_MAX, 2, in), ERANGE);
        cr_assert_eq(data[3], sentinel, "element 3 untouched");
        cr_assert_eq(data[0] | data[1] | data[2], 0, "ERANGE writes nothing at all");
        mproc_array_close(a);
        locks_free(&l);
    }
}

Test(value_threads, array_slices_copy_in_and_out_with_checked_bounds) {
    locks l;
    locks_make(&l, GIVEN_RLOCK);
    const uint16_t initial[6] = {1, 2, 3, 4, 5, 6};
    mproc_array *a = array_make(NULL, MPROC_TYPE_USHORT, 6, initial, &l);
    uint16_t out[6] = {0}, in[3] = {70, 80, 90};
    cr_assert_eq(mproc_array_read(a, 0, 6, out), 0);
    cr_assert_eq(memcmp(out, initial, sizeof out), 0);
    cr_assert_eq(mproc_array_write(a, 2, 3, in), 0);
    cr_assert_eq(mproc_array_read(a, 1, 5, out), 0);
    const uint16_t want[5] = {2, 70, 80, 90, 6};
    cr_assert_eq(memcmp(out, want, sizeof want), 0);
    /* count 0 is a no-op anywhere up to the end, and needs no buffer. */
    cr_assert_eq(mproc_array_read(a, 6, 0, out), 0);
    cr_assert_eq(mproc_array_write(a, 0, 0, NULL), 0);
    cr_assert_eq(mproc_array_read(a, 3, 0, NULL), 0);
    cr_assert_eq(mproc_array_read(a, 7, 0, out), ERANGE);
    /* Past the end, overflow of start + count included: nothing touched. */
    memset(out, 0xee, sizeof out);
    cr_assert_eq(mproc_array_read(a, 4, 3, out), ERANGE);
    cr_assert_eq(mproc_array_read(a, 1, SIZE_MAX, out), ERANGE);
    cr_assert_eq(mproc_array_read(a, SIZE_MAX, 1, out), ERANGE);
    cr_assert_eq(mproc_array_read(a, SIZE_MAX, SIZE_MAX, out), ERANGE);
    cr_assert_eq(out[0], 0xeeee);
    cr_assert_eq(mproc_array_read(a, 0, 1, NULL), EINVAL);
    cr_assert_eq(mproc_array_write(a, 0, 1, NULL), EINVAL);
    mproc_array_close(a);
    locks_free(&l);
}

/* Any fixed element size: a struct per element. */
struct point {
    double x, y;
    int32_t tag;
};

Test(value_threads, bytes_elements_hold_structs) {
    locks l;
    locks_make(&l, OWN_RLOCK);
    l.opts.elem_size = sizeof(struct point);
    struct point p, out;
    memset(&p, 0, sizeof p); /* the padding too: memcmp below compares it */
    memset(&out, 0, sizeof out);
    p.x = 1.5;
    p.y = -2.5;
    p.tag = 7;
    mproc_value *v = value_make(NULL, MPROC_TYPE_BYTES, &p, &l);
    cr_assert_eq(mproc_value_size(v), sizeof(struct point));
    cr_assert_eq(mproc_value_type(v), MPROC_TYPE_BYTES);
    cr_assert_eq(mproc_value_get(v, &out), 0);
    cr_assert_eq(memcmp(&out, &p, sizeof p), 0);
    mproc_array *a = array_make(NULL, MPROC_TYPE_BYTES, 100, NULL, &l);
    cr_assert_eq(mproc_array_elem_size(a), sizeof(struct point));
    for (size_t i = 0; i < 100; i++) {
        struct point in = {(double)i, -(double)i, (int32_t)i};
        cr_assert_eq(mproc_array_set(a, i, &in), 0);
    }
    cr_assert_eq(mproc_array_get(a, 42, &out), 0);
    cr_assert_eq(out.x, 42.0);
    cr_assert_eq(out.tag, 42);
    cr_assert_eq(((struct point *)mproc_array_data(a))[99].y, -99.0);
    mproc_value_close(v);
    mproc_array_close(a);
}

/* ---- argument checks ---- */

Test(value_threads, bad_arguments_are_einval) {
    mproc_value *v = NULL;
    mproc_array *a = NULL;
    mproc_lock *lock;
    mproc_rlock *rlock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    cr_assert_eq(mproc_rlock_create(&rlock, NULL), 0);
    mproc_value_options raw = {.flags = MPROC_RAW}, bytes0 = {.elem_size = 0},
                        bytes_big = {.elem_size = MPROC_ELEM_SIZE_MAX + 1},
                        typed_size = {.elem_size = 4}, reserved = {.reserved = {0, 0, 0, 0, 1}},
                        flags = {.flags = 2}, mode = {.mode = 010000};
    cr_assert_eq(mproc_value_create(NULL, MPROC_TYPE_INT, NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_array_create(NULL, MPROC_TYPE_INT, 1, NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_create(&v, 'x', NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_create(&v, -1, NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_create(&v, 0x100 + 'i', NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_BYTES, NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_BYTES, NULL, NULL, NULL, &bytes0), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_BYTES, NULL, NULL, NULL, &bytes_big), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, NULL, NULL, &typed_size), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, lock, rlock, NULL), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, lock, NULL, &raw), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, NULL, rlock, &raw), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, NULL, NULL, &reserved), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, NULL, NULL, &flags), EINVAL);
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, NULL, NULL, &mode), EINVAL);
    cr_assert_eq(mproc_array_create(&a, MPROC_TYPE_INT, 0, NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_array_create(&a, MPROC_TYPE_INT, MPROC_ARRAY_BYTES_MAX / 4 + 1, NULL,
                                    NULL, NULL, NULL),
                 EINVAL);
    cr_assert_eq(mproc_array_create(&a, MPROC_TYPE_DOUBLE, SIZE_MAX, NULL, NULL, NULL, NULL),
                 EINVAL);
    cr_assert_eq(mproc_array_create(&a, MPROC_TYPE_INT, 2, NULL, lock, rlock, NULL), EINVAL);
    cr_assert_eq(mproc_value_open(&v, NULL, MPROC_CREATE, MPROC_TYPE_INT, NULL, NULL, NULL,
                                  NULL),
                 EINVAL);
    cr_assert_eq(mproc_array_open(&a, NULL, MPROC_CREATE, MPROC_TYPE_INT, 1, NULL, NULL, NULL,
                                  NULL),
                 EINVAL);
    cr_assert_null(v);
    cr_assert_null(a);
    /* NULL handles. */
    int x = 0;
    cr_assert_eq(mproc_value_get(NULL, &x), EINVAL);
    cr_assert_eq(mproc_value_set(NULL, &x), EINVAL);
    cr_assert_eq(mproc_value_acquire(NULL, 0), EINVAL);
    cr_assert_eq(mproc_value_release(NULL), EINVAL);
    cr_assert_eq(mproc_value_close(NULL), EINVAL);
    cr_assert_null(mproc_value_ptr(NULL));
    cr_assert_eq(mproc_value_size(NULL), 0);
    cr_assert_eq(mproc_array_get(NULL, 0, &x), EINVAL);
    cr_assert_eq(mproc_array_set(NULL, 0, &x), EINVAL);
    cr_assert_eq(mproc_array_read(NULL, 0, 1, &x), EINVAL);
    cr_assert_eq(mproc_array_write(NULL, 0, 1, &x), EINVAL);
    cr_assert_eq(mproc_array_acquire(NULL, 0), EINVAL);
    cr_assert_eq(mproc_array_release(NULL), EINVAL);
    cr_assert_eq(mproc_array_close(NULL), EINVAL);
    cr_assert_null(mproc_array_data(NULL));
    cr_assert_eq(mproc_array_len(NULL), 0);
    cr_assert_eq(mproc_array_elem_size(NULL), 0);
    /* NULL buffers and NaN timeouts on a good handle. */
    cr_assert_eq(mproc_value_create(&v, MPROC_TYPE_INT, NULL, NULL, NULL, NULL), 0);
    cr_assert_eq(mproc_value_get(v, NULL), EINVAL);
    cr_assert_eq(mproc_value_set(v, NULL), EINVAL);
    cr_assert_eq(mproc_value_acquire(v, NAN), EINVAL);
    cr_assert_eq(mproc_value_release(v), EPERM, "not held");
    mproc_value_close(v);
    mproc_lock_close(lock);
    mproc_rlock_close(rlock);
}

/* ---- named objects: flags, shapes, kinds ---- */

Test(value_threads, named_open_flags_and_existing_contents) {
    const char *name = t_name("vopen");
    int initial = 5, other = 9, out = 0;
    mproc_value *a, *b;
    cr_assert_eq(mproc_value_open(&a, name, MPROC_ATTACH, MPROC_TYPE_INT, NULL, NULL, NULL,
                                  NULL),
                 ENOENT);
    cr_assert_eq(mproc_value_open(&a, name, MPROC_CREATE, MPROC_TYPE_INT, &initial, NULL, NULL,
                                  NULL),
                 0);
    cr_assert_eq(mproc_value_open(&b, name, MPROC_CREATE | MPROC_EXCL, MPROC_TYPE_INT, NULL,
                                  NULL, NULL, NULL),
                 EEXIST);
    /* CREATE on an existing name attaches; its initial value is ignored. */
    cr_assert_eq(mproc_value_open(&b, name, MPROC_CREATE, MPROC_TYPE_INT, &other, NULL, NULL,
                                  NULL),
                 0);
    cr_assert_eq(mproc_value_get(b, &out), 0);
    cr_assert_eq(out, 5);
    cr_assert_eq(mproc_value_set(b, &other), 0);
    cr_assert_eq(mproc_value_get(a, &out), 0);
    cr_assert_eq(out, 9, "two handles, one value");
    /* Both handles share the value's own lock. */
    cr_assert_eq(mproc_value_acquire(a, 0), 0);
    cr_assert_eq(try_from_other_thread(b, NULL), ETIMEDOUT);
    cr_assert_eq(mproc_value_release(a), 0);
    mproc_value_close(a);
    mproc_value_close(b);
    cr_assert_eq(mproc_unlink(name), 0);
}

Test(value_threads, named_reopen_with_another_shape_or_lock_is_einval) {
    const char *vname = t_name("vshape"), *aname = t_name("ashape");
    mproc_lock *lock, *lock2;
    mproc_rlock *rlock;
    cr_assert_eq(mproc_lock_create(&lock, NULL), 0);
    cr_assert_eq(mproc_lock_create(&lock2, NULL), 0);
    cr_assert_eq(mproc_rlock_create(&rlock, NULL), 0);
    mproc_value_options raw = {.flags = MPROC_RAW}, b8 = {.elem_size = 8}, b16 = {.elem_size = 16};
    mproc_value *v, *w = NULL;
    mproc_array *a, *x = NULL;
    int c = MPROC_CREATE;
    cr_assert_eq(mproc_value_open(&v, vname, c, MPROC_TYPE_INT, NULL, lock, NULL, NULL), 0);
    cr_assert_eq(mproc_value_open(&w, vname, c, MPROC_TYPE_UINT, NULL, lock, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_open(&w, vname, c, MPROC_TYPE_INT, NULL, NULL, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_open(&w, vname, c, MPROC_TYPE_INT, NULL, lock2, NULL, NULL), EINVAL);
    cr_assert_eq(mproc_value_open(&w, vname, c, MPROC_TYPE_INT, NULL, NULL, rlock, NULL), EINVAL);
    cr_assert_eq(mproc_value_open(&w, vname, c, MPROC_TYPE_INT, NULL, NULL, NULL, &raw), EINVAL);
    cr_assert_eq(mproc_value_open(&w, vname, c, MPROC_TYPE_INT, NULL, lock, NULL, NULL), 0);
    mproc_value_close(w);
    cr_assert_eq(mproc_array_open(&a, aname, c, MPROC_TYPE_BYTES, 4, NULL, NULL, NULL, &b8), 0);
    cr_assert_eq(mproc_array_open(&x, aname, c, MPROC_TYPE_BYTES, 4, NULL, NULL, NULL, &b16),
                 EINVAL);
    cr_assert_eq(mproc_array_open(&x, aname, c, MPROC_TYPE_BYTES, 3, NULL, NULL, NULL, &b8),
                 EINVAL);
    cr_assert_eq(mproc_array_open(&x, aname, c, MPROC_TYPE_BYTES, 8, NULL, NULL, NULL, &b8),
                 EINVAL);
    cr_assert_eq(mproc_array_open(&x, aname, c, MPROC_TYPE_DOUBLE, 4, NULL, NULL, NULL, NULL),
                 EINVAL, "same bytes, another type");
    /* A Value is not an Array, nor a Lock either. */
    cr_assert_eq(mproc_array_open(&x, vname, c, MPROC_TYPE_INT, 1, NULL, lock, NULL, NULL),
                 MPROC_E_KIND);
    cr_assert_eq(mproc_value_open(&w, aname, c, MPROC_TYPE_BYTES, NULL, NULL, NULL, &b8),
                 MPROC_E_KIND);
    mproc_lock *as_lock;
    cr_assert_eq(mproc_lock_open(&as_lock, vname, MPROC_ATTACH, NULL), MPROC_E_KIND);
    cr_assert_null(x);
    mproc_value_close(v);
    mproc_array_close(a);
    mproc_lock_close(lock);
    mproc_lock_close(lock2);
    mproc_rlock_close(rlock);
    cr_assert_eq(mproc_unlink(vname), 0);
    cr_assert_eq(mproc_unlink(aname), 0);
}

/* ---- a holder that exits without releasing ---- */

struct dying {
    mproc_value *value;
    int rc;
};

static void *hold_and_exit(void *arg) {
    struct dying *d = arg;
    d->rc = mproc_value_acquire(d->value, BOUND);
    *(int *)mproc_value_ptr(d->value) = 42; /* then exits, still holding */
    return NULL;
}

static void check_exit_holding(enum flavour flavour, bool named) {
    locks l;
    locks_make(&l, flavour);
    const char *name = named ? t_name("vdead") : NULL;
    struct dying d = {value_make(name, MPROC_TYPE_INT, NULL, &l), -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, hold_and_exit, &d), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(d.rc, 0);
    int out = 0;
    cr_assert_eq(mproc_value_get(d.value, &out), EOWNERDEAD);
    cr_assert_eq(out, 42, "the copy is made all the same");
    out = 0;
    cr_assert_eq(mproc_value_get(d.value, &out), 0, "normal again");
    cr_assert_eq(out, 42);
    cr_assert_eq(try_from_other_thread(d.value, NULL), 0, "and free");
    mproc_value_close(d.value);
    unlink_if(name);
    locks_free(&l);
}

Test(value_threads, a_holder_thread_that_exits_makes_get_return_eownerdead_once) {
    for (enum flavour fl = OWN_RLOCK; fl <= GIVEN_RLOCK; fl++) {
        check_exit_holding(fl, false);
        check_exit_holding(fl, true);
    }
}
