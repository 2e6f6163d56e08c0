/* SPDX-License-Identifier: MIT */
/* A user's program, built against the installed library. */
#include <mproc.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    mproc_lock *lock;
    int rc = mproc_lock_create(&lock, NULL);
    if (rc != 0) {
        fprintf(stderr, "create: %s\n", mproc_strerror(rc));
        return 1;
    }
    int inside = 0;
    MPROC_WITH(lock) { inside = 1; }
    if (!inside || mproc_lock_acquire(lock, 0) != 0 || mproc_lock_release(lock) != 0)
        return 2;
    mproc_lock_close(lock);
    if (strcmp(mproc_version_string(), MPROC_VERSION_STRING) != 0)
        return 3;
    printf("consumer ok %s\n", mproc_version_string());
    return 0;
}
