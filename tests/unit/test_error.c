/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <string.h>

#include <mproc.h>

static const int mproc_codes[] = {
#define CODE(name, value, msg) value,
    MPROC_ERROR_MAP(CODE)
#undef CODE
};

Test(error, every_mproc_code_has_its_own_message_and_name) {
    size_t n = sizeof mproc_codes / sizeof mproc_codes[0];
    cr_assert_eq(n, 16);
    for (size_t i = 0; i < n; i++) {
        cr_assert_gt(mproc_codes[i], MPROC_E_BASE);
        cr_assert_eq(strncmp(mproc_errname(mproc_codes[i]), "MPROC_E_", 8), 0);
        for (size_t j = 0; j < i; j++) {
            cr_assert_str_neq(mproc_strerror(mproc_codes[i]), mproc_strerror(mproc_codes[j]));
            cr_assert_str_neq(mproc_errname(mproc_codes[i]), mproc_errname(mproc_codes[j]));
        }
    }
    cr_assert_str_eq(mproc_errname(MPROC_E_KIND), "MPROC_E_KIND");
    cr_assert_str_eq(mproc_errname(MPROC_E_BADNAME), "MPROC_E_BADNAME");
    cr_assert_str_eq(mproc_errname(MPROC_E_BROKEN), "MPROC_E_BROKEN");
    cr_assert_eq(MPROC_E_BROKEN, MPROC_E_BASE + 8); /* stored nowhere, but public: frozen */
    cr_assert_eq(MPROC_E_EMPTY, MPROC_E_BASE + 9);
    cr_assert_eq(MPROC_E_FULL, MPROC_E_BASE + 10);
    cr_assert_eq(MPROC_E_CLOSED, MPROC_E_BASE + 11);
    cr_assert_eq(MPROC_E_ABANDONED, MPROC_E_BASE + 12);
    cr_assert_eq(MPROC_E_EOF, MPROC_E_BASE + 13);
    cr_assert_eq(MPROC_E_WORKER_DIED, MPROC_E_BASE + 14);
    cr_assert_eq(MPROC_E_TERMINATED, MPROC_E_BASE + 15);
    cr_assert_eq(MPROC_E_INIT_FAILED, MPROC_E_BASE + 16);
    cr_assert_str_eq(mproc_errname(MPROC_E_EOF), "MPROC_E_EOF");
}

Test(error, errno_codes_get_names_and_mproc_meanings) {
    cr_assert_str_eq(mproc_errname(ETIMEDOUT), "ETIMEDOUT");
    cr_assert_str_eq(mproc_errname(EOWNERDEAD), "EOWNERDEAD");
    cr_assert_str_eq(mproc_errname(0), "OK");
    cr_assert_not_null(strstr(mproc_strerror(EOWNERDEAD), "previous owner died"));
    cr_assert_not_null(strstr(mproc_strerror(ETIMEDOUT), "timed out"));
    cr_assert_str_eq(mproc_strerror(0), "success");
    cr_assert_not_null(strstr(mproc_strerror(EOVERFLOW), "bound"));
    cr_assert_not_null(strstr(mproc_strerror(EPERM), "not hold"));
    cr_assert_str_eq(mproc_strerror(EIO), "Input/output error");
    cr_assert_not_null(strstr(mproc_strerror(ENOBUFS), "left in place"));
    cr_assert_not_null(strstr(mproc_strerror(ERANGE), "bounds"));
    cr_assert_not_null(strstr(mproc_strerror(EMSGSIZE), "maximum"));
    cr_assert_not_null(strstr(mproc_strerror(EINPROGRESS), "not ready"));
    cr_assert_not_null(strstr(mproc_strerror(ENODATA), "every item"));
    cr_assert_not_null(strstr(mproc_strerror(MPROC_E_CLOSED), "pool is closed"));
}

Test(error, unknown_codes_never_return_null) {
    cr_assert_str_eq(mproc_strerror(-5), "unknown error code");
    cr_assert_str_eq(mproc_strerror(999999), "unknown error code");
    cr_assert_str_eq(mproc_errname(999999), "UNKNOWN");
    cr_assert_str_eq(mproc_errname(-1), "UNKNOWN");
}

Test(error, version_macros_agree_with_the_library) {
    cr_assert_eq(mproc_version(), MPROC_VERSION_HEX);
    cr_assert_str_eq(mproc_version_string(), MPROC_VERSION_STRING);
}
