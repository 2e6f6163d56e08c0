/* SPDX-License-Identifier: MIT */
/* Relative `double` timeouts become one absolute CLOCK_MONOTONIC deadline at
 * API entry; every retry below waits against that same instant. */
#include <math.h>

#include "internal.h"

/* Beyond this a timeout is forever: it keeps tv_sec far from overflow. */
#define MAX_FINITE_TIMEOUT 1e9

int mproc__deadline_init(mproc__deadline *deadline, double timeout) {
    deadline->forever = false;
    deadline->now = false;
    deadline->at.tv_sec = 0;
    deadline->at.tv_nsec = 0;
    if (isnan(timeout))
        return EINVAL;
    if (timeout < 0 || timeout > MAX_FINITE_TIMEOUT) {
        deadline->forever = true;
        return 0;
    }
    if (timeout == 0) {
        deadline->now = true;
        return 0;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double whole = floor(timeout);
    long nsec = now.tv_nsec + (long)((timeout - whole) * 1e9);
    deadline->at.tv_sec = now.tv_sec + (time_t)whole + nsec / 1000000000L;
    deadline->at.tv_nsec = nsec % 1000000000L;
    return 0;
}

double mproc__deadline_remaining(const mproc__deadline *deadline) {
    if (deadline->forever)
        return MPROC_FOREVER;
    if (deadline->now)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double left = (double)(deadline->at.tv_sec - now.tv_sec) +
                  (double)(deadline->at.tv_nsec - now.tv_nsec) / 1e9;
    return left > 0 ? left : 0;
}

bool mproc__deadline_expired(const mproc__deadline *deadline) {
    if (deadline->forever)
        return false;
    return mproc__deadline_remaining(deadline) == 0;
}
