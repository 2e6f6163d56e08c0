/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#include "support.h"

static int open_lock(const char *name) {
    mproc_lock *lock = NULL;
    int rc = mproc_lock_open(&lock, name, MPROC_CREATE, NULL);
    if (rc == 0) {
        mproc_lock_close(lock);
        mproc_unlink(name);
    }
    return rc;
}

Test(names, empty_dot_dotdot_slash_and_odd_characters_are_badname) {
    const char *bad[] = {"", ".", "..", "/", "a/b", "/abs", "trailing/", "sp ace", "tab\t",
                         "star*", "q?", "nl\n", "\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(open_lock(bad[i]), MPROC_E_BADNAME, "name '%s'", bad[i]);
        cr_assert_eq(mproc_unlink(bad[i]), MPROC_E_BADNAME, "unlink '%s'", bad[i]);
    }
}

Test(names, null_name_is_einval) {
    mproc_lock *lock = NULL;
    cr_assert_eq(mproc_lock_open(&lock, NULL, MPROC_CREATE, NULL), EINVAL);
    cr_assert_eq(mproc_unlink(NULL), EINVAL);
}

Test(names, longest_name_works_and_one_more_is_enametoolong) {
    char name[MPROC_NAME_MAX + 2];
    snprintf(name, sizeof name, "%s", t_name("long"));
    size_t len = strlen(name);
    memset(name + len, 'x', MPROC_NAME_MAX - len);
    name[MPROC_NAME_MAX] = '\0';
    cr_assert_eq(open_lock(name), 0);
    name[MPROC_NAME_MAX] = 'y';
    name[MPROC_NAME_MAX + 1] = '\0';
    cr_assert_eq(open_lock(name), ENAMETOOLONG);
    cr_assert_eq(mproc_unlink(name), ENAMETOOLONG);
}

Test(names, dots_dashes_and_underscores_are_fine) {
    char name[96];
    snprintf(name, sizeof name, "%s.._-x.", t_name("ok"));
    cr_assert_eq(open_lock(name), 0);
    snprintf(name, sizeof name, "...%s", t_name("ok"));
    cr_assert_eq(open_lock(name), 0);
}

Test(names, unlink_of_a_missing_name_is_enoent_and_second_unlink_too) {
    const char *name = t_name("unl");
    cr_assert_eq(mproc_unlink(name), ENOENT);
    mproc_lock *lock;
    cr_assert_eq(mproc_lock_open(&lock, name, MPROC_CREATE | MPROC_EXCL, NULL), 0);
    cr_assert_eq(mproc_unlink(name), 0);
    cr_assert_eq(mproc_unlink(name), ENOENT);
    /* The handle outlives the name. */
    cr_assert_eq(mproc_lock_acquire(lock, 0), 0);
    cr_assert_eq(mproc_lock_release(lock), 0);
    cr_assert_eq(mproc_lock_close(lock), 0);
}
