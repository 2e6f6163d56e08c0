/* SPDX-License-Identifier: MIT */
/*
 * Named objects against real files: each bad file gets its own code, never a
 * crash, SIGBUS or hang.  The files are written with ordinary I/O into the
 * very path an attacher opens.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mproc.h>

#include "shm/layout.h"
#include "shm/segment.h"
#include "support.h"

static char *path_of(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "/dev/shm/mproc.%s", name);
    return path;
}

static void write_file(const char *name, const void *data, size_t len) {
    int fd = open(path_of(name), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* Makes a real named lock and returns its bytes. */
static size_t real_lock_bytes(const char *name, unsigned char *buf, size_t cap) {
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
    mproc_lock_close(lock);
    int fd = open(path_of(name), O_RDONLY);
    cr_assert_geq(fd, 0);
    ssize_t n = read(fd, buf, cap);
    close(fd);
    cr_assert_eq(n, MPROC__HEADER_SIZE + (ssize_t)sizeof(struct mproc__lock_body));
    return (size_t)n;
}

static uint32_t fnv1a32(const void *data, size_t len) {
    const unsigned char *bytes = data;
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ bytes[i]) * 16777619u;
    return hash;
}

static void reseal(unsigned char *buf) {
    uint32_t sum = fnv1a32(buf, MPROC__CHECKSUM_SPAN);
    memcpy(buf + offsetof(struct mproc__seg_header, checksum), &sum, sizeof sum);
}

static int attach_lock(const char *name) {
    mproc_lock *lock = NULL;
    int rc = mproc_lock_open(&lock, name, MPROC_ATTACH, NULL);
    if (rc == 0)
        mproc_lock_close(lock);
    else
        cr_assert_null(lock);
    return rc;
}

static void finish(const char *name) {
    unlink(path_of(name));
}

Test(segment, attach_to_a_missing_name_is_enoent) {
    cr_assert_eq(attach_lock(t_name("missing")), ENOENT);
}

Test(segment, exclusive_create_of_an_existing_name_is_eexist) {
    const char *name = t_name("excl");
    mproc_lock *a, *b = NULL;
    cr_assert_eq(mproc_lock_open(&a, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
    cr_assert_eq(mproc_lock_open(&b, name, MPROC_CREATE | MPROC_EXCL, NULL), EEXIST);
    cr_assert_null(b);
    cr_assert_eq(mproc_lock_open(&b, name, MPROC_CREATE, NULL), 0);
    /* Both handles reach one lock. */
    cr_assert_eq(mproc_lock_acquire(a, 0), 0);
    cr_assert_eq(mproc_lock_acquire(b, 0), EDEADLK);
    cr_assert_eq(mproc_lock_release(a), 0);
    cr_assert_eq(mproc_lock_acquire(b, 0), 0);
    cr_assert_eq(mproc_lock_acquire(a, 0), EDEADLK);
    cr_assert_eq(mproc_lock_release(b), 0);
    mproc_lock_close(a);
    mproc_lock_close(b);
    finish(name);
}

Test(segment, bad_flags_and_modes_are_einval) {
    mproc_lock *lock;
    const char *name = t_name("flags");
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_EXCL, NULL), EINVAL);
    cr_assert_eq(mproc_lock_open(&lock, name, 0x100, NULL), EINVAL);
    mproc_lock_options opts = {.mode = 010000};
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE, &opts), EINVAL);
    mproc_lock_options reserved = {.reserved = {1}};
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE, &reserved), EINVAL);
    cr_assert_eq(mproc_lock_create(&lock, &reserved), EINVAL);
    cr_assert_eq(mproc_lock_create(NULL, NULL), EINVAL);
    cr_assert_eq(mproc_lock_open(NULL, name, MPROC_CREATE, NULL), EINVAL);
    cr_assert_eq(access(path_of(name), F_OK), -1);
}

Test(segment, default_mode_is_0600_whatever_the_umask_and_mode_is_honoured) {
    mode_t old = umask(0);
    const char *name = t_name("mode");
    mproc_lock *lock;
    struct stat st;
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE, NULL), 0);
    cr_assert_eq(stat(path_of(name), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    mproc_lock_close(lock);
    finish(name);
    umask(077);
    mproc_lock_options opts = {.mode = 0640};
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE, &opts), 0);
    cr_assert_eq(stat(path_of(name), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640);
    mproc_lock_close(lock);
    finish(name);
    umask(old);
}

Test(segment, a_text_file_is_foreign) {
    const char *name = t_name("text");
    write_file(name, "hello, world\n", 13);
    cr_assert_eq(attach_lock(name), MPROC_E_FOREIGN);
    write_file(name, "", 0);
    cr_assert_eq(attach_lock(name), MPROC_E_FOREIGN);
    finish(name);
}

Test(segment, symlinks_directories_and_fifos_are_foreign) {
    const char *name = t_name("link");
    cr_assert_eq(symlink("/etc/passwd", path_of(name)), 0);
    cr_assert_eq(attach_lock(name), MPROC_E_FOREIGN);
    finish(name);
    cr_assert_eq(mkdir(path_of(name), 0700), 0);
    cr_assert_eq(attach_lock(name), EISDIR);
    rmdir(path_of(name));
}

Test(segment, another_users_file_is_foreign) {
    if (geteuid() != 0)
        cr_skip_test("needs root to chown");  /* never in CI, which runs as root */
    const char *name = t_name("owner");
    unsigned char buf[256];
    real_lock_bytes(name, buf, sizeof buf);
    cr_assert_eq(chown(path_of(name), 12345, 12345), 0);
    cr_assert_eq(attach_lock(name), MPROC_E_FOREIGN);
    finish(name);
}

Test(segment, truncated_files_are_truncated) {
    const char *name = t_name("trunc");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    size_t cuts[] = {12, 40, MPROC__HEADER_SIZE - 1, MPROC__HEADER_SIZE, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(name, buf, cuts[i]);
        cr_assert_eq(attach_lock(name), MPROC_E_TRUNCATED, "cut at %zu", cuts[i]);
    }
    write_file(name, buf, len);
    cr_assert_eq(attach_lock(name), 0);
    finish(name);
}

Test(segment, a_longer_file_than_the_header_says_is_corrupt) {
    const char *name = t_name("long");
    unsigned char buf[512] = {0};
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    write_file(name, buf, len + 64);
    cr_assert_eq(attach_lock(name), MPROC_E_CORRUPT);
    finish(name);
}

Test(segment, a_flipped_header_byte_is_corrupt) {
    const char *name = t_name("flip");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    for (size_t off = 12; off < MPROC__CHECKSUM_SPAN + 4; off++) {
        unsigned char copy[256];
        memcpy(copy, buf, len);
        copy[off] ^= 0x10;
        write_file(name, copy, len);
        cr_assert_eq(attach_lock(name), MPROC_E_CORRUPT, "byte %zu", off);
    }
    finish(name);
}

Test(segment, a_state_other_than_ready_is_corrupt) {
    const char *name = t_name("state");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    memset(buf + offsetof(struct mproc__seg_header, state), 0, 4);
    write_file(name, buf, len);
    cr_assert_eq(attach_lock(name), MPROC_E_CORRUPT);
    finish(name);
}

Test(segment, an_unknown_layout_version_is_version) {
    const char *name = t_name("ver");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    uint16_t major = MPROC__LAYOUT_MAJOR + 1;
    memcpy(buf + offsetof(struct mproc__seg_header, layout_major), &major, 2);
    write_file(name, buf, len);
    cr_assert_eq(attach_lock(name), MPROC_E_VERSION);
    /* Even with a recomputed checksum, and even if otherwise short. */
    reseal(buf);
    write_file(name, buf, len);
    cr_assert_eq(attach_lock(name), MPROC_E_VERSION);
    write_file(name, buf, 20);
    cr_assert_eq(attach_lock(name), MPROC_E_VERSION);
    finish(name);
}

Test(segment, another_kind_is_kind_both_ways) {
    const char *name = t_name("kind");
    mproc_lock *lock;
    mproc_rlock *rlock = NULL;
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE, NULL), 0);
    cr_assert_eq(mproc_rlock_open(&rlock, name, MPROC_ATTACH, NULL), MPROC_E_KIND);
    cr_assert_eq(mproc_rlock_open(&rlock, name, MPROC_CREATE, NULL), MPROC_E_KIND);
    cr_assert_null(rlock);
    mproc_lock_close(lock);
    finish(name);
    cr_assert_eq(mproc_rlock_open(&rlock, name, MPROC_CREATE, NULL), 0);
    cr_assert_eq(attach_lock(name), MPROC_E_KIND);
    mproc_rlock_close(rlock);
    finish(name);
}

Test(segment, another_c_library_abi_is_abi) {
    const char *name = t_name("abi");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    uint32_t abi = (2u << 24) | (48u << 8) | 8u; /* "musl", a 48-byte mutex */
    memcpy(buf + offsetof(struct mproc__seg_header, lock_abi), &abi, 4);
    reseal(buf);
    write_file(name, buf, len);
    cr_assert_eq(attach_lock(name), MPROC_E_ABI);
    finish(name);
}

Test(segment, a_mangled_mutex_in_the_body_is_corrupt) {
    const char *name = t_name("body");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    size_t kind_off = MPROC__HEADER_SIZE + offsetof(pthread_mutex_t, __data.__kind);
    buf[kind_off] ^= 0x7f;
    write_file(name, buf, len);
    cr_assert_eq(attach_lock(name), MPROC_E_CORRUPT);
    finish(name);
}

Test(segment, a_body_size_mismatch_is_corrupt) {
    const char *name = t_name("bsize");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    uint32_t body = 128;
    memcpy(buf + offsetof(struct mproc__seg_header, body_size), &body, 4);
    reseal(buf);
    write_file(name, buf, len);
    cr_assert_eq(attach_lock(name), MPROC_E_CORRUPT);
    finish(name);
}

/* Any mutation of a valid header yields 0 or an mproc code, and never reads
 * out of bounds (ASan watches): a small in-test fuzzer of the validator. */
Test(segment, validator_survives_random_mutations) {
    const char *name = t_name("fuzz");
    unsigned char buf[256];
    size_t len = real_lock_bytes(name, buf, sizeof buf);
    finish(name);
    mproc__kind_spec spec = {.kind = MPROC__KIND_LOCK,
                             .body_size = sizeof(struct mproc__lock_body)};
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    int seen_ok = 0, seen_err = 0;
    for (int round = 0; round < 20000; round++) {
        unsigned char copy[MPROC__HEADER_SIZE];
        memcpy(copy, buf, sizeof copy);
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        int flips = (int)(state >> 60) % 4;
        for (int f = 0; f < flips; f++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            copy[(state >> 33) % sizeof copy] ^= (unsigned char)(state >> 20);
        }
        size_t take = (state >> 40) % 3 == 0 ? (size_t)((state >> 8) % sizeof copy) : sizeof copy;
        unsigned char *exact = malloc(take ? take : 1);
        memcpy(exact, copy, take);
        int rc = mproc__segment_validate(exact, take, len, &spec);
        free(exact);
        cr_assert(rc == 0 || (rc > MPROC_E_BASE && rc <= MPROC_E_BASE + 7), "rc %d", rc);
        rc == 0 ? seen_ok++ : seen_err++;
    }
    cr_assert_gt(seen_ok, 0);
    cr_assert_gt(seen_err, 0);
}
