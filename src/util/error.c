/* SPDX-License-Identifier: MIT */
/* mproc_strerror() and mproc_errname(): mproc's own codes come from the
 * MPROC_ERROR_MAP table; errno values from glibc's static descriptions
 * (strerrordesc_np, which unlike strerror() is thread- and signal-safe), with
 * mproc's meaning for the codes that mean something specific here. */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"

bool mproc__is_mproc_error(int code) {
    switch (code) {
#define CASE(name, value, msg) case value:
        MPROC_ERROR_MAP(CASE)
#undef CASE
        return true;
    default:
        return false;
    }
}

const char *mproc_strerror(int code) {
    switch (code) {
    case 0:
        return "success";
#define CASE(name, value, msg) \
    case value:                \
        return msg;
        MPROC_ERROR_MAP(CASE)
#undef CASE
    case ETIMEDOUT:
        return "timed out (with a timeout of 0: not available at once)";
    case EOWNERDEAD:
        return "acquired, but the previous owner died holding the lock; "
               "the data it protects may need repair";
    case EPERM:
        return "operation not permitted (releasing, or waiting on a condition over, "
               "a lock the caller does not hold?)";
    case EOVERFLOW:
        return "released past the bound: a semaphore past its bound, or task_done() "
               "called more often than items were got (nothing was changed)";
    case EMSGSIZE:
        return "message longer than the queue's or pipe's maximum message size";
    case ENOBUFS:
        return "buffer too small for the next message (left in place; its length reported)";
    case ERANGE:
        return "index or slice out of the array's bounds (nothing was read or written)";
    case EDEADLK:
        return "the calling thread already holds this lock";
    case ENOTRECOVERABLE:
        return "lock left unrecoverable by a non-mproc user";
    case ENOENT:
        return "no mproc object has that name";
    case EEXIST:
        return "an object with that name exists (exclusive create)";
    case ENAMETOOLONG:
        return "object name longer than MPROC_NAME_MAX";
    case EINPROGRESS:
        return "not ready: the pool's work on this result is still running";
    case ENODATA:
        return "no more results: the iterator delivered every item";
    default:
        break;
    }
    const char *desc = code > 0 ? strerrordesc_np(code) : NULL;
    return desc != NULL ? desc : "unknown error code";
}

const char *mproc_errname(int code) {
    switch (code) {
    case 0:
        return "OK";
#define CASE(name, value, msg) \
    case value:                \
        return "MPROC_E_" #name;
        MPROC_ERROR_MAP(CASE)
#undef CASE
    default:
        break;
    }
    const char *name = code > 0 ? strerrorname_np(code) : NULL;
    return name != NULL ? name : "UNKNOWN";
}
