/* SPDX-License-Identifier: MIT */
/*
 * Process identities that survive PID reuse: (pid, start time).  The start
 * time is field 22 of /proc/<pid>/stat, in clock ticks since boot; a recycled
 * PID has a later one.  A zombie (state Z or X) counts as dead: it will never
 * run again, though kill(pid, 0) still succeeds on it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Reads /proc/<pid>/stat: its state letter and start time.  false when the
 * process does not exist (or /proc cannot say). */
static bool read_stat(int32_t pid, char *state, uint64_t *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* comm (field 2) may hold spaces and parentheses: skip to the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return false;
    *state = p[2];
    p += 2; /* field 3 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return false;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return true;
}

uint64_t mproc__process_start(int32_t pid) {
    char state;
    uint64_t start;
    return read_stat(pid, &state, &start) ? start : 0;
}

bool mproc__process_alive(int32_t pid, uint64_t start) {
    char state;
    uint64_t now_start;
    if (pid <= 0 || !read_stat(pid, &state, &now_start))
        return false;
    return now_start == start && state != 'Z' && state != 'X';
}
