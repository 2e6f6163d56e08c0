/* SPDX-License-Identifier: MIT */
/*
 * Segments: creation, publication and validated attachment.
 *
 * Contents
 *   header_build / mproc__segment_validate   the 64-byte header
 *   mproc__segment_create                    anonymous (MAP_SHARED|MAP_ANONYMOUS)
 *   build_private / publish                  a named object, built unnamed
 *   attach                                   open, fstat, pread, validate, mmap
 *   mproc__segment_open                      the attach/create loop
 *
 * A named object is built in a file with no name (O_TMPFILE, or a random
 * temporary name where O_TMPFILE is unsupported), fully initialised, marked
 * READY, and only then linked to its name.  link() never replaces an existing
 * name, so exactly one creator wins a race and the rest attach to its
 * object.  Attachers therefore never see a half-built segment.
 *
 * The header is read with pread(), not through a mapping: a file shorter than
 * it claims then gives MPROC_E_TRUNCATED, not SIGBUS.  (A same-user process
 * that shrinks a file *after* it was validated can still cause SIGBUS; trust
 * ends at the 0600 permission bits and the owner check.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "shm/segment.h"

/* Bound on the attach/create loop when names appear and vanish under it. */
#define OPEN_RACE_RETRIES 64

static uint32_t fnv1a32(const void *data, size_t len) {
    const unsigned char *bytes = data;
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        hash ^= bytes[i];
        hash *= 16777619u;
    }
    return hash;
}

static size_t total_size_of(const mproc__kind_spec *spec, size_t extra) {
    return MPROC__HEADER_SIZE + spec->body_size + extra;
}

/* Fills the header of a segment nobody else can see yet, then its body, then
 * flips the state to READY (release: pairs with the acquire load in
 * validate, so a reader that sees READY sees the whole body). */
static int header_build(void *base, const mproc__kind_spec *spec, size_t extra,
                        const void *arg, uint64_t *uuid_out) {
    struct mproc__seg_header *header = base;
    memcpy(header->magic, MPROC__MAGIC, MPROC__MAGIC_LEN);
    header->layout_major = MPROC__LAYOUT_MAJOR;
    header->layout_minor = MPROC__LAYOUT_MINOR;
    header->kind = spec->kind;
    header->total_size = total_size_of(spec, extra);
    header->header_size = MPROC__HEADER_SIZE;
    header->body_size = spec->body_size;
    header->lock_abi = MPROC__LOCK_ABI;
    header->uuid = mproc__random64();
    header->checksum = fnv1a32(header, MPROC__CHECKSUM_SPAN);
    int rc = spec->init((char *)base + MPROC__HEADER_SIZE, extra, arg);
    if (rc != 0)
        return rc;
    *uuid_out = header->uuid;
    atomic_store_explicit(&header->state, MPROC__SEG_READY, memory_order_release);
    return 0;
}

int mproc__segment_validate(const void *bytes, size_t len, uint64_t file_size,
                            const mproc__kind_spec *spec) {
    struct mproc__seg_header header;
    if (len < MPROC__MAGIC_LEN || memcmp(bytes, MPROC__MAGIC, MPROC__MAGIC_LEN) != 0)
        return MPROC_E_FOREIGN;
    if (len < offsetof(struct mproc__seg_header, kind))
        return MPROC_E_TRUNCATED;
    /* The version comes before the checksum: another major version may
     * checksum differently, and must read as VERSION, not CORRUPT. */
    uint16_t major;
    memcpy(&major, (const char *)bytes + offsetof(struct mproc__seg_header, layout_major),
           sizeof major);
    if (major != MPROC__LAYOUT_MAJOR)
        return MPROC_E_VERSION;
    if (len < MPROC__HEADER_SIZE || file_size < MPROC__HEADER_SIZE)
        return MPROC_E_TRUNCATED;
    memcpy(&header, bytes, sizeof header);
    if (header.checksum != fnv1a32(bytes, MPROC__CHECKSUM_SPAN))
        return MPROC_E_CORRUPT;
    if (header.kind != spec->kind)
        return MPROC_E_KIND;
    if (header.lock_abi != MPROC__LOCK_ABI)
        return MPROC_E_ABI;
    if (header.header_size != MPROC__HEADER_SIZE || header.body_size != spec->body_size ||
        header.total_size < (uint64_t)MPROC__HEADER_SIZE + spec->body_size ||
        header.total_size > (uint64_t)SIZE_MAX / 2)
        return MPROC_E_CORRUPT;
    if (file_size < header.total_size)
        return MPROC_E_TRUNCATED;
    if (file_size > header.total_size)
        return MPROC_E_CORRUPT;
    if (atomic_load_explicit(&header.state, memory_order_relaxed) != MPROC__SEG_READY)
        return MPROC_E_CORRUPT;
    return 0;
}

int mproc__segment_create(mproc__segment *seg, const mproc__kind_spec *spec, size_t extra,
                          const void *arg) {
    size_t size = total_size_of(spec, extra);
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return errno == ENOMEM ? ENOMEM : errno;
    int rc = header_build(base, spec, extra, arg, &seg->uuid);
    if (rc != 0) {
        munmap(base, size);
        return rc;
    }
    seg->base = base;
    seg->size = size;
    seg->fd = -1;
    return 0;
}

int mproc__segment_reserve(const mproc__segment *seg, size_t offset, size_t len) {
    if (seg->fd < 0 || len == 0)
        return 0;
    int rc = posix_fallocate(seg->fd, (off_t)offset, (off_t)len);
    return rc == EOPNOTSUPP || rc == EINVAL ? 0 : rc; /* no fallocate: nothing to reserve with */
}

void mproc__segment_close(mproc__segment *seg) {
    if (seg->base != NULL) {
        munmap(seg->base, seg->size);
        if (seg->fd >= 0)
            close(seg->fd);
    }
    seg->base = NULL;
    seg->size = 0;
    seg->fd = -1;
}

/* ---- named objects ---- */

/* An unnamed file in the shm directory.  `tmp_path` is set, and must be
 * unlinked by the caller, only on the fallback path that needs a name. */
static int open_unnamed(const char *path, unsigned mode, char *tmp_path, size_t tmp_len) {
    tmp_path[0] = '\0';
    int fd = open(MPROC__SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)
        return -errno;
    for (int attempt = 0; attempt < OPEN_RACE_RETRIES; attempt++) {
        snprintf(tmp_path, tmp_len, "%s.%016llx.tmp", path,
                 (unsigned long long)mproc__random64());
        fd = open(tmp_path, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        tmp_path[0] = '\0';
        return -errno;
    }
    return fd;
}

/* Sizes, maps and initialises a fresh file; the segment is READY on return. */
static int build_private(int fd, mproc__segment *seg, const mproc__kind_spec *spec,
                         size_t extra, unsigned mode, const void *arg) {
    size_t size = total_size_of(spec, extra);
    /* fallocate reserves the pages now, so a full /dev/shm is ENOSPC here
     * rather than SIGBUS on first touch.  A lazy kind reserves only its eager
     * part; the file is sized in full, its tail sparse until reserved. */
    size_t eager = spec->eager_bytes != NULL ? spec->eager_bytes(extra, arg) : size;
    int rc = ftruncate(fd, (off_t)size) == 0 ? 0 : errno;
    if (rc == 0 && eager > 0) {
        rc = posix_fallocate(fd, 0, (off_t)eager);
        if (rc == EOPNOTSUPP || rc == EINVAL)
            rc = 0;
    }
    if (rc != 0)
        return rc;
    if (fchmod(fd, mode) != 0) /* the umask applied at open; the mode is the caller's */
        return errno;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return errno;
    rc = header_build(base, spec, extra, arg, &seg->uuid);
    if (rc != 0) {
        munmap(base, size);
        return rc;
    }
    seg->base = base;
    seg->size = size;
    seg->fd = -1;
    return 0;
}

/* Gives the built file its name.  Returns 0, EEXIST, or an OS error. */
static int publish(int fd, const char *tmp_path, const char *path) {
    if (tmp_path[0] != '\0')
        return link(tmp_path, path) == 0 ? 0 : errno;
    char proc_path[64];
    snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc_path, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != ENOENT)
        return errno;
    /* No /proc: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, but try it. */
    return linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0 ? 0 : errno;
}

static int create_named(mproc__segment *seg, const mproc__kind_spec *spec, const char *path,
                        unsigned mode, size_t extra, const void *arg) {
    char tmp_path[MPROC__PATH_MAX + 32];
    int fd = open_unnamed(path, mode, tmp_path, sizeof tmp_path);
    if (fd < 0)
        return -fd;
    int rc = build_private(fd, seg, spec, extra, mode, arg);
    if (rc == 0) {
        rc = publish(fd, tmp_path, path);
        if (rc != 0)
            mproc__segment_close(seg);
    }
    if (tmp_path[0] != '\0')
        unlink(tmp_path);
    if (rc == 0 && spec->eager_bytes != NULL)
        seg->fd = fd; /* kept for mproc__segment_reserve */
    else
        close(fd);
    return rc;
}

static int attach(mproc__segment *seg, const mproc__kind_spec *spec, const char *path) {
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? MPROC_E_FOREIGN : errno;
    int rc;
    struct stat st;
    unsigned char header[MPROC__HEADER_SIZE];
    if (fstat(fd, &st) != 0) {
        rc = errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        rc = MPROC_E_FOREIGN;
        goto out;
    }
    ssize_t got = pread(fd, header, sizeof header, 0);
    if (got < 0) {
        rc = errno;
        goto out;
    }
    rc = mproc__segment_validate(header, (size_t)got, (uint64_t)st.st_size, spec);
    if (rc != 0)
        goto out;
    size_t size = (size_t)st.st_size;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = errno;
        goto out;
    }
    const struct mproc__seg_header *mapped = base;
    /* acquire: pairs with the release store of READY in header_build. */
    if (atomic_load_explicit(&mapped->state, memory_order_acquire) != MPROC__SEG_READY ||
        memcmp(mapped, header, MPROC__CHECKSUM_SPAN) != 0) {
        rc = MPROC_E_CORRUPT; /* changed between pread and mmap */
    } else if (spec->check != NULL) {
        rc = spec->check((char *)base + MPROC__HEADER_SIZE,
                         size - MPROC__HEADER_SIZE - spec->body_size);
    }
    if (rc != 0) {
        munmap(base, size);
        goto out;
    }
    seg->base = base;
    seg->size = size;
    seg->fd = -1;
    memcpy(&seg->uuid, header + offsetof(struct mproc__seg_header, uuid), sizeof seg->uuid);
    if (spec->eager_bytes != NULL) {
        seg->fd = fd; /* kept for mproc__segment_reserve */
        return 0;
    }
out:
    close(fd);
    return rc;
}

int mproc__segment_open(mproc__segment *seg, const mproc__kind_spec *spec, const char *name,
                        int flags, unsigned mode, size_t extra, const void *arg) {
    char path[MPROC__PATH_MAX];
    if (flags & ~(MPROC_CREATE | MPROC_EXCL) || ((flags & MPROC_EXCL) && !(flags & MPROC_CREATE)))
        return EINVAL;
    if (mode & ~07777u)
        return EINVAL;
    int rc = mproc__name_path(name, path);
    if (rc != 0)
        return rc;
    if (mode == 0)
        mode = MPROC_DEFAULT_MODE;
    seg->base = NULL;
    for (int attempt = 0; attempt < OPEN_RACE_RETRIES; attempt++) {
        if (!(flags & MPROC_EXCL)) {
            rc = attach(seg, spec, path);
            if (rc != ENOENT || !(flags & MPROC_CREATE))
                return rc;
        }
        rc = create_named(seg, spec, path, mode, extra, arg);
        if (rc != EEXIST || (flags & MPROC_EXCL))
            return rc;
        /* Lost a creation race: attach to the winner's object. */
    }
    return rc;
}

int mproc_unlink(const char *name) {
    char path[MPROC__PATH_MAX];
    int rc = mproc__name_path(name, path);
    if (rc != 0)
        return rc;
    return unlink(path) == 0 ? 0 : errno;
}
