/* SPDX-License-Identifier: MIT */
/*
 * mproc_pool's lifecycle, options and worker deaths, with exact codes and
 * counts: create's checks (EPERM in a daemon), close / join / terminate /
 * free in every order, the initializer (once per worker, before its tasks;
 * failing, exiting, killed), max_tasks_per_child, a worker dying inside a
 * task (SIGKILL, _exit, exit, SIGSEGV) with and without retries, a worker
 * killed while idle, and what a process's exit or death does to its pool.
 *
 * Workers are forked by the pool, so everything a task or an initializer
 * reads (`cfg`, the `bd` pointer) is set before mproc_pool_create, and
 * they report through `bd`, MAP_SHARED memory, never by cr_assert.  Exact
 * stats are read after close + join: a death is counted and its
 * replacement forked by the pool's threads, which may still be at it when
 * the map that saw the death returns.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0         /* seconds: no wait here may take longer */
#define PROMPT 2.0         /* "at once", on a loaded 2-vCPU machine */
#define NMAX 64            /* items of one test, at most */
#define NOT_INITIALIZED 77 /* a task's code: its worker's initializer had not run */
#define INIT_DEATHS_MAX 10 /* scheduler.c: initializers dying in a row before INIT_FAILED */

/* What tasks and initializers did, in shared memory (fresh per test). */
struct board {
    _Atomic int runs[NMAX];      /* per item: times its task began */
    _Atomic int pid[NMAX];       /* per item: the worker that last began it */
    _Atomic int inits;           /* initializer runs */
    _Atomic int init_pid[NMAX];  /* their workers, in order */
    _Atomic int init_arg;        /* what the initializer found behind initarg */
    _Atomic int blocked;         /* tasks that began blocking */
    _Atomic int release;         /* 1: blocked tasks and initializers return */
    _Atomic int armed;           /* 1: the next once-only trap fires (and disarms) */
    _Atomic int trap_pid;        /* the worker caught in the initializer's trap */
    _Atomic int child_pids[2];   /* the workers of a forked test child's pool */
};
static struct board *bd;

enum death { BY_SIGKILL, BY_EXIT0, BY_EXIT5, BY_SEGV };

/* The tasks' and initializers' settings (see fresh()). */
static struct {
    long kill_item;  /* the item whose task kills its worker; -1: none */
    bool every_time; /* on every run; else once, while bd->armed */
    enum death death;
    long block_from; /* items from here block until bd->release */
    bool check_init; /* tasks fail with NOT_INITIALIZED before the initializer */
    int init_rc;     /* what the initializer returns */
    bool init_exit;  /* the initializer _exits(3) */
    bool init_trap;  /* the first initializer blocks (bd->armed) */
} cfg;

static int initialized_here; /* per process: set by the initializer */
static int init_arg_value = 1234;

/* LeakSanitizer's hook (sanitizer/lsan_interface.h), asked at exit: a
 * worker that exit()s from inside a task leaves its pool's memory behind by
 * design; without this its leak report would turn exit(5) into exit(23). */
int __lsan_is_turned_off(void);
static int lsan_off;
__attribute__((visibility("default"))) int __lsan_is_turned_off(void) {
    return lsan_off;
}

static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Call first in every test, before any pool exists. */
static void fresh(void) {
    bd = t_shared(sizeof *bd);
    cfg.kill_item = -1;
    cfg.every_time = false;
    cfg.death = BY_SIGKILL;
    cfg.block_from = LONG_MAX;
    cfg.check_init = false;
    cfg.init_rc = 0;
    cfg.init_exit = cfg.init_trap = false;
}

/* ---- in the workers ---- */

/* Blocks until bd->release, BOUND at most (so nothing outlives a failed test). */
static void hold(void) {
    double end = t_now() + BOUND;
    while (atomic_load(&bd->release) == 0 && t_now() < end)
        nap(0.001);
}

static void die(enum death how) {
    switch (how) {
    case BY_SIGKILL:
        raise(SIGKILL);
        break;
    case BY_EXIT0:
        _exit(0);
    case BY_EXIT5:
        lsan_off = 1;
        exit(5);
    case BY_SEGV:
        /* A plain death by SIGSEGV: no sanitizer handler (it would exit(1)),
         * no core file. */
        setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
        break;
    }
}

/* The task of every test: counts its run, maybe dies or blocks (cfg), then
 * squares its item, the item's index. */
static int work(const void *in, void *out) {
    long i = *(const long *)in;
    atomic_fetch_add(&bd->runs[i], 1);
    atomic_store(&bd->pid[i], (int)getpid());
    if (i == cfg.kill_item && (cfg.every_time || atomic_exchange(&bd->armed, 0) != 0))
        die(cfg.death);
    if (i >= cfg.block_from) {
        atomic_fetch_add(&bd->blocked, 1);
        hold();
    }
    *(long *)out = i * i;
    return cfg.check_init && !initialized_here ? NOT_INITIALIZED : 0;
}

static int init(void *arg) {
    int n = atomic_fetch_add(&bd->inits, 1);
    if (n < NMAX)
        atomic_store(&bd->init_pid[n], (int)getpid());
    atomic_store(&bd->init_arg, *(const int *)arg);
    if (cfg.init_exit)
        _exit(3);
    if (cfg.init_trap && atomic_exchange(&bd->armed, 0) != 0) {
        atomic_store(&bd->trap_pid, (int)getpid());
        hold(); /* until SIGKILLed */
    }
    initialized_here = 1;
    return cfg.init_rc;
}

/* ---- helpers ---- */

static mproc_pool *make_pool(unsigned workers, unsigned max_tasks, unsigned retries,
                             bool with_init) {
    mproc_pool_options opts = {.workers = workers,
                               .max_tasks_per_child = max_tasks,
                               .retries = retries,
                               .initializer = with_init ? init : NULL,
                               .initarg = &init_arg_value};
    fflush(NULL); /* a worker's exit() must not write our buffers again */
    mproc_pool *pool = NULL;
    int rc = mproc_pool_create(&pool, &opts);
    cr_assert_eq(rc, 0, "create: %s", mproc_strerror(rc));
    cr_assert_not_null(pool);
    return pool;
}

static void indices(long *in, size_t n) {
    for (size_t i = 0; i < n; i++)
        in[i] = (long)i;
}

/* close, join (bounded), the final stats, free. */
static mproc_pool_stats shut(mproc_pool *pool) {
    cr_assert_eq(mproc_pool_close(pool), 0);
    cr_assert_eq(mproc_pool_join(pool, BOUND), 0);
    mproc_pool_stats st;
    cr_assert_eq(mproc_pool_get_stats(pool, &st), 0);
    mproc_pool_free(pool);
    return st;
}

/* The workers' pids, once every slot has one (the first workers are forked
 * by the pool's thread a moment after create returned). */
static void pids_of(mproc_pool *pool, int *pids, unsigned n) {
    double end = t_now() + BOUND;
    for (;;) {
        unsigned count = 0, have = 0;
        cr_assert_eq(mproc_pool_worker_pids(pool, pids, n, &count), 0);
        cr_assert_eq(count, n);
        for (unsigned i = 0; i < n; i++)
            have += pids[i] > 0;
        if (have == n)
            return;
        cr_assert_lt(t_now(), end, "every slot has a worker within the bound");
        nap(0.001);
    }
}

/* mproc_pool_map with a bound: ETIMEDOUT if not done within BOUND. */
static int map_for(mproc_pool *pool, const long *in, long *out, size_t n, size_t chunksize,
                   size_t *failed_index) {
    mproc_result *r;
    int rc = mproc_pool_map_async(pool, work, in, sizeof *in, out, sizeof *out, n, chunksize, &r);
    if (rc != 0)
        return rc;
    rc = mproc_result_get(r, BOUND, failed_index);
    if (!mproc_result_ready(r))
        rc = ETIMEDOUT;
    mproc_result_free(r);
    return rc;
}

/* Waits (bounded) until *v >= n. */
static bool reaches(_Atomic int *v, int n) {
    double end = t_now() + BOUND;
    while (atomic_load(v) < n && t_now() < end)
        nap(0.001);
    return atomic_load(v) >= n;
}

/* The process is gone: reaped, not even a zombie. */
static bool reaped(pid_t pid) {
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* ---- create ---- */

Test(pool_lifecycle, create_refuses_bad_arguments_with_einval) {
    fresh();
    cr_assert_eq(mproc_pool_create(NULL, NULL), EINVAL);
    mproc_pool *pool = (mproc_pool *)&pool; /* create must reset it */
    for (int i = 0; i < 5; i++) {
        mproc_pool_options opts = {.workers = 1};
        opts.reserved[i] = 1;
        cr_assert_eq(mproc_pool_create(&pool, &opts), EINVAL, "reserved[%d]", i);
        cr_assert_null(pool);
    }
    mproc_pool_options too_many = {.workers = MPROC_POOL_MAX_WORKERS + 1};
    cr_assert_eq(mproc_pool_create(&pool, &too_many), EINVAL);
    too_many.workers = UINT_MAX;
    cr_assert_eq(mproc_pool_create(&pool, &too_many), EINVAL);
    cr_assert_null(pool);

    /* NULL options: mproc_cpu_count() workers. */
    cr_assert_eq(mproc_pool_create(&pool, NULL), 0);
    cr_assert_eq(mproc_pool_workers(pool), (unsigned)mproc_cpu_count());
    mproc_pool_stats st = shut(pool);
    cr_assert_eq(st.workers, (unsigned)mproc_cpu_count());
    cr_assert_eq(st.died, 0);
}

static int create_a_pool(void *arg) {
    (void)arg;
    mproc_pool *pool = (mproc_pool *)&pool;
    int rc = mproc_pool_create(&pool, &(mproc_pool_options){.workers = 1});
    if (rc == 0)
        mproc_pool_free(pool);
    else if (pool != NULL)
        return 100;
    return rc;
}

static int exitcode_of_child(unsigned flags) {
    mproc_process *p = NULL;
    mproc_process_options opts = {.flags = flags};
    cr_assert_eq(mproc_process_create(&p, create_a_pool, NULL, &opts), 0);
    fflush(NULL);
    cr_assert_eq(mproc_process_start(p), 0);
    cr_assert_eq(mproc_process_join(p, BOUND), 0);
    int code = mproc_process_exitcode(p);
    mproc_process_close(p);
    return code;
}

Test(pool_lifecycle, create_in_a_daemon_process_is_eperm) {
    fresh();
    /* A daemon may not have children, so its pool could have no workers. */
    cr_assert_eq(exitcode_of_child(MPROC_PROCESS_DAEMON), EPERM);
    cr_assert_eq(exitcode_of_child(MPROC_PROCESS_NOT_DAEMON), 0);
}

/* ---- close and join ---- */

Test(pool_lifecycle, work_after_close_is_refused_with_closed, .timeout = 30) {
    fresh();
    mproc_pool *pool = make_pool(2, 0, 0, false);
    cr_assert_eq(mproc_pool_close(pool), 0);
    long in[4], out[4];
    indices(in, 4);
    size_t bad = 0;
    cr_assert_eq(mproc_pool_map(pool, work, in, sizeof *in, out, sizeof *out, 4, 0, &bad),
                 MPROC_E_CLOSED);
    cr_assert_eq(bad, SIZE_MAX);
    mproc_result *r = (mproc_result *)&r;
    cr_assert_eq(mproc_pool_map_async(pool, work, in, sizeof *in, out, sizeof *out, 4, 0, &r),
                 MPROC_E_CLOSED);
    cr_assert_null(r);
    cr_assert_eq(mproc_pool_apply(pool, work, in, sizeof *in, out, sizeof *out), MPROC_E_CLOSED);
    r = (mproc_result *)&r;
    cr_assert_eq(mproc_pool_apply_async(pool, work, in, sizeof *in, out, sizeof *out, &r),
                 MPROC_E_CLOSED);
    cr_assert_null(r);
    mproc_pool_iter *it = (mproc_pool_iter *)&it;
    cr_assert_eq(mproc_pool_imap(pool, work, in, sizeof *in, sizeof *out, 4, 1, 0, &it),
                 MPROC_E_CLOSED);
    cr_assert_null(it);
    cr_assert_eq(mproc_pool_imap(pool, work, in, sizeof *in, sizeof *out, 4, 1,
                                 MPROC_IMAP_UNORDERED, &it),
                 MPROC_E_CLOSED);
    mproc_pool_stats st = shut(pool);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bd->runs[i], 0, "item %d never ran", i);
    cr_assert_eq(st.started, 2);
    cr_assert_eq(st.died, 0);
}

Test(pool_lifecycle, work_submitted_before_close_completes, .timeout = 30) {
    fresh();
    cfg.block_from = 0; /* every task waits for bd->release */
    mproc_pool *pool = make_pool(2, 0, 0, false);
    long in[16], out[8] = {0};
    indices(in, 16);
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, work, in, sizeof *in, out, sizeof *out, 8, 1, &r), 0);
    mproc_pool_iter *it;
    cr_assert_eq(mproc_pool_imap(pool, work, in + 8, sizeof *in, sizeof(long), 8, 1, 0, &it), 0);
    cr_assert(reaches(&bd->blocked, 1), "work is running");
    cr_assert_eq(mproc_pool_close(pool), 0);
    atomic_store(&bd->release, 1);

    size_t bad = 0;
    cr_assert_eq(mproc_result_get(r, BOUND, &bad), 0);
    cr_assert_eq(bad, SIZE_MAX);
    for (long i = 0; i < 8; i++)
        cr_assert_eq(out[i], i * i);
    for (long i = 8; i < 16; i++) {
        long got = -1;
        size_t index = 0;
        int code = -1;
        cr_assert_eq(mproc_pool_iter_next(it, &got, &index, &code, BOUND), 0);
        cr_assert_eq(index, (size_t)(i - 8));
        cr_assert_eq(code, 0);
        cr_assert_eq(got, i * i);
    }
    cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0), ENODATA);
    mproc_result_free(r);
    mproc_pool_iter_free(it);
    mproc_pool_stats st = shut(pool);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(bd->runs[i], 1, "item %d ran once", i);
    cr_assert_eq(st.started, 2);
    cr_assert_eq(st.died, 0);
}

Test(pool_lifecycle, join_of_a_running_pool_is_ebusy) {
    fresh();
    mproc_pool *pool = make_pool(1, 0, 0, false);
    cr_assert_eq(mproc_pool_join(pool, 0), EBUSY);
    double t0 = t_now();
    cr_assert_eq(mproc_pool_join(pool, MPROC_FOREVER), EBUSY);
    cr_assert_lt(t_now() - t0, PROMPT, "EBUSY at once, not after a wait");
    cr_assert_eq(mproc_pool_join(pool, NAN), EINVAL);
    cr_assert_eq(mproc_pool_join(NULL, 0), EINVAL);
    long in = 3, out = 0;
    cr_assert_eq(mproc_pool_apply(pool, work, &in, sizeof in, &out, sizeof out), 0,
                 "the refused join changed nothing");
    cr_assert_eq(out, 9);
    shut(pool);
}

Test(pool_lifecycle, join_times_out_while_work_runs_after_close, .timeout = 30) {
    fresh();
    cfg.block_from = 0;
    mproc_pool *pool = make_pool(1, 0, 0, false);
    long in = 7, out = 0;
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, work, &in, sizeof in, &out, sizeof out, 1, 1, &r), 0);
    cr_assert(reaches(&bd->blocked, 1));
    cr_assert_eq(mproc_pool_close(pool), 0);

    double t0 = t_now();
    cr_assert_eq(mproc_pool_join(pool, 0.05), ETIMEDOUT);
    double took = t_now() - t0;
    cr_assert_geq(took, 0.05);
    cr_assert_lt(took, 1.0);
    cr_assert_eq(mproc_pool_join(pool, 0), ETIMEDOUT);
    cr_assert_eq(mproc_result_ready(r), 0);

    atomic_store(&bd->release, 1);
    cr_assert_eq(mproc_pool_join(pool, BOUND), 0);
    cr_assert_eq(mproc_result_ready(r), 1, "joined: the work is done");
    cr_assert_eq(mproc_result_get(r, 0, NULL), 0);
    cr_assert_eq(out, 49);
    /* Everything again is harmless. */
    cr_assert_eq(mproc_pool_join(pool, BOUND), 0);
    cr_assert_eq(mproc_pool_join(pool, 0), 0);
    cr_assert_eq(mproc_pool_close(pool), 0);
    cr_assert_eq(mproc_pool_terminate(pool), 0);
    cr_assert_eq(mproc_pool_join(pool, 0), 0);
    mproc_result_free(r);
    mproc_pool_free(pool);
}

/* ---- terminate and free ---- */

Test(pool_lifecycle, terminate_fails_unfinished_items_and_keeps_finished_ones, .timeout = 30) {
    fresh();
    cfg.block_from = 4; /* items 0..3 finish, 4..7 block */
    mproc_pool *pool = make_pool(2, 0, 0, false);
    int pids[2];
    pids_of(pool, pids, 2);
    long in[8];
    indices(in, 8);
    /* Garbage where the iterator's buffers will be (glibc reuses these
     * chunks first): what an item that never finished reads must not
     * depend on the heap. */
    void *junk[8];
    for (int k = 0; k < 8; k++)
        memset(junk[k] = malloc(sizeof in), 0xab, sizeof in);
    for (int k = 0; k < 8; k++)
        free(junk[k]);
    mproc_pool_iter *it;
    cr_assert_eq(mproc_pool_imap(pool, work, in, sizeof *in, sizeof(long), 8, 1, 0, &it), 0);
    /* Delivered means finished (its result reached the pool). */
    for (long i = 0; i < 4; i++) {
        long got = -1;
        size_t index = 99;
        int code = -1;
        cr_assert_eq(mproc_pool_iter_next(it, &got, &index, &code, BOUND), 0);
        cr_assert_eq(index, (size_t)i);
        cr_assert_eq(code, 0);
        cr_assert_eq(got, i * i);
    }
    cr_assert(reaches(&bd->blocked, 1), "a worker is inside a task");

    double t0 = t_now();
    cr_assert_eq(mproc_pool_terminate(pool), 0);
    for (long i = 4; i < 8; i++) {
        long got = -1;
        size_t index = 99;
        int code = -1;
        cr_assert_eq(mproc_pool_iter_next(it, &got, &index, &code, BOUND), 0);
        cr_assert_eq(index, (size_t)i);
        cr_assert_eq(code, MPROC_E_TERMINATED, "item %ld: %s", i, mproc_strerror(code));
        cr_assert_eq(got, 0, "item %ld's output is zero, not heap garbage (%lx)", i, got);
    }
    cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0), ENODATA);
    cr_assert_lt(t_now() - t0, PROMPT, "terminate does not wait for the tasks");
    cr_assert_eq(mproc_pool_join(pool, BOUND), 0);
    cr_assert_lt(t_now() - t0, PROMPT);
    for (int i = 0; i < 2; i++)
        cr_assert(reaped(pids[i]), "worker %d is gone", pids[i]);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bd->runs[i], 1);
    for (int i = 4; i < 8; i++)
        cr_assert_leq(bd->runs[i], 1, "item %d never ran again", i);
    mproc_pool_stats st;
    cr_assert_eq(mproc_pool_get_stats(pool, &st), 0);
    cr_assert_eq(st.started, 2);
    cr_assert_eq(st.died, 0, "killed by terminate: not deaths");
    cr_assert_eq(st.lost, 0);
    mproc_pool_iter_free(it);
    mproc_pool_free(pool);
}

struct mapper {
    mproc_pool *pool;
    long in[6], out[6];
    size_t bad;
    int rc;
};

static void *map_in_thread(void *arg) {
    struct mapper *m = arg;
    m->rc = mproc_pool_map(m->pool, work, m->in, sizeof *m->in, m->out, sizeof *m->out, 6, 1,
                           &m->bad);
    return NULL;
}

Test(pool_lifecycle, terminate_ends_a_map_blocked_in_another_thread, .timeout = 30) {
    fresh();
    cfg.block_from = 0;
    struct mapper m = {.pool = make_pool(2, 0, 0, false), .rc = -1};
    indices(m.in, 6);
    int pids[2];
    pids_of(m.pool, pids, 2);
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, map_in_thread, &m), 0);
    cr_assert(reaches(&bd->blocked, 1), "the map is inside a task");

    double t0 = t_now();
    cr_assert_eq(mproc_pool_terminate(m.pool), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)BOUND;
    cr_assert_eq(pthread_timedjoin_np(thread, NULL, &until), 0, "the map returned");
    cr_assert_lt(t_now() - t0, PROMPT);
    cr_assert_eq(m.rc, MPROC_E_TERMINATED);
    cr_assert_eq(m.bad, 0);
    cr_assert_eq(mproc_pool_join(m.pool, BOUND), 0);
    for (int i = 0; i < 2; i++)
        cr_assert(reaped(pids[i]), "worker %d is gone", pids[i]);
    cr_assert_eq(mproc_pool_terminate(m.pool), 0, "again: harmless");
    cr_assert_eq(mproc_pool_join(m.pool, 0), 0);
    mproc_pool_free(m.pool);
}

Test(pool_lifecycle, terminate_after_close_stops_the_work_still_running, .timeout = 30) {
    fresh();
    cfg.block_from = 0;
    mproc_pool *pool = make_pool(2, 0, 0, false);
    long in[4], out[4];
    indices(in, 4);
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, work, in, sizeof *in, out, sizeof *out, 4, 1, &r), 0);
    cr_assert(reaches(&bd->blocked, 1));
    cr_assert_eq(mproc_pool_close(pool), 0);
    cr_assert_eq(mproc_pool_join(pool, 0.01), ETIMEDOUT);
    double t0 = t_now();
    cr_assert_eq(mproc_pool_terminate(pool), 0);
    size_t bad = 99;
    cr_assert_eq(mproc_result_get(r, BOUND, &bad), MPROC_E_TERMINATED);
    cr_assert_eq(bad, 0);
    int ok = -1;
    cr_assert_eq(mproc_result_successful(r, &ok), 0);
    cr_assert_eq(ok, 0);
    for (size_t i = 0; i < 4; i++) {
        int code = -1;
        cr_assert_eq(mproc_result_code(r, i, &code), 0);
        cr_assert_eq(code, MPROC_E_TERMINATED);
    }
    cr_assert_eq(mproc_pool_join(pool, BOUND), 0);
    cr_assert_lt(t_now() - t0, PROMPT);
    mproc_result_free(r);
    mproc_pool_free(pool);
}

Test(pool_lifecycle, free_of_a_running_pool_terminates_it_and_results_stay_readable,
     .timeout = 30) {
    fresh();
    cfg.block_from = 2; /* items 0, 1 finish */
    mproc_pool *pool = make_pool(2, 0, 0, false);
    int pids[2];
    pids_of(pool, pids, 2);
    long in[4], out[4] = {-1, -1, -1, -1};
    indices(in, 4);
    cr_assert_eq(map_for(pool, in, out, 2, 1, NULL), 0);
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, work, in + 2, sizeof *in, out + 2, sizeof *out, 2, 1,
                                      &r),
                 0);
    mproc_pool_iter *it;
    cr_assert_eq(mproc_pool_imap(pool, work, in + 2, sizeof *in, sizeof(long), 2, 1,
                                 MPROC_IMAP_UNORDERED, &it),
                 0);
    cr_assert(reaches(&bd->blocked, 1));

    double t0 = t_now();
    mproc_pool_free(pool);
    cr_assert_lt(t_now() - t0, PROMPT, "free terminates, it does not wait for the tasks");
    for (int i = 0; i < 2; i++)
        cr_assert(reaped(pids[i]), "worker %d is gone", pids[i]);

    /* The pool is gone; its results are not. */
    cr_assert_eq(mproc_result_ready(r), 1);
    size_t bad = 99;
    cr_assert_eq(mproc_result_get(r, 0, &bad), MPROC_E_TERMINATED);
    cr_assert_eq(bad, 0);
    cr_assert_eq(mproc_result_wait(r, BOUND), 0);
    int code = -1;
    cr_assert_eq(mproc_result_code(r, 1, &code), 0);
    cr_assert_eq(code, MPROC_E_TERMINATED);
    cr_assert_eq(mproc_result_code(r, 2, &code), ERANGE);
    size_t seen[2];
    for (int k = 0; k < 2; k++) {
        code = -1;
        cr_assert_eq(mproc_pool_iter_next(it, NULL, &seen[k], &code, 0), 0);
        cr_assert_eq(code, MPROC_E_TERMINATED);
    }
    cr_assert_eq(seen[0] + seen[1], 1, "items 0 and 1, once each");
    cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, BOUND), ENODATA);
    cr_assert_eq(out[0], 0);
    cr_assert_eq(out[1], 1);
    mproc_result_free(r);
    mproc_pool_iter_free(it);
}

/* ---- the initializer ---- */

Test(pool_lifecycle, initializer_runs_once_per_worker_before_its_tasks, .timeout = 30) {
    fresh();
    cfg.check_init = true;
    mproc_pool *pool = make_pool(3, 0, 0, true);
    long in[30], out[30];
    indices(in, 30);
    size_t bad = 0;
    cr_assert_eq(map_for(pool, in, out, 30, 1, &bad), 0,
                 "item %zu", bad);
    for (long i = 0; i < 30; i++)
        cr_assert_eq(out[i], i * i);
    mproc_pool_stats st = shut(pool);
    cr_assert_eq(st.started, 3);
    cr_assert_eq(bd->inits, 3, "once per worker, every worker");
    cr_assert_eq(bd->init_arg, 1234, "initarg reached it");
    cr_assert_eq(st.init_error, 0);
    for (int i = 0; i < 30; i++) {
        bool in_initialized = false;
        for (int k = 0; k < 3; k++)
            in_initialized = in_initialized || bd->pid[i] == bd->init_pid[k];
        cr_assert(in_initialized, "item %d ran in a worker that ran the initializer", i);
    }
    cr_assert_neq(bd->init_pid[0], bd->init_pid[1]);
    cr_assert_neq(bd->init_pid[1], bd->init_pid[2]);
    cr_assert_neq(bd->init_pid[0], bd->init_pid[2]);
}

/* Every way of submitting is refused with `code`. */
static void submits_refused(mproc_pool *pool, int code) {
    long in[2] = {0, 1}, out[2];
    size_t bad = 0;
    cr_assert_eq(mproc_pool_map(pool, work, in, sizeof *in, out, sizeof *out, 2, 1, &bad), code);
    mproc_result *r;
    cr_assert_eq(mproc_pool_map_async(pool, work, in, sizeof *in, out, sizeof *out, 2, 1, &r),
                 code);
    cr_assert_eq(mproc_pool_apply(pool, work, in, sizeof *in, out, sizeof *out), code);
    mproc_pool_iter *it;
    cr_assert_eq(mproc_pool_imap(pool, work, in, sizeof *in, sizeof *out, 2, 1, 0, &it), code);
}

/* A map of 4 items on a pool whose initializer fails gives INIT_FAILED.
 * Broken before the submit, the map is refused outright (no failed index,
 * as a closed pool's refusal); broken after it, every item failed and the
 * lowest is 0.  Which one depends on how fast the first workers ran their
 * initializer. */
static void map_fails_init(mproc_pool *pool, const long *in, long *out) {
    mproc_pool_stats st;
    cr_assert_eq(mproc_pool_get_stats(pool, &st), 0);
    bool broken_before = st.init_error != 0;
    size_t bad = 99;
    cr_assert_eq(map_for(pool, in, out, 4, 1, &bad), MPROC_E_INIT_FAILED);
    if (broken_before)
        cr_assert_eq(bad, 99, "refused, so no index written");
    else
        cr_assert(bad == 0 || bad == 99, "failed index %zu", bad);
}

Test(pool_lifecycle, initializer_failing_breaks_the_pool_with_init_failed, .timeout = 30) {
    fresh();
    cfg.init_rc = 42;
    mproc_pool *pool = make_pool(2, 0, 0, true);
    long in[4], out[4];
    indices(in, 4);
    map_fails_init(pool, in, out);
    mproc_pool_stats st;
    cr_assert_eq(mproc_pool_get_stats(pool, &st), 0);
    cr_assert_eq(st.init_error, 42);
    submits_refused(pool, MPROC_E_INIT_FAILED);
    double t0 = t_now();
    st = shut(pool);
    cr_assert_lt(t_now() - t0, PROMPT, "join does not hang");
    cr_assert_eq(st.init_error, 42);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bd->runs[i], 0, "no task ran");
}

Test(pool_lifecycle, initializer_exiting_every_time_breaks_the_pool, .timeout = 30) {
    fresh();
    cfg.init_exit = true; /* _exit(3) */
    mproc_pool *pool = make_pool(1, 0, 0, true);
    long in[4], out[4];
    indices(in, 4);
    map_fails_init(pool, in, out);
    submits_refused(pool, MPROC_E_INIT_FAILED);
    mproc_pool_stats st = shut(pool);
    cr_assert_eq(st.init_error, 3, "the exit code stands for the initializer's code");
    /* One slot: each death is replaced until the limit, then nothing. */
    cr_assert_eq(bd->inits, INIT_DEATHS_MAX);
    cr_assert_eq(st.started, INIT_DEATHS_MAX);
    cr_assert_eq(st.died, INIT_DEATHS_MAX);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bd->runs[i], 0);
}

Test(pool_lifecycle, initializer_killed_from_outside_is_just_replaced, .timeout = 30) {
    fresh();
    cfg.init_trap = true;
    cfg.check_init = true;
    atomic_store(&bd->armed, 1);
    mproc_pool *pool = make_pool(2, 0, 0, true);
    cr_assert(reaches(&bd->trap_pid, 1), "a worker is inside the initializer");
    int victim = atomic_load(&bd->trap_pid);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    /* Its replacement shows up (and so is counted before the close). */
    int pids[2] = {0, 0};
    double end = t_now() + BOUND;
    for (;;) {
        unsigned count;
        cr_assert_eq(mproc_pool_worker_pids(pool, pids, 2, &count), 0);
        if (pids[0] != 0 && pids[1] != 0 && pids[0] != victim && pids[1] != victim)
            break;
        cr_assert_lt(t_now(), end, "a replacement within the bound");
        nap(0.001);
    }
    long in[20], out[20];
    indices(in, 20);
    size_t bad = 0;
    cr_assert_eq(map_for(pool, in, out, 20, 1, &bad), 0,
                 "item %zu", bad);
    for (long i = 0; i < 20; i++) {
        cr_assert_eq(out[i], i * i);
        cr_assert_neq(bd->pid[i], victim);
    }
    mproc_pool_stats st = shut(pool);
    cr_assert_eq(st.init_error, 0);
    cr_assert_eq(st.died, 1);
    cr_assert_eq(st.started, 3);
    cr_assert_eq(bd->inits, 3);
}

/* ---- max_tasks_per_child ---- */

Test(pool_lifecycle, max_tasks_per_child_replaces_workers_after_that_many_chunks,
     .timeout = 30) {
    fresh();
    mproc_pool *pool = make_pool(2, 2, 0, false);
    long in[20], out[20];
    indices(in, 20);
    size_t bad = 0;
    cr_assert_eq(map_for(pool, in, out, 20, 1, &bad), 0,
                 "item %zu", bad);
    for (long i = 0; i < 20; i++)
        cr_assert_eq(out[i], i * i);
    mproc_pool_stats st = shut(pool);
    /* A worker is sent at most 2 chunks (and exits after running them: it
     * retired).  Chunks are handed out breadth first, so when two fresh
     * workers share the last two chunks each runs one and is stopped by the
     * close instead: 9 or 10 workers retire, and every one that ran 2 items
     * retired.  Each retirement before the close was replaced. */
    int distinct = 0, with_two = 0;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(bd->runs[i], 1);
        int same = 0;
        for (int k = 0; k < 20; k++)
            same += bd->pid[k] == bd->pid[i];
        cr_assert(same == 1 || same == 2, "worker %d ran %d items, not 1 or 2", bd->pid[i], same);
        bool first = true;
        for (int k = 0; k < i; k++)
            first = first && bd->pid[k] != bd->pid[i];
        distinct += first;
        with_two += first && same == 2;
    }
    cr_assert_eq(st.retired, (unsigned long long)with_two);
    cr_assert(with_two == 10 || (with_two == 9 && distinct == 11), "%d workers ran 2, %d in all",
              with_two, distinct);
    cr_assert_eq(st.died, 0);
    cr_assert_geq(st.started, (unsigned long long)distinct);
    cr_assert_leq(st.started, st.retired + 2);
}

/* ---- workers dying inside a task ---- */

/* Runs `work` over n items (chunksize cs) where item k's task kills its
 * worker; returns the final stats.  out[] holds the results. */
static mproc_pool_stats map_with_a_death(unsigned retries, size_t n, size_t cs, long k,
                                         int expect_rc, long *out) {
    cfg.kill_item = k;
    atomic_store(&bd->armed, 1);
    mproc_pool *pool = make_pool(2, 0, retries, false);
    long in[NMAX];
    indices(in, n);
    for (size_t i = 0; i < n; i++)
        out[i] = -1;
    size_t bad = 99;
    int rc = map_for(pool, in, out, n, cs, &bad);
    cr_assert_eq(rc, expect_rc, "map: %s", mproc_strerror(rc));
    cr_assert_eq(bad, expect_rc == 0 ? SIZE_MAX : (size_t)k);
    for (size_t i = 0; i < n; i++)
        if ((long)i != k || expect_rc == 0)
            cr_assert_eq(out[i], (long)(i * i), "item %zu", i);
    return shut(pool);
}

Test(pool_lifecycle, a_task_killing_its_worker_fails_only_its_item, .timeout = 30) {
    fresh();
    long out[8];
    mproc_pool_stats st = map_with_a_death(0, 8, 1, 3, MPROC_E_WORKER_DIED, out);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(bd->runs[i], 1, "item %d ran once", i);
    cr_assert_eq(st.lost, 1);
    cr_assert_eq(st.died, 1);
    cr_assert_eq(st.retried, 0);
    cr_assert_eq(st.retired, 0);
    cr_assert_eq(st.started, 2 + 1, "one replacement");
}

Test(pool_lifecycle, a_dead_workers_chunk_keeps_finished_items_and_reruns_the_rest,
     .timeout = 30) {
    fresh();
    long out[12];
    /* Chunks of 4: item 5 dies in chunk [4, 8) after item 4 finished. */
    mproc_pool_stats st = map_with_a_death(0, 12, 4, 5, MPROC_E_WORKER_DIED, out);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(bd->runs[i], 1, "item %d ran once", i);
    int dead = bd->pid[5];
    cr_assert_eq(bd->pid[4], dead, "item 4's result came from the dead worker");
    cr_assert_neq(bd->pid[6], dead, "item 6 ran elsewhere");
    cr_assert_neq(bd->pid[7], dead, "item 7 ran elsewhere");
    cr_assert_eq(st.lost, 1);
    cr_assert_eq(st.died, 1);
    cr_assert_eq(st.started, 3);
}

Test(pool_lifecycle, retries_run_a_dead_workers_item_again, .timeout = 30) {
    fresh();
    long out[8];
    mproc_pool_stats st = map_with_a_death(1, 8, 1, 3, 0, out);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(bd->runs[i], i == 3 ? 2 : 1, "item %d", i);
    cr_assert_eq(st.retried, 1);
    cr_assert_eq(st.lost, 0);
    cr_assert_eq(st.died, 1);
    cr_assert_eq(st.started, 3);
}

Test(pool_lifecycle, retries_give_up_after_their_count, .timeout = 30) {
    fresh();
    cfg.every_time = true;
    long out[8];
    mproc_pool_stats st = map_with_a_death(2, 8, 1, 3, MPROC_E_WORKER_DIED, out);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(bd->runs[i], i == 3 ? 3 : 1, "item %d", i);
    cr_assert_eq(st.retried, 2);
    cr_assert_eq(st.lost, 1);
    cr_assert_eq(st.died, 3);
    cr_assert_eq(st.started, 2 + 3);
}

Test(pool_lifecycle, a_task_exiting_or_crashing_is_a_worker_death, .timeout = 30) {
    const enum death ways[] = {BY_EXIT0, BY_EXIT5, BY_SEGV};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        fresh();
        cfg.death = ways[w];
        long out[6];
        mproc_pool_stats st = map_with_a_death(0, 6, 1, 2, MPROC_E_WORKER_DIED, out);
        cr_assert_eq(st.lost, 1, "death %d", (int)ways[w]);
        cr_assert_eq(st.died, 1, "death %d: even _exit(0) is a death", (int)ways[w]);
        cr_assert_eq(st.retired, 0);
        cr_assert_eq(st.started, 3);
        for (int i = 0; i < 6; i++)
            cr_assert_eq(bd->runs[i], 1);
    }
}

Test(pool_lifecycle, a_worker_killed_while_idle_is_replaced, .timeout = 30) {
    fresh();
    mproc_pool *pool = make_pool(2, 0, 0, false);
    long in[16], out[16];
    indices(in, 16);
    cr_assert_eq(map_for(pool, in, out, 8, 1, NULL), 0);
    int pids[2];
    pids_of(pool, pids, 2);
    int victim = pids[0];
    cr_assert_eq(kill(victim, SIGKILL), 0);
    /* At once, before the pool may have noticed: its chunks go elsewhere. */
    size_t bad = 99;
    cr_assert_eq(map_for(pool, in + 8, out + 8, 8, 1, &bad), 0);
    cr_assert_eq(bad, SIZE_MAX);
    for (long i = 0; i < 16; i++) {
        cr_assert_eq(out[i], i * i);
        cr_assert_eq(bd->runs[i], 1);
    }
    double end = t_now() + BOUND;
    do {
        unsigned count;
        cr_assert_eq(mproc_pool_worker_pids(pool, pids, 2, &count), 0);
        cr_assert_lt(t_now(), end, "a replacement within the bound");
        nap(0.001);
    } while (pids[0] == 0 || pids[0] == victim);
    cr_assert_neq(pids[1], victim);
    mproc_pool_stats st = shut(pool);
    cr_assert_eq(st.died, 1);
    cr_assert_eq(st.lost, 0, "it ran nothing when it died");
    cr_assert_eq(st.started, 3);
}

/* ---- exit and death of the pool's process ---- */

/* In a forked child: a pool of 2 that ran a map; its workers go to
 * bd->child_pids.  Returns the pool, or _exits. */
static mproc_pool *child_pool(void) {
    mproc_pool *pool;
    if (mproc_pool_create(&pool, &(mproc_pool_options){.workers = 2}) != 0)
        _exit(90);
    long in[8], out[8];
    indices(in, 8);
    if (map_for(pool, in, out, 8, 1, NULL) != 0)
        _exit(91);
    int pids[2];
    unsigned count;
    if (mproc_pool_worker_pids(pool, pids, 2, &count) != 0 || count != 2)
        _exit(92);
    atomic_store(&bd->child_pids[0], pids[0]);
    atomic_store(&bd->child_pids[1], pids[1]);
    return pool;
}

static mproc_pool *volatile kept; /* never read: what a program keeps in a global */

Test(pool_lifecycle, exit_with_an_open_pool_terminates_and_reaps_its_workers, .timeout = 30) {
    fresh();
    t_pipe report;
    t_pipe_open(&report);
    fflush(NULL);
    pid_t child = t_fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        kept = child_pool(); /* still held at exit, as a program's global would be */
        t_signal(&report, 'x');
        exit(0); /* at exit: the open pool is terminated and joined */
    }
    cr_assert_eq(t_await(&report, BOUND), 'x');
    double t0 = t_now();
    cr_assert_eq(t_exit_code(child, BOUND), 0);
    cr_assert_lt(t_now() - t0, PROMPT, "the exit does not wait for anything");
    for (int i = 0; i < 2; i++) {
        int pid = atomic_load(&bd->child_pids[i]);
        cr_assert_gt(pid, 0);
        cr_assert(reaped(pid), "worker %d was reaped by the exiting process", pid);
    }
    t_pipe_close(&report);
}

Test(pool_lifecycle, a_killed_pools_process_leaves_no_workers, .timeout = 30) {
    fresh();
    t_pipe report, gate;
    t_pipe_open(&report);
    t_pipe_open(&gate);
    fflush(NULL);
    pid_t child = t_fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        child_pool();
        t_signal(&report, 'r');
        t_await(&gate, BOUND); /* never opened: SIGKILLed first */
        _exit(93);
    }
    cr_assert_eq(t_await(&report, BOUND), 'r');
    cr_assert_eq(kill(child, SIGKILL), 0);
    cr_assert_eq(t_exit_code(child, BOUND), -1000 - SIGKILL);
    /* PR_SET_PDEATHSIG kills them as their parent dies: the bound is
     * 1 s; 2 s leaves slack for a loaded machine.  Orphans are reaped by
     * init, so a zombie counts as gone. */
    double t0 = t_now();
    for (int i = 0; i < 2; i++) {
        int pid = atomic_load(&bd->child_pids[i]);
        cr_assert_gt(pid, 0);
        cr_assert(t_gone_within(pid, 1.0 + 1.0), "worker %d ended with its parent", pid);
    }
    cr_assert_lt(t_now() - t0, 2.0);
    t_pipe_close(&report);
    t_pipe_close(&gate);
}
