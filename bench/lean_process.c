/* SPDX-License-Identifier: MIT */
/*
 * mproc-bench-lean: the loops of process_start_join, pool_map_tiny and
 * pool_create_teardown, in a program linked with nothing but libmproc and
 * libc.  A fork copies the forking process's mappings; mproc-bench itself
 * carries every peer's libraries (libzmq alone brings ~15), which made a
 * bare fork there twice as slow as in a small program, and would measure
 * our link line instead of mproc.
 *
 *   mproc-bench-lean MODE N
 *
 * prints "SECONDS A B" and exits 0, or prints a reason on stderr and exits 1.
 *   mproc, fork_waitpid   N starts + joins; A, B: minor page faults per start
 *                         in the children and in this process
 *   pool_create           N pool creates + close + join + free (2 workers);
 *                         A, B: CPU microseconds per pool of the workers and
 *                         of this process (all its threads)
 *   pool_map, pool_map_chunk1
 *                         ceil(N / POOL_MAP_ITEMS) maps of POOL_MAP_ITEMS
 *                         items (x * 2) on one 2-worker pool, at chunksize 0
 *                         or 1; A, B: CPU nanoseconds per item of the two
 *                         workers together and of this process (all its
 *                         threads), while the maps ran
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#define POOL_MAP_ITEMS 100000 /* bench_pool.c counts the same */
#define POOL_WORKERS 2

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double clock_s(clockid_t clock) {
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double faults(int who) {
    struct rusage ru;
    return getrusage(who, &ru) == 0 ? (double)ru.ru_minflt : 0;
}

static double cpu_s(int who) {
    struct rusage ru;
    if (getrusage(who, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* ---- process_start_join ---- */

static int returns_at_once(void *arg) {
    (void)arg;
    return 0;
}

static int one_mproc(void) {
    mproc_process *p;
    int rc = mproc_process_create(&p, returns_at_once, NULL, NULL);
    if (rc == 0 && (rc = mproc_process_start(p)) == 0 &&
        (rc = mproc_process_join(p, MPROC_FOREVER)) == 0 && mproc_process_exitcode(p) != 0)
        rc = EIO;
    if (p != NULL)
        mproc_process_close(p);
    if (rc != 0)
        fprintf(stderr, "mproc start/join: %s\n", mproc_errname(rc));
    return rc;
}

static int one_fork(void) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "waitpid: %s\n", strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child status %#x\n", (unsigned)status);
        return -1;
    }
    return 0;
}

/* ---- pool_create_teardown ---- */

/* A pool of two workers that does nothing; the stats prove that both
 * workers really were forked (creation forks them asynchronously) and
 * exited cleanly. */
static int one_pool(void) {
    mproc_pool *pool;
    mproc_pool_options opts = {.workers = POOL_WORKERS};
    mproc_pool_stats stats = {0};
    int rc = mproc_pool_create(&pool, &opts);
    if (rc != 0) {
        fprintf(stderr, "mproc_pool_create: %s\n", mproc_errname(rc));
        return rc;
    }
    if ((rc = mproc_pool_close(pool)) == 0 && (rc = mproc_pool_join(pool, MPROC_FOREVER)) == 0)
        rc = mproc_pool_get_stats(pool, &stats);
    mproc_pool_free(pool);
    if (rc != 0 || stats.started != POOL_WORKERS || stats.died != 0) {
        fprintf(stderr, "pool close/join: %s; %llu workers started, %llu died\n",
                mproc_errname(rc), stats.started, stats.died);
        return rc != 0 ? rc : EIO;
    }
    return 0;
}

/* Runs one() n times.  A and B, per run: with `cpu`, CPU microseconds of
 * the children (reaped ones) and of this process; else minor faults. */
static int loop(long n, int (*one)(void), bool cpu, double figures[3]) {
    double (*count)(int) = cpu ? cpu_s : faults;
    double scale = cpu ? 1e6 / (double)n : 1 / (double)n;
    double child0 = count(RUSAGE_CHILDREN), self0 = count(RUSAGE_SELF);
    double t0 = now();
    for (long i = 0; i < n; i++)
        if (one() != 0)
            return 1;
    figures[0] = now() - t0;
    figures[1] = (count(RUSAGE_CHILDREN) - child0) * scale;
    figures[2] = (count(RUSAGE_SELF) - self0) * scale;
    return 0;
}

/* ---- pool_map_tiny ---- */

static long map_in[POOL_MAP_ITEMS], map_out[POOL_MAP_ITEMS];

static int twice(const void *in, void *out) {
    *(long *)out = *(const long *)in * 2;
    return 0;
}

/* One map, timed alone: the outputs are poisoned before it and checked
 * after it, both outside the clock, so every map's result is verified. */
static int map_once(mproc_pool *pool, size_t chunksize, double *seconds, double *cpu) {
    memset(map_out, 0xff, sizeof map_out);
    size_t bad;
    double cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t0 = now();
    int rc = mproc_pool_map(pool, twice, map_in, sizeof *map_in, map_out, sizeof *map_out,
                            POOL_MAP_ITEMS, chunksize, &bad);
    double t1 = now();
    *seconds += t1 - t0;
    *cpu += clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    if (rc != 0) {
        fprintf(stderr, "mproc_pool_map: %s (item %zu)\n", mproc_errname(rc), bad);
        return -1;
    }
    for (long i = 0; i < POOL_MAP_ITEMS; i++)
        if (map_out[i] != 2 * i) {
            fprintf(stderr, "item %ld: %ld, not %ld\n", i, map_out[i], 2 * i);
            return -1;
        }
    return 0;
}

/* The CPU seconds the pool's workers used so far. */
static double workers_cpu(mproc_pool *pool) {
    int pids[POOL_WORKERS];
    unsigned count;
    double sum = 0;
    if (mproc_pool_worker_pids(pool, pids, POOL_WORKERS, &count) != 0)
        return 0;
    for (unsigned i = 0; i < POOL_WORKERS; i++) {
        clockid_t clock;
        if (pids[i] > 0 && clock_getcpuclockid(pids[i], &clock) == 0)
            sum += clock_s(clock);
    }
    return sum;
}

/* The pool is created and warmed up by one map (its workers forked and
 * running) outside the clock, as a Python program reuses its Pool. */
static int map_loop(long n, size_t chunksize, double figures[3]) {
    long maps = (n + POOL_MAP_ITEMS - 1) / POOL_MAP_ITEMS;
    for (long i = 0; i < POOL_MAP_ITEMS; i++)
        map_in[i] = i;
    mproc_pool *pool;
    mproc_pool_options opts = {.workers = POOL_WORKERS};
    int rc = mproc_pool_create(&pool, &opts);
    if (rc != 0) {
        fprintf(stderr, "mproc_pool_create: %s\n", mproc_errname(rc));
        return 1;
    }
    double warm_seconds = 0, warm_cpu = 0;
    int failed = map_once(pool, chunksize, &warm_seconds, &warm_cpu) != 0;
    double seconds = 0, cpu = 0, workers0 = workers_cpu(pool);
    for (long m = 0; m < maps && !failed; m++)
        failed = map_once(pool, chunksize, &seconds, &cpu) != 0;
    double workers = workers_cpu(pool) - workers0;
    mproc_pool_free(pool);
    double items = (double)maps * POOL_MAP_ITEMS;
    figures[0] = seconds;
    figures[1] = workers / items * 1e9;
    figures[2] = cpu / items * 1e9;
    return failed;
}

int main(int argc, char **argv) {
    long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    const char *mode = argc == 3 ? argv[1] : "";
    double figures[3];
    int rc;
    alarm(120); /* bounded, like every bench child */
    if (n <= 0)
        rc = -1;
    else if (strcmp(mode, "mproc") == 0)
        rc = loop(n, one_mproc, false, figures);
    else if (strcmp(mode, "fork_waitpid") == 0)
        rc = loop(n, one_fork, false, figures);
    else if (strcmp(mode, "pool_create") == 0)
        rc = loop(n, one_pool, true, figures);
    else if (strcmp(mode, "pool_map") == 0)
        rc = map_loop(n, 0, figures);
    else if (strcmp(mode, "pool_map_chunk1") == 0)
        rc = map_loop(n, 1, figures);
    else
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "usage: mproc-bench-lean mproc|fork_waitpid|pool_create|pool_map|"
                        "pool_map_chunk1 N\n");
    if (rc != 0)
        return 1;
    printf("%.9f %.3f %.3f\n", figures[0], figures[1], figures[2]);
    return 0;
}
