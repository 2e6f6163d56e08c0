/* SPDX-License-Identifier: MIT */
/*
 * mproc-test-peer: a separately started program (exec'd, not forked) that
 * works on a named lock, so tests prove that unrelated programs share it.
 *
 *   mproc-test-peer lock|rlock NAME create      create exclusively, print "created"
 *   mproc-test-peer lock|rlock NAME try T       acquire(T), print the code's name
 *   mproc-test-peer lock|rlock NAME hold        acquire (twice for rlock), print
 *                                              "held", then wait for stdin EOF
 *                                              or a kill; release on EOF
 * Output lines are flushed at once; exit 0 unless the call itself failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

static int say(const char *what) {
    printf("%s\n", what);
    fflush(stdout);
    return 0;
}

static int run(int rlock, mproc_lock *lock, mproc_rlock *rl, int argc, char **argv) {
    const char *verb = argv[3];
    int rc;
    if (strcmp(verb, "create") == 0)
        return say("created");
    if (strcmp(verb, "try") == 0 && argc == 5) {
        double timeout = atof(argv[4]);
        rc = rlock ? mproc_rlock_acquire(rl, timeout) : mproc_lock_acquire(lock, timeout);
        return say(mproc_errname(rc));
    }
    if (strcmp(verb, "hold") == 0) {
        rc = rlock ? mproc_rlock_acquire(rl, 10) : mproc_lock_acquire(lock, 10);
        if (rc == 0 && rlock)
            rc = mproc_rlock_acquire(rl, 0);
        if (rc != 0) {
            say(mproc_errname(rc));
            return 1;
        }
        say("held");
        char buf[16];
        while (read(0, buf, sizeof buf) > 0) {
        }
        if (rlock) {
            mproc_rlock_release(rl);
            mproc_rlock_release(rl);
        } else {
            mproc_lock_release(lock);
        }
        return say("released");
    }
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 4)
        return 2;
    int rlock = strcmp(argv[1], "rlock") == 0;
    int flags = strcmp(argv[3], "create") == 0 ? MPROC_CREATE | MPROC_EXCL : MPROC_ATTACH;
    mproc_lock *lock = NULL;
    mproc_rlock *rl = NULL;
    int rc = rlock ? mproc_rlock_open(&rl, argv[2], flags, NULL)
                   : mproc_lock_open(&lock, argv[2], flags, NULL);
    if (rc != 0) {
        say(mproc_errname(rc));
        return 1;
    }
    int status = run(rlock, lock, rl, argc, argv);
    rlock ? mproc_rlock_close(rl) : mproc_lock_close(lock);
    return status;
}
