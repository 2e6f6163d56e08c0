/* SPDX-License-Identifier: MIT */
/* White-box: the relative-timeout -> absolute-deadline conversion. */
#include <criterion/criterion.h>
#include <math.h>

#include "internal.h"

Test(deadline, nan_is_einval) {
    mproc__deadline d;
    cr_assert_eq(mproc__deadline_init(&d, NAN), EINVAL);
}

Test(deadline, negative_and_huge_are_forever) {
    mproc__deadline d;
    cr_assert_eq(mproc__deadline_init(&d, MPROC_FOREVER), 0);
    cr_assert(d.forever);
    cr_assert_eq(mproc__deadline_init(&d, -1e-9), 0);
    cr_assert(d.forever);
    cr_assert_eq(mproc__deadline_init(&d, INFINITY), 0);
    cr_assert(d.forever);
    cr_assert_eq(mproc__deadline_init(&d, 1e300), 0);
    cr_assert(d.forever);
    cr_assert_not(mproc__deadline_expired(&d));
}

Test(deadline, zero_means_try_once) {
    mproc__deadline d;
    cr_assert_eq(mproc__deadline_init(&d, 0), 0);
    cr_assert(d.now);
    cr_assert(mproc__deadline_expired(&d));
    cr_assert_eq(mproc__deadline_remaining(&d), 0);
}

Test(deadline, remaining_is_clamped_at_zero_never_negative) {
    mproc__deadline d;
    cr_assert_eq(mproc__deadline_init(&d, 1e-6), 0);
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL); /* let the deadline pass */
    cr_assert_eq(mproc__deadline_remaining(&d), 0);
    cr_assert(mproc__deadline_expired(&d));
}

Test(deadline, fractional_seconds_normalise) {
    mproc__deadline d;
    cr_assert_eq(mproc__deadline_init(&d, 2.999999999), 0);
    cr_assert_lt(d.at.tv_nsec, 1000000000L);
    cr_assert_geq(d.at.tv_nsec, 0);
    double left = mproc__deadline_remaining(&d);
    cr_assert_gt(left, 2.9);
    cr_assert_leq(left, 3.0);
}
