/* SPDX-License-Identifier: MIT */
/*
 * Kill tests for the Pool (issue 6, section 3): at least 200 random worker
 * SIGKILLs per run during map; every item's result is either correct or
 * MPROC_E_WORKER_DIED; the pool stays usable; nothing hangs (Python's Pool
 * hangs for ever here).
 *
 * A killer thread in the test process SIGKILLs workers (pids from
 * mproc_pool_worker_pids) while the main thread runs work and checks every
 * item.  Four tests, each with its own pool:
 *   1. map / map_async, chunk sizes 1, 7, random and the default, retries 0;
 *   2. retries 3: items killed on every run fail after exactly 4 runs,
 *      items killed once succeed on their second run;
 *   3. imap (ordered and unordered) and apply_async: each index delivered
 *      exactly once;
 *   4. max_tasks_per_child 3 and a slow initializer: retirements, kills
 *      during start-up and inside the initializer, interleaved.
 * Each ends with a 10 000-item map without kills, close, and a bounded join.
 *
 * Kills.  Most are *precise*: the killer SIGSTOPs the victim, waits (bounded)
 * until /proc says it is stopped, reads what it was doing from `running`
 * (below), then SIGKILLs it; so it knows when a kill landed inside item i's
 * function.  The others are *raw* (SIGKILL at once), or *fresh*: a kill, then
 * the slot's replacement is stopped and killed 0-1.5 ms after it appears
 * (start-up, initializer).  A pid is signalled only when /proc says it is
 * our live child, and never twice, so every kill is exactly one death.
 * Between two kills (except in test 2) the killer waits until some item
 * finished, so the work moves however slowly the replacements start.
 *
 * Items.  Item i of job `tag` carries {tag, i, busy_us, rc, x}; its task
 * counts entries[i] on entry, publishes running[pid] = (pid, tag, i), spins
 * busy_us, writes out = {f(x), f(x) ^ (tag, i)} unless it returns its own
 * code rc, clears running[pid], counts exits[i].  So for every item:
 *   - killed_in[i] counts the precise kills that stopped it inside i;
 *   - with retries R, code 0 (or rc) means exits == 1 and
 *     entries == killed_in + 1 <= R + 1, output correct (zero for rc);
 *   - code WORKER_DIED means output zero (map leaves the caller's zeroed
 *     `out` alone; imap's copy must be zeros, not stale heap bytes), and:
 *     killed_in == entries == R + 1
 *     when every kill is a precise one inside a task (test 2); with R == 0,
 *     killed_in <= 1 and entries <= 1 (an *edge* loss when killed_in == 0:
 *     a raw kill, or one just before the function began or just after it
 *     returned);
 * and per job: the lowest failing index and its code are map's; the items
 * lost <= the kills during the job.  Per test: stats.died == kills,
 * stats.lost == the items seen with WORKER_DIED, stats.retried == the
 * kills inside tasks that did not lose their item, and after close+join
 * stats.started == workers + died + retired.
 *
 * Bounds: a map, result or iterator waits at most MAP_BOUND (a watchdog in
 * the killer aborts a blocking map that takes longer); a stop is seen within
 * STOP_BOUND, a replacement within SPAWN_BOUND.  The seed is printed;
 * MPROC_KILL_SEED=N reruns the same work and kill choices (the timing of a
 * run cannot be replayed).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define MAX_ITEMS 16384
#define FINAL_ITEMS 10000
#define PID_TABLE 65536       /* running[] slots, by pid */
#define MAP_BOUND 20.0        /* s: the longest a job may take (a hang fails) */
#define STOP_BOUND 5.0        /* s: SIGSTOP to /proc's 'T' */
#define SPAWN_BOUND 10.0      /* s: a killed worker's replacement appears */
#define JOIN_BOUND 10.0
#define MAX_KILLED 8192
#define NO_ITEM 0xffffffffu   /* running[]: outside any task */
#define IN_INIT 0xfffffffeu   /* running[]: inside the initializer */

enum item_class { PLAIN, POISON, ONCE };      /* test 2: killed on every run, on the first */
enum kill_kind { K_TASK, K_OUTSIDE, K_BEFORE, K_INIT, K_RAW, NKINDS };
static const char *kind_names[NKINDS] = {"in a task", "outside tasks", "before a first task",
                                         "in the initializer", "raw"};

struct item_in {
    uint32_t tag, index, busy_us;
    int32_t rc;
    uint64_t x;
};

struct item_out {
    uint64_t y, check;
};

/* Shared with the workers: mapped before the pool is created. */
struct shared {
    _Atomic uint32_t tag;     /* the current job group */
    _Atomic uint64_t stale;   /* a task run for another group, or a bad index */
    _Atomic uint32_t init_max_us;
    _Atomic uint64_t inits;
    _Atomic uint64_t progress; /* items whose function returned, all jobs */
    _Atomic uint32_t entries[MAX_ITEMS], exits[MAX_ITEMS];
    /* By pid % PID_TABLE: pid << 40 | (tag & 0xff) << 32 | index, or NO_ITEM /
     * IN_INIT as the index.  Cleared by the killer once a pid is gone. */
    _Atomic uint64_t running[PID_TABLE];
};
static struct shared *sh;

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t rnd(uint64_t *s, uint64_t n) {
    return xorshift(s) % n;
}

static uint64_t f(uint64_t x) {
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15u;
    return x ^ (x >> 29);
}

static void spin_us(uint32_t us) {
    double end = t_now() + us / 1e6;
    while (us != 0 && t_now() < end) {
    } /* where a kill lands; orders nothing */
}

static uint64_t entry(int pid, uint32_t tag, uint32_t index) {
    return (uint64_t)pid << 40 | (uint64_t)(tag & 0xff) << 32 | index;
}

/* ---- in the workers ---- */

static int task(const void *in_, void *out_) {
    const struct item_in *in = in_;
    struct item_out *out = out_;
    if (in->tag != atomic_load(&sh->tag) || in->index >= MAX_ITEMS) {
        atomic_fetch_add(&sh->stale, 1);
        return EPROTO;
    }
    int pid = getpid();
    _Atomic uint64_t *mine = &sh->running[pid % PID_TABLE];
    atomic_fetch_add(&sh->entries[in->index], 1);
    /* Published after the entry is counted, cleared before the exit is: a
     * worker stopped while it is published entered i and never leaves it. */
    atomic_store(mine, entry(pid, in->tag, in->index));
    spin_us(in->busy_us);
    if (in->rc == 0) {
        out->y = f(in->x);
        out->check = out->y ^ ((uint64_t)in->tag << 32 | in->index);
    }
    atomic_store(mine, entry(pid, 0, NO_ITEM));
    atomic_fetch_add(&sh->exits[in->index], 1);
    atomic_fetch_add(&sh->progress, 1);
    return in->rc;
}

/* Spins up to init_max_us, by pid. */
static int slow_init(void *arg) {
    (void)arg;
    int pid = getpid();
    atomic_store(&sh->running[pid % PID_TABLE], entry(pid, 0, IN_INIT));
    atomic_fetch_add(&sh->inits, 1);
    uint32_t max = atomic_load(&sh->init_max_us);
    spin_us(max != 0 ? (uint32_t)(f((uint64_t)pid) % max) : 0);
    atomic_store(&sh->running[pid % PID_TABLE], entry(pid, 0, NO_ITEM));
    return 0;
}

/* ---- the killer thread ---- */

struct killer {
    mproc_pool *pool;
    pthread_t thread;
    uint64_t rng;
    bool hunt;       /* test 2: only precise kills inside POISON and ONCE items */
    bool raw_ok;     /* no worker ends by itself (no max_tasks_per_child): a raw kill is a death */
    unsigned nap_max_us;
    _Atomic bool stop;
    _Atomic unsigned kills;
    _Atomic unsigned by_kind[NKINDS];
    _Atomic uint32_t killed_in[MAX_ITEMS]; /* of the current group */
    _Atomic uint8_t cls[MAX_ITEMS];        /* enum item_class, of the current group */
    _Atomic double wait_since;             /* a blocking map began; 0 when none */
    _Atomic(const char *) error;           /* the killer cannot cr_assert */
    int killed[MAX_KILLED];
    unsigned nkilled;
    int seen[64]; /* last pids seen, to clear running[] of the gone ones */
    unsigned nseen;
    uint64_t last_progress; /* sh->progress at the last kill */
};

static void nap_us(unsigned us) {
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* /proc/pid/stat: the state letter and the parent.  false if gone. */
static bool proc_stat(int pid, char *state, int *ppid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold anything */
    return p != NULL && sscanf(p + 1, " %c %d", state, ppid) == 2;
}

static bool killed_before(const struct killer *k, int pid) {
    for (unsigned i = 0; i < k->nkilled; i++)
        if (k->killed[i] == pid)
            return true;
    return false;
}

/* Our live worker, never signalled before. */
static bool fair_game(const struct killer *k, int pid) {
    char state;
    int ppid;
    return pid > 0 && !killed_before(k, pid) && k->nkilled < MAX_KILLED &&
           proc_stat(pid, &state, &ppid) && ppid == getpid() && state != 'Z' && state != 'X';
}

static void fail(struct killer *k, const char *why) {
    const char *none = NULL;
    atomic_compare_exchange_strong(&k->error, &none, why);
    atomic_store(&k->stop, true);
}

/* SIGSTOPs pid and waits until it is stopped.  false: it died first (or
 * /proc failed us: then it is continued, never left stopped). */
static bool stop(struct killer *k, int pid) {
    if (kill(pid, SIGSTOP) != 0)
        return false;
    double give_up = t_now() + STOP_BOUND;
    char state;
    int ppid;
    while (proc_stat(pid, &state, &ppid) && state != 'Z' && state != 'X') {
        if (state == 'T')
            return true;
        if (t_now() > give_up) {
            fail(k, "a SIGSTOPped worker did not stop within STOP_BOUND");
            break;
        }
        nap_us(20);
    }
    kill(pid, SIGCONT);
    return false;
}

/* Counted first: the main thread may see the death's outcome before this
 * thread runs again after kill(). */
static void sigkill(struct killer *k, int pid, enum kill_kind kind) {
    k->killed[k->nkilled++] = pid;
    atomic_fetch_add(&k->by_kind[kind], 1);
    atomic_fetch_add(&k->kills, 1);
    if (kill(pid, SIGKILL) != 0)
        fail(k, "kill of our own unreaped child failed");
}

/* What a stopped worker was doing; records a kill inside an item. */
static enum kill_kind classify(struct killer *k, int pid) {
    uint64_t e = atomic_load(&sh->running[pid % PID_TABLE]);
    if (e >> 40 != (uint64_t)pid)
        return K_BEFORE;
    uint32_t index = (uint32_t)e;
    if (index == IN_INIT)
        return K_INIT;
    if (index == NO_ITEM)
        return K_OUTSIDE;
    if (index >= MAX_ITEMS || (uint32_t)(e >> 32 & 0xff) != (atomic_load(&sh->tag) & 0xff))
        fail(k, "a worker was stopped inside an item of another job");
    else
        atomic_fetch_add(&k->killed_in[index], 1); /* before the SIGKILL: before the job is ready */
    return K_TASK;
}

static bool precise_kill(struct killer *k, int pid) {
    if (!fair_game(k, pid) || !stop(k, pid))
        return false;
    sigkill(k, pid, classify(k, pid));
    return true;
}

/* Random slot's pid (0 if none is up). */
static int pick(struct killer *k, unsigned *slot) {
    int pids[64];
    unsigned count;
    if (mproc_pool_worker_pids(k->pool, pids, 64, &count) != 0)
        return 0;
    *slot = (unsigned)rnd(&k->rng, count);
    return pids[*slot];
}

/* Kills a worker, then its replacement 0-1.5 ms after it appears. */
static void fresh_kill(struct killer *k) {
    unsigned slot;
    int pid = pick(k, &slot);
    if (!precise_kill(k, pid))
        return;
    double give_up = t_now() + SPAWN_BOUND;
    int pids[64], now = pid;
    unsigned count;
    while ((now == pid || now == 0) && !atomic_load(&k->stop)) {
        if (t_now() > give_up) {
            fail(k, "a killed worker was not replaced within SPAWN_BOUND");
            return;
        }
        nap_us(10);
        mproc_pool_worker_pids(k->pool, pids, 64, &count);
        now = pids[slot];
    }
    spin_us((uint32_t)rnd(&k->rng, 1500));
    precise_kill(k, now);
}

/* Test 2: stops a worker seen inside a POISON item (any run) or a ONCE
 * item (its first run), and kills it if it is still there. */
static void hunt(struct killer *k) {
    int pids[64];
    unsigned count;
    mproc_pool_worker_pids(k->pool, pids, 64, &count);
    for (unsigned i = 0; i < count && i < 64; i++) {
        uint64_t e = pids[i] > 0 ? atomic_load(&sh->running[pids[i] % PID_TABLE]) : 0;
        uint32_t index = (uint32_t)e;
        if (e >> 40 != (uint64_t)pids[i] || index >= MAX_ITEMS)
            continue;
        int cls = atomic_load(&k->cls[index]);
        if (cls == PLAIN || (cls == ONCE && atomic_load(&k->killed_in[index]) != 0) ||
            !fair_game(k, pids[i]) || !stop(k, pids[i]))
            continue;
        if (atomic_load(&sh->running[pids[i] % PID_TABLE]) == e)
            sigkill(k, pids[i], classify(k, pids[i]));
        else
            kill(pids[i], SIGCONT); /* moved on: spared */
    }
}

/* Clears running[] of pids no longer in the pool, so a recycled pid never
 * meets an old entry. */
static void forget_gone(struct killer *k) {
    int pids[64];
    unsigned count;
    mproc_pool_worker_pids(k->pool, pids, 64, &count);
    for (unsigned i = 0; i < k->nseen; i++) {
        bool still = false;
        for (unsigned j = 0; j < count && j < 64; j++)
            still = still || pids[j] == k->seen[i];
        uint64_t e = atomic_load(&sh->running[k->seen[i] % PID_TABLE]);
        if (!still && e >> 40 == (uint64_t)k->seen[i])
            atomic_compare_exchange_strong(&sh->running[k->seen[i] % PID_TABLE], &e, 0);
    }
    k->nseen = 0;
    for (unsigned j = 0; j < count && j < 64; j++)
        if (pids[j] > 0)
            k->seen[k->nseen++] = pids[j];
}

/* On a hang: the counters, and each worker's pid and state. */
static void diagnose(mproc_pool *pool, const struct killer *k) {
    mproc_pool_stats st;
    mproc_pool_get_stats(pool, &st);
    printf("pool kill test: stuck after %u kills; started %llu died %llu retired %llu lost %llu "
           "retried %llu; workers:",
           atomic_load(&k->kills), st.started, st.died, st.retired, st.lost, st.retried);
    int pids[64];
    unsigned count;
    mproc_pool_worker_pids(pool, pids, 64, &count);
    for (unsigned i = 0; i < count && i < 64; i++) {
        char state = '-';
        int ppid = 0;
        proc_stat(pids[i], &state, &ppid);
        uint64_t e = pids[i] > 0 ? atomic_load(&sh->running[pids[i] % PID_TABLE]) : 0;
        printf(" %d (%c, running %#llx)", pids[i], state, (unsigned long long)e);
    }
    printf("\n");
    fflush(stdout);
}

static void watchdog(struct killer *k) {
    double since = atomic_load(&k->wait_since);
    if (since > 0 && t_now() - since > MAP_BOUND) {
        printf("pool kill test: a map has waited %.0f s\n", t_now() - since);
        diagnose(k->pool, k);
        abort();
    }
}

/* Kills until told to stop: in test 2 by hunt(); else 20% fresh kills, 20%
 * raw ones (when allowed), the rest precise, 0 to nap_max_us apart. */
static void *killer_main(void *arg) {
    struct killer *k = arg;
    while (!atomic_load(&k->stop)) {
        watchdog(k);
        forget_gone(k);
        if (!k->hunt && atomic_load(&sh->progress) == k->last_progress) {
            nap_us(100); /* no item finished since the last kill: let the work move */
            continue;
        }
        unsigned kills = atomic_load(&k->kills);
        uint64_t r = rnd(&k->rng, 100);
        unsigned slot;
        if (k->hunt)
            hunt(k);
        else if (r < 20)
            fresh_kill(k);
        else if (r < 40 && k->raw_ok) {
            int pid = pick(k, &slot);
            if (fair_game(k, pid))
                sigkill(k, pid, K_RAW);
        } else {
            precise_kill(k, pick(k, &slot));
        }
        if (atomic_load(&k->kills) != kills)
            k->last_progress = atomic_load(&sh->progress);
        nap_us(k->hunt ? 100 + (unsigned)rnd(&k->rng, 200)
                       : (unsigned)rnd(&k->rng, k->nap_max_us));
    }
    return NULL;
}

/* ---- the test's side ---- */

struct run {
    const char *name;
    mproc_pool *pool;
    mproc_pool_options opts;
    struct killer *k;
    uint64_t rng;
    struct item_in *in;
    struct item_out *out;
    uint32_t tag;
    double started, longest;
    unsigned long long jobs, items, lost, edge, errors, kills_in_tasks;
    unsigned exhausted, retried_ok; /* test 2 */
};

static uint64_t seed_for(const char *name) {
    const char *env = getenv("MPROC_KILL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("pool kill test %s: seed %llu (MPROC_KILL_SEED=%llu to reproduce)\n", name,
           (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

static void start(struct run *r, const char *name, mproc_pool_options opts, bool hunt,
                  unsigned nap_max_us, uint32_t init_max_us) {
    *r = (struct run){.name = name, .opts = opts};
    uint64_t seed = seed_for(name);
    r->rng = seed | 1;
    sh = t_shared(sizeof *sh); /* before the pool: the workers inherit it */
    atomic_store(&sh->init_max_us, init_max_us);
    r->k = t_shared(sizeof *r->k); /* mmap: no leak report for what the tests read last */
    r->in = calloc(MAX_ITEMS, sizeof *r->in);
    r->out = calloc(MAX_ITEMS, sizeof *r->out);
    cr_assert(r->in != NULL && r->out != NULL);
    int rc = mproc_pool_create(&r->pool, &opts);
    cr_assert_eq(rc, 0, "create: %s", mproc_strerror(rc));
    struct killer *k = r->k;
    k->pool = r->pool;
    k->rng = (seed ^ 0x5bd1e995u) | 1;
    k->hunt = hunt;
    k->raw_ok = opts.max_tasks_per_child == 0;
    k->nap_max_us = nap_max_us;
    r->started = t_now();
    cr_assert_eq(pthread_create(&k->thread, NULL, killer_main, k), 0);
}

static void assert_killer_ok(const struct run *r) {
    const char *err = atomic_load(&r->k->error);
    cr_assert_null(err, "killer: %s", err);
    cr_assert_eq(atomic_load(&sh->stale), 0, "a task ran for a job that was over");
}

/* A new job group: counters and kill records zeroed for `count` items. */
static void begin_group(struct run *r, size_t count) {
    r->tag++;
    atomic_store(&sh->tag, r->tag);
    for (size_t i = 0; i < count; i++) {
        atomic_store(&sh->entries[i], 0);
        atomic_store(&sh->exits[i], 0);
        atomic_store(&r->k->killed_in[i], 0);
        atomic_store(&r->k->cls[i], PLAIN);
    }
}

/* Items [0, n): busy 0 (70%), 1-100 µs (25%) or 0.2-1 ms (5%);
 * with `errors`, 2% return their own code (1000 + i % 7).  Test 2 (hunt):
 * 1 in 25 POISON (3 ms), 1 in 25 ONCE (1 ms), the rest 0-30 µs. */
static void make_items(struct run *r, size_t n, bool errors) {
    for (size_t i = 0; i < n; i++) {
        uint64_t c = rnd(&r->rng, 100);
        uint32_t busy = c < 70 ? 0 : c < 95 ? 1 + (uint32_t)rnd(&r->rng, 100)
                                            : 200 + (uint32_t)rnd(&r->rng, 800);
        int cls = PLAIN;
        if (r->k->hunt) {
            cls = c < 4 ? POISON : c < 8 ? ONCE : PLAIN;
            busy = cls == POISON ? 3000 : cls == ONCE ? 1000 : (uint32_t)rnd(&r->rng, 31);
        }
        atomic_store(&r->k->cls[i], (uint8_t)cls);
        int32_t rc = errors && rnd(&r->rng, 50) == 0 ? 1000 + (int32_t)(i % 7) : 0;
        r->in[i] = (struct item_in){r->tag, (uint32_t)i, busy, rc, xorshift(&r->rng)};
        r->out[i] = (struct item_out){0, 0};
    }
}

/* Checks item i, which finished with `code` and output *o.  Returns 1 if it
 * was lost (WORKER_DIED). */
static int check_item(struct run *r, size_t i, int code, const struct item_out *o) {
    const struct item_in *in = &r->in[i];
    unsigned e = atomic_load(&sh->entries[i]), x = atomic_load(&sh->exits[i]);
    unsigned kin = atomic_load(&r->k->killed_in[i]), retries = r->opts.retries;
    r->items++;
    r->kills_in_tasks += kin;
    if (code == MPROC_E_WORKER_DIED) {
        cr_assert(o->y == 0 && o->check == 0, "item %zu lost, yet output {%#llx, %#llx}", i,
                  (unsigned long long)o->y, (unsigned long long)o->check);
        if (r->k->hunt) { /* every kill precise and inside a task */
            cr_assert(kin == retries + 1 && e == kin && x == 0,
                      "item %zu lost after %u kills inside it, %u entries, %u exits", i, kin, e,
                      x);
            r->exhausted++;
        } else {
            cr_assert(kin <= 1 && e <= 1 && (kin == 0 || x == 0),
                      "item %zu lost: %u kills inside it, %u entries, %u exits", i, kin, e, x);
            r->edge += kin == 0;
        }
        r->lost++;
        return 1;
    }
    cr_assert_eq(code, in->rc, "item %zu: code %d (%s), expected %d", i, code,
                 mproc_errname(code), in->rc);
    cr_assert(x == 1 && e == kin + 1 && kin <= retries,
              "item %zu succeeded with %u entries, %u exits, %u kills inside it (retries %u)", i,
              e, x, kin, retries);
    r->retried_ok += kin != 0;
    if (in->rc != 0) {
        r->errors++;
        cr_assert(o->y == 0 && o->check == 0,
                  "item %zu failed with its code, yet output {%#llx, %#llx}", i,
                  (unsigned long long)o->y, (unsigned long long)o->check);
    } else {
        cr_assert(o->y == f(in->x) && o->check == (o->y ^ ((uint64_t)in->tag << 32 | i)),
                  "item %zu: wrong output", i);
    }
    return 0;
}

static void note_time(struct run *r, double t0, const char *what) {
    double took = t_now() - t0;
    cr_assert_lt(took, MAP_BOUND, "%s took %.1f s", what, took);
    if (took > r->longest)
        r->longest = took;
    r->jobs++;
}

/* One map of n items: map_async (codes per item) or, without task errors,
 * the blocking mproc_pool_map (a zero output is a lost item). */
static void one_map(struct run *r, size_t n, size_t chunksize, bool blocking) {
    begin_group(r, n);
    make_items(r, n, !blocking);
    unsigned kills0 = atomic_load(&r->k->kills);
    double t0 = t_now();
    size_t failed, first = SIZE_MAX; /* map's answer; the lowest failing item seen */
    int rc, first_code = 0, codes_seen = 0;
    if (blocking) {
        atomic_store(&r->k->wait_since, t0);
        rc = mproc_pool_map(r->pool, task, r->in, sizeof *r->in, r->out, sizeof *r->out, n,
                            chunksize, &failed);
        atomic_store(&r->k->wait_since, 0.0);
    } else {
        mproc_result *res;
        cr_assert_eq(mproc_pool_map_async(r->pool, task, r->in, sizeof *r->in, r->out,
                                          sizeof *r->out, n, chunksize, &res),
                     0);
        rc = mproc_result_get(res, MAP_BOUND, &failed);
        if (rc == ETIMEDOUT)
            diagnose(r->pool, r->k);
        cr_assert_neq(rc, ETIMEDOUT, "map_async of %zu items not ready within %.0f s", n,
                      MAP_BOUND);
        for (size_t i = 0; i < n; i++) {
            int code;
            cr_assert_eq(mproc_result_code(res, i, &code), 0);
            codes_seen += check_item(r, i, code, &r->out[i]);
            if (code != 0 && first == SIZE_MAX) {
                first = i;
                first_code = code;
            }
        }
        mproc_result_free(res);
    }
    note_time(r, t0, "a map");
    for (size_t i = 0; blocking && i < n; i++) { /* no task errors: a zero output is a loss */
        bool zero = r->out[i].y == 0 && r->out[i].check == 0;
        codes_seen += check_item(r, i, zero ? MPROC_E_WORKER_DIED : 0, &r->out[i]);
        if (zero && first == SIZE_MAX) {
            first = i;
            first_code = MPROC_E_WORKER_DIED;
        }
    }
    cr_assert_eq(failed, first, "failed_index %zu, lowest failing item %zu", failed, first);
    cr_assert_eq(rc, first_code, "map returned %s, its lowest failing item has %s",
                 mproc_errname(rc), mproc_errname(first_code));
    unsigned kills = atomic_load(&r->k->kills) - kills0;
    cr_assert_leq((unsigned)codes_seen, kills, "%d items lost to %u kills", codes_seen, kills);
    assert_killer_ok(r);
}

/* imap (ordered or not) of n items, with `napply` apply_async submitted
 * before it (items n .. n + napply - 1) and collected after it. */
static void one_imap(struct run *r, size_t n, size_t chunksize, bool unordered, size_t napply) {
    begin_group(r, n + napply);
    make_items(r, n + napply, true);
    unsigned kills0 = atomic_load(&r->k->kills);
    double t0 = t_now();
    mproc_result *apply[64];
    for (size_t a = 0; a < napply; a++)
        cr_assert_eq(mproc_pool_apply_async(r->pool, task, &r->in[n + a], sizeof *r->in,
                                            &r->out[n + a], sizeof *r->out, &apply[a]),
                     0);
    mproc_pool_iter *it;
    cr_assert_eq(mproc_pool_imap(r->pool, task, r->in, sizeof *r->in, sizeof *r->out, n,
                                 chunksize, unordered ? MPROC_IMAP_UNORDERED : 0, &it),
                 0);
    static unsigned char delivered[MAX_ITEMS];
    memset(delivered, 0, n);
    int lost = 0;
    for (size_t k = 0; k < n; k++) {
        struct item_out o;
        memset(&o, 0xa5, sizeof o); /* a lost item's output must be zero, not this */
        size_t index;
        int code;
        int rc = mproc_pool_iter_next(it, &o, &index, &code, MAP_BOUND);
        if (rc == ETIMEDOUT)
            diagnose(r->pool, r->k);
        cr_assert_eq(rc, 0, "imap result %zu of %zu: %s", k, n, mproc_errname(rc));
        cr_assert_lt(index, n);
        cr_assert(unordered || index == k, "ordered imap gave %zu at %zu", index, k);
        cr_assert_eq(delivered[index]++, 0, "imap delivered item %zu twice", index);
        lost += check_item(r, index, code, &o);
    }
    cr_assert_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0), ENODATA);
    mproc_pool_iter_free(it);
    for (size_t a = 0; a < napply; a++) {
        int code = mproc_result_get(apply[a], MAP_BOUND, NULL);
        cr_assert_neq(code, ETIMEDOUT, "apply_async not ready within %.0f s", MAP_BOUND);
        lost += check_item(r, n + a, code, &r->out[n + a]);
        mproc_result_free(apply[a]);
    }
    note_time(r, t0, "an imap round");
    unsigned kills = atomic_load(&r->k->kills) - kills0;
    cr_assert_leq((unsigned)lost, kills, "%d items lost to %u kills", lost, kills);
    assert_killer_ok(r);
}

static size_t pick_chunksize(struct run *r) {
    static const size_t sizes[] = {1, 7, 0, 0};
    uint64_t c = rnd(&r->rng, 5);
    return c < 4 ? sizes[c] : 1 + rnd(&r->rng, 50);
}

/* Stops the killer; checks the pool is whole again (every slot has a new
 * live worker), maps FINAL_ITEMS correctly, closes and joins it; checks the
 * counters; prints the summary. */
static void finish(struct run *r) {
    struct killer *k = r->k;
    atomic_store(&k->stop, true);
    cr_assert_eq(pthread_join(k->thread, NULL), 0);
    assert_killer_ok(r);
    unsigned kills = atomic_load(&k->kills);
    unsigned in_tasks = atomic_load(&k->by_kind[K_TASK]);
    cr_assert_eq(r->kills_in_tasks, in_tasks, "kills inside tasks: %llu seen on items, %u made",
                 r->kills_in_tasks, in_tasks);

    /* Every killed worker reaped and replaced: each slot whose pid was
     * killed (or 0) gets a new one. */
    int was[64], pids[64];
    unsigned count;
    cr_assert_eq(mproc_pool_worker_pids(r->pool, was, 64, &count), 0);
    cr_assert_eq(count, r->opts.workers);
    double give_up = t_now() + SPAWN_BOUND;
    for (;;) {
        unsigned bad = 0;
        cr_assert_eq(mproc_pool_worker_pids(r->pool, pids, 64, &count), 0);
        for (unsigned i = 0; i < count; i++)
            bad += pids[i] == 0 || (pids[i] == was[i] && killed_before(k, was[i]));
        if (bad == 0)
            break;
        if (t_now() >= give_up)
            diagnose(r->pool, k);
        cr_assert_lt(t_now(), give_up, "%u slots not refilled %.0f s after the last kill", bad,
                     SPAWN_BOUND);
        nap_us(1000);
    }

    /* Still usable: a plain map, no kills. */
    begin_group(r, FINAL_ITEMS);
    make_items(r, FINAL_ITEMS, false);
    unsigned long long lost_before = r->lost;
    mproc_result *res;
    double t0 = t_now();
    cr_assert_eq(mproc_pool_map_async(r->pool, task, r->in, sizeof *r->in, r->out,
                                      sizeof *r->out, FINAL_ITEMS, 0, &res),
                 0);
    size_t failed;
    int rc = mproc_result_get(res, MAP_BOUND, &failed);
    if (rc == ETIMEDOUT)
        diagnose(r->pool, k);
    cr_assert_eq(rc, 0, "the final map: %s at %zu", mproc_errname(rc), failed);
    for (size_t i = 0; i < FINAL_ITEMS; i++)
        check_item(r, i, 0, &r->out[i]);
    mproc_result_free(res);
    note_time(r, t0, "the final map");
    cr_assert_eq(r->lost, lost_before);

    mproc_pool_stats st;
    cr_assert_eq(mproc_pool_get_stats(r->pool, &st), 0);
    cr_assert_eq(st.died, kills, "stats.died %llu, kills %u", st.died, kills);
    cr_assert_eq(st.lost, r->lost, "stats.lost %llu, items lost %llu", st.lost, r->lost);
    cr_assert_eq(st.retried, r->kills_in_tasks - (r->lost - r->edge),
                 "stats.retried %llu; %llu kills inside tasks, %llu of them lost their item",
                 st.retried, r->kills_in_tasks, r->lost - r->edge);
    cr_assert_eq(st.init_error, 0);

    double t1 = t_now();
    cr_assert_eq(mproc_pool_close(r->pool), 0);
    rc = mproc_pool_join(r->pool, JOIN_BOUND);
    cr_assert_eq(rc, 0, "join: %s after %.1f s", mproc_errname(rc), t_now() - t1);
    cr_assert_eq(mproc_pool_get_stats(r->pool, &st), 0);
    cr_assert_eq(st.died, kills, "a worker died during close");
    /* Every worker but the last of each slot was replaced.  The last ones
     * took the STOP (not counted) or, with max_tasks_per_child, may have
     * retired on their own first (counted, not replaced). */
    unsigned long long ended = st.died + st.retired;
    if (r->opts.max_tasks_per_child == 0)
        cr_assert(st.retired == 0 && st.started == st.workers + ended,
                  "started %llu, workers %u, died %llu, retired %llu", st.started, st.workers,
                  st.died, st.retired);
    else
        cr_assert(st.started <= st.workers + ended && st.started >= ended,
                  "started %llu, workers %u, died %llu, retired %llu", st.started, st.workers,
                  st.died, st.retired);
    mproc_pool_free(r->pool);

    printf("  %s: %u kills in %.1f s (", r->name, kills, t_now() - r->started);
    for (int i = 0; i < NKINDS; i++)
        printf("%s%u %s", i ? ", " : "", atomic_load(&k->by_kind[i]), kind_names[i]);
    printf("); %llu jobs, %llu items, %llu lost (%llu at the edges), %llu retried, "
           "%llu task errors; started %llu, retired %llu; longest job %.3f s\n",
           r->jobs, r->items, r->lost, r->edge, st.retried, r->errors, st.started, st.retired,
           r->longest);
    fflush(stdout);
    free(r->in);
    free(r->out);
}

/* ---- the tests ---- */

#define MAP_KILLS 4000   /* the issue: >= 200 per run, during map */
#define RETRY_KILLS 1200
#define IMAP_KILLS 1600
#define RETIRE_KILLS 1600

Test(kill_pool, map_items_are_correct_or_worker_died_under_random_kills, .timeout = 200) {
    struct run r;
    start(&r, "map", (mproc_pool_options){.workers = 4}, false, 3000, 0);
    for (unsigned round = 0; atomic_load(&r.k->kills) < MAP_KILLS; round++) {
        size_t n = 1 + rnd(&r.rng, round % 4 == 0 ? 64 : 3000);
        one_map(&r, n, pick_chunksize(&r), round % 3 == 2);
    }
    unsigned in_task = atomic_load(&r.k->by_kind[K_TASK]);
    unsigned outside = atomic_load(&r.k->by_kind[K_OUTSIDE]);
    unsigned before = atomic_load(&r.k->by_kind[K_BEFORE]);
    finish(&r);
    cr_assert_geq(r.k->kills, MAP_KILLS);
    cr_assert(in_task > 0 && outside > 0 && before > 0,
              "kills should land inside tasks, outside them, and before a first task");
    cr_assert_gt(r.lost, 0);
}

Test(kill_pool, retried_items_fail_only_after_retries_plus_one_deaths, .timeout = 200) {
    struct run r;
    start(&r, "retries", (mproc_pool_options){.workers = 3, .retries = 3}, true, 0, 0);
    for (unsigned round = 0; atomic_load(&r.k->kills) < RETRY_KILLS; round++)
        one_map(&r, 50 + rnd(&r.rng, 250), pick_chunksize(&r), false);
    finish(&r);
    cr_assert_gt(r.exhausted, 0, "no item was killed on all of its 4 runs");
    cr_assert_gt(r.retried_ok, 0, "no item succeeded after a kill");
}

Test(kill_pool, imap_and_apply_async_deliver_each_index_once_under_kills, .timeout = 200) {
    struct run r;
    start(&r, "imap", (mproc_pool_options){.workers = 3}, false, 3000, 0);
    for (unsigned round = 0; atomic_load(&r.k->kills) < IMAP_KILLS; round++)
        one_imap(&r, 1 + rnd(&r.rng, 800), round % 3 == 0 ? 1 : round % 3 == 1 ? 3 : 0,
                 round % 2 == 0, rnd(&r.rng, 33));
    finish(&r);
    cr_assert_gt(r.lost, 0);
}

Test(kill_pool, kills_among_retirements_and_in_the_initializer_keep_the_pool_whole,
     .timeout = 200) {
    struct run r;
    start(&r, "max_tasks", (mproc_pool_options){.workers = 3, .max_tasks_per_child = 3,
                                                .initializer = slow_init},
          false, 3000, 1500);
    for (unsigned round = 0; atomic_load(&r.k->kills) < RETIRE_KILLS; round++)
        one_map(&r, 1 + rnd(&r.rng, 400), pick_chunksize(&r), round % 3 == 2);
    unsigned in_init = atomic_load(&r.k->by_kind[K_INIT]);
    finish(&r);
    cr_assert_gt(in_init, 0, "no kill landed inside the initializer");
    cr_assert_gt(atomic_load(&sh->inits), 3);
}
