/* SPDX-License-Identifier: MIT */
/*
 * The pool's watcher thread: forks the workers and reports their ends.
 *
 * It forks every worker itself, so PR_SET_PDEATHSIG (which the kernel ties
 * to the forking *thread*) fires when the pool's process dies, not when
 * some caller's short-lived thread ends.  It sleeps in poll() on the
 * workers' pidfds and an eventfd (commands from the scheduler: spawn a
 * slot's next generation, kill everyone, exit).  A worker that ended is
 * reaped, then a DEATH is put on the result queue: after every RESULT the
 * worker committed, which the scheduler relies on.
 *
 * Without pidfds (Linux < 5.3) it checks the workers every 10 ms.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool/pool_internal.h"

#define SPAWN_RETRY_MS 100 /* after fork failed (EAGAIN, ENOMEM) */
#define NO_PIDFD_POLL_MS 10

struct watched {
    mproc_process *process; /* NULL: none */
    int pidfd;              /* -1 without pidfds */
    uint64_t gen;
};

static void post_death(struct mproc_pool *pool, unsigned slot, uint64_t gen, int exitcode) {
    struct pool_msg msg = {.type = MSG_DEATH, .slot = slot, .gen = gen, .exitcode = exitcode};
    mproc__pool_post(pool, &msg);
}

static int spawn(struct mproc_pool *pool, struct watched *w, const struct pool_spawn *req,
                 unsigned long long *number) {
    pool->wargs[req->slot] = (struct pool_worker_arg){.pool = pool, .slot = req->slot, .gen = req->gen};
    char name[MPROC_PROCESS_NAME_MAX];
    snprintf(name, sizeof name, "PoolWorker-%llu", *number + 1);
    mproc_process_options opts = {.name = name, .flags = MPROC_PROCESS_DAEMON};
    mproc_process *p;
    int rc = mproc_process_create(&p, mproc__pool_worker_main, &pool->wargs[req->slot], &opts);
    if (rc == 0 && (rc = mproc_process_start(p)) != 0)
        mproc_process_close(p);
    if (rc != 0)
        return rc;
    ++*number;
    w->process = p;
    w->gen = req->gen;
    w->pidfd = mproc__pidfd_open(mproc_process_pid(p));
    atomic_store_explicit(&pool->pids[req->slot], mproc_process_pid(p), memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    pool->stats.started++;
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

/* Reaps slot's worker if it ended; then reports it. */
static void reap(struct mproc_pool *pool, unsigned slot, struct watched *w) {
    if (w->process == NULL)
        return;
    /* The pid goes out of worker_pids before the reap: once reaped it may
     * be reused by an unrelated process. */
    atomic_store_explicit(&pool->pids[slot], 0, memory_order_relaxed);
    if (mproc_process_join(w->process, 0) != 0) {
        atomic_store_explicit(&pool->pids[slot], mproc_process_pid(w->process),
                              memory_order_relaxed);
        return;
    }
    int exitcode = mproc_process_exitcode(w->process);
    mproc_process_close(w->process);
    if (w->pidfd >= 0)
        close(w->pidfd);
    w->process = NULL;
    w->pidfd = -1;
    post_death(pool, slot, w->gen, exitcode);
}

void *mproc__pool_watcher(void *arg) {
    struct mproc_pool *pool = arg;
    unsigned n = pool->nworkers;
    struct watched *w = calloc(n, sizeof *w);
    struct pool_spawn *pending = calloc(n, sizeof *pending);
    struct pollfd *fds = calloc(n + 1, sizeof *fds);
    unsigned *fd_slot = calloc(n + 1, sizeof *fd_slot);
    unsigned npending = 0;
    bool first_round_done = false;
    unsigned long long number = 0;
    if (w == NULL || pending == NULL || fds == NULL || fd_slot == NULL) {
        /* Cannot watch: every worker asked for is reported dead at once,
         * so the pool breaks (its initializer "kept dying") and ends. */
        for (;;) {
            pthread_mutex_lock(&pool->lock);
            pool->first_forks_done = true; /* none will be: create need not wait */
            pthread_cond_broadcast(&pool->cv);
            unsigned k = pool->nspawns;
            pool->nspawns = 0;
            struct pool_spawn reqs[k != 0 ? k : 1];
            memcpy(reqs, pool->spawns, k * sizeof *reqs);
            bool exit_now = pool->watcher_exit;
            pthread_mutex_unlock(&pool->lock);
            for (unsigned i = 0; i < k; i++)
                post_death(pool, reqs[i].slot, reqs[i].gen, MPROC_EXITCODE_NONE);
            if (exit_now)
                break;
            poll(&(struct pollfd){.fd = pool->evfd, .events = POLLIN}, 1, 100);
        }
        goto out;
    }
    for (unsigned i = 0; i < n; i++)
        w[i].pidfd = -1;

    for (;;) {
        pthread_mutex_lock(&pool->lock);
        for (unsigned i = 0; i < pool->nspawns && npending < n; i++)
            pending[npending++] = pool->spawns[i];
        pool->nspawns = 0;
        bool kill_all = pool->kill_all, exit_now = pool->watcher_exit;
        pthread_mutex_unlock(&pool->lock);

        bool no_pidfd = false;
        if (kill_all) {
            for (unsigned i = 0; i < n; i++)
                if (w[i].process != NULL)
                    mproc_process_kill(w[i].process);
            for (unsigned i = 0; i < npending; i++)
                post_death(pool, pending[i].slot, pending[i].gen, MPROC_EXITCODE_NONE);
            npending = 0;
        }
        unsigned left = 0;
        for (unsigned i = 0; i < npending; i++)
            if (spawn(pool, &w[pending[i].slot], &pending[i], &number) != 0)
                pending[left++] = pending[i];
        npending = left;
        if (!first_round_done) {
            /* create() waits for this, so worker_pids names every first
             * worker once create returns. */
            first_round_done = true;
            pthread_mutex_lock(&pool->lock);
            pool->first_forks_done = true;
            pthread_cond_broadcast(&pool->cv);
            pthread_mutex_unlock(&pool->lock);
        }

        unsigned nfds = 0;
        fds[nfds++] = (struct pollfd){.fd = pool->evfd, .events = POLLIN};
        unsigned alive = 0;
        for (unsigned i = 0; i < n; i++) {
            if (w[i].process == NULL)
                continue;
            alive++;
            if (w[i].pidfd < 0) {
                no_pidfd = true;
                continue;
            }
            fd_slot[nfds] = i;
            fds[nfds++] = (struct pollfd){.fd = w[i].pidfd, .events = POLLIN};
        }
        if (exit_now && alive == 0 && npending == 0)
            break;
        int timeout = npending != 0 ? SPAWN_RETRY_MS : no_pidfd ? NO_PIDFD_POLL_MS : -1;
        int ready = poll(fds, nfds, timeout);
        if (ready < 0)
            continue; /* EINTR */
        if (fds[0].revents != 0) {
            uint64_t v;
            while (read(pool->evfd, &v, sizeof v) > 0) {
            }
        }
        for (unsigned k = 1; k < nfds; k++)
            if (fds[k].revents != 0)
                reap(pool, fd_slot[k], &w[fd_slot[k]]);
        if (no_pidfd)
            for (unsigned i = 0; i < n; i++)
                if (w[i].pidfd < 0)
                    reap(pool, i, &w[i]);
    }
out:
    free(w);
    free(pending);
    free(fds);
    free(fd_slot);
    return NULL;
}
