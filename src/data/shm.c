/* SPDX-License-Identifier: MIT */
/*
 * mproc_shm: a named segment of kind MPROC__KIND_SHM with no body: the bytes
 * are the segment's extra part, right after the 64-byte header, so they
 * start 64-byte aligned.  The segment layer builds it unnamed, reserves all
 * its pages (fallocate: a full /dev/shm is ENOSPC at creation, never SIGBUS
 * on first touch), then links it to its name; an attacher takes the size
 * from the validated file.  Fresh pages are zero.
 *
 * unlink removes the name only while it still names this handle's object:
 * the file's header uuid is compared with the one this handle mapped.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "shm/segment.h"

/* How many random names create(NULL) tries before giving up with EEXIST. */
#define RANDOM_NAME_TRIES 16

struct mproc_shm {
    unsigned char *buf; /* first: the bytes */
    size_t size;        /* from the segment's validated size */
    mproc__segment seg;
    char name[MPROC_NAME_MAX + 1];
};

static int shm_init(void *body, size_t extra, const void *arg) {
    (void)body; /* fresh pages are already zero */
    (void)extra;
    (void)arg;
    return 0;
}

static int shm_check(const void *body, size_t extra) {
    (void)body; /* any bytes are valid */
    return extra >= 1 && (uint64_t)extra <= (uint64_t)MPROC_SHM_SIZE_MAX ? 0 : MPROC_E_CORRUPT;
}

static const mproc__kind_spec shm_kind = {
    .kind = MPROC__KIND_SHM,
    .body_size = 0,
    .init = shm_init,
    .check = shm_check,
};

/* Opens the segment and fills the handle.  `name` is valid when this
 * succeeds (the segment layer checked it). */
static int make(mproc_shm **out, const char *name, int flags, unsigned mode, size_t size) {
    mproc_shm *shm = calloc(1, sizeof *shm);
    if (shm == NULL)
        return ENOMEM;
    int rc = mproc__segment_open(&shm->seg, &shm_kind, name, flags, mode, size, NULL);
    if (rc != 0) {
        free(shm);
        return rc;
    }
    shm->buf = mproc__segment_body(&shm->seg);
    shm->size = shm->seg.size - MPROC__HEADER_SIZE;
    snprintf(shm->name, sizeof shm->name, "%s", name);
    *out = shm;
    return 0;
}

int mproc_shm_create(mproc_shm **out, const char *name, int64_t size,
                     const mproc_shm_options *opts) {
    if (out == NULL || size <= 0 || size > MPROC_SHM_SIZE_MAX || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    if ((uint64_t)size > SIZE_MAX - MPROC__HEADER_SIZE)
        return ENOMEM; /* a 32-bit address space */
    int flags = MPROC_CREATE | MPROC_EXCL;
    unsigned mode = opts != NULL ? opts->mode : 0;
    if (name != NULL)
        return make(out, name, flags, mode, (size_t)size);
    /* Python's form: "psm_" + 8 hex digits; a taken name is skipped. */
    int rc = EEXIST;
    for (int attempt = 0; attempt < RANDOM_NAME_TRIES && rc == EEXIST; attempt++) {
        char random_name[16];
        snprintf(random_name, sizeof random_name, "psm_%08x", (unsigned)mproc__random64());
        rc = make(out, random_name, flags, mode, (size_t)size);
    }
    return rc;
}

int mproc_shm_attach(mproc_shm **out, const char *name) {
    if (out == NULL || name == NULL)
        return EINVAL;
    return make(out, name, MPROC_ATTACH, 0, 0);
}

void *mproc_shm_buf(const mproc_shm *shm) {
    return shm != NULL ? shm->buf : NULL;
}

size_t mproc_shm_size(const mproc_shm *shm) {
    return shm != NULL ? shm->size : 0;
}

const char *mproc_shm_name(const mproc_shm *shm) {
    return shm != NULL ? shm->name : NULL;
}

/* True when the file open as `fd` is this handle's object: an mproc header
 * carrying the uuid the handle mapped (uuids are random per incarnation). */
static bool is_ours(int fd, const mproc_shm *shm) {
    struct mproc__seg_header header;
    if (pread(fd, &header, sizeof header, 0) != (ssize_t)sizeof header)
        return false;
    return memcmp(header.magic, MPROC__MAGIC, MPROC__MAGIC_LEN) == 0 &&
           header.kind == MPROC__KIND_SHM && header.uuid == shm->seg.uuid;
}

/*
 * POSIX has no "unlink if still this inode", so the check and the unlink are
 * two steps: the path is stat'ed again right before unlink() and must still
 * be the inode whose header was read.  Only a same-user process that unlinks
 * and re-creates the name inside that window can slip past; trust ends at
 * the owner, as for every named object.
 */
int mproc_shm_unlink(mproc_shm *shm) {
    char path[MPROC__PATH_MAX];
    if (shm == NULL)
        return EINVAL;
    int rc = mproc__name_path(shm->name, path);
    if (rc != 0)
        return rc;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? ENOENT : errno;
    struct stat opened, named;
    rc = ENOENT;
    if (fstat(fd, &opened) == 0 && is_ours(fd, shm) && lstat(path, &named) == 0 &&
        named.st_dev == opened.st_dev && named.st_ino == opened.st_ino)
        rc = unlink(path) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

int mproc_shm_close(mproc_shm *shm) {
    if (shm == NULL)
        return EINVAL;
    mproc__segment_close(&shm->seg);
    free(shm);
    return 0;
}
