/* SPDX-License-Identifier: MIT */
#include "internal.h"

unsigned mproc_version(void) {
    return MPROC_VERSION_HEX;
}

const char *mproc_version_string(void) {
    return MPROC_VERSION_STRING;
}
