/* SPDX-License-Identifier: MIT */
/* Placeholder: the tests come in the next commit. */
#include <criterion/criterion.h>

#include <mproc.h>

Test(pool_placeholder, pool_header_compiles) {
    cr_assert_eq(MPROC_E_WORKER_DIED, MPROC_E_BASE + 14);
}
