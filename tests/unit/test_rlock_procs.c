/* SPDX-License-Identifier: MIT */
/* RLock ownership across processes: levels belong to the owning thread of
 * the owning process; nobody else sees them or can release them. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

static void check_levels_across_processes(bool named) {
    const char *name = named ? t_name("rlp") : NULL;
    mproc_rlock *rlock;
    cr_assert_eq(named ? mproc_rlock_open(&rlock, name, MPROC_CREATE, NULL)
                       : mproc_rlock_create(&rlock, NULL),
                 0);
    t_pipe to_child, to_parent;
    t_pipe_open(&to_child);
    t_pipe_open(&to_parent);
    pid_t child = t_fork();
    if (child == 0) {
        mproc_rlock *mine = rlock;
        if (named && mproc_rlock_open(&mine, name, MPROC_ATTACH, NULL) != 0)
            _exit(1);
        unsigned n = 0;
        for (int i = 0; i < 3; i++)
            if (mproc_rlock_acquire(mine, 0) != 0)
                _exit(2);
        mproc_rlock_count(mine, &n);
        if (n != 3)
            _exit(3);
        t_signal(&to_parent, '3');
        for (int i = 0; i < 2; i++) {
            if (t_await(&to_child, 10) != 'r' || mproc_rlock_release(mine) != 0)
                _exit(4);
            t_signal(&to_parent, (char)('2' - i));
        }
        if (t_await(&to_child, 10) != 'r' || mproc_rlock_release(mine) != 0)
            _exit(5);
        mproc_rlock_count(mine, &n);
        t_signal(&to_parent, n == 0 ? '0' : 'x');
        _exit(0);
    }
    unsigned n = 99;
    cr_assert_eq(t_await(&to_parent, 10), '3');
    mproc_rlock_count(rlock, &n);
    cr_assert_eq(n, 0);
    cr_assert_eq(mproc_rlock_release(rlock), EPERM);
    double t0 = t_now();
    cr_assert_eq(mproc_rlock_acquire(rlock, 0.1), ETIMEDOUT);
    cr_assert_geq(t_now() - t0, 0.1);
    for (char expect = '2'; expect >= '1'; expect--) {
        t_signal(&to_child, 'r');
        cr_assert_eq(t_await(&to_parent, 10), expect);
        cr_assert_eq(mproc_rlock_acquire(rlock, 0), ETIMEDOUT); /* still held */
    }
    t_signal(&to_child, 'r');
    cr_assert_eq(t_await(&to_parent, 10), '0');
    cr_assert_eq(t_exit_code(child, 10), 0);
    cr_assert_eq(mproc_rlock_acquire(rlock, 0), 0);
    mproc_rlock_count(rlock, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(mproc_rlock_release(rlock), 0);
    t_pipe_close(&to_child);
    t_pipe_close(&to_parent);
    mproc_rlock_close(rlock);
    if (named)
        cr_assert_eq(mproc_unlink(name), 0);
}

Test(rlock_procs, levels_belong_to_the_owning_process_anonymous) {
    check_levels_across_processes(false);
}
Test(rlock_procs, levels_belong_to_the_owning_process_named) {
    check_levels_across_processes(true);
}
