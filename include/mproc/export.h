/* SPDX-License-Identifier: MIT */
/*
 * Export macro, the timeout convention and the library version.
 */
#ifndef MPROC_EXPORT_H
#define MPROC_EXPORT_H

#include <mproc/version.h>

#if defined(MPROC_BUILDING)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

#ifdef __cplusplus
#define MPROC_EXTERN_C_BEGIN extern "C" {
#define MPROC_EXTERN_C_END }
#else
#define MPROC_EXTERN_C_BEGIN
#define MPROC_EXTERN_C_END
#endif

/*
 * Timeouts are relative seconds as a double, measured on CLOCK_MONOTONIC from
 * the moment of the call.  MPROC_FOREVER (any negative value) blocks without a
 * bound, 0 tries once without sleeping, NaN is EINVAL.  Values beyond about
 * 31 years are treated as forever.  A blocking call converts its timeout once,
 * at entry, into an absolute deadline, so interruptions (EINTR) and spurious
 * wake-ups never stretch the total wait.
 */
#define MPROC_FOREVER (-1.0)

MPROC_EXTERN_C_BEGIN

/* The library's version, MPROC_VERSION_HEX of the build that made it. */
MPROC_API unsigned mproc_version(void);
/* The same as a string, "MAJOR.MINOR.PATCH". */
MPROC_API const char *mproc_version_string(void);

MPROC_EXTERN_C_END

#endif
