/* SPDX-License-Identifier: MIT */
/*
 * Named objects: what every mproc_<noun>_open() shares.
 *
 * Every object lives in a shared-memory segment.  mproc_<noun>_create() makes
 * an anonymous one, usable by the creator's threads and by every process
 * forked after it.  mproc_<noun>_open() attaches to a named one, which
 * unrelated processes reach by the same name; the file behind it is
 * /dev/shm/mproc.<name>.
 *
 * Names: 1 to MPROC_NAME_MAX characters from [A-Za-z0-9._-], not "." or "..".
 * A name with '/' or any other character is MPROC_E_BADNAME; a longer one is
 * ENAMETOOLONG.
 *
 * A named object is published whole: it is built under no name, then linked
 * into place, so no process ever attaches to a half-built object.  Attaching
 * validates the file (owner, size, magic, layout version, kind, checksum, C
 * library ABI) before it trusts anything in it; each failure has its own
 * code (see mproc/error.h).
 */
#ifndef MPROC_OBJECT_H
#define MPROC_OBJECT_H

#include <mproc/export.h>

/* Longest name accepted, so that "mproc." + name fits NAME_MAX (255). */
#define MPROC_NAME_MAX 200

/* Flags for mproc_<noun>_open(). */
enum mproc_open_flags {
    MPROC_ATTACH = 0,       /* attach to an existing object; ENOENT if none. */
    MPROC_CREATE = 1 << 0,  /* create it if missing, else attach. */
    MPROC_EXCL = 1 << 1,    /* with MPROC_CREATE: EEXIST if it exists. */
};

/* Default permission bits of a new named object (the umask does not apply). */
#define MPROC_DEFAULT_MODE 0600

MPROC_EXTERN_C_BEGIN

/*
 * Removes a name.  Handles already open stay valid; a later open with
 * MPROC_CREATE makes a new object.  Returns 0, ENOENT, MPROC_E_BADNAME,
 * ENAMETOOLONG, or the OS's error (EACCES, EPERM).
 */
MPROC_API int mproc_unlink(const char *name);

MPROC_EXTERN_C_END

#endif
