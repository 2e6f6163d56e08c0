/* SPDX-License-Identifier: MIT */
/*
 * A C face for boost::interprocess::message_queue (peer_boost_mq.cpp), built
 * only when Boost's headers are installed (MPROC_BENCH_HAVE_BOOST).  Boost
 * reports errors with exceptions; these functions catch them all.
 */
#ifndef MPROC_BENCH_PEER_BOOST_MQ_H
#define MPROC_BENCH_PEER_BOOST_MQ_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Creates the named queue (exclusively) for `depth` messages of up to `size`
 * bytes.  Returns 0, or -1 with `why` filled in. */
int boost_mq_create(const char *name, long depth, size_t size, char *why, size_t whylen);
/* Opens a handle on the named queue in this process; NULL on failure. */
void *boost_mq_open(const char *name);
/* Blocking send / receive of one message; 0 or -1.  *len gets its length. */
int boost_mq_send(void *mq, const void *msg, size_t len);
int boost_mq_receive(void *mq, void *buf, size_t cap, size_t *len);
void boost_mq_close(void *mq);
void boost_mq_remove(const char *name);

#ifdef __cplusplus
}
#endif

#endif
