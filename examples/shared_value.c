/* SPDX-License-Identifier: MIT */
/*
 * shared-value: processes count in a shared Value and fill a shared Array,
 * each under its own lock, with exact results.
 *
 * The Python tutorials' Value('i', 0) and Array examples, in C:
 *
 *     def fill(count, squares, rounds):
 *         for _ in range(rounds):
 *             with count.get_lock():          # the Value's own lock
 *                 slot = count.value          # read
 *                 time.sleep(0.001)           # widen the race window
 *                 count.value = slot + 1      # write
 *             squares[slot] = slot * slot     # under the Array's own lock
 *
 *     count = Value('i', 0)
 *     squares = Array('d', [-1.0] * (nprocs * rounds))
 *     procs = [Process(target=fill, args=(count, squares, rounds))
 *              for _ in range(nprocs)]
 *     ...
 *     print(count.value)                      # nprocs * rounds
 *     print(squares[:])                       # [0.0, 1.0, 4.0, 9.0, ...]
 *
 * Each process takes the next free slot from the counter and writes the
 * slot's square there.  With the lock, every slot is taken exactly once:
 * the count is exactly processes * rounds and every element is its index
 * squared.  --unsafe creates both as RawValue / RawArray (no lock): two
 * processes read the same count, take the same slot, and one addition is
 * lost; the count falls short and the last slots stay -1 (array_ok=no).
 *
 * Build it alone:  cc -o shared_value shared_value.c $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, usleep, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* The entry point the `mproc demo shared-value` command calls. */
int mproc_demo_shared_value(int argc, char **argv);

enum { MAX_PROCS = 64, MAX_ROUNDS = 10000, SHOWN = 16 };

struct options {
    long procs;
    long rounds;   /* slots each process fills */
    long pause_us; /* between read and write of the count: the race window */
    bool unsafe;   /* RawValue / RawArray: show the lost updates */
    bool json;
    FILE *out;     /* the step lines; stderr with --json so stdout is pure JSON */
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--procs N] [--rounds N] [--pause-us US] [--unsafe] [--json]\n"
            "N processes each take the next slot from a shared Value('i') counter N\n"
            "times, under its lock, and write the slot's square into a shared\n"
            "Array('d'), under its lock; the count and every element are exact.\n"
            "  -n, --procs N      processes (default 3, at most %d)\n"
            "  -r, --rounds N     slots per process (default 4, at most %d)\n"
            "  -p, --pause-us US  pause between read and write (default 1000)\n"
            "  -u, --unsafe       RawValue/RawArray, no lock: updates get lost\n"
            "                     (exits 0 anyway)\n"
            "  -j, --json         print the summary as one JSON object\n"
            "  -h, --help         show this help\n"
            "Exit status: 0 if the count and the array are exact (or --unsafe), 1 if\n"
            "not or on error, 2 on a usage error.\n",
            prog, MAX_PROCS, MAX_ROUNDS);
}

static bool parse_long(const char *text, long lo, long hi, long *value) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
        return false;
    *value = v;
    return true;
}

/* Returns -1 to go on, or the exit status (0 after --help). */
static int parse_options(int argc, char **argv, struct options *opt) {
    static const struct option longopts[] = {
        {"procs", required_argument, NULL, 'n'}, {"rounds", required_argument, NULL, 'r'},
        {"pause-us", required_argument, NULL, 'p'}, {"unsafe", no_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.procs = 3, .rounds = 4, .pause_us = 1000};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "n:r:p:ujh", longopts, NULL)) != -1) {
        const char *what = NULL;
        long lo = 1, hi = 0, *field = NULL;
        switch (c) {
        case 'n': what = "--procs", hi = MAX_PROCS, field = &opt->procs; break;
        case 'r': what = "--rounds", hi = MAX_ROUNDS, field = &opt->rounds; break;
        case 'p': what = "--pause-us", lo = 0, hi = 100000, field = &opt->pause_us; break;
        case 'u': opt->unsafe = true; break;
        case 'j': opt->json = true; break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: fprintf(stderr, "Try '%s --help'.\n", argv[0]); return 2;
        }
        if (field != NULL && !parse_long(optarg, lo, hi, field)) {
            fprintf(stderr, "%s: %s wants %ld..%ld, not '%s'\n", argv[0], what, lo, hi, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return 2;
    }
    opt->out = opt->json ? stderr : stdout;
    return -1;
}

/* count.value += 1, returning the old value: the slot.  The caller holds
 * the count's lock (or, --unsafe, nothing). */
static int take_slot(mproc_value *count, const struct options *opt) {
    int *value = mproc_value_ptr(count);
    int slot = *value;
    usleep((useconds_t)opt->pause_us);
    *value = slot + 1;
    return slot;
}

/* One round: Python's loop body.  Returns 0 or an mproc code. */
static int fill_one(mproc_value *count, mproc_array *squares, int number,
                    const struct options *opt) {
    int slot = -1, rc = 0;
    if (opt->unsafe) {
        slot = take_slot(count, opt);
    } else {
        MPROC_WITH_RC(count, rc) {
            /* EOWNERDEAD would mean a process died holding the lock.  Its
             * write is one int store, whole or absent: nothing to repair. */
            slot = take_slot(count, opt);
        }
        if (rc == EOWNERDEAD)
            rc = 0;
        if (rc != 0) {
            fprintf(stderr, "shared-value: mproc_value_acquire: %s\n", mproc_strerror(rc));
            return rc;
        }
    }
    /* squares[slot] = slot * slot: mproc_array_set takes the array's lock
     * (none for a RawArray) and checks the index. */
    double square = (double)slot * slot;
    rc = mproc_array_set(squares, (size_t)slot, &square);
    if (rc != 0 && rc != EOWNERDEAD) {
        fprintf(stderr, "shared-value: mproc_array_set: %s\n", mproc_strerror(rc));
        return rc;
    }
    fprintf(opt->out, "[process %d] slot %d = %g\n", number, slot, square);
    fflush(opt->out);
    return 0;
}

/* Forks process `number`; it waits at the gate (a read that returns when
 * the parent closes the write end) so that all start together. */
static pid_t spawn(mproc_value *count, mproc_array *squares, int number, const int gate[2],
                   const struct options *opt) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    close(gate[1]);
    /* A bound on the child's life: whatever goes wrong, waitpid() returns. */
    alarm((unsigned)(10 + opt->procs * opt->rounds * (opt->pause_us + 1000) / 1000000));
    char byte;
    while (read(gate[0], &byte, 1) < 0 && errno == EINTR)
        continue;
    int status = 0;
    for (long round = 0; round < opt->rounds && status == 0; round++)
        status = fill_one(count, squares, number, opt) == 0 ? 0 : 1;
    if (mproc_value_close(count) != 0)
        status = 1;
    if (mproc_array_close(squares) != 0)
        status = 1;
    _exit(status); /* not exit(): the parent's stdio buffers and atexit are not ours */
}

/* Waits for every child; true if all exited 0. */
static bool reap(const pid_t *pids, long count) {
    bool ok = true;
    for (long i = 0; i < count; i++) {
        int status;
        pid_t got;
        while ((got = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            perror("shared-value: waitpid");
            ok = false;
        } else if (WIFSIGNALED(status)) {
            fprintf(stderr, "shared-value: process %ld killed by signal %d\n", i + 1,
                    WTERMSIG(status));
            ok = false;
        } else if (WEXITSTATUS(status) != 0) {
            ok = false;
        }
    }
    return ok;
}

/* Runs the processes; false on any failure (already reported). */
static bool run(mproc_value *count, mproc_array *squares, const struct options *opt) {
    int gate[2];
    if (pipe(gate) != 0) {
        perror("shared-value: pipe");
        return false;
    }
    fflush(NULL); /* or the children would inherit, and print, our pending output */
    pid_t pids[MAX_PROCS];
    long started = 0;
    for (; started < opt->procs; started++) {
        pids[started] = spawn(count, squares, (int)started + 1, gate, opt);
        if (pids[started] < 0) {
            perror("shared-value: fork");
            break;
        }
    }
    close(gate[1]); /* opens the gate: every read() in the children returns 0 */
    close(gate[0]);
    bool ok = reap(pids, started);
    return ok && started == opt->procs;
}

/* print(count.value); print(squares[:]) -- the first SHOWN elements --
 * and checks every element is its index squared. */
static bool show(int value, const double *elems, size_t length, const struct options *opt) {
    fprintf(opt->out, "count.value = %d\nsquares[:] = [", value);
    bool ok = true;
    for (size_t i = 0; i < length; i++) {
        if (elems[i] != (double)i * (double)i)
            ok = false;
        if (i < SHOWN)
            fprintf(opt->out, "%s%g", i == 0 ? "" : ", ", elems[i]);
    }
    if (length > SHOWN)
        fprintf(opt->out, ", ... (%zu more)", length - SHOWN);
    fprintf(opt->out, "]\n");
    fflush(opt->out);
    return ok;
}

static void summary(const struct options *opt, int value, long expected, bool array_ok) {
    if (opt->json)
        printf("{\"value\": %d, \"expected\": %ld, \"array_ok\": %s, \"processes\": %ld, "
               "\"rounds\": %ld, \"lock\": %s}\n",
               value, expected, array_ok ? "true" : "false", opt->procs, opt->rounds,
               opt->unsafe ? "false" : "true");
    else
        printf("value=%d expected=%ld array_ok=%s processes=%ld rounds=%ld lock=%s\n", value,
               expected, array_ok ? "yes" : "no", opt->procs, opt->rounds,
               opt->unsafe ? "no" : "yes");
    fflush(stdout);
}

/* Reads the results (under each lock, as one step) and reports them.
 * Returns the exit status. */
static int check(mproc_value *count, mproc_array *squares, bool ran,
                 const struct options *opt) {
    size_t length = mproc_array_len(squares);
    double *elems = malloc(length * sizeof *elems);
    if (elems == NULL) {
        perror("shared-value: malloc");
        return 1;
    }
    int value = 0;
    int rc = mproc_value_get(count, &value);
    if (rc == 0 || rc == EOWNERDEAD)
        rc = mproc_array_read(squares, 0, length, elems);
    if (rc != 0 && rc != EOWNERDEAD) {
        fprintf(stderr, "shared-value: reading the results: %s\n", mproc_strerror(rc));
        free(elems);
        return 1;
    }
    bool array_ok = show(value, elems, length, opt);
    free(elems);
    long expected = opt->procs * opt->rounds;
    summary(opt, value, expected, array_ok);
    if (!ran)
        return 1;
    if (!opt->unsafe && (value != expected || !array_ok)) {
        fprintf(stderr, "shared-value: wrong results despite the locks\n");
        return 1;
    }
    return 0;
}

int mproc_demo_shared_value(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;

    /* Value('i', 0) and Array('d', [-1.0] * n), each with its own RLock
     * (Python's default lock=True), or none with --unsafe (lock=False). */
    mproc_value_options vopts = {.flags = opt.unsafe ? MPROC_RAW : 0};
    size_t length = (size_t)(opt.procs * opt.rounds);
    double *initial = malloc(length * sizeof *initial);
    if (initial == NULL) {
        perror("shared-value: malloc");
        return 1;
    }
    for (size_t i = 0; i < length; i++)
        initial[i] = -1.0;
    int zero = 0;
    mproc_value *count = NULL;
    mproc_array *squares = NULL;
    int rc = mproc_value_create(&count, MPROC_TYPE_INT, &zero, NULL, NULL, &vopts);
    if (rc == 0)
        rc = mproc_array_create(&squares, MPROC_TYPE_DOUBLE, length, initial, NULL, NULL,
                                &vopts);
    free(initial);
    if (rc != 0) {
        fprintf(stderr, "shared-value: creating the Value and Array: %s\n", mproc_strerror(rc));
        if (count != NULL)
            mproc_value_close(count);
        return 1;
    }

    bool ran = run(count, squares, &opt);
    status = check(count, squares, ran, &opt);

    if ((rc = mproc_value_close(count)) != 0) {
        fprintf(stderr, "shared-value: mproc_value_close: %s\n", mproc_strerror(rc));
        status = 1;
    }
    if ((rc = mproc_array_close(squares)) != 0) {
        fprintf(stderr, "shared-value: mproc_array_close: %s\n", mproc_strerror(rc));
        status = 1;
    }
    return status;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_shared_value(argc, argv);
}
#endif
