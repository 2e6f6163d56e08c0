/* SPDX-License-Identifier: MIT */
/* The runner behind tsan_shim/criterion/criterion.h: runs every registered
 * test in a forked child with a time limit, prints one line per test and a
 * Criterion-style synthesis, and exits non-zero if any test failed. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 256
#define TEST_TIME_LIMIT 60 /* seconds, like a Criterion .timeout */

static struct {
    const char *suite, *name;
    void (*fn)(void);
} tests[MAX_TESTS];
static int ntests;

void shim_register(const char *suite, const char *name, void (*fn)(void)) {
    if (ntests < MAX_TESTS)
        tests[ntests++] = (__typeof__(tests[0])){suite, name, fn};
}

void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
    fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n", file, line, expr);
    if (fmt[0] != '\0') {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "[----]   ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    _exit(1);
}

void shim_skip(const char *why) {
    fprintf(stderr, "[SKIP] %s\n", why);
    _exit(77);
}

int main(void) {
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < ntests; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(TEST_TIME_LIMIT);
            tests[i].fn();
            fflush(NULL);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        const char *verdict;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            verdict = "PASS";
            passed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            verdict = "SKIP";
            skipped++;
        } else {
            verdict = "FAIL";
            failed++;
        }
        printf("[%s] %s::%s\n", verdict, tests[i].suite, tests[i].name);
    }
    printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0 | Skipped: %d\n",
           ntests, passed, failed, skipped);
    return failed == 0 && ntests > 0 ? 0 : 1;
}
