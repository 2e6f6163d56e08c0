/* SPDX-License-Identifier: MIT */
/* One interface over Lock and RLock, so process and kill tests run the same
 * scenario on both kinds. */
#ifndef MPROC_TEST_LOCKS_H
#define MPROC_TEST_LOCKS_H

#include <mproc.h>

typedef enum t_kind { T_LOCK, T_RLOCK } t_kind;

typedef struct t_lock {
    t_kind kind;
    void *handle;
} t_lock;

static inline int t_lock_make(t_lock *l, t_kind kind, const char *name, int flags) {
    l->kind = kind;
    if (kind == T_LOCK)
        return name ? mproc_lock_open((mproc_lock **)&l->handle, name, flags, NULL)
                    : mproc_lock_create((mproc_lock **)&l->handle, NULL);
    return name ? mproc_rlock_open((mproc_rlock **)&l->handle, name, flags, NULL)
                : mproc_rlock_create((mproc_rlock **)&l->handle, NULL);
}

static inline int t_lock_acquire(t_lock *l, double timeout) {
    return l->kind == T_LOCK ? mproc_lock_acquire(l->handle, timeout)
                             : mproc_rlock_acquire(l->handle, timeout);
}

static inline int t_lock_release(t_lock *l) {
    return l->kind == T_LOCK ? mproc_lock_release(l->handle) : mproc_rlock_release(l->handle);
}

static inline int t_lock_close(t_lock *l) {
    return l->kind == T_LOCK ? mproc_lock_close(l->handle) : mproc_rlock_close(l->handle);
}

#endif
