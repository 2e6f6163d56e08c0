/* SPDX-License-Identifier: MIT */
/* Object names: [A-Za-z0-9._-]{1,MPROC_NAME_MAX}, not "." or "..", mapped to
 * /dev/shm/mproc.<name>.  The character set excludes '/', so a name can never
 * leave the directory; "." and ".." are refused although the prefix would
 * make them harmless, so that names mean the same everywhere. */
#include <string.h>

#include "internal.h"

static bool name_char_ok(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int mproc__name_path(const char *name, char path[MPROC__PATH_MAX]) {
    if (name == NULL)
        return EINVAL;
    size_t len = strnlen(name, MPROC_NAME_MAX + 1);
    if (len == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return MPROC_E_BADNAME;
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok(name[i]))
            return MPROC_E_BADNAME;
    if (len > MPROC_NAME_MAX)
        return ENAMETOOLONG;
    memcpy(path, MPROC__SHM_DIR "/" MPROC__NAME_PREFIX, sizeof(MPROC__SHM_DIR "/" MPROC__NAME_PREFIX) - 1);
    memcpy(path + sizeof(MPROC__SHM_DIR "/" MPROC__NAME_PREFIX) - 1, name, len + 1);
    return 0;
}
