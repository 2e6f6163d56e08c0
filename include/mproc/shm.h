/* SPDX-License-Identifier: MIT */
/*
 * mproc_shm: Python's shared_memory.SharedMemory, a named block of bytes.
 *
 * mproc_shm_create() makes a block of `size` bytes (zeroed), under a given
 * name or a fresh random one ("psm_" + 8 hex digits, as Python); another
 * process, related or not, attaches with mproc_shm_attach(name) and sees the
 * same bytes.  Its size comes from the object, so an attacher need not know
 * it.  The file is /dev/shm/mproc.<name>, validated on attach like every mproc
 * object; the bytes start 64-byte aligned.
 *
 * close() drops this process's mapping and is idempotent per handle (the
 * handle is freed).  unlink() removes the name once: the block lives on in
 * every mapping until closed; a second unlink of the same object is ENOENT,
 * and an unlink never removes a newer object that took the name since (that
 * is ENOENT too: this handle's object no longer has a name).  Unlike Python there
 * is no resource tracker: a block lives until unlinked, as POSIX shm does.
 */
#ifndef MPROC_SHM_H
#define MPROC_SHM_H

#include <stddef.h>
#include <stdint.h>

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

/* Largest block: 1 TiB. */
#define MPROC_SHM_SIZE_MAX ((int64_t)1 << 40)

typedef struct mproc_shm mproc_shm;

typedef struct mproc_shm_options {
    unsigned mode;         /* permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned reserved[7];  /* must be zero */
} mproc_shm_options;

/*
 * Creates a block of `size` bytes, exclusively: the name must not exist.
 * name NULL picks a random free name (read it with mproc_shm_name()).
 * Returns 0, EINVAL (size <= 0 or over MPROC_SHM_SIZE_MAX, bad options),
 * EEXIST, MPROC_E_BADNAME, ENAMETOOLONG, ENOSPC (no room in /dev/shm), ENOMEM.
 */
MPROC_API int mproc_shm_create(mproc_shm **out, const char *name, int64_t size,
                               const mproc_shm_options *opts);

/* Attaches to the block `name`.  Returns 0, ENOENT, EINVAL, MPROC_E_BADNAME,
 * ENAMETOOLONG, MPROC_E_KIND (another kind of mproc object), and the
 * validation codes of mproc/error.h. */
MPROC_API int mproc_shm_attach(mproc_shm **out, const char *name);

/* The bytes, their count, and the name (valid until close); NULL / 0 for a
 * NULL handle. */
MPROC_API void *mproc_shm_buf(const mproc_shm *shm);
MPROC_API size_t mproc_shm_size(const mproc_shm *shm);
MPROC_API const char *mproc_shm_name(const mproc_shm *shm);

/* Removes the name (the mapping stays usable).  Returns 0, ENOENT (already
 * unlinked, or the name now belongs to another object), EINVAL. */
MPROC_API int mproc_shm_unlink(mproc_shm *shm);

/* Unmaps and frees the handle.  Returns 0 or EINVAL. */
MPROC_API int mproc_shm_close(mproc_shm *shm);

MPROC_EXTERN_C_END

#endif
