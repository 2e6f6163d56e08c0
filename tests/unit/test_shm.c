/* SPDX-License-Identifier: MIT */
/*
 * SharedMemory: creation (size, zeroed bytes, 64-byte alignment, random
 * "psm_XXXXXXXX" names, EINVAL / EEXIST / ENOSPC), attachment by name from a
 * forked child and from an unrelated program (this binary exec'd afresh)
 * with writes seen both ways, and unlink: once only, never removing a newer
 * object that took the name, the mapping usable afterwards.
 * Children never assert; they report through exit codes.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

static mproc_shm *create_named(const char *name, int64_t size) {
    mproc_shm *shm = NULL;
    int rc = mproc_shm_create(&shm, name, size, NULL);
    cr_assert_eq(rc, 0, "create: %s", mproc_errname(rc));
    return shm;
}

static bool all_zero(const unsigned char *bytes, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0)
            return false;
    return true;
}

/* ---- creation ---- */

Test(shm, a_new_block_has_its_size_zeroed_and_aligned) {
    const char *name = t_name("shm10");
    mproc_shm *shm = create_named(name, 10);
    cr_assert_eq(mproc_shm_size(shm), 10);
    cr_assert_str_eq(mproc_shm_name(shm), name);
    unsigned char *buf = mproc_shm_buf(shm);
    cr_assert_not_null(buf);
    cr_assert_eq((uintptr_t)buf % 64, 0);
    cr_assert(all_zero(buf, 10));
    memcpy(buf, "0123456789", 10);
    cr_assert_eq(mproc_shm_close(shm), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}

/* Python's bpo-11675: fresh memory must really be zero, even after other
 * blocks of the same size were written and freed just before. */
Test(shm, blocks_made_after_freed_ones_are_zeroed_too) {
    size_t size = 1 << 20;
    for (int round = 0; round < 4; round++) {
        const char *name = t_name("shmz");
        mproc_shm *shm = create_named(name, (int64_t)size);
        cr_assert(all_zero(mproc_shm_buf(shm), size), "round %d", round);
        memset(mproc_shm_buf(shm), 0xff, size);
        cr_assert_eq(mproc_shm_unlink(shm), 0);
        cr_assert_eq(mproc_shm_close(shm), 0);
    }
}

Test(shm, bad_sizes_and_arguments_are_einval) {
    mproc_shm *shm = NULL;
    const char *name = t_name("shmbad");
    mproc_shm_options reserved = {.reserved = {0, 0, 0, 0, 0, 0, 1}}, mode = {.mode = 010000};
    cr_assert_eq(mproc_shm_create(&shm, name, 0, NULL), EINVAL);
    cr_assert_eq(mproc_shm_create(&shm, name, -1, NULL), EINVAL);
    cr_assert_eq(mproc_shm_create(&shm, name, INT64_MIN, NULL), EINVAL);
    cr_assert_eq(mproc_shm_create(&shm, name, MPROC_SHM_SIZE_MAX + 1, NULL), EINVAL);
    cr_assert_eq(mproc_shm_create(&shm, NULL, 0, NULL), EINVAL);
    cr_assert_eq(mproc_shm_create(NULL, name, 10, NULL), EINVAL);
    cr_assert_eq(mproc_shm_create(&shm, name, 10, &reserved), EINVAL);
    cr_assert_eq(mproc_shm_create(&shm, name, 10, &mode), EINVAL);
    cr_assert_eq(mproc_shm_create(&shm, "a/b", 10, NULL), MPROC_E_BADNAME);
    cr_assert_eq(mproc_shm_create(&shm, "", 10, NULL), MPROC_E_BADNAME);
    char long_name[MPROC_NAME_MAX + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    cr_assert_eq(mproc_shm_create(&shm, long_name, 10, NULL), ENAMETOOLONG);
    cr_assert_eq(mproc_shm_attach(&shm, NULL), EINVAL);
    cr_assert_eq(mproc_shm_attach(NULL, name), EINVAL);
    cr_assert_null(shm);
    cr_assert_eq(mproc_shm_attach(&shm, name), ENOENT, "no failed create left a name");
    cr_assert_eq(mproc_shm_unlink(NULL), EINVAL);
    cr_assert_eq(mproc_shm_close(NULL), EINVAL);
    cr_assert_null(mproc_shm_buf(NULL));
    cr_assert_eq(mproc_shm_size(NULL), 0);
    cr_assert_null(mproc_shm_name(NULL));
}

Test(shm, creating_an_existing_name_is_eexist) {
    const char *name = t_name("shmex");
    mproc_shm *shm = create_named(name, 100), *again = NULL;
    cr_assert_eq(mproc_shm_create(&again, name, 100, NULL), EEXIST);
    cr_assert_eq(mproc_shm_create(&again, name, 7, NULL), EEXIST);
    cr_assert_null(again);
    mproc_lock *lock;
    const char *lock_name = t_name("shmexl");
    cr_assert_eq(mproc_lock_open(&lock, lock_name, MPROC_CREATE, NULL), 0);
    cr_assert_eq(mproc_shm_create(&again, lock_name, 100, NULL), EEXIST, "any object's name");
    mproc_lock_close(lock);
    mproc_shm_close(shm);
    cr_assert_eq(mproc_unlink(name), 0);
    cr_assert_eq(mproc_unlink(lock_name), 0);
}

/* Creation reserves every page: a block larger than /dev/shm fails at
 * create with ENOSPC (never SIGBUS on first touch later), leaving no name. */
Test(shm, a_block_larger_than_dev_shm_is_enospc_at_create) {
    struct statvfs vfs;
    cr_assert_eq(statvfs("/dev/shm", &vfs), 0);
    if ((uint64_t)vfs.f_blocks * vfs.f_frsize >= (uint64_t)MPROC_SHM_SIZE_MAX)
        cr_skip_test("/dev/shm is 1 TiB or more");
    const char *name = t_name("shmnospc");
    mproc_shm *shm = NULL;
    cr_assert_eq(mproc_shm_create(&shm, name, MPROC_SHM_SIZE_MAX, NULL), ENOSPC);
    cr_assert_null(shm);
    cr_assert_eq(mproc_shm_attach(&shm, name), ENOENT);
}

Test(shm, a_null_name_picks_a_random_psm_name) {
    mproc_shm *a = NULL, *b = NULL, *seen = NULL;
    cr_assert_eq(mproc_shm_create(&a, NULL, 64, NULL), 0);
    cr_assert_eq(mproc_shm_create(&b, NULL, 64, NULL), 0);
    const char *name = mproc_shm_name(a);
    cr_assert_eq(strlen(name), 12, "%s", name);
    cr_assert_eq(strncmp(name, "psm_", 4), 0, "%s", name);
    for (int i = 4; i < 12; i++)
        cr_assert(isxdigit((unsigned char)name[i]) && !isupper((unsigned char)name[i]), "%s",
                  name);
    cr_assert_str_neq(name, mproc_shm_name(b));
    cr_assert_eq(mproc_shm_attach(&seen, name), 0);
    ((char *)mproc_shm_buf(a))[0] = 'r';
    cr_assert_eq(((char *)mproc_shm_buf(seen))[0], 'r');
    cr_assert_eq(mproc_shm_unlink(a), 0);
    cr_assert_eq(mproc_shm_unlink(b), 0);
    mproc_shm_close(a);
    mproc_shm_close(b);
    mproc_shm_close(seen);
}

/* ---- attachment ---- */

Test(shm, attach_takes_the_size_from_the_object) {
    const char *name = t_name("shmsz");
    mproc_shm *shm = create_named(name, 12345), *other;
    cr_assert_eq(mproc_shm_attach(&other, name), 0);
    cr_assert_eq(mproc_shm_size(other), 12345);
    cr_assert_str_eq(mproc_shm_name(other), name);
    cr_assert_eq((uintptr_t)mproc_shm_buf(other) % 64, 0);
    mproc_shm_close(other);
    mproc_shm_close(shm);
    cr_assert_eq(mproc_unlink(name), 0);
}

Test(shm, attaching_a_missing_name_is_enoent) {
    mproc_shm *shm = NULL;
    cr_assert_eq(mproc_shm_attach(&shm, t_name("shmnone")), ENOENT);
    cr_assert_null(shm);
}

Test(shm, attaching_another_kind_is_a_kind_error) {
    const char *lock_name = t_name("shmk1"), *value_name = t_name("shmk2"),
               *shm_name = t_name("shmk3");
    mproc_lock *lock;
    mproc_value *value;
    mproc_shm *shm = NULL, *mine = create_named(shm_name, 8);
    cr_assert_eq(mproc_lock_open(&lock, lock_name, MPROC_CREATE, NULL), 0);
    cr_assert_eq(mproc_value_open(&value, value_name, MPROC_CREATE, MPROC_TYPE_INT, NULL, NULL,
                                  NULL, NULL),
                 0);
    cr_assert_eq(mproc_shm_attach(&shm, lock_name), MPROC_E_KIND);
    cr_assert_eq(mproc_shm_attach(&shm, value_name), MPROC_E_KIND);
    cr_assert_null(shm);
    cr_assert_eq(mproc_lock_open(&lock, shm_name, MPROC_ATTACH, NULL), MPROC_E_KIND);
    cr_assert_eq(mproc_value_open(&value, shm_name, MPROC_ATTACH, MPROC_TYPE_INT, NULL, NULL,
                                  NULL, NULL),
                 MPROC_E_KIND);
    mproc_shm_close(mine);
    mproc_lock_close(lock);
    mproc_value_close(value);
    cr_assert_eq(mproc_unlink(lock_name), 0);
    cr_assert_eq(mproc_unlink(value_name), 0);
    cr_assert_eq(mproc_unlink(shm_name), 0);
}

Test(shm, a_forked_child_attaches_and_writes_are_seen_both_ways) {
    const char *name = t_name("shmfork");
    mproc_shm *shm = create_named(name, 4096);
    t_pipe to_child, to_parent;
    t_pipe_open(&to_child);
    t_pipe_open(&to_parent);
    strcpy(mproc_shm_buf(shm), "from parent");
    pid_t pid = t_fork();
    if (pid == 0) {
        mproc_shm *mine;
        if (mproc_shm_attach(&mine, name) != 0 || mproc_shm_size(mine) != 4096)
            _exit(1);
        char *buf = mproc_shm_buf(mine);
        if (strcmp(buf, "from parent") != 0)
            _exit(2);
        strcpy(buf + 2048, "from child");
        t_signal(&to_parent, 'w');
        if (t_await(&to_child, BOUND) != 'w' || strcmp(buf + 100, "second") != 0)
            _exit(3); /* a later parent write, seen through the live mapping */
        _exit(mproc_shm_close(mine) == 0 ? 0 : 4);
    }
    cr_assert_eq(t_await(&to_parent, BOUND), 'w');
    cr_assert_str_eq((char *)mproc_shm_buf(shm) + 2048, "from child");
    strcpy((char *)mproc_shm_buf(shm) + 100, "second");
    t_signal(&to_child, 'w');
    cr_assert_eq(t_exit_code(pid, BOUND), 0);
    t_pipe_close(&to_child);
    t_pipe_close(&to_parent);
    cr_assert_eq(mproc_shm_unlink(shm), 0);
    mproc_shm_close(shm);
}

/*
 * The unrelated program: this test binary exec'd with MPROC_SHM_PEER=<name>,
 * caught by a constructor before Criterion's main.  It attaches, checks the
 * size (4096) and the parent's text, and writes its own at offset 1000.
 */
static int peer_main(const char *name) {
    mproc_shm *shm;
    if (mproc_shm_attach(&shm, name) != 0)
        return 10;
    if (mproc_shm_size(shm) != 4096)
        return 11;
    char *buf = mproc_shm_buf(shm);
    if (strcmp(buf, "from parent") != 0)
        return 12;
    strcpy(buf + 1000, "from peer");
    return mproc_shm_close(shm) == 0 ? 0 : 13;
}

__attribute__((constructor)) static void maybe_be_the_peer(void) {
    const char *name = getenv("MPROC_SHM_PEER");
    if (name != NULL)
        _exit(peer_main(name));
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
        setenv("MPROC_SHM_PEER", arg, 1);
        execl(self, "mproc-shm-peer", (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(shm, an_unrelated_program_attaches_and_writes_are_seen_both_ways) {
    const char *name = t_name("shmexec");
    mproc_shm *shm = create_named(name, 4096);
    strcpy(mproc_shm_buf(shm), "from parent");
    pid_t pid = start_peer(name);
    cr_assert_eq(t_exit_code(pid, 30), 0);
    cr_assert_str_eq((char *)mproc_shm_buf(shm) + 1000, "from peer");
    cr_assert_eq(mproc_shm_unlink(shm), 0);
    mproc_shm_close(shm);
}

/* ---- unlink ---- */

Test(shm, unlink_removes_the_name_once_and_the_mapping_stays_usable) {
    const char *name = t_name("shmul");
    mproc_shm *shm = create_named(name, 256), *other, *late = NULL;
    cr_assert_eq(mproc_shm_attach(&other, name), 0);
    cr_assert_eq(mproc_shm_unlink(shm), 0);
    cr_assert_eq(mproc_shm_unlink(shm), ENOENT, "second unlink");
    cr_assert_eq(mproc_shm_unlink(other), ENOENT, "through another handle too");
    cr_assert_eq(mproc_shm_attach(&late, name), ENOENT);
    cr_assert_null(late);
    memset(mproc_shm_buf(shm), 'u', 256);
    cr_assert_eq(((char *)mproc_shm_buf(other))[255], 'u', "both mappings live on");
    cr_assert_eq(mproc_shm_close(shm), 0);
    cr_assert_eq(((char *)mproc_shm_buf(other))[0], 'u');
    cr_assert_eq(mproc_shm_close(other), 0);
}

Test(shm, unlink_never_removes_a_newer_object_that_took_the_name) {
    const char *name = t_name("shmre");
    mproc_shm *old = create_named(name, 64), *newer, *check;
    cr_assert_eq(mproc_unlink(name), 0); /* someone else removes it... */
    newer = create_named(name, 64);      /* ...and makes a new one */
    ((char *)mproc_shm_buf(newer))[0] = 'n';
    cr_assert_eq(mproc_shm_unlink(old), ENOENT);
    cr_assert_eq(mproc_shm_attach(&check, name), 0, "the newer object survives");
    cr_assert_eq(((char *)mproc_shm_buf(check))[0], 'n');
    mproc_shm_close(check);
    /* Nor an object of another kind. */
    cr_assert_eq(mproc_shm_unlink(newer), 0);
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
    cr_assert_eq(mproc_shm_unlink(newer), ENOENT);
    cr_assert_eq(mproc_shm_unlink(old), ENOENT);
    mproc_lock_close(lock);
    cr_assert_eq(mproc_unlink(name), 0, "the lock's name was left alone");
    mproc_shm_close(old);
    mproc_shm_close(newer);
}
