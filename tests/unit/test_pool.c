/* SPDX-License-Identifier: MIT */
/*
 * mproc_pool's work API against Python's multiprocessing.Pool: map's
 * results in order for many sizes and chunk sizes, odd item sizes and
 * alignment, the item and chunk size limits, argument checks; task codes
 * (the lowest failing item wins, every other item still runs); AsyncResult
 * (get / wait / ready / successful / code, freeing early); imap ordered and
 * unordered; many threads submitting at once; where tasks run; a forked
 * child's copy of a handle.
 *
 * Tasks run in worker processes, so they never cr_assert: they return a
 * code (a test's item code, or BAD for a broken expectation) and write
 * their output, which the test checks.  What they share with the test
 * (`board`, the `gate` and `started` pipes) is set up by prepare() before
 * the pool is created, since workers see memory as it was at their fork;
 * `board` is MAP_SHARED, so the test may also change it later.
 *
 * Slow tasks wait on the `gate` pipe (bounded by GATE_BOUND), and tell the
 * test they began through `started`, so no test depends on a sleep to
 * order its steps.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0      /* seconds: no wait in the test may take longer */
#define GATE_BOUND 15.0 /* a gated task gives up (ECANCELED) after this */
#define BAD 1000        /* a task's code for "what it was given is wrong" */
/* One Criterion timeout for every test: Criterion 2.4.1's runner leaks a
 * 48-byte entry when tests with different timeouts run in parallel, which
 * LeakSanitizer turns into a failed run under ASan. */
#define TEST_TIMEOUT 30

/* Shared with the workers (MAP_SHARED, mapped before the pool). */
struct board {
    _Atomic long calls;  /* task calls, all tasks */
    _Atomic long sum;    /* what sink() received */
    size_t wide;         /* item size for wide_in / wide_out */
};
static struct board *board;
static t_pipe gate;    /* a gated task reads one byte before it returns */
static t_pipe started; /* a gated task writes 's' when it begins */

static void prepare(void) {
    board = t_shared(sizeof *board);
    t_pipe_open(&gate);
    t_pipe_open(&started);
}

static mproc_pool *make_pool(unsigned workers) {
    mproc_pool_options opts = {.workers = workers};
    mproc_pool *pool = NULL;
    int rc = mproc_pool_create(&pool, &opts);
    cr_assert_eq(rc, 0, "create: %s", mproc_strerror(rc));
    return pool;
}

static void finish(mproc_pool *pool) {
    cr_assert_eq(mproc_pool_close(pool), 0);
    cr_assert_eq(mproc_pool_join(pool, BOUND), 0);
    mproc_pool_free(pool);
}

static void count_call(void) {
    atomic_fetch_add_explicit(&board->calls, 1, memory_order_relaxed);
}

/* ---- tasks ---- */

/* long -> long: its square. */
static int square(const void *in, void *out) {
    count_call();
    long v = *(const long *)in;
    *(long *)out = v * v;
    return 0;
}

/* An item that says what its task does: returns `code`, first waiting on
 * the gate (mode GATED) or sleeping 50 ms (mode SLOW).  Output value * 3. */
enum { PLAIN, GATED, SLOW };
struct step {
    long value;
    int code;
    int mode;
};

static int step(const void *in, void *out) {
    const struct step *s = in;
    count_call();
    if (s->mode == GATED) {
        t_signal(&started, 's');
        if (t_await(&gate, GATE_BOUND) < 0)
            return ECANCELED;
    } else if (s->mode == SLOW) {
        usleep(50000);
    }
    *(long *)out = s->value * 3;
    return s->code;
}

/* 1-byte items. */
static int flip(const void *in, void *out) {
    *(unsigned char *)out = *(const unsigned char *)in ^ 0xa5;
    return 0;
}

/* 12-byte items: {a, b, c} -> {c, b + 1, a}. */
struct triple {
    int a, b, c;
};
_Static_assert(sizeof(struct triple) == 12, "a 12-byte item");

static int rotate(const void *in, void *out) {
    const struct triple *t = in;
    *(struct triple *)out = (struct triple){t->c, t->b + 1, t->a};
    return 0;
}

/* Alignment as the C types need it, in inputs and outputs: 24-byte items
 * of doubles to long doubles, and long doubles to doubles. */
static bool aligned(const void *p, size_t alignment) {
    return (uintptr_t)p % alignment == 0;
}

static int sum3(const void *in, void *out) {
    if (!aligned(in, _Alignof(double)) || !aligned(out, _Alignof(long double)))
        return BAD;
    const double *d = in;
    *(long double *)out = (long double)d[0] + d[1] + d[2];
    return 0;
}

static int halve(const void *in, void *out) {
    if (!aligned(in, _Alignof(long double)) || !aligned(out, _Alignof(double)))
        return BAD;
    *(double *)out = (double)(*(const long double *)in / 2);
    return 0;
}

/* in_size 0: output 42.  out_size 0: adds the input to board->sum.  Both
 * 0: only counts. */
static int constant(const void *in, void *out) {
    (void)in;
    count_call();
    *(long *)out = 42;
    return 0;
}

static int sink(const void *in, void *out) {
    (void)out;
    count_call();
    atomic_fetch_add_explicit(&board->sum, *(const long *)in, memory_order_relaxed);
    return 0;
}

static int tick(const void *in, void *out) {
    (void)in;
    (void)out;
    count_call();
    return 0;
}

/* Byte k of wide item `item`: every byte depends on both. */
static unsigned char pattern(long item, size_t k) {
    return (unsigned char)(item * 151 + (long)k * 7 + (long)(k >> 12) + 1);
}

/* board->wide bytes -> long: checks every byte of the input, whose first
 * 8 bytes are its index; outputs index * 5. */
static int wide_in(const void *in, void *out) {
    const unsigned char *b = in;
    long item;
    memcpy(&item, b, sizeof item);
    for (size_t k = sizeof item; k < board->wide; k++)
        if (b[k] != pattern(item, k))
            return BAD;
    *(long *)out = item * 5;
    return 0;
}

/* long index -> board->wide bytes of pattern(index, k). */
static int wide_out(const void *in, void *out) {
    long item = *(const long *)in;
    unsigned char *b = out;
    for (size_t k = 0; k < board->wide; k++)
        b[k] = pattern(item, k);
    return 0;
}

/* Where it runs. */
struct who {
    int pid;
    char name[MPROC_PROCESS_NAME_MAX];
};

static int whoami(const void *in, void *out) {
    (void)in;
    struct who *w = out;
    w->pid = getpid();
    strncpy(w->name, mproc_current_process_name(), sizeof w->name - 1);
    return 0;
}

/* ---- map: values and shapes ---- */

/* map of square over n items with chunksize: every output right, each
 * item run exactly once. */
static void map_squares(mproc_pool *pool, size_t n, size_t chunksize) {
    long *in = malloc((n + 1) * sizeof *in), *out = malloc((n + 1) * sizeof *out);
    cr_assert(in != NULL && out != NULL);
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i - 500;
        out[i] = -1;
    }
    long calls = atomic_load(&board->calls);
    size_t bad = 7;
    int rc = mproc_pool_map(pool, square, in, sizeof *in, out, sizeof *out, n, chunksize, &bad);
    cr_assert_eq(rc, 0, "n %zu chunksize %zu: %s", n, chunksize, mproc_strerror(rc));
    cr_assert_eq(bad, SIZE_MAX);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], in[i] * in[i], "n %zu chunksize %zu: item %zu", n, chunksize, i);
    cr_assert_eq(atomic_load(&board->calls) - calls, (long)n, "n %zu chunksize %zu", n,
                 chunksize);
    free(in);
    free(out);
}

Test(pool_map, results_in_order_for_every_size_and_chunksize, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    static const size_t sizes[] = {0, 1, 7, 1000, 100000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        size_t chunks[] = {0, 1, 3, n, n + 5};
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
            map_squares(pool, n, chunks[c]);
    }
    finish(pool);
}

Test(pool_map, one_byte_and_twelve_byte_items, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 1001 };
    unsigned char bin[N], bout[N];
    struct triple tin[N], tout[N];
    for (int i = 0; i < N; i++) {
        bin[i] = (unsigned char)(i * 7);
        tin[i] = (struct triple){i, -i, i * 3};
    }
    memset(bout, 0, sizeof bout);
    memset(tout, 0, sizeof tout);
    for (size_t chunksize = 0; chunksize <= 5; chunksize += 5) {
        cr_assert_eq(mproc_pool_map(pool, flip, bin, 1, bout, 1, N, chunksize, NULL), 0);
        cr_assert_eq(mproc_pool_map(pool, rotate, tin, 12, tout, 12, N, chunksize, NULL), 0);
        for (int i = 0; i < N; i++) {
            cr_assert_eq(bout[i], (unsigned char)(i * 7) ^ 0xa5, "item %d", i);
            cr_assert(tout[i].a == i * 3 && tout[i].b == 1 - i && tout[i].c == i, "item %d", i);
        }
    }
    finish(pool);
}

Test(pool_map, doubles_and_long_doubles_aligned_in_inputs_and_outputs, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 333 };
    double (*d3)[3] = malloc(N * sizeof *d3);
    long double *ld = malloc(N * sizeof *ld);
    double *d = malloc(N * sizeof *d);
    cr_assert(d3 != NULL && ld != NULL && d != NULL);
    for (int i = 0; i < N; i++) {
        d3[i][0] = i;
        d3[i][1] = 0.5;
        d3[i][2] = -0.25 * i;
    }
    size_t bad;
    for (size_t chunksize = 0; chunksize <= 7; chunksize += 7) {
        int rc = mproc_pool_map(pool, sum3, d3, sizeof *d3, ld, sizeof *ld, N, chunksize, &bad);
        cr_assert_eq(rc, 0, "sum3 item %zu misaligned", bad);
        for (int i = 0; i < N; i++)
            cr_assert_eq(ld[i], (long double)i + 0.5L - 0.25L * i, "item %d", i);
        rc = mproc_pool_map(pool, halve, ld, sizeof *ld, d, sizeof *d, N, chunksize, &bad);
        cr_assert_eq(rc, 0, "halve item %zu misaligned", bad);
        for (int i = 0; i < N; i++)
            cr_assert_eq(d[i], (double)(((long double)i + 0.5L - 0.25L * i) / 2), "item %d", i);
    }
    free(d3);
    free(ld);
    free(d);
    finish(pool);
}

Test(pool_map, zero_input_or_output_size, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 500 };
    long in[N], out[N];
    long expect = 0;
    for (int i = 0; i < N; i++) {
        in[i] = i * 3 + 1;
        expect += in[i];
        out[i] = -1;
    }
    /* in_size 0: `in` may be NULL; every item still runs. */
    cr_assert_eq(mproc_pool_map(pool, constant, NULL, 0, out, sizeof *out, N, 0, NULL), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(out[i], 42, "item %d", i);
    cr_assert_eq(atomic_load(&board->calls), N);
    /* out_size 0: `out` may be NULL. */
    cr_assert_eq(mproc_pool_map(pool, sink, in, sizeof *in, NULL, 0, N, 3, NULL), 0);
    cr_assert_eq(atomic_load(&board->sum), expect);
    /* Both 0: n calls, nothing else. */
    cr_assert_eq(mproc_pool_map(pool, tick, NULL, 0, NULL, 0, N, 0, NULL), 0);
    cr_assert_eq(mproc_pool_map(pool, tick, NULL, 0, NULL, 0, 100000, 100000, NULL), 0);
    cr_assert_eq(atomic_load(&board->calls), 3 * N + 100000);
    finish(pool);
}

Test(pool_map, item_of_item_max_works_one_byte_more_is_emsgsize, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    const size_t max = MPROC_POOL_ITEM_MAX;
    unsigned char *in = malloc(2 * (max + 1)), *out = malloc(2 * (max + 1));
    cr_assert(in != NULL && out != NULL);
    /* Two items of exactly ITEM_MAX in: checked byte for byte by wide_in. */
    board->wide = max;
    for (long item = 0; item < 2; item++) {
        unsigned char *b = in + (size_t)item * max;
        memcpy(b, &item, sizeof item);
        for (size_t k = sizeof item; k < max; k++)
            b[k] = pattern(item, k);
    }
    long res[2] = {-1, -1};
    size_t bad = 7;
    int rc = mproc_pool_map(pool, wide_in, in, max, res, sizeof *res, 2, 0, &bad);
    cr_assert_eq(rc, 0, "item %zu: %s", bad, mproc_strerror(rc));
    cr_assert(res[0] == 0 && res[1] == 5);
    /* Two items of exactly ITEM_MAX out. */
    long idx[2] = {3, 4};
    memset(out, 0, 2 * max);
    cr_assert_eq(mproc_pool_map(pool, wide_out, idx, sizeof *idx, out, max, 2, 2, NULL), 0);
    for (size_t item = 0; item < 2; item++)
        for (size_t k = 0; k < max; k++)
            if (out[item * max + k] != pattern(idx[item], k))
                cr_assert_fail("item %zu byte %zu", item, k);
    /* One byte more, on either side, for every entry point. */
    mproc_result *r = (mproc_result *)&bad;
    mproc_pool_iter *it = (mproc_pool_iter *)&bad;
    bad = 7;
    cr_assert_eq(mproc_pool_map(pool, wide_in, in, max + 1, res, 8, 1, 0, &bad), EMSGSIZE);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_eq(mproc_pool_map(pool, wide_out, idx, 8, out, max + 1, 1, 0, NULL), EMSGSIZE);
    cr_assert_eq(mproc_pool_map_async(pool, wide_in, in, max + 1, res, 8, 1, 0, &r), EMSGSIZE);
    cr_assert_null(r);
    cr_assert_eq(mproc_pool_apply(pool, wide_out, idx, 8, out, max + 1), EMSGSIZE);
    cr_assert_eq(mproc_pool_apply_async(pool, wide_in, in, max + 1, res, 8, &r), EMSGSIZE);
    cr_assert_eq(mproc_pool_imap(pool, wide_out, idx, 8, max + 1, 1, 0, 0, &it), EMSGSIZE);
    cr_assert_null(it);
    cr_assert_eq(atomic_load(&board->calls), 0); /* wide_* do not count; nothing else ran */
    free(in);
    free(out);
    finish(pool);
}

/* Items over MPROC_POOL_CHUNK_BYTES, and chunk sizes whose chunks would
 * exceed it, are cut smaller: the results are the same. */
Test(pool_map, chunks_capped_by_bytes_give_the_same_results, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    static const size_t widths[] = {4096, 300 << 10, MPROC_POOL_CHUNK_BYTES + 1};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        size_t wide = widths[w];
        size_t n = wide == 4096 ? 1000 : 6; /* 1000 x 4 KiB: a chunk of 1000 is cut to 256 */
        board->wide = wide;
        unsigned char *in = malloc(n * wide), *out = malloc(n * wide);
        long *idx = malloc(n * sizeof *idx), *res = malloc(n * sizeof *res);
        cr_assert(in != NULL && out != NULL && idx != NULL && res != NULL);
        for (size_t i = 0; i < n; i++) {
            long item = (long)i;
            idx[i] = item;
            memcpy(in + i * wide, &item, sizeof item);
            for (size_t k = sizeof item; k < wide; k++)
                in[i * wide + k] = pattern(item, k);
        }
        size_t chunks[] = {0, n, n * 2};
        for (size_t c = 0; c < 3; c++) {
            size_t bad;
            memset(res, 0xff, n * sizeof *res);
            int rc = mproc_pool_map(pool, wide_in, in, wide, res, sizeof *res, n, chunks[c], &bad);
            cr_assert_eq(rc, 0, "wide %zu chunksize %zu: item %zu code %d", wide, chunks[c], bad,
                         rc);
            memset(out, 0, n * wide);
            rc = mproc_pool_map(pool, wide_out, idx, sizeof *idx, out, wide, n, chunks[c], NULL);
            cr_assert_eq(rc, 0, "wide %zu chunksize %zu", wide, chunks[c]);
            for (size_t i = 0; i < n; i++) {
                cr_assert_eq(res[i], (long)i * 5, "wide %zu item %zu", wide, i);
                for (size_t k = 0; k < wide; k++)
                    if (out[i * wide + k] != pattern((long)i, k))
                        cr_assert_fail("wide %zu item %zu byte %zu", wide, i, k);
            }
        }
        free(in);
        free(out);
        free(idx);
        free(res);
    }
    finish(pool);
}

Test(pool_map, bad_arguments_are_einval_and_n_zero_returns_at_once, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(1);
    long in[1] = {3}, out[1] = {0};
    size_t bad = 7;
    cr_assert_eq(mproc_pool_map(NULL, square, in, 8, out, 8, 1, 0, &bad), EINVAL);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_eq(mproc_pool_map(pool, NULL, in, 8, out, 8, 1, 0, NULL), EINVAL);
    cr_assert_eq(mproc_pool_map(pool, square, NULL, 8, out, 8, 1, 0, NULL), EINVAL);
    cr_assert_eq(mproc_pool_map(pool, square, in, 8, NULL, 8, 1, 0, NULL), EINVAL);
    cr_assert_eq(mproc_pool_apply(NULL, square, in, 8, out, 8), EINVAL);
    cr_assert_eq(mproc_pool_apply(pool, NULL, in, 8, out, 8), EINVAL);
    cr_assert_eq(mproc_pool_apply(pool, square, NULL, 8, out, 8), EINVAL);
    cr_assert_eq(mproc_pool_apply(pool, square, in, 8, NULL, 8), EINVAL);
    mproc_result *r = (mproc_result *)&bad;
    cr_assert_eq(mproc_pool_map_async(pool, square, NULL, 8, out, 8, 1, 0, &r), EINVAL);
    cr_assert_null(r);
    cr_assert_eq(mproc_pool_map_async(pool, square, in, 8, out, 8, 1, 0, NULL), EINVAL);
    cr_assert_eq(mproc_pool_apply_async(pool, NULL, in, 8, out, 8, &r), EINVAL);
    mproc_pool_iter *it = (mproc_pool_iter *)&bad;
    cr_assert_eq(mproc_pool_imap(pool, square, NULL, 8, 8, 1, 0, 0, &it), EINVAL);
    cr_assert_null(it);
    cr_assert_eq(mproc_pool_imap(pool, NULL, in, 8, 8, 1, 0, 0, &it), EINVAL);
    cr_assert_eq(mproc_pool_imap(pool, square, in, 8, 8, 1, 0, 0, NULL), EINVAL);
    cr_assert_eq(atomic_load(&board->calls), 0);

    /* n == 0: NULL buffers with nonzero sizes are fine; ready at once. */
    bad = 7;
    cr_assert_eq(mproc_pool_map(pool, square, NULL, 8, NULL, 8, 0, 0, &bad), 0);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_eq(mproc_pool_map_async(pool, square, NULL, 8, NULL, 8, 0, 0, &r), 0);
    cr_assert_eq(mproc_result_ready(r), 1);
    cr_assert_eq(mproc_result_get(r, 0, &bad), 0);
    int ok = -1;
    cr_assert_eq(mproc_result_successful(r, &ok), 0);
    cr_assert_eq(ok, 1);
    cr_assert_eq(mproc_result_code(r, 0, &ok), ERANGE);
    mproc_result_free(r);
    cr_assert_eq(mproc_pool_imap(pool, square, NULL, 8, 8, 0, 0, 0, &it), 0);
    cr_assert_eq(mproc_pool_iter_next(it, out, NULL, NULL, 0), ENODATA);
    mproc_pool_iter_free(it);
    cr_assert_eq(atomic_load(&board->calls), 0);

    /* The pool still works. */
    cr_assert_eq(mproc_pool_apply(pool, square, in, 8, out, 8), 0);
    cr_assert_eq(out[0], 9);
    finish(pool);
}

/* ---- task codes ---- */

static struct step *steps(size_t n) {
    struct step *s = calloc(n, sizeof *s);
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++)
        s[i].value = (long)i + 1;
    return s;
}

/* Items 30, 31 and 70 fail (70 fast, 30 slow, so 70 is likely finished
 * first); map returns item 30's code and index once everything ran: the
 * outputs of every successful item, after 30 too, are written. */
Test(pool_codes, map_returns_the_lowest_failing_item_after_all_ran, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 100 };
    struct step *in = steps(N);
    in[30] = (struct step){.value = 31, .code = EDOM, .mode = SLOW};
    in[31].code = ERANGE;
    in[70].code = ENOENT;
    static const size_t chunks[] = {0, 1, 7, N};
    for (size_t c = 0; c < 4; c++) {
        long out[N] = {0};
        long calls = atomic_load(&board->calls);
        size_t bad = 7;
        int rc = mproc_pool_map(pool, step, in, sizeof *in, out, sizeof *out, N, chunks[c], &bad);
        cr_assert_eq(rc, EDOM, "chunksize %zu: %s", chunks[c], mproc_strerror(rc));
        cr_assert_eq(bad, 30);
        cr_assert_eq(atomic_load(&board->calls) - calls, N);
        for (size_t i = 0; i < N; i++)
            if (in[i].code == 0)
                cr_assert_eq(out[i], in[i].value * 3, "chunksize %zu item %zu", chunks[c], i);
    }
    free(in);
    finish(pool);
}

Test(pool_codes, result_code_per_item_and_successful, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 40 };
    struct step *in = steps(N);
    for (size_t i = 5; i < N; i += 9)
        in[i].code = 200 + (int)i;
    long out[N];
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, step, in, sizeof *in, out, sizeof *out, N, 3, &r), 0);
    size_t bad = 7;
    cr_assert_eq(mproc_result_get(r, BOUND, &bad), 205);
    cr_assert_eq(bad, 5);
    int ok = -1, code = -1;
    cr_assert_eq(mproc_result_successful(r, &ok), 0);
    cr_assert_eq(ok, 0);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(mproc_result_code(r, i, &code), 0);
        cr_assert_eq(code, in[i].code, "item %zu", i);
    }
    cr_assert_eq(mproc_result_code(r, N, &code), ERANGE);
    cr_assert_eq(mproc_result_code(r, SIZE_MAX, &code), ERANGE);
    cr_assert_eq(mproc_result_code(r, 0, NULL), EINVAL);
    cr_assert_eq(mproc_result_successful(r, NULL), EINVAL);
    mproc_result_free(r);

    /* All succeed: get 0 with SIZE_MAX, successful 1. */
    for (size_t i = 0; i < N; i++)
        in[i].code = 0;
    cr_assert_eq(mproc_pool_map_async(pool, step, in, sizeof *in, out, sizeof *out, N, 0, &r), 0);
    bad = 7;
    cr_assert_eq(mproc_result_get(r, BOUND, &bad), 0);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_eq(mproc_result_successful(r, &ok), 0);
    cr_assert_eq(ok, 1);
    mproc_result_free(r);
    free(in);
    finish(pool);
}

/* A task's own ETIMEDOUT comes back from get like a time-out; ready()
 * tells them apart. */
Test(pool_codes, task_returning_etimedout_is_told_apart_by_ready, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    struct step in[3] = {{.value = 1}, {.value = 2, .code = ETIMEDOUT}, {.value = 3}};
    long out[3];
    size_t bad = 7;
    cr_assert_eq(mproc_pool_map(pool, step, in, sizeof *in, out, sizeof *out, 3, 1, &bad),
                 ETIMEDOUT);
    cr_assert_eq(bad, 1);
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, step, in, sizeof *in, out, sizeof *out, 3, 0, &r), 0);
    cr_assert_eq(mproc_result_wait(r, BOUND), 0);
    cr_assert_eq(mproc_result_get(r, 0, &bad), ETIMEDOUT);
    cr_assert_eq(bad, 1);
    cr_assert_eq(mproc_result_ready(r), 1); /* so the task's, not a time-out */
    mproc_result_free(r);
    cr_assert_eq(mproc_pool_apply(pool, step, &in[1], sizeof *in, out, sizeof *out), ETIMEDOUT);
    finish(pool);
}

/* ---- AsyncResult ---- */

/* get / wait time out (bounded) while a gated task runs; nothing about the
 * outcome is available before ready; then everything is, at once. */
static void check_pending_then_ready(mproc_result *r, size_t n) {
    cr_assert_eq(t_await(&started, BOUND), 's');
    size_t bad = 7;
    double t0 = t_now();
    cr_assert_eq(mproc_result_get(r, 0.1, &bad), ETIMEDOUT);
    double took = t_now() - t0;
    cr_assert(took >= 0.1 && took < 1.0, "get(0.1) took %.3f s", took);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_eq(mproc_result_get(r, 0, NULL), ETIMEDOUT);
    t0 = t_now();
    cr_assert_eq(mproc_result_wait(r, 0.05), ETIMEDOUT);
    took = t_now() - t0;
    cr_assert(took >= 0.05 && took < 1.0, "wait(0.05) took %.3f s", took);
    cr_assert_eq(mproc_result_ready(r), 0);
    int ok = -1, code = -1;
    cr_assert_eq(mproc_result_successful(r, &ok), EINPROGRESS);
    cr_assert_eq(mproc_result_code(r, 0, &code), EINPROGRESS);
    cr_assert_eq(mproc_result_code(r, n, &code), EINPROGRESS);
    cr_assert(ok == -1 && code == -1);

    t_signal(&gate, 'g');
    cr_assert_eq(mproc_result_get(r, BOUND, &bad), 0);
    cr_assert_eq(bad, SIZE_MAX);
    cr_assert_eq(mproc_result_ready(r), 1);
    t0 = t_now();
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(mproc_result_get(r, 0, NULL), 0);
        cr_assert_eq(mproc_result_get(r, MPROC_FOREVER, NULL), 0);
        cr_assert_eq(mproc_result_wait(r, 0), 0);
    }
    took = t_now() - t0;
    cr_assert(took < 0.5, "300 calls after ready took %.3f s", took);
    cr_assert_eq(mproc_result_successful(r, &ok), 0);
    cr_assert_eq(ok, 1);
    cr_assert_eq(mproc_result_code(r, 0, &code), 0);
    cr_assert_eq(code, 0);
    cr_assert_eq(mproc_result_code(r, n, &code), ERANGE);
}

Test(pool_async, apply_async_times_out_while_running_then_is_ready, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    struct step in = {.value = 14, .mode = GATED};
    long out = -1;
    mproc_result *r;
    cr_assert_eq(mproc_pool_apply_async(pool, step, &in, sizeof in, &out, sizeof out, &r), 0);
    in.value = 99; /* inputs were copied at submission */
    check_pending_then_ready(r, 1);
    cr_assert_eq(out, 42);
    mproc_result_free(r);
    cr_assert_eq(mproc_result_ready(NULL), 0);
    cr_assert_eq(mproc_result_get(NULL, 0, NULL), EINVAL);
    cr_assert_eq(mproc_result_wait(NULL, 0), EINVAL);
    finish(pool);
}

Test(pool_async, map_async_times_out_while_running_then_is_ready, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 50 };
    struct step *in = steps(N);
    in[N - 1].mode = GATED;
    long out[N];
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, step, in, sizeof *in, out, sizeof *out, N, 4, &r), 0);
    for (size_t i = 0; i < N; i++)
        in[i].value = -5; /* copied at submission */
    check_pending_then_ready(r, N);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(out[i], 3 * ((long)i + 1), "item %zu", i);
    cr_assert_eq(mproc_result_get(r, NAN, NULL), EINVAL);
    mproc_result_free(r);
    free(in);
    finish(pool);
}

/* apply runs one item in a worker and returns its code, its output written. */
Test(pool_async, apply_returns_the_task_code_and_output, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    struct step in = {.value = 7};
    long out = 0;
    cr_assert_eq(mproc_pool_apply(pool, step, &in, sizeof in, &out, sizeof out), 0);
    cr_assert_eq(out, 21);
    in = (struct step){.value = 8, .code = 77};
    cr_assert_eq(mproc_pool_apply(pool, step, &in, sizeof in, &out, sizeof out), 77);
    cr_assert_eq(atomic_load(&board->calls), 2);
    finish(pool);
}

/* Freed before ready: the work goes on, but `out` is never written again.
 * One worker, so the second map's chunk runs after the first's and its
 * RESULT is handled after the first's: once the second map returned, the
 * freed job's outputs were dropped, and the test's own bytes in `out`
 * prove nothing was copied over them. */
Test(pool_async, result_free_before_ready_drops_outputs_pool_usable, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(1);
    enum { N = 4 };
    struct step *in = steps(N);
    in[0].mode = GATED;
    long out[N];
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, step, in, sizeof *in, out, sizeof *out, N, 1, &r), 0);
    cr_assert_eq(t_await(&started, BOUND), 's');
    mproc_result_free(r); /* item 0 running, 1..3 not begun */
    for (size_t i = 0; i < N; i++)
        out[i] = 1000 + (long)i; /* `out` reused by its owner */
    t_signal(&gate, 'g');
    long sq_in[3] = {4, 5, 6}, sq_out[3];
    cr_assert_eq(mproc_pool_map(pool, square, sq_in, 8, sq_out, 8, 3, 1, NULL), 0);
    cr_assert(sq_out[0] == 16 && sq_out[1] == 25 && sq_out[2] == 36);
    cr_assert_eq(atomic_load(&board->calls), N + 3); /* the freed work still ran */
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(out[i], 1000 + (long)i, "out[%zu] written after the free", i);
    free(in);
    finish(pool);
}

/* ---- imap ---- */

Test(pool_imap, ordered_results_with_codes_then_enodata, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 60 };
    struct step *in = steps(N);
    for (size_t i = 4; i < N; i += 5)
        in[i].code = 300 + (int)i;
    in[7].mode = SLOW;
    static const size_t chunks[] = {0, 1, 4, N};
    for (size_t c = 0; c < 4; c++) {
        mproc_pool_iter *it;
        int rc = mproc_pool_imap(pool, step, in, sizeof *in, sizeof(long), N, chunks[c], 0, &it);
        cr_assert_eq(rc, 0);
        for (size_t i = 0; i < N; i++) {
            long out = -1;
            size_t index = 7777;
            int code = -1;
            cr_assert_eq(mproc_pool_iter_next(it, &out, &index, &code, BOUND), 0);
            cr_assert_eq(index, i, "chunksize %zu", chunks[c]);
            cr_assert_eq(code, in[i].code, "item %zu", i);
            if (code == 0)
                cr_assert_eq(out, in[i].value * 3, "item %zu", i);
        }
        for (int k = 0; k < 3; k++) {
            long out = -1;
            cr_assert_eq(mproc_pool_iter_next(it, &out, NULL, NULL, BOUND), ENODATA);
            cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0), ENODATA);
            cr_assert_eq(out, -1);
        }
        mproc_pool_iter_free(it);
    }
    cr_assert_eq(mproc_pool_iter_next(NULL, NULL, NULL, NULL, 0), EINVAL);
    mproc_pool_iter_free(NULL);
    free(in);
    finish(pool);
}

Test(pool_imap, ordered_next_times_out_while_the_next_item_is_slow, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 4 };
    struct step *in = steps(N);
    in[0].mode = GATED;
    mproc_pool_iter *it;
    cr_assert_eq(mproc_pool_imap(pool, step, in, sizeof *in, sizeof(long), N, 1, 0, &it), 0);
    cr_assert_eq(t_await(&started, BOUND), 's');
    long out = -1;
    size_t index = 7777;
    int code = -1;
    double t0 = t_now();
    cr_assert_eq(mproc_pool_iter_next(it, &out, &index, &code, 0.1), ETIMEDOUT);
    double took = t_now() - t0;
    cr_assert(took >= 0.1 && took < 1.0, "next(0.1) took %.3f s", took);
    cr_assert_eq(mproc_pool_iter_next(it, &out, &index, &code, 0), ETIMEDOUT);
    cr_assert(out == -1 && index == 7777 && code == -1);
    t_signal(&gate, 'g');
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(mproc_pool_iter_next(it, &out, &index, &code, BOUND), 0);
        cr_assert(index == i && code == 0 && out == 3 * ((long)i + 1), "item %zu", i);
    }
    cr_assert_eq(mproc_pool_iter_next(it, &out, &index, &code, 0), ENODATA);
    mproc_pool_iter_free(it);
    free(in);
    finish(pool);
}

Test(pool_imap, unordered_delivers_every_index_once, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 300 };
    struct step *in = steps(N);
    for (size_t i = 0; i < N; i += 11)
        in[i].code = 400 + (int)i;
    static const size_t chunks[] = {0, 7};
    for (size_t c = 0; c < 2; c++) {
        mproc_pool_iter *it;
        cr_assert_eq(mproc_pool_imap(pool, step, in, sizeof *in, sizeof(long), N, chunks[c],
                                     MPROC_IMAP_UNORDERED, &it),
                     0);
        unsigned char seen[N] = {0};
        for (size_t k = 0; k < N; k++) {
            long out = -1;
            size_t i = 7777;
            int code = -1;
            cr_assert_eq(mproc_pool_iter_next(it, &out, &i, &code, BOUND), 0);
            cr_assert(i < N && !seen[i], "index %zu twice or out of range", i);
            seen[i] = 1;
            cr_assert_eq(code, in[i].code, "item %zu", i);
            if (code == 0)
                cr_assert_eq(out, in[i].value * 3, "item %zu", i);
        }
        cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, BOUND), ENODATA);
        cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0), ENODATA);
        mproc_pool_iter_free(it);
    }
    free(in);
    finish(pool);
}

/* Item 0 waits until the test has received every other item: completion
 * order puts it last.  As many items as workers, so no fast item can be
 * queued behind item 0 on its worker: an idle worker must get it. */
static void unordered_slow_first_comes_last(unsigned workers) {
    prepare();
    mproc_pool *pool = make_pool(workers);
    size_t n = workers;
    struct step *in = steps(n);
    in[0].mode = GATED;
    mproc_pool_iter *it;
    cr_assert_eq(mproc_pool_imap(pool, step, in, sizeof *in, sizeof(long), n, 1,
                                 MPROC_IMAP_UNORDERED, &it),
                 0);
    cr_assert_eq(t_await(&started, BOUND), 's');
    for (size_t k = 1; k < n; k++) {
        size_t i = 7777;
        int rc = mproc_pool_iter_next(it, NULL, &i, NULL, 5.0);
        cr_assert_eq(rc, 0, "%zu of %zu fast items delivered while item 0 runs: %s", k - 1,
                     n - 1, mproc_strerror(rc));
        cr_assert_neq(i, 0);
    }
    t_signal(&gate, 'g');
    size_t i = 7777;
    long out = -1;
    cr_assert_eq(mproc_pool_iter_next(it, &out, &i, NULL, BOUND), 0);
    cr_assert(i == 0 && out == 3);
    cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0), ENODATA);
    mproc_pool_iter_free(it);
    free(in);
    finish(pool);
}

Test(pool_imap, unordered_slow_item_0_comes_last_two_workers, .timeout = TEST_TIMEOUT) {
    unordered_slow_first_comes_last(2);
}

Test(pool_imap, unordered_slow_item_0_comes_last_four_workers, .timeout = TEST_TIMEOUT) {
    unordered_slow_first_comes_last(4);
}

Test(pool_imap, unknown_flags_einval_null_out_skips_the_copy, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    long in[5] = {1, 2, 3, 4, 5};
    mproc_pool_iter *it = (mproc_pool_iter *)in;
    cr_assert_eq(mproc_pool_imap(pool, square, in, 8, 8, 5, 0, 2u, &it), EINVAL);
    cr_assert_null(it);
    cr_assert_eq(mproc_pool_imap(pool, square, in, 8, 8, 5, 0, MPROC_IMAP_UNORDERED | 4u, &it),
                 EINVAL);
    cr_assert_eq(atomic_load(&board->calls), 0);
    cr_assert_eq(mproc_pool_imap(pool, square, in, 8, 8, 5, 0, 0, &it), 0);
    for (size_t i = 0; i < 5; i++) {
        size_t index = 7777;
        int code = -1;
        cr_assert_eq(mproc_pool_iter_next(it, NULL, &index, &code, BOUND), 0);
        cr_assert(index == i && code == 0);
    }
    cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0), ENODATA);
    mproc_pool_iter_free(it);
    cr_assert_eq(atomic_load(&board->calls), 5);
    finish(pool);
}

/* Freed with items delivered, finished and not begun (one gated): the
 * work goes on and the pool stays usable. */
Test(pool_imap, iter_free_midway_is_safe, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    enum { N = 100 };
    struct step *in = steps(N);
    in[20].mode = GATED;
    for (unsigned flags = 0; flags <= MPROC_IMAP_UNORDERED; flags++) {
        mproc_pool_iter *it;
        cr_assert_eq(mproc_pool_imap(pool, step, in, sizeof *in, sizeof(long), N, 1, flags, &it),
                     0);
        for (size_t k = 0; k < 10; k++)
            cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, BOUND), 0);
        cr_assert_eq(t_await(&started, BOUND), 's');
        mproc_pool_iter_free(it);
        t_signal(&gate, 'g');
        long sq_in[2] = {9, 10}, sq_out[2];
        cr_assert_eq(mproc_pool_map(pool, square, sq_in, 8, sq_out, 8, 2, 1, NULL), 0);
        cr_assert(sq_out[0] == 81 && sq_out[1] == 100);
    }
    free(in);
    finish(pool);
}

/* ---- work spreads over idle workers ---- */

/* Waits until `k` gated tasks began, each within 5 s. */
static int gated_started(int k) {
    for (int i = 0; i < k; i++)
        if (t_await(&started, 5.0) != 's')
            return i;
    return k;
}

/* Two apply_async on two idle workers run at the same time (Python's
 * Pool runs them on both): the second need not wait for the first. */
Test(pool_spread, two_apply_async_run_at_once_on_two_workers, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    struct step in[2] = {{.value = 1, .mode = GATED}, {.value = 2, .mode = GATED}};
    long out[2] = {0, 0};
    mproc_result *r[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(mproc_pool_apply_async(pool, step, &in[i], sizeof in[i], &out[i], 8, &r[i]),
                     0);
    int began = gated_started(2);
    t_signal(&gate, 'g');
    t_signal(&gate, 'g');
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mproc_result_get(r[i], BOUND, NULL), 0);
        mproc_result_free(r[i]);
    }
    cr_assert(out[0] == 3 && out[1] == 6);
    cr_assert_eq(began, 2, "only %d of 2 tasks ran while both workers were idle", began);
    finish(pool);
}

/* After much fast work (the scheduler then queues many chunks per
 * worker), 4 slow one-item chunks on 2 workers still run 2 at a time. */
Test(pool_spread, slow_items_after_fast_work_use_every_worker, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    map_squares(pool, 3000, 1);
    enum { N = 4 };
    struct step *in = steps(N);
    for (size_t i = 0; i < N; i++)
        in[i].mode = GATED;
    long out[N];
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, step, in, sizeof *in, out, sizeof *out, N, 1, &r), 0);
    int began = gated_started(2);
    for (size_t i = 0; i < N; i++)
        t_signal(&gate, 'g');
    cr_assert_eq(mproc_result_get(r, BOUND, NULL), 0);
    mproc_result_free(r);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(out[i], 3 * ((long)i + 1));
    cr_assert_eq(began, 2, "only %d of 2 workers got a slow item", began);
    free(in);
    finish(pool);
}

/* ---- several threads at once ---- */

struct submitter {
    mproc_pool *pool;
    long id;
    int wrong; /* maps with a wrong code or output */
};

static void *submit_maps(void *arg) {
    struct submitter *t = arg;
    enum { N = 64 };
    long in[N], out[N];
    for (long k = 0; k < 50; k++) {
        size_t n = (size_t)(1 + (t->id * 13 + k * 7) % N);
        for (size_t i = 0; i < n; i++) {
            in[i] = t->id * 1000000 + k * 1000 + (long)i;
            out[i] = -1;
        }
        size_t bad = 7;
        int rc = mproc_pool_map(t->pool, square, in, 8, out, 8, n, (size_t)k % 4, &bad);
        bool right = rc == 0 && bad == SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            right = right && out[i] == in[i] * in[i];
        t->wrong += !right;
    }
    return NULL;
}

Test(pool_threads, four_threads_map_at_once_all_correct, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    struct submitter t[4];
    pthread_t th[4];
    for (long i = 0; i < 4; i++) {
        t[i] = (struct submitter){.pool = pool, .id = i + 1};
        cr_assert_eq(pthread_create(&th[i], NULL, submit_maps, &t[i]), 0);
    }
    long expect_calls = 0;
    for (long i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(t[i].wrong, 0, "thread %ld", i);
        for (long k = 0; k < 50; k++)
            expect_calls += 1 + ((i + 1) * 13 + k * 7) % 64;
    }
    cr_assert_eq(atomic_load(&board->calls), expect_calls);
    finish(pool);
}

/* ---- where tasks run ---- */

static bool among(int pid, const int *pids, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

Test(pool_workers, tasks_run_in_named_workers_of_the_pool, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(3);
    cr_assert_eq(mproc_pool_workers(pool), 3);
    cr_assert_eq(mproc_pool_workers(NULL), 0);
    enum { N = 60 };
    struct who *out = calloc(N, sizeof *out);
    cr_assert_not_null(out);
    cr_assert_eq(mproc_pool_map(pool, whoami, NULL, 0, out, sizeof *out, N, 1, NULL), 0);
    int pids[4] = {-1, -1, -1, -1};
    unsigned count = 0;
    cr_assert_eq(mproc_pool_worker_pids(pool, pids, 4, &count), 0);
    cr_assert_eq(count, 3);
    cr_assert_eq(pids[3], -1); /* only `count` written */
    for (unsigned i = 0; i < 3; i++) {
        cr_assert(pids[i] > 0 && pids[i] != getpid(), "pid %d", pids[i]);
        for (unsigned j = 0; j < i; j++)
            cr_assert_neq(pids[i], pids[j]);
    }
    for (size_t i = 0; i < N; i++) {
        cr_assert(strncmp(out[i].name, "PoolWorker-", 11) == 0, "item %zu ran in '%s'", i,
                  out[i].name);
        cr_assert_neq(out[i].pid, getpid());
        cr_assert(among(out[i].pid, pids, 3), "item %zu ran in pid %d", i, out[i].pid);
    }
    cr_assert_eq(mproc_pool_worker_pids(pool, NULL, 0, &count), 0);
    cr_assert_eq(mproc_pool_worker_pids(pool, NULL, 1, &count), EINVAL);
    cr_assert_eq(mproc_pool_worker_pids(pool, pids, 4, NULL), EINVAL);
    free(out);
    finish(pool);
}

Test(pool_workers, default_size_is_cpu_count, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = NULL;
    cr_assert_eq(mproc_pool_create(&pool, NULL), 0);
    unsigned cpus = (unsigned)mproc_cpu_count();
    cr_assert_eq(mproc_pool_workers(pool), cpus);
    long in = 6, out = 0;
    cr_assert_eq(mproc_pool_apply(pool, square, &in, 8, &out, 8), 0);
    cr_assert_eq(out, 36);
    unsigned count = 0;
    cr_assert_eq(mproc_pool_worker_pids(pool, NULL, 0, &count), 0);
    cr_assert_eq(count, cpus);
    finish(pool);
}

/* ---- a forked child's copy ---- */

Test(pool_fork, handle_in_a_forked_child_is_echild, .timeout = TEST_TIMEOUT) {
    prepare();
    mproc_pool *pool = make_pool(2);
    long in = 3, out = 0;
    cr_assert_eq(mproc_pool_apply(pool, square, &in, 8, &out, 8), 0);
    pid_t child = t_fork();
    if (child == 0) {
        /* No cr_assert here: the exit code names the first call that was
         * not ECHILD. */
        mproc_result *r;
        mproc_pool_iter *it;
        unsigned count;
        int pids[2];
        mproc_pool_stats st;
        int rcs[] = {
            mproc_pool_map(pool, square, &in, 8, &out, 8, 1, 0, NULL),
            mproc_pool_map_async(pool, square, &in, 8, &out, 8, 1, 0, &r),
            mproc_pool_apply(pool, square, &in, 8, &out, 8),
            mproc_pool_apply_async(pool, square, &in, 8, &out, 8, &r),
            mproc_pool_imap(pool, square, &in, 8, 8, 1, 0, 0, &it),
            mproc_pool_close(pool),
            mproc_pool_terminate(pool),
            mproc_pool_join(pool, 0),
            mproc_pool_join(pool, BOUND),
            mproc_pool_worker_pids(pool, pids, 2, &count),
            mproc_pool_get_stats(pool, &st),
        };
        for (int i = 0; i < (int)(sizeof rcs / sizeof rcs[0]); i++)
            if (rcs[i] != ECHILD)
                _exit(1 + i);
        _exit(0);
    }
    cr_assert_eq(t_exit_code(child, BOUND), 0);
    /* The parent's pool is untouched by the child's calls. */
    cr_assert_eq(mproc_pool_apply(pool, square, &in, 8, &out, 8), 0);
    cr_assert_eq(out, 9);
    finish(pool);
}
