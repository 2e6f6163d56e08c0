/* SPDX-License-Identifier: MIT */
/*
 * Value and Array between processes, for each lock flavour (own RLock, given
 * Lock, given RLock), anonymous (children use the inherited handles) and
 * named (children open the lock and the object by name):
 *   - Python's Value('i', 0) counter: N processes add 1 K times each under
 *     the value's lock, and the total is exact; one Lock shared by a Value
 *     and an Array excludes across both;
 *   - writes are seen both ways, by a forked child and by an unrelated
 *     program (this binary exec'd afresh: no inherited mapping);
 *   - a child that dies holding the lock: the next get returns EOWNERDEAD
 *     with the data, the one after returns 0; a get blocked behind the dead
 *     holder returns EOWNERDEAD too.
 * Children never assert; they report through exit codes.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */
#define PROCS 4
#define ADDS 5000

enum flavour { OWN_RLOCK, GIVEN_LOCK, GIVEN_RLOCK };

typedef struct fx {
    enum flavour flavour;
    bool named;
    char name[96], array_name[96], lock_name[96];
    mproc_lock *lock;
    mproc_rlock *rlock;
    mproc_value *value; /* 'q' */
    mproc_array *array; /* 4 x 'q' */
} fx;

static void fx_make(fx *f, enum flavour flavour, bool named) {
    memset(f, 0, sizeof *f);
    f->flavour = flavour;
    f->named = named;
    snprintf(f->name, sizeof f->name, "%s", t_name("vpv"));
    snprintf(f->array_name, sizeof f->array_name, "%s", t_name("vpa"));
    snprintf(f->lock_name, sizeof f->lock_name, "%s", t_name("vpl"));
    int excl = MPROC_CREATE | MPROC_EXCL;
    if (flavour == GIVEN_LOCK)
        cr_assert_eq(named ? mproc_lock_open(&f->lock, f->lock_name, excl, NULL)
                           : mproc_lock_create(&f->lock, NULL),
                     0);
    if (flavour == GIVEN_RLOCK)
        cr_assert_eq(named ? mproc_rlock_open(&f->rlock, f->lock_name, excl, NULL)
                           : mproc_rlock_create(&f->rlock, NULL),
                     0);
    const long long initial[4] = {1, 2, 3, 4};
    int q = MPROC_TYPE_LONGLONG;
    cr_assert_eq(named ? mproc_value_open(&f->value, f->name, excl, q, NULL, f->lock, f->rlock,
                                          NULL)
                       : mproc_value_create(&f->value, q, NULL, f->lock, f->rlock, NULL),
                 0);
    cr_assert_eq(named ? mproc_array_open(&f->array, f->array_name, excl, q, 4, initial, f->lock,
                                          f->rlock, NULL)
                       : mproc_array_create(&f->array, q, 4, initial, f->lock, f->rlock, NULL),
                 0);
}

static void fx_free(fx *f) {
    cr_assert_eq(mproc_value_close(f->value), 0);
    cr_assert_eq(mproc_array_close(f->array), 0);
    if (f->lock != NULL)
        cr_assert_eq(mproc_lock_close(f->lock), 0);
    if (f->rlock != NULL)
        cr_assert_eq(mproc_rlock_close(f->rlock), 0);
    if (f->named) {
        cr_assert_eq(mproc_unlink(f->name), 0);
        cr_assert_eq(mproc_unlink(f->array_name), 0);
        if (f->flavour != OWN_RLOCK)
            cr_assert_eq(mproc_unlink(f->lock_name), 0);
    }
}

/* In a child: the objects as it reaches them (inherited, or opened by name
 * into `mine`).  Exits 90..93 if an open fails. */
static void child_objects(const fx *f, fx *mine) {
    *mine = *f;
    if (!f->named)
        return;
    mine->lock = NULL;
    mine->rlock = NULL;
    if (f->flavour == GIVEN_LOCK && mproc_lock_open(&mine->lock, f->lock_name, 0, NULL) != 0)
        _exit(90);
    if (f->flavour == GIVEN_RLOCK && mproc_rlock_open(&mine->rlock, f->lock_name, 0, NULL) != 0)
        _exit(91);
    int q = MPROC_TYPE_LONGLONG;
    if (mproc_value_open(&mine->value, f->name, 0, q, NULL, mine->lock, mine->rlock, NULL) != 0)
        _exit(92);
    if (mproc_array_open(&mine->array, f->array_name, 0, q, 4, NULL, mine->lock, mine->rlock,
                         NULL) != 0)
        _exit(93);
}

/* One FOR_EACH_FLAVOUR Test per flavour, each anonymous then named. */
#define FOR_EACH_FLAVOUR(behaviour, check)                                                 \
    Test(value_procs, behaviour##_own_rlock) {                                             \
        check(OWN_RLOCK, false);                                                           \
        check(OWN_RLOCK, true);                                                            \
    }                                                                                      \
    Test(value_procs, behaviour##_given_lock) {                                            \
        check(GIVEN_LOCK, false);                                                          \
        check(GIVEN_LOCK, true);                                                           \
    }                                                                                      \
    Test(value_procs, behaviour##_given_rlock) {                                           \
        check(GIVEN_RLOCK, false);                                                         \
        check(GIVEN_RLOCK, true);                                                          \
    }

/* ---- counters ---- */

/* Adds 1 ADDS times to the value (and to array[k % 4] when `both`), under
 * the value's lock or, every other time, the array's (the same lock only
 * when one was given).  Exit 0, or 1 on a failed acquire. */
static void add_child(const fx *f, bool both) {
    fx o;
    child_objects(f, &o);
    long long *value = mproc_value_ptr(o.value), *slots = mproc_array_data(o.array);
    for (int k = 0; k < ADDS; k++) {
        bool via_array = both && k % 2 == 1;
        int rc = via_array ? mproc_array_acquire(o.array, BOUND)
                           : mproc_value_acquire(o.value, BOUND);
        if (rc != 0)
            _exit(1);
        long long seen = *value;
        if (k % 64 == 0)
            sched_yield(); /* widen the window a broken lock would lose updates in */
        *value = seen + 1;
        if (both)
            slots[k % 4]++;
        via_array ? mproc_array_release(o.array) : mproc_value_release(o.value);
    }
    _exit(0);
}

static void run_adders(fx *f, bool both) {
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = t_fork();
        if (pids[p] == 0)
            add_child(f, both);
    }
    for (int p = 0; p < PROCS; p++)
        cr_assert_eq(t_exit_code(pids[p], 60), 0, "adder %d", p);
}

static void check_counter(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    run_adders(&f, false);
    long long total = -1;
    cr_assert_eq(mproc_value_get(f.value, &total), 0);
    cr_assert_eq(total, (long long)PROCS * ADDS);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(counter_of_processes_is_exact, check_counter)

/* With a given lock, half the updates lock through the array: still one
 * lock, so the value's total stays exact. */
static void check_shared_lock(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    run_adders(&f, true);
    long long total = -1, slots[4];
    cr_assert_eq(mproc_value_get(f.value, &total), 0);
    cr_assert_eq(total, (long long)PROCS * ADDS);
    cr_assert_eq(mproc_array_read(f.array, 0, 4, slots), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(slots[i], i + 1 + (long long)PROCS * ADDS / 4, "slot %d", i);
    fx_free(&f);
}

Test(value_procs, one_given_lock_excludes_across_a_value_and_an_array) {
    check_shared_lock(GIVEN_LOCK, false);
    check_shared_lock(GIVEN_LOCK, true);
    check_shared_lock(GIVEN_RLOCK, false);
    check_shared_lock(GIVEN_RLOCK, true);
}

/* ---- visibility both ways ---- */

/* Checks the parent's writes, then writes its own.  Exit 0, or 1..4. */
static void swap_child(const fx *f) {
    fx o;
    child_objects(f, &o);
    long long v = 0, slots[4];
    if (mproc_value_get(o.value, &v) != 0 || v != 1000)
        _exit(1);
    if (mproc_array_read(o.array, 0, 4, slots) != 0 || slots[0] != 1 || slots[3] != 40)
        _exit(2);
    long long mine = -77, reversed[4] = {slots[3], slots[2], slots[1], slots[0]};
    if (mproc_value_set(o.value, &mine) != 0 || mproc_array_write(o.array, 0, 4, reversed) != 0)
        _exit(3);
    _exit(0);
}

static void check_visibility(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    long long thousand = 1000, forty = 40;
    cr_assert_eq(mproc_value_set(f.value, &thousand), 0);
    cr_assert_eq(mproc_array_set(f.array, 3, &forty), 0);
    pid_t pid = t_fork();
    if (pid == 0)
        swap_child(&f);
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    long long v = 0, slots[4];
    cr_assert_eq(mproc_value_get(f.value, &v), 0);
    cr_assert_eq(v, -77);
    cr_assert_eq(mproc_array_read(f.array, 0, 4, slots), 0);
    cr_assert_eq(slots[0], 40);
    cr_assert_eq(slots[1], 3);
    cr_assert_eq(slots[2], 2);
    cr_assert_eq(slots[3], 1);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_child_sees_the_parents_writes_and_the_parent_its, check_visibility)

/*
 * The unrelated program: this test binary exec'd with MPROC_VALUE_PEER set,
 * caught by a constructor before Criterion's main.  It opens the named 'q'
 * value and its 4-element array (own RLock), checks the array holds
 * 1, 2, 3, 4, reverses it, and adds 1 ADDS times under the value's lock.
 */
static int peer_main(const char *spec) {
    char vname[96], aname[96];
    if (sscanf(spec, "%95[^:]:%95s", vname, aname) != 2)
        return 10;
    mproc_value *v;
    mproc_array *a;
    int q = MPROC_TYPE_LONGLONG;
    if (mproc_value_open(&v, vname, MPROC_ATTACH, q, NULL, NULL, NULL, NULL) != 0)
        return 11;
    if (mproc_array_open(&a, aname, MPROC_ATTACH, q, 4, NULL, NULL, NULL, NULL) != 0)
        return 12;
    long long slots[4];
    if (mproc_array_read(a, 0, 4, slots) != 0 || slots[0] != 1 || slots[1] != 2 ||
        slots[2] != 3 || slots[3] != 4)
        return 13;
    long long reversed[4] = {4, 3, 2, 1};
    if (mproc_array_write(a, 0, 4, reversed) != 0)
        return 14;
    for (int k = 0; k < ADDS; k++) {
        if (mproc_value_acquire(v, BOUND) != 0)
            return 15;
        ++*(long long *)mproc_value_ptr(v);
        mproc_value_release(v);
    }
    mproc_value_close(v);
    mproc_array_close(a);
    return 0;
}

__attribute__((constructor)) static void maybe_be_the_peer(void) {
    const char *spec = getenv("MPROC_VALUE_PEER");
    if (spec != NULL)
        _exit(peer_main(spec));
}

/* Starts this binary afresh as the peer (the path is resolved before the
 * fork, which also works under valgrind: it emulates /proc/self/exe). */
static pid_t start_peer(const char *arg) {
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(len, 0);
    self[len] = '\0';
    pid_t pid = t_fork();
    if (pid == 0) {
        setenv("MPROC_VALUE_PEER", arg, 1);
        execl(self, "mproc-value-peer", (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(value_procs, an_unrelated_program_opens_by_name_and_shares_the_lock) {
    fx f;
    fx_make(&f, OWN_RLOCK, true);
    char spec[200];
    snprintf(spec, sizeof spec, "%s:%s", f.name, f.array_name);
    pid_t pid = start_peer(spec);
    for (int k = 0; k < ADDS; k++) { /* alongside the peer's adds */
        cr_assert_eq(mproc_value_acquire(f.value, BOUND), 0);
        ++*(long long *)mproc_value_ptr(f.value);
        cr_assert_eq(mproc_value_release(f.value), 0);
    }
    cr_assert_eq(t_exit_code(pid, 60), 0);
    long long total = 0, slots[4];
    cr_assert_eq(mproc_value_get(f.value, &total), 0);
    cr_assert_eq(total, 2LL * ADDS);
    cr_assert_eq(mproc_array_read(f.array, 0, 4, slots), 0);
    cr_assert_eq(slots[0], 4);
    cr_assert_eq(slots[3], 1);
    fx_free(&f);
}

Test(value_procs, a_raw_value_is_shared_without_a_lock) {
    mproc_value_options raw = {.flags = MPROC_RAW};
    const char *name = t_name("vraw");
    mproc_value *anon, *named;
    cr_assert_eq(mproc_value_create(&anon, MPROC_TYPE_UINT, NULL, NULL, NULL, &raw), 0);
    cr_assert_eq(mproc_value_open(&named, name, MPROC_CREATE | MPROC_EXCL, MPROC_TYPE_UINT,
                                  NULL, NULL, NULL, &raw),
                 0);
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_value *mine;
        if (mproc_value_open(&mine, name, 0, MPROC_TYPE_UINT, NULL, NULL, NULL, &raw) != 0)
            _exit(1);
        if (mproc_value_acquire(mine, 0) != ENOTSUP)
            _exit(2);
        *(unsigned *)mproc_value_ptr(anon) = 0xabcdu;
        unsigned v = 0xfeedu;
        _exit(mproc_value_set(mine, &v) == 0 ? 0 : 3);
    }
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    unsigned out = 0;
    cr_assert_eq(mproc_value_get(anon, &out), 0);
    cr_assert_eq(out, 0xabcdu);
    cr_assert_eq(*(unsigned *)mproc_value_ptr(named), 0xfeedu);
    mproc_value_close(anon);
    mproc_value_close(named);
    cr_assert_eq(mproc_unlink(name), 0);
}

/* ---- a holder that dies ---- */

/* A child takes the value's lock, writes 42 to the value and 7 to
 * array[0], says 'h' and SIGKILLs itself still holding it. */
static pid_t die_holding(fx *f, t_pipe *ready) {
    pid_t pid = t_fork();
    if (pid == 0) {
        fx o;
        child_objects(f, &o);
        if (mproc_value_acquire(o.value, BOUND) != 0)
            _exit(1);
        *(long long *)mproc_value_ptr(o.value) = 42;
        ((long long *)mproc_array_data(o.array))[0] = 7;
        t_signal(ready, 'h');
        raise(SIGKILL);
        _exit(2);
    }
    return pid;
}

static void check_dead_holder(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    t_pipe ready;
    t_pipe_open(&ready);
    pid_t pid = die_holding(&f, &ready);
    cr_assert_eq(t_await(&ready, BOUND), 'h');
    cr_assert_eq(t_exit_code(pid, BOUND), -1000 - SIGKILL);
    long long out = 0;
    cr_assert_eq(mproc_value_get(f.value, &out), EOWNERDEAD);
    cr_assert_eq(out, 42, "the copy is made all the same");
    cr_assert_eq(mproc_value_get(f.value, &out), 0, "recovered: normal again");
    cr_assert_eq(mproc_value_acquire(f.value, 0), 0, "and free");
    cr_assert_eq(mproc_value_release(f.value), 0);
    if (flavour != OWN_RLOCK) { /* the array shares the given lock, now healthy */
        cr_assert_eq(mproc_array_get(f.array, 0, &out), 0);
        cr_assert_eq(out, 7);
    }
    t_pipe_close(&ready);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_holder_killed_makes_the_next_get_eownerdead_with_the_data, check_dead_holder)

/* The same through the array: a child holds the array's lock and dies; the
 * next read returns EOWNERDEAD with the data. */
Test(value_procs, an_array_holder_killed_makes_the_next_read_eownerdead) {
    for (int named = 0; named < 2; named++) {
        fx f;
        fx_make(&f, OWN_RLOCK, named);
        pid_t pid = t_fork();
        if (pid == 0) {
            fx o;
            child_objects(&f, &o);
            if (mproc_array_acquire(o.array, BOUND) != 0)
                _exit(1);
            long long nine = 9;
            mproc_array_set(o.array, 2, &nine); /* re-entered, under the held lock */
            raise(SIGKILL);
            _exit(2);
        }
        cr_assert_eq(t_exit_code(pid, BOUND), -1000 - SIGKILL);
        long long slots[4] = {0};
        cr_assert_eq(mproc_array_read(f.array, 0, 4, slots), EOWNERDEAD);
        cr_assert_eq(slots[2], 9);
        cr_assert_eq(mproc_array_read(f.array, 0, 4, slots), 0);
        fx_free(&f);
    }
}

/* A get blocked behind the holder returns EOWNERDEAD once the holder dies. */
static void check_blocked_get(enum flavour flavour, bool named) {
    fx f;
    fx_make(&f, flavour, named);
    t_pipe ready;
    t_pipe_open(&ready);
    pid_t holder = t_fork();
    if (holder == 0) {
        fx o;
        child_objects(&f, &o);
        if (mproc_value_acquire(o.value, BOUND) != 0)
            _exit(1);
        *(long long *)mproc_value_ptr(o.value) = 5;
        t_signal(&ready, 'h');
        pause();
        _exit(2);
    }
    cr_assert_eq(t_await(&ready, BOUND), 'h');
    pid_t getter = t_fork();
    if (getter == 0) {
        fx o;
        child_objects(&f, &o);
        long long out = 0;
        int rc = mproc_value_get(o.value, &out);
        _exit(rc == EOWNERDEAD && out == 5 ? 0 : rc == 0 ? 3 : 4);
    }
    cr_assert(t_wait_sleeping(getter, BOUND), "the getter never blocked");
    kill(holder, SIGKILL);
    cr_assert_eq(t_exit_code(holder, BOUND), -1000 - SIGKILL);
    cr_assert_eq(t_exit_code(getter, BOUND), 0);
    cr_assert_eq(mproc_value_acquire(f.value, 0), 0);
    cr_assert_eq(mproc_value_release(f.value), 0);
    t_pipe_close(&ready);
    fx_free(&f);
}
FOR_EACH_FLAVOUR(a_get_blocked_behind_a_killed_holder_returns_eownerdead, check_blocked_get)
