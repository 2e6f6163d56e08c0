/* SPDX-License-Identifier: MIT */
/*
 * terminal: processes share one terminal under a Lock.
 *
 * The Python tutorials' printer example, in C:
 *
 *     def worker(lock):
 *         with lock:
 *             print(os.getpid(), "is running")
 *             time.sleep(0.02)                  # the work
 *             print(os.getpid(), "is done")
 *
 *     lock = Lock()
 *     procs = [Process(target=worker, args=(lock,)) for _ in range(4)]
 *
 * With the lock each process's "running" and "done" lines are adjacent.
 * --unsafe drops the lock and the lines interleave.  To judge that without
 * reading the terminal, every process also logs its two lines in a shared
 * array, claiming each slot with an atomic fetch-and-add, and the parent
 * counts the processes whose "done" is not right after their "running":
 * interleaved= in the summary.
 *
 * Build it alone:  cc -o terminal terminal.c $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, MAP_ANONYMOUS, usleep, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* The entry point the `mproc demo terminal` command calls. */
int mproc_demo_terminal(int argc, char **argv);

enum { MAX_PROCS = 64 };

/* The shared log: slots are claimed with `next`; the parent reads them
 * only after waitpid(), which orders the children's writes before it. */
struct board {
    atomic_uint next;
    struct {
        int pid;
        bool done; /* false: the "running" line */
    } lines[2 * MAX_PROCS];
};

struct options {
    long procs;
    long work_ms; /* how long each process holds the terminal */
    bool unsafe;
    bool json;
    FILE *out;    /* the terminal: stderr with --json so stdout is pure JSON */
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--procs N] [--work-ms MS] [--unsafe] [--json]\n"
            "N processes each print 'PID is running', work, then 'PID is done'\n"
            "under one mproc_lock, and check no two processes' lines interleave.\n"
            "  -n, --procs N      processes (default 4, at most %d)\n"
            "  -w, --work-ms MS   work between the two lines (default 20)\n"
            "  -u, --unsafe       no lock: the lines interleave (exits 0 anyway)\n"
            "  -j, --json         print the summary as one JSON object\n"
            "  -h, --help         show this help\n"
            "Exit status: 0 if nothing interleaved (or --unsafe), 1 if it did or\n"
            "on error, 2 on a usage error.\n",
            prog, MAX_PROCS);
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
        {"procs", required_argument, NULL, 'n'}, {"work-ms", required_argument, NULL, 'w'},
        {"unsafe", no_argument, NULL, 'u'},      {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.procs = 4, .work_ms = 20};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "n:w:ujh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!parse_long(optarg, 1, MAX_PROCS, &opt->procs)) {
                fprintf(stderr, "%s: --procs wants 1..%d, not '%s'\n", argv[0], MAX_PROCS,
                        optarg);
                return 2;
            }
            break;
        case 'w':
            if (!parse_long(optarg, 0, 1000, &opt->work_ms)) {
                fprintf(stderr, "%s: --work-ms wants 0..1000, not '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        case 'u': opt->unsafe = true; break;
        case 'j': opt->json = true; break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: fprintf(stderr, "Try '%s --help'.\n", argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return 2;
    }
    opt->out = opt->json ? stderr : stdout;
    return -1;
}

/* Prints one line and logs it.  Flushed at once: stdout may be a fully
 * buffered pipe, and the lock only keeps lines together if they leave this
 * process while it holds the lock. */
static void say(struct board *board, const struct options *opt, bool done) {
    fprintf(opt->out, "%d is %s\n", (int)getpid(), done ? "done" : "running");
    fflush(opt->out);
    /* relaxed: the slot number is all we need to be unique; the parent
     * reads the slots after waitpid(). */
    unsigned slot = atomic_fetch_add_explicit(&board->next, 1, memory_order_relaxed);
    if (slot < 2 * MAX_PROCS) {
        board->lines[slot].pid = (int)getpid();
        board->lines[slot].done = done;
    }
}

/* The child's whole life: Python's worker().  lock is NULL with --unsafe. */
static int worker(struct board *board, mproc_lock *lock, const struct options *opt) {
    if (lock == NULL) {
        say(board, opt, false);
        usleep((useconds_t)(opt->work_ms * 1000));
        say(board, opt, true);
        return 0;
    }
    int rc;
    MPROC_WITH_RC(lock, rc) {
        /* EOWNERDEAD: a worker died holding the terminal; its half-printed
         * pair shows in the count, and the terminal needs no repair. */
        say(board, opt, false);
        usleep((useconds_t)(opt->work_ms * 1000));
        say(board, opt, true);
    }
    if (rc != 0 && rc != EOWNERDEAD) {
        fprintf(stderr, "terminal: mproc_lock_acquire: %s\n", mproc_strerror(rc));
        return 1;
    }
    return 0;
}

/* Forks one worker, held at the gate until the parent closes its end. */
static pid_t spawn(struct board *board, mproc_lock *lock, const int gate[2],
                   const struct options *opt) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    close(gate[1]);
    /* A bound on the child's life, so the parent's waitpid() returns. */
    alarm((unsigned)(10 + opt->procs * opt->work_ms * 2 / 1000));
    char byte;
    while (read(gate[0], &byte, 1) < 0 && errno == EINTR)
        continue;
    int status = worker(board, lock, opt);
    if (lock != NULL) {
        int rc = mproc_lock_close(lock);
        if (rc != 0) {
            fprintf(stderr, "terminal: mproc_lock_close: %s\n", mproc_strerror(rc));
            status = 1;
        }
    }
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
            perror("terminal: waitpid");
            ok = false;
        } else if (WIFSIGNALED(status)) {
            fprintf(stderr, "terminal: worker %d killed by signal %d\n", (int)pids[i],
                    WTERMSIG(status));
            ok = false;
        } else if (WEXITSTATUS(status) != 0) {
            ok = false;
        }
    }
    return ok;
}

static bool run(struct board *board, mproc_lock *lock, const struct options *opt) {
    int gate[2];
    if (pipe(gate) != 0) {
        perror("terminal: pipe");
        return false;
    }
    fflush(NULL); /* or the children would inherit, and print, our pending output */
    pid_t pids[MAX_PROCS];
    long started = 0;
    for (; started < opt->procs; started++) {
        pids[started] = spawn(board, lock, gate, opt);
        if (pids[started] < 0) {
            perror("terminal: fork");
            break;
        }
    }
    close(gate[1]); /* opens the gate */
    close(gate[0]);
    bool ok = reap(pids, started);
    return ok && started == opt->procs;
}

/* Processes whose "done" line is not the line right after their "running". */
static int count_interleaved(const struct board *board, unsigned lines) {
    int interleaved = 0;
    for (unsigned i = 0; i < lines; i++) {
        if (board->lines[i].done)
            continue;
        bool adjacent = i + 1 < lines && board->lines[i + 1].done &&
                        board->lines[i + 1].pid == board->lines[i].pid;
        interleaved += !adjacent;
    }
    return interleaved;
}

int mproc_demo_terminal(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;

    struct board *board = mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (board == MAP_FAILED) {
        perror("terminal: mmap");
        return 1;
    }
    atomic_init(&board->next, 0);
    mproc_lock *lock = NULL;
    if (!opt.unsafe) {
        int rc = mproc_lock_create(&lock, NULL);
        if (rc != 0) {
            fprintf(stderr, "terminal: mproc_lock_create: %s\n", mproc_strerror(rc));
            munmap(board, sizeof *board);
            return 1;
        }
    }

    bool ran = run(board, lock, &opt);
    unsigned lines = atomic_load_explicit(&board->next, memory_order_relaxed);
    int interleaved = count_interleaved(board, lines);
    if (opt.json)
        printf("{\"processes\": %ld, \"lines\": %u, \"interleaved\": %d, \"lock\": %s}\n",
               opt.procs, lines, interleaved, opt.unsafe ? "false" : "true");
    else
        printf("processes=%ld lines=%u interleaved=%d lock=%s\n", opt.procs, lines,
               interleaved, opt.unsafe ? "no" : "yes");
    fflush(stdout);

    status = ran ? 0 : 1;
    if (ran && lines != 2 * (unsigned)opt.procs) {
        fprintf(stderr, "terminal: %u lines logged, expected %ld\n", lines, 2 * opt.procs);
        status = 1;
    }
    if (ran && !opt.unsafe && interleaved != 0) {
        fprintf(stderr, "terminal: %d processes interleaved despite the lock\n", interleaved);
        status = 1;
    }

    if (lock != NULL) {
        int rc = mproc_lock_close(lock);
        if (rc != 0) {
            fprintf(stderr, "terminal: mproc_lock_close: %s\n", mproc_strerror(rc));
            status = 1;
        }
    }
    munmap(board, sizeof *board);
    return status;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_terminal(argc, argv);
}
#endif
