/* SPDX-License-Identifier: MIT */
/* mproc: Python's multiprocessing for C.  This umbrella header includes every
 * public header and nothing else. */
#ifndef MPROC_H
#define MPROC_H

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>
#include <mproc/lock.h>
#include <mproc/rlock.h>
#include <mproc/semaphore.h>
#include <mproc/event.h>
#include <mproc/condition.h>
#include <mproc/barrier.h>
#include <mproc/value.h>
#include <mproc/shm.h>
#include <mproc/queue.h>
#include <mproc/pipe.h>
#include <mproc/process.h>
#include <mproc/pool.h>
#include <mproc/with.h>

#endif
