/* SPDX-License-Identifier: MIT */
/*
 * mproc_conn: the ends of a Pipe, on Unix SOCK_SEQPACKET sockets.
 *
 * Contents: records and sizes; waiting; receiving (the receivers' lock);
 * anonymous pipes; named pipes (publishing, stale names, probes, accepting);
 * the API.
 *
 * Records.  A message is one socket record: a 1-byte tag, then the payload,
 * written by one sendmsg.  The kernel queues a record whole or not at all,
 * so a sender killed mid-send never leaves a torn message, and a record is
 * never empty, so recvmsg returning 0 only ever means end of file.
 *
 * Handles.  Every field is fixed at creation except, for a named creating
 * end, `listening` and the socket behind `fd` (see accept_peer), which change
 * once, under the receivers' lock.  A handle belongs to one process; its
 * socket and lock are shared with the children forked after it was made.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define TAG 'm'

struct mproc_conn {
    int fd;               /* the socket (a named creating end: see accept_peer) */
    bool can_send, can_recv;
    _Atomic bool listening; /* a named creating end whose peer has not come yet */
    size_t max_message;
    mproc_lock *receivers; /* NULL for a send-only end; see take() */
    /* A named creating end: its published file, removed when the peer
     * comes, or at close if none came (only by the creating process). */
    pid_t creator;
    dev_t dev;
    ino_t ino;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* ---- records and sizes ---- */

/*
 * The kernel refuses a record longer than the sender's SO_SNDBUF minus 32
 * bytes (EMSGSIZE; measured on Linux 6.18: exactly sk_sndbuf - 32 for every
 * buffer size), and a record it cannot allocate in one piece fails with
 * ENOBUFS (past ~4 MiB the linear part needs pages the allocator does not
 * give).  So each end asks for SNDBUF_REQUEST (the kernel doubles it, and
 * caps it silently at 2 * net.core.wmem_max: 512 KiB here, 416 KiB with the
 * default wmem_max) and allows half of what it got, less the tag and some
 * margin: room for two records in flight (the sender writes the next one
 * while the receiver reads), and a record size the kernel always accepts.
 */
#define SNDBUF_REQUEST (256 * 1024)
#define RECORD_MARGIN 64

/* Sets `fd`'s buffers; *max (if not NULL) gets the largest message. */
static int set_buffers(int fd, size_t *max) {
    int request = SNDBUF_REQUEST;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &request, sizeof request);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &request, sizeof request);
    int got = 0;
    socklen_t len = sizeof got;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) != 0)
        return errno;
    if (max != NULL) /* the kernel's minimum SO_SNDBUF is 4608 */
        *max = (size_t)got / 2 - RECORD_MARGIN;
    return 0;
}

/* Sends one record, without waiting.  0, EAGAIN (full), MPROC_E_EOF, ENOMEM. */
static int put(int fd, const void *msg, size_t len) {
    char tag = TAG;
    struct iovec iov[2] = {{&tag, 1}, {(void *)msg, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    while (sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        switch (errno) {
        case EINTR:
            continue;
        case EAGAIN:
            return EAGAIN;
        case EPIPE: /* the peer is closed everywhere, or died */
        case ECONNRESET:
        case ECONNREFUSED:
        case ENOTCONN:
            return MPROC_E_EOF;
        case ENOBUFS: /* the kernel could not allocate the record */
            return ENOMEM;
        default:
            return errno;
        }
    }
    return 0;
}

/* Receives (or with MSG_PEEK, looks at) the next record into buf[0, cap),
 * without waiting.  Returns the record's payload length (its full length
 * with MSG_TRUNC), or a negative code: -EAGAIN, -MPROC_E_EOF, -errno.
 * *truncated says whether the payload did not fit.
 *
 * ECONNRESET is the kernel saying, once, that the peer closed with records
 * of ours unread; it comes before the records the peer sent us, so it is
 * read past like EINTR: those records come next, then end of file. */
static ssize_t get(int fd, void *buf, size_t cap, int flags, bool *truncated) {
    char tag;
    struct iovec iov[2] = {{&tag, 1}, {buf, cap}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n;
    while ((n = recvmsg(fd, &mh, flags | MSG_DONTWAIT)) < 0 &&
           (errno == EINTR || errno == ECONNRESET)) {
    }
    if (n < 0)
        return -errno;
    if (n == 0)
        return -MPROC_E_EOF;
    if (truncated != NULL)
        *truncated = (mh.msg_flags & MSG_TRUNC) != 0;
    return n - 1;
}

/* ---- waiting ---- */

/* Waits until `fd` reports one of `events`, an error or a hang-up, or the
 * deadline passes.  0 or ETIMEDOUT; EINTR waits again for what is left. */
static int wait_fd(int fd, short events, const mproc__deadline *deadline) {
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        struct timespec ts, *left = NULL;
        if (!deadline->forever) {
            double secs = mproc__deadline_remaining(deadline);
            ts.tv_sec = (time_t)secs;
            ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
            left = &ts;
        }
        int n = ppoll(&pfd, 1, left, NULL);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return errno;
        if (n == 0 && mproc__deadline_expired(deadline))
            return ETIMEDOUT;
    }
}

/* ---- receiving ---- */

/*
 * A receive that must not consume a message too big for the caller's
 * buffer first peeks at its length (MSG_PEEK | MSG_TRUNC), then takes it.
 * Another receiver of the same end (a thread, or a process that inherited
 * it) taking that message in between would make the second step take the
 * *next* message, which may not fit: the kernel would cut it and its tail
 * would be lost.  Detecting MSG_TRUNC afterwards cannot undo that, so every
 * receive of an end happens under that end's `receivers` lock, a robust
 * process-shared mproc_lock made with the end and shared across fork.  It is
 * held only for the non-blocking peek and take, never while waiting for a
 * message, so it is held for microseconds.  EOWNERDEAD needs no repair: a
 * receiver that died between peek and take took nothing.
 */
static int lock_receivers(mproc_conn *conn, const mproc__deadline *deadline) {
    /* Held for microseconds, so even a recv with a timeout of 0 waits for it
     * (bounded, in case its holder is stopped) instead of reporting "no
     * message" while one is there. */
    double timeout = mproc__deadline_remaining(deadline);
    if (timeout >= 0.0 && timeout < 1.0)
        timeout = 1.0;
    int rc = mproc_lock_acquire(conn->receivers, timeout);
    return rc == EOWNERDEAD ? 0 : rc;
}

/* Under the receivers' lock: takes the next message, if any, without
 * waiting, into buf[0, cap) or (alloc != NULL) into a new buffer.  Returns 0,
 * EAGAIN (none yet), MPROC_E_EOF, ENOBUFS (*len = its length, left queued),
 * ENOMEM, EMSGSIZE (see below). */
static int take(mproc_conn *conn, void *buf, size_t cap, size_t *len, void **alloc) {
    ssize_t n;
    /* A buffer of max_message holds any record our peer can send: no peek. */
    if (alloc != NULL || cap < conn->max_message) {
        if ((n = get(conn->fd, NULL, 0, MSG_PEEK | MSG_TRUNC, NULL)) < 0)
            return (int)-n;
        if (alloc != NULL) {
            cap = (size_t)n;
            if ((buf = malloc(cap > 0 ? cap : 1)) == NULL)
                return ENOMEM;
        } else if ((size_t)n > cap) {
            *len = (size_t)n;
            return ENOBUFS;
        }
    }
    bool truncated = false;
    n = get(conn->fd, buf, cap, 0, &truncated);
    if (n < 0 || truncated) {
        if (alloc != NULL)
            free(buf);
        /* Truncated only if the peer's maximum exceeds ours (a peer made
         * with a larger net.core.wmem_max): the message is lost. */
        return n < 0 ? (int)-n : EMSGSIZE;
    }
    if (alloc != NULL)
        *alloc = buf;
    *len = (size_t)n;
    return 0;
}

static int ensure_connected(mproc_conn *conn, const mproc__deadline *deadline);

static int receive(mproc_conn *conn, void *buf, size_t cap, size_t *len, void **alloc,
                   double timeout) {
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (!conn->can_recv)
        return EBADF;
    int rc = ensure_connected(conn, &deadline);
    while (rc == 0) {
        if ((rc = lock_receivers(conn, &deadline)) != 0)
            break;
        rc = take(conn, buf, cap, len, alloc);
        mproc_lock_release(conn->receivers);
        if (rc != EAGAIN)
            break;
        rc = wait_fd(conn->fd, POLLIN, &deadline);
    }
    return rc;
}

/* ---- anonymous pipes ---- */

static mproc_conn *new_conn(int fd, bool can_send, bool can_recv, int *rc) {
    mproc_conn *conn = calloc(1, sizeof *conn);
    *rc = ENOMEM;
    if (conn == NULL)
        return NULL;
    conn->fd = fd;
    conn->can_send = can_send;
    conn->can_recv = can_recv;
    atomic_init(&conn->listening, false);
    if ((*rc = set_buffers(fd, &conn->max_message)) == 0 && can_recv)
        *rc = mproc_lock_create(&conn->receivers, NULL);
    if (*rc != 0) {
        free(conn);
        return NULL;
    }
    return conn;
}

static void free_conn(mproc_conn *conn) {
    if (conn->receivers != NULL)
        mproc_lock_close(conn->receivers);
    free(conn);
}

int mproc_pipe(mproc_conn **a, mproc_conn **b, int duplex, const mproc_pipe_options *opts) {
    if (a == NULL || b == NULL || !MPROC__OPTIONS_OK(opts))
        return EINVAL;
    int sv[2], rc;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return errno;
    /* One-way: the kernel is told too, so the sockets agree with the
     * handles (a read-only end cannot write even through its fd). */
    if (!duplex && (shutdown(sv[0], SHUT_WR) != 0 || shutdown(sv[1], SHUT_RD) != 0)) {
        rc = errno;
        goto fail;
    }
    mproc_conn *first = new_conn(sv[0], duplex != 0, true, &rc);
    if (first == NULL)
        goto fail;
    mproc_conn *second = new_conn(sv[1], true, duplex != 0, &rc);
    if (second == NULL) {
        free_conn(first);
        goto fail;
    }
    *a = first;
    *b = second;
    return 0;
fail:
    close(sv[0]);
    close(sv[1]);
    return rc;
}

/* ---- named pipes ---- */

/*
 * Publishing.  A creating end binds a listening socket under a private
 * temporary name, sets its mode, listens, and only then link()s it under the
 * object's name (musl's sem_open pattern).  So a socket file under a name
 * always had a listener: connect() refused (ECONNREFUSED) means that
 * listener is gone (killed, or exited without closing), and the file is
 * stale: it is removed and the creation tried again.  (A creator killed
 * between bind() and link() leaves its temporary file, "mproc-pipe.*",
 * behind: an empty socket file that nothing uses.)  Removal checks that
 * the file is still the one found dead (dev, ino); a second creator that
 * replaced it in the few instructions between that check and unlink() would
 * lose its name: only two creators racing over a dead name can meet that.
 *
 * Probes.  MPROC_CREATE | MPROC_EXCL can only tell a live listener from a
 * dead one by connecting.  So that the listener does not take such a probe
 * for its peer, the probe binds its socket to an abstract address starting
 * with PROBE_PREFIX before it connects; accept_peer() sees that address on
 * the accepted connection and drops it.
 *
 * The listener accepts on the first send, recv or poll of its end, then
 * removes its name (if still its own) *before* closing the listening socket:
 * a name that refuses connections is therefore never a live listener's.  A
 * second process attaching while the first one's connection waits to be
 * accepted connects too, but gets MPROC_E_EOF on first use (a pipe has two
 * ends).  A creating end must make its first call before it is shared with
 * forked children: only the process that accepts gets the peer.
 */
#define PROBE_PREFIX "mproc-pipe-probe."
#define LISTEN_BACKLOG 8
#define CREATE_ATTEMPTS 8

static bool same_file(const char *path, dev_t dev, ino_t ino) {
    struct stat st;
    return lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static void unlink_if_ours(mproc_conn *conn) {
    if (getpid() == conn->creator && same_file(conn->path, conn->dev, conn->ino))
        unlink(conn->path);
}

static bool is_probe(const struct sockaddr_un *addr, socklen_t len) {
    size_t need = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(PROBE_PREFIX);
    return len >= need && addr->sun_path[0] == '\0' &&
           memcmp(addr->sun_path + 1, PROBE_PREFIX, strlen(PROBE_PREFIX)) == 0;
}

/* Binds `fd` to a fresh address: a temporary file in MPROC__SHM_DIR, or
 * (abstract) an abstract probe address.  The path goes to addr. */
static int bind_fresh(int fd, bool abstract, struct sockaddr_un *addr) {
    for (int attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
        *addr = (struct sockaddr_un){.sun_family = AF_UNIX};
        snprintf(addr->sun_path + abstract, sizeof addr->sun_path - 1, "%s%s%d.%016" PRIx64,
                 abstract ? "" : MPROC__SHM_DIR "/", abstract ? PROBE_PREFIX : "mproc-pipe.",
                 (int)getpid(), mproc__random64());
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + abstract +
                                    strlen(addr->sun_path + abstract) + !abstract);
        if (bind(fd, (struct sockaddr *)addr, len) == 0)
            return 0;
        if (errno != EADDRINUSE)
            return errno;
    }
    return EADDRINUSE;
}

/* Connects a new socket to the listener at `addr`, as a probe if `probe`.
 * Returns 0 (*out = the socket), or connect()'s code: ENOENT (no file),
 * ECONNREFUSED (nobody listens, or not a socket), EAGAIN (backlog full),
 * EACCES... */
static int connect_to(const struct sockaddr_un *addr, bool probe, int *out) {
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_un self;
    int rc = probe ? bind_fresh(fd, true, &self) : 0;
    /* Non-blocking: a Unix connect completes at once, or fails with EAGAIN
     * when the listener's backlog is full (blocking would wait unbounded). */
    while (rc == 0 && connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0 &&
           errno != EISCONN) /* EISCONN: connected by the call EINTR interrupted */
        if (errno != EINTR)
            rc = errno;
    if (rc == 0 && fcntl(fd, F_SETFL, 0) != 0)
        rc = errno;
    if (rc != 0 || probe)
        close(fd);
    else
        *out = fd;
    return rc;
}

/* The name holds something that refused us: a stale socket file (removed,
 * then 0: try again) or another kind's object (MPROC_E_KIND, or EEXIST for
 * MPROC_EXCL as with every kind). */
static int refused(const char *path, const struct stat *found, bool excl) {
    if (!S_ISSOCK(found->st_mode))
        return excl ? EEXIST : MPROC_E_KIND;
    if (same_file(path, found->st_dev, found->st_ino))
        unlink(path);
    return 0;
}

/* Binds conn->fd under a temporary name (into tmp), sets its mode and
 * listens: ready to be published. */
static int make_listener(mproc_conn *conn, unsigned mode, char *tmp) {
    struct sockaddr_un addr;
    struct stat st;
    int rc = bind_fresh(conn->fd, false, &addr);
    if (rc != 0)
        return rc;
    strcpy(tmp, addr.sun_path);
    if (chmod(tmp, mode != 0 ? mode : MPROC_DEFAULT_MODE) != 0 ||
        listen(conn->fd, LISTEN_BACKLOG) != 0 || lstat(tmp, &st) != 0)
        return errno;
    conn->dev = st.st_dev;
    conn->ino = st.st_ino;
    return 0;
}

/* MPROC_CREATE: publishes conn->fd as the listener under conn->path, or
 * connects to the live listener there instead (EEXIST if excl).  The loop
 * ends early on an error, or once a live listener answered. */
static int create_named(mproc_conn *conn, const struct sockaddr_un *addr, bool excl,
                        unsigned mode) {
    char tmp[sizeof conn->path] = "";
    int rc = make_listener(conn, mode, tmp), peer = -1;
    bool live = false;
    for (int attempt = 0; rc == 0 && !live && attempt < CREATE_ATTEMPTS; attempt++) {
        struct stat found;
        if (link(tmp, conn->path) == 0) {
            unlink(tmp);
            conn->creator = getpid();
            atomic_store_explicit(&conn->listening, true, memory_order_relaxed);
            return 0;
        }
        if (errno != EEXIST)
            rc = errno;
        else if (lstat(conn->path, &found) != 0)
            continue; /* gone meanwhile */
        else if ((rc = connect_to(addr, excl, &peer)) == 0 || rc == EAGAIN)
            live = true; /* EAGAIN: alive, with a full backlog */
        else if (rc == ECONNREFUSED)
            rc = refused(conn->path, &found, excl);
        else if (rc == ENOENT)
            rc = 0;
    }
    if (tmp[0] != '\0')
        unlink(tmp);
    if (live && rc == 0 && !excl) { /* we are the listener's peer */
        close(conn->fd);
        conn->fd = peer;
        return set_buffers(peer, NULL);
    }
    if (live)
        return excl ? EEXIST : EBUSY;
    return rc != 0 ? rc : EBUSY; /* the name kept changing under us */
}

/* MPROC_ATTACH: connects to the listener under `path`. */
static int attach_named(const char *path, const struct sockaddr_un *addr, int *fd) {
    int rc = connect_to(addr, false, fd);
    struct stat found;
    if (rc == ECONNREFUSED) /* a stale file, or another kind's object */
        rc = lstat(path, &found) == 0 && !S_ISSOCK(found.st_mode) ? MPROC_E_KIND : ENOENT;
    return rc == EAGAIN ? EBUSY : rc;
}

int mproc_pipe_open(mproc_conn **out, const char *name, int flags,
                    const mproc_pipe_options *opts) {
    if (out == NULL || !MPROC__OPTIONS_OK(opts) || (flags & ~(MPROC_CREATE | MPROC_EXCL)) ||
        ((flags & MPROC_EXCL) && !(flags & MPROC_CREATE)))
        return EINVAL;
    char path[MPROC__PATH_MAX];
    int rc = mproc__name_path(name, path), fd = -1;
    if (rc != 0)
        return rc;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    if (!(flags & MPROC_CREATE))
        rc = attach_named(path, &addr, &fd);
    else if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        rc = errno;
    if (rc != 0)
        return rc;
    mproc_conn *conn = new_conn(fd, true, true, &rc);
    if (conn == NULL) {
        close(fd);
        return rc;
    }
    strcpy(conn->path, path);
    if (flags & MPROC_CREATE)
        rc = create_named(conn, &addr, flags & MPROC_EXCL, opts != NULL ? opts->mode : 0);
    if (rc != 0) {
        close(conn->fd);
        free_conn(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

/*
 * Under the receivers' lock: waits for the peer and makes its connection
 * this end's socket.  dup3() puts the accepted socket on the listening
 * socket's descriptor number (closing the listener) so that fileno() never
 * changes; the name is removed first, while it still listens (see above).
 */
static int accept_peer(mproc_conn *conn, const mproc__deadline *deadline) {
    for (;;) {
        struct sockaddr_un peer;
        socklen_t len = sizeof peer;
        int fd = accept4(conn->fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            int rc = errno;
            if (rc == EAGAIN)
                rc = wait_fd(conn->fd, POLLIN, deadline);
            else if (rc == EINTR || rc == ECONNABORTED)
                rc = 0;
            if (rc != 0)
                return rc;
            continue;
        }
        if (is_probe(&peer, len)) {
            close(fd);
            continue;
        }
        int rc = set_buffers(fd, NULL);
        if (rc == 0) {
            unlink_if_ours(conn);
            rc = dup3(fd, conn->fd, O_CLOEXEC) < 0 ? errno : 0;
        }
        close(fd);
        if (rc == 0) /* release: pairs with the acquire in ensure_connected */
            atomic_store_explicit(&conn->listening, false, memory_order_release);
        return rc;
    }
}

static int ensure_connected(mproc_conn *conn, const mproc__deadline *deadline) {
    /* acquire: pairs with the release in accept_peer.  Nothing in the
     * handle changes with it but the descriptor's socket, which the kernel
     * orders itself; this only keeps the hand-off explicit. */
    if (MPROC__LIKELY(!atomic_load_explicit(&conn->listening, memory_order_acquire)))
        return 0;
    int rc = lock_receivers(conn, deadline);
    if (rc != 0)
        return rc;
    if (atomic_load_explicit(&conn->listening, memory_order_relaxed))
        rc = accept_peer(conn, deadline);
    mproc_lock_release(conn->receivers);
    return rc;
}

/* ---- the API ---- */

int mproc_conn_send(mproc_conn *conn, const void *msg, size_t len, double timeout) {
    if (conn == NULL || (msg == NULL && len != 0))
        return EINVAL;
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (!conn->can_send)
        return EBADF;
    if (len > conn->max_message)
        return EMSGSIZE;
    int rc = ensure_connected(conn, &deadline);
    while (rc == 0) {
        if ((rc = put(conn->fd, msg, len)) != EAGAIN)
            break;
        rc = wait_fd(conn->fd, POLLOUT, &deadline);
    }
    return rc;
}

int mproc_conn_recv(mproc_conn *conn, void *buf, size_t cap, size_t *len, double timeout) {
    if (conn == NULL || len == NULL || (buf == NULL && cap != 0))
        return EINVAL;
    return receive(conn, buf, cap, len, NULL, timeout);
}

int mproc_conn_recv_alloc(mproc_conn *conn, void **msg, size_t *len, double timeout) {
    if (conn == NULL || msg == NULL || len == NULL)
        return EINVAL;
    *msg = NULL;
    return receive(conn, NULL, 0, len, msg, timeout);
}

int mproc_conn_poll(mproc_conn *conn, double timeout, int *ready) {
    if (conn == NULL || ready == NULL)
        return EINVAL;
    *ready = 0;
    mproc__deadline deadline;
    if (mproc__deadline_init(&deadline, timeout) != 0)
        return EINVAL;
    if (!conn->can_recv)
        return EBADF;
    int rc = ensure_connected(conn, &deadline);
    if (rc == 0)
        rc = wait_fd(conn->fd, POLLIN, &deadline);
    *ready = rc == 0;
    return rc == ETIMEDOUT ? 0 : rc;
}

size_t mproc_conn_max_message(const mproc_conn *conn) {
    return conn != NULL ? conn->max_message : 0;
}

int mproc_conn_fileno(const mproc_conn *conn) {
    return conn != NULL ? conn->fd : -1;
}

int mproc_conn_close(mproc_conn *conn) {
    if (conn == NULL)
        return EINVAL;
    if (atomic_load_explicit(&conn->listening, memory_order_relaxed))
        unlink_if_ours(conn);
    close(conn->fd);
    free_conn(conn);
    return 0;
}
