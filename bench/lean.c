/* SPDX-License-Identifier: MIT */
/*
 * Runs a loop of mproc-bench-lean (lean_process.c): a small program linked
 * with libmproc alone, for benches whose cost is a fork.  A fork copies the
 * forking process's mappings, and mproc-bench has every peer's libraries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Runs `mode` with n in mproc-bench-lean (next to this program) and reads
 * its three figures: seconds, then two that depend on the mode.  */
int bench_lean(const bench_ctx *ctx, const char *mode, uint64_t n, double figures[3]) {
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 64);
    if (len <= 0) {
        bench_error(ctx, "cannot find this program: %s", strerror(errno));
        return -1;
    }
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    snprintf(slash != NULL ? slash + 1 : self, 64, "mproc-bench-lean");
    int fds[2];
    if (pipe(fds) != 0) {
        bench_error(ctx, "pipe: %s", strerror(errno));
        return -1;
    }
    char count[32];
    snprintf(count, sizeof count, "%llu", (unsigned long long)n);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(self, "mproc-bench-lean", mode, count, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char line[256] = "";
    FILE *f = fdopen(fds[0], "r");
    bool got = f != NULL && fgets(line, sizeof line, f) != NULL;
    if (f != NULL)
        fclose(f);
    else
        close(fds[0]);
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !got || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        sscanf(line, "%lf %lf %lf", &figures[0], &figures[1], &figures[2]) != 3) {
        bench_error(ctx, "mproc-bench-lean %s failed (status %#x)", mode, (unsigned)status);
        return -1;
    }
    return 0;
}
