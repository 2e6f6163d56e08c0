/* SPDX-License-Identifier: MIT */
/*
 * mproc-bench-lean: the process_start_join loops, in a program linked with
 * nothing but libmproc and libc.  A fork copies the forking process's
 * mappings; mproc-bench itself carries every peer's libraries (libzmq alone
 * brings ~15), which made a bare fork there twice as slow as in a small
 * program, and would measure our link line instead of mproc.
 *
 *   mproc-bench-lean mproc|fork_waitpid N
 *
 * prints "SECONDS CHILD_FAULTS PARENT_FAULTS" (minor page faults per start)
 * and exits 0, or prints a reason on stderr and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double faults(int who) {
    struct rusage ru;
    return getrusage(who, &ru) == 0 ? (double)ru.ru_minflt : 0;
}

static int returns_at_once(void *arg) {
    (void)arg;
    return 0;
}

static int one_mproc(void) {
    mproc_process *p;
    int rc = mproc_process_create(&p, returns_at_once, NULL, NULL);
    if (rc == 0 && (rc = mproc_process_start(p)) == 0 &&
        (rc = mproc_process_join(p, MPROC_FOREVER)) == 0 && mproc_process_exitcode(p) != 0)
        rc = EIO;
    if (p != NULL)
        mproc_process_close(p);
    if (rc != 0)
        fprintf(stderr, "mproc start/join: %s\n", mproc_errname(rc));
    return rc;
}

static int one_fork(void) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "waitpid: %s\n", strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child status %#x\n", (unsigned)status);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    int (*one)(void) = argc != 3 ? NULL
                       : strcmp(argv[1], "mproc") == 0        ? one_mproc
                       : strcmp(argv[1], "fork_waitpid") == 0 ? one_fork
                                                              : NULL;
    if (one == NULL || n <= 0) {
        fprintf(stderr, "usage: mproc-bench-lean mproc|fork_waitpid N\n");
        return 1;
    }
    alarm(120); /* bounded, like every bench child */
    double child0 = faults(RUSAGE_CHILDREN), self0 = faults(RUSAGE_SELF);
    double t0 = now();
    for (long i = 0; i < n; i++)
        if (one() != 0)
            return 1;
    double seconds = now() - t0;
    printf("%.9f %.3f %.3f\n", seconds, (faults(RUSAGE_CHILDREN) - child0) / (double)n,
           (faults(RUSAGE_SELF) - self0) / (double)n);
    return 0;
}
