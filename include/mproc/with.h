/* SPDX-License-Identifier: MIT */
/*
 * Scoped locking: Python's `with lock:` for C (GCC and Clang; C and C++).
 *
 *   MPROC_WITH(lock) {            // acquires, waiting without a bound
 *       ...                       // runs only if the acquire succeeded
 *   }                             // released here, and on every exit path:
 *                                 // return, break, continue, goto out of it
 *
 *   int rc;
 *   MPROC_WITH_RC(lock, rc) {     // the same, and rc receives the acquire's
 *       if (rc == EOWNERDEAD)     // code: 0 or EOWNERDEAD inside the body,
 *           repair();             // the failure code (EDEADLK...) after it
 *   }                             // when the body was skipped
 *
 *   {
 *       MPROC_GUARD(lock);        // held until the end of the enclosing block
 *       ...
 *   }
 *
 * `lock` is an mproc_lock *, an mproc_rlock *, an mproc_condition * (its
 * lock), an mproc_semaphore * (one permit), or an mproc_value * /
 * mproc_array * (its own RLock or the lock it was given; a raw one has none:
 * the acquire fails with ENOTSUP and the body is skipped).  The body of
 * MPROC_WITH is the body of a one-pass `for` loop: a `break` or `continue`
 * inside it leaves the with-block itself (releasing the lock), not a loop
 * around it, as with the Linux kernel's scoped_guard().  Use MPROC_GUARD
 * when the body must break out of an enclosing loop.  The body is skipped
 * when the acquire fails; an EOWNERDEAD acquire runs it (the lock is held),
 * so check rc with MPROC_WITH_RC where the protected data may need repair.
 */
#ifndef MPROC_WITH_H
#define MPROC_WITH_H

#include <errno.h>
#include <stddef.h>
#include <mproc/lock.h>
#include <mproc/rlock.h>
#include <mproc/condition.h>
#include <mproc/semaphore.h>
#include <mproc/value.h>

MPROC_EXTERN_C_BEGIN

/* Internal: the state of one with-block.  `obj` is non-NULL while held. */
typedef struct mproc__scope {
    int (*release)(void *obj);
    void *obj;
    int rc;
    int pending;
} mproc__scope;

static inline void mproc__scope_exit(mproc__scope *scope) {
    if (scope->obj != NULL)
        scope->release(scope->obj);
}

static inline int mproc__scope_release_lock(void *obj) {
    return mproc_lock_release((mproc_lock *)obj);
}

static inline int mproc__scope_release_rlock(void *obj) {
    return mproc_rlock_release((mproc_rlock *)obj);
}

static inline int mproc__scope_release_condition(void *obj) {
    return mproc_condition_release((mproc_condition *)obj);
}

static inline int mproc__scope_release_semaphore(void *obj) {
    return mproc_semaphore_release((mproc_semaphore *)obj, 1);
}

static inline int mproc__scope_release_value(void *obj) {
    return mproc_value_release((mproc_value *)obj);
}

static inline int mproc__scope_release_array(void *obj) {
    return mproc_array_release((mproc_array *)obj);
}

static inline mproc__scope mproc__scope_held(int (*release)(void *), void *obj, int rc) {
    mproc__scope scope;
    int held = rc == 0 || rc == EOWNERDEAD;
    scope.release = release;
    scope.obj = held ? obj : NULL;
    scope.rc = rc;
    scope.pending = held;
    return scope;
}

static inline mproc__scope mproc__scope_enter_lock(mproc_lock *lock) {
    return mproc__scope_held(mproc__scope_release_lock, lock,
                             mproc_lock_acquire(lock, MPROC_FOREVER));
}

static inline mproc__scope mproc__scope_enter_rlock(mproc_rlock *rlock) {
    return mproc__scope_held(mproc__scope_release_rlock, rlock,
                             mproc_rlock_acquire(rlock, MPROC_FOREVER));
}

static inline mproc__scope mproc__scope_enter_condition(mproc_condition *cond) {
    return mproc__scope_held(mproc__scope_release_condition, cond,
                             mproc_condition_acquire(cond, MPROC_FOREVER));
}

static inline mproc__scope mproc__scope_enter_semaphore(mproc_semaphore *sem) {
    return mproc__scope_held(mproc__scope_release_semaphore, sem,
                             mproc_semaphore_acquire(sem, MPROC_FOREVER));
}

static inline mproc__scope mproc__scope_enter_value(mproc_value *value) {
    return mproc__scope_held(mproc__scope_release_value, value,
                             mproc_value_acquire(value, MPROC_FOREVER));
}

static inline mproc__scope mproc__scope_enter_array(mproc_array *array) {
    return mproc__scope_held(mproc__scope_release_array, array,
                             mproc_array_acquire(array, MPROC_FOREVER));
}

MPROC_EXTERN_C_END

#ifdef __cplusplus
static inline mproc__scope mproc__scope_enter(mproc_lock *lock) {
    return mproc__scope_enter_lock(lock);
}
static inline mproc__scope mproc__scope_enter(mproc_rlock *rlock) {
    return mproc__scope_enter_rlock(rlock);
}
static inline mproc__scope mproc__scope_enter(mproc_condition *cond) {
    return mproc__scope_enter_condition(cond);
}
static inline mproc__scope mproc__scope_enter(mproc_semaphore *sem) {
    return mproc__scope_enter_semaphore(sem);
}
static inline mproc__scope mproc__scope_enter(mproc_value *value) {
    return mproc__scope_enter_value(value);
}
static inline mproc__scope mproc__scope_enter(mproc_array *array) {
    return mproc__scope_enter_array(array);
}
#define MPROC__SCOPE_ENTER(obj) mproc__scope_enter(obj)
#else
#define MPROC__SCOPE_ENTER(obj)                                                            \
    _Generic((obj), mproc_lock *: mproc__scope_enter_lock,                                 \
             mproc_rlock *: mproc__scope_enter_rlock,                                      \
             mproc_condition *: mproc__scope_enter_condition,                              \
             mproc_semaphore *: mproc__scope_enter_semaphore,                              \
             mproc_value *: mproc__scope_enter_value,                                      \
             mproc_array *: mproc__scope_enter_array)(obj)
#endif

#define MPROC__CAT2(a, b) a##b
#define MPROC__CAT(a, b) MPROC__CAT2(a, b)
#define MPROC__SCOPE_VAR MPROC__CAT(mproc__scope_, __COUNTER__)

#define MPROC__WITH(obj, scope)                                                            \
    for (mproc__scope scope __attribute__((cleanup(mproc__scope_exit))) =                  \
             MPROC__SCOPE_ENTER(obj);                                                      \
         scope.pending; scope.pending = 0)

#define MPROC__WITH_RC(obj, rc, scope)                                                     \
    for (mproc__scope scope __attribute__((cleanup(mproc__scope_exit))) =                  \
             MPROC__SCOPE_ENTER(obj);                                                      \
         ((rc) = scope.rc, scope.pending); scope.pending = 0)

#define MPROC_WITH(obj) MPROC__WITH(obj, MPROC__SCOPE_VAR)
#define MPROC_WITH_RC(obj, rc) MPROC__WITH_RC(obj, rc, MPROC__SCOPE_VAR)
#define MPROC_GUARD(obj)                                                                   \
    mproc__scope MPROC__SCOPE_VAR __attribute__((cleanup(mproc__scope_exit), unused)) =    \
        MPROC__SCOPE_ENTER(obj)

#endif
