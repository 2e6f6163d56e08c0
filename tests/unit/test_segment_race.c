/* SPDX-License-Identifier: MIT */
/*
 * Publication races: many processes create-or-attach one name at once; an
 * attacher polling a name being created sees it missing or whole, never half
 * built; nothing is left behind in /dev/shm.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define RACERS 8
#define ROUNDS 40

struct race {
    _Atomic int go;
    _Atomic int winners;     /* acquired with timeout 0 */
    _Atomic int opened;
    _Atomic int bad_code;    /* first unexpected code seen */
};

static int count_temp_files(const char *name) {
    DIR *dir = opendir("/dev/shm");
    int n = 0;
    struct dirent *entry;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "mproc.%s.", name);
    while ((entry = readdir(dir)) != NULL)
        if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(dir);
    return n;
}

Test(segment_race, concurrent_create_or_attach_all_reach_one_lock) {
    struct race *race = t_shared(sizeof *race);
    for (int round = 0; round < ROUNDS; round++) {
        const char *name = t_name("race");
        t_pipe done;
        t_pipe_open(&done);
        atomic_store(&race->go, 0);
        atomic_store(&race->winners, 0);
        atomic_store(&race->opened, 0);
        pid_t kids[RACERS];
        for (int i = 0; i < RACERS; i++) {
            kids[i] = t_fork();
            if (kids[i] == 0) {
                close(done.wr); /* so that the parent's close reads as EOF */
                while (!atomic_load(&race->go))
                    sched_yield();
                mproc_lock *lock;
                int rc = mproc_lock_open(&lock, name, MPROC_CREATE, NULL);
                if (rc != 0) {
                    atomic_store(&race->bad_code, rc);
                    _exit(1);
                }
                if (mproc_lock_acquire(lock, 0) == 0)
                    atomic_fetch_add(&race->winners, 1);
                atomic_fetch_add(&race->opened, 1);
                /* Hold until every racer has tried, then exit holding:
                 * the winner's death is fine, nobody needs the lock after. */
                t_await(&done, 10);
                _exit(0);
            }
        }
        atomic_store(&race->go, 1);
        double end = t_now() + 10;
        while (atomic_load(&race->opened) < RACERS && t_now() < end)
            sched_yield();
        t_pipe_close(&done);
        for (int i = 0; i < RACERS; i++)
            cr_assert_eq(t_exit_code(kids[i], 10), 0, "racer %d (code %d)", i,
                         atomic_load(&race->bad_code));
        cr_assert_eq(atomic_load(&race->winners), 1, "round %d", round);
        cr_assert_eq(count_temp_files(name), 0);
        cr_assert_eq(mproc_unlink(name), 0);
    }
}

Test(segment_race, an_attacher_sees_a_name_missing_or_whole_never_half_built) {
    struct race *race = t_shared(sizeof *race);
    for (int round = 0; round < ROUNDS; round++) {
        const char *name = t_name("half");
        atomic_store(&race->go, 0);
        pid_t watcher = t_fork();
        if (watcher == 0) {
            atomic_store(&race->go, 1);
            for (;;) {
                mproc_rlock *rlock;
                int rc = mproc_rlock_open(&rlock, name, MPROC_ATTACH, NULL);
                if (rc == 0) {
                    mproc_rlock_close(rlock);
                    _exit(0);
                }
                if (rc != ENOENT)
                    _exit(rc & 0x7f);
            }
        }
        while (!atomic_load(&race->go))
            sched_yield();
        mproc_rlock *rlock;
        cr_assert_eq(mproc_rlock_open(&rlock, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
        cr_assert_eq(t_exit_code(watcher, 10), 0);
        mproc_rlock_close(rlock);
        cr_assert_eq(mproc_unlink(name), 0);
    }
}
