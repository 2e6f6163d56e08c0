/* SPDX-License-Identifier: MIT */
/*
 * mproc_conn: Python's Pipe() and its Connection objects, for byte messages.
 *
 * mproc_pipe() makes two connected ends.  Duplex: both send and receive.
 * One-way: the first end only receives, the second only sends (Python's
 * (reader, writer)); the wrong direction is EBADF.
 *
 * Messages keep their boundaries (three sends, three receives; an empty
 * message is a message) and are never torn: each is one record of a Unix
 * SOCK_SEQPACKET socket, queued whole or not at all, so a sender SIGKILLed
 * mid-send sent everything or nothing, and several threads or processes may
 * use the same end at once (each message goes to exactly one receiver).
 *
 * End of file.  A recv or poll on an end whose peer was closed by every
 * process holding it, or whose holders all died, returns MPROC_E_EOF once the
 * messages already sent are read: never a hang.  As with Python and file
 * descriptors, an end is held by every process that inherited it across
 * fork(): a parent that keeps its copy of the child's end open will not see
 * EOF when the child dies, so close the end you do not use (the demos do).
 *
 * Named pipes: mproc_pipe_open(name, MPROC_CREATE) listens under the name;
 * the one other process that opens it (MPROC_ATTACH) gets the other end of a
 * duplex pipe; the first operation on the creating end waits (within its
 * timeout) for that peer.  The name is removed as soon as the peer connects
 * (a later opener finds nothing; one that connected before that gets
 * MPROC_E_EOF).  Make the creating end's first call before forking children
 * that share it: only the process that takes the peer gets it.
 *
 * Sizes: the largest message is what one socket record can carry (about
 * 200 KiB with the default net.core.wmem_max, 256 KiB at most;
 * mproc_conn_max_message() says).
 */
#ifndef MPROC_PIPE_H
#define MPROC_PIPE_H

#include <stddef.h>

#include <mproc/export.h>
#include <mproc/error.h>
#include <mproc/object.h>

MPROC_EXTERN_C_BEGIN

typedef struct mproc_conn mproc_conn;

typedef struct mproc_pipe_options {
    unsigned mode;         /* named pipes: permission bits; 0 = MPROC_DEFAULT_MODE */
    unsigned reserved[7];  /* must be zero */
} mproc_pipe_options;

/* Makes a pipe: duplex != 0 gives two two-way ends; duplex == 0 gives
 * (*a: receive only, *b: send only).  Returns 0, EINVAL, EMFILE, ENFILE,
 * ENOMEM. */
MPROC_API int mproc_pipe(mproc_conn **a, mproc_conn **b, int duplex,
                         const mproc_pipe_options *opts);

/* Opens one end of the named duplex pipe `name` (see above).  flags:
 * MPROC_ATTACH connects to the process listening under the name (ENOENT if
 * none); MPROC_CREATE listens if nobody does, else connects;
 * MPROC_CREATE | MPROC_EXCL listens or fails with EEXIST.  A listener that
 * died is detected and its name replaced.  Name codes as mproc_lock_open(),
 * but a socket's path is short: names longer than 92 characters are
 * ENAMETOOLONG.  Also MPROC_E_KIND (another kind's object has the name) and
 * EBUSY (the listener has too many connections waiting). */
MPROC_API int mproc_pipe_open(mproc_conn **out, const char *name, int flags,
                              const mproc_pipe_options *opts);

/*
 * Sends one message of `len` bytes (msg may be NULL when len is 0), waiting
 * up to `timeout` seconds for room.  Returns 0, MPROC_E_EOF (the peer end is
 * closed everywhere: nobody can receive it), EMSGSIZE, EBADF (receive-only
 * end), ETIMEDOUT, EINVAL, ENOMEM (the kernel could not allocate it).
 */
MPROC_API int mproc_conn_send(mproc_conn *conn, const void *msg, size_t len, double timeout);

/*
 * Receives one message into `buf` (`cap` bytes), its length in *len, waiting
 * up to `timeout` seconds.  Returns 0, MPROC_E_EOF, ENOBUFS (the message is
 * left in the pipe and *len is its length), ETIMEDOUT, EBADF (send-only end),
 * EINVAL.
 */
MPROC_API int mproc_conn_recv(mproc_conn *conn, void *buf, size_t cap, size_t *len,
                              double timeout);

/* As mproc_conn_recv, into a buffer it allocates (free() it): exactly the
 * message's length, never NULL on success (even for an empty message); *msg
 * is NULL on failure.  Also ENOMEM (the message is left in the pipe). */
MPROC_API int mproc_conn_recv_alloc(mproc_conn *conn, void **msg, size_t *len, double timeout);

/* *ready = 1 when a recv would not block (a message or EOF is there), else 0
 * after `timeout` seconds (also when a named creating end's peer did not
 * come in time).  Never consumes anything.  Returns 0, EBADF, EINVAL. */
MPROC_API int mproc_conn_poll(mproc_conn *conn, double timeout, int *ready);

/* Largest message this end can send. */
MPROC_API size_t mproc_conn_max_message(const mproc_conn *conn);

/* The end's file descriptor, for poll()/epoll with other sources (do not
 * read or write it directly); -1 for NULL.  A named creating end keeps the
 * number, but it is the listening socket until the peer is taken (by a
 * send, recv or poll), and the connection after that. */
MPROC_API int mproc_conn_fileno(const mproc_conn *conn);

/* Closes this process's copy of the end and frees the handle.  Returns 0 or
 * EINVAL. */
MPROC_API int mproc_conn_close(mproc_conn *conn);

MPROC_EXTERN_C_END

#endif
