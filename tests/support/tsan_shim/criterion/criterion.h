/* SPDX-License-Identifier: MIT */
/*
 * A Criterion-compatible subset for the ThreadSanitizer build.  Criterion
 * 2.4 cannot start under TSan (its boxfort "inheritable arena" mapping fails
 * inside TSan's address layout), so the TSan build compiles the same
 * thread-mode test sources against this header and shim_runner.c instead:
 * each Test() runs in its own forked process with a time limit, as under
 * Criterion.  Only what the thread-mode tests use is provided.
 */
#ifndef MPROC_TSAN_SHIM_CRITERION_H
#define MPROC_TSAN_SHIM_CRITERION_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void shim_register(const char *suite, const char *name, void (*fn)(void));
__attribute__((noreturn)) void shim_fail(const char *file, int line, const char *expr,
                                         const char *fmt, ...);
__attribute__((noreturn)) void shim_skip(const char *why);

#define Test(suite, name, ...)                                                             \
    static void suite##_##name##_impl(void);                                               \
    __attribute__((constructor)) static void suite##_##name##_register(void) {             \
        shim_register(#suite, #name, suite##_##name##_impl);                               \
    }                                                                                      \
    static void suite##_##name##_impl(void)

#define SHIM_CHECK(cond, expr, ...)                                                        \
    do {                                                                                   \
        if (!(cond))                                                                       \
            shim_fail(__FILE__, __LINE__, expr, "" __VA_ARGS__);                           \
    } while (0)

#define cr_assert(c, ...) SHIM_CHECK((c), #c, __VA_ARGS__)
#define cr_assert_not(c, ...) SHIM_CHECK(!(c), "!(" #c ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) SHIM_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) SHIM_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) SHIM_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) SHIM_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) SHIM_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) SHIM_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) SHIM_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) SHIM_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) SHIM_CHECK(strcmp((a), (b)) == 0, #a " eq " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) SHIM_CHECK(strcmp((a), (b)) != 0, #a " neq " #b, __VA_ARGS__)
#define cr_assert_fail(...) shim_fail(__FILE__, __LINE__, "cr_assert_fail", "" __VA_ARGS__)
#define cr_skip_test(...) shim_skip("" __VA_ARGS__)

#endif
