/* SPDX-License-Identifier: MIT */
/*
 * process: the Python tutorials' tour of Process, in C.
 *
 *     def daemon_worker():
 *         print(current_process().name, "daemon:", current_process().daemon)
 *         time.sleep(30)                          # never finishes: ended
 *         print("exiting")                        # with its parent
 *
 *     def parent():                               # starts daemons, returns
 *         for _ in range(3):                      # without joining them
 *             Process(target=daemon_worker, daemon=True).start()
 *
 *     p = Process(target=parent); p.start(); p.join()
 *
 *     s = Process(target=sleeper); s.start()
 *     s.join(0.1); print(s.is_alive())            # True: still running
 *     ... s.join(); print(s.exitcode)             # 0
 *     r = Process(target=lambda: sys.exit(3))     # exitcode 3
 *     t = Process(target=sleep_long); t.start()
 *     t.terminate(); print(t.is_alive())          # may still be True
 *     t.join(); print(t.is_alive(), t.exitcode)   # False -15
 *
 * Act 1, daemons: a parent process starts --workers daemon workers, waits
 * until each runs, and returns without joining them; at its exit mproc
 * terminates its daemon children, as Python does (a daemon also dies by
 * SIGKILL if its parent is killed).  The main process joins the parent and
 * checks that every daemon's pid is gone, and that none printed "exiting".
 *
 * Act 2, join, exitcode, terminate: a sleeper that join(0.1) finds still
 * running (ETIMEDOUT) until the main process lets it return 0; a worker
 * returning 3; a long sleeper terminated (SIGTERM) and joined: is_alive may
 * still be 1 right after terminate() (the signal takes a moment), is 0
 * after join, and its exitcode is -15 (-SIGTERM).
 *
 * Summary, deterministic for a correct run:
 *   workers=N daemons=N daemons_gone=N join_timeout=ETIMEDOUT
 *   exitcodes=0,3,-15 alive_after_join=0
 * daemons: workers that saw themselves as daemons; daemons_gone: those
 * whose pid no longer exists once their parent was joined; join_timeout:
 * what join(0.1) returned for the running sleeper; exitcodes: the act-2
 * workers' (sleeper, returner, terminated); alive_after_join: is_alive()
 * summed over them after their joins.  Exit status 0 when all of it holds,
 * 1 otherwise, 2 on a usage error.
 *
 * Build it alone:  cc -o process process.c $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, MAP_ANONYMOUS, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The entry point the `mproc demo process` command calls. */
int mproc_demo_process(int argc, char **argv);

enum { MAX_WORKERS = 16 };
#define BOUND 10.0 /* s: no wait in this demo is longer, whatever goes wrong */
#define LONG_SLEEP 30 /* s: a daemon's or the terminated worker's nap */

struct options {
    long workers;
    bool json;
    FILE *out; /* the step lines; stderr with --json so stdout is pure JSON */
};

/* Act 1's record, in MAP_SHARED memory: worker i writes its slot before
 * it reports ready; the main process reads it after joining the parent. */
struct daemons {
    struct {
        int pid, daemon, finished;
    } worker[MAX_WORKERS];
};

struct summary {
    int daemons, daemons_gone, join_timeout, exitcodes[3], alive_after_terminate,
        alive_after_join;
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--workers N] [--json]\n"
            "A tour of mproc_process: a parent starts N daemon workers and returns\n"
            "without joining them (they end with it); join with and without a\n"
            "timeout, exit codes, terminate, is_alive, names and pids.\n"
            "  -n, --workers N    daemon workers (default 3, at most %d)\n"
            "  -j, --json         print the summary as one JSON object\n"
            "  -h, --help         show this help\n"
            "Summary: workers=N daemons=N daemons_gone=N join_timeout=ETIMEDOUT\n"
            "exitcodes=0,3,-15 alive_after_join=0.  Exit status 0 if it holds, 1 if\n"
            "not, 2 on a usage error.\n",
            prog, MAX_WORKERS);
}

/* Returns -1 to go on, or the exit status (0 after --help). */
static int parse_options(int argc, char **argv, struct options *opt) {
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.workers = 3};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "n:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': {
            char *end;
            errno = 0;
            opt->workers = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || opt->workers < 1 ||
                opt->workers > MAX_WORKERS) {
                fprintf(stderr, "%s: --workers wants 1..%d, not '%s'\n", argv[0], MAX_WORKERS,
                        optarg);
                return 2;
            }
            break;
        }
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

/* ---- small helpers ---- */

/* Reads one byte from fd within BOUND seconds: true if one came. */
static bool await_byte(int fd) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char byte;
    int n;
    while ((n = poll(&pfd, 1, (int)(BOUND * 1000))) < 0 && errno == EINTR)
        continue;
    return n == 1 && read(fd, &byte, 1) == 1;
}

static void send_byte(int fd) {
    char byte = '!';
    while (write(fd, &byte, 1) < 0 && errno == EINTR)
        continue;
}

/* Python prints None for a process still running (or not started). */
static const char *exitcode_text(int code, char buf[16]) {
    if (code == MPROC_EXITCODE_NONE)
        return "None";
    snprintf(buf, 16, "%d", code);
    return buf;
}

/* True once process `pid` has ended: no such process, or a zombie waiting
 * for its reaper.  Checked for up to 1 s, as ending takes a moment once
 * signalled (the parent's exit here already waited for its daemons). */
static bool gone_within_1s(int pid) {
    for (int i = 0; i < 1000; i++) {
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return true;
        char path[64], stat[256];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(stat, 1, sizeof stat - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        stat[n] = '\0';
        const char *paren = strrchr(stat, ')');
        if (paren != NULL && paren[1] == ' ' && paren[2] == 'Z')
            return true;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL); /* polling a bound */
    }
    return false;
}

/* ---- act 1: daemons end with their parent ---- */

struct act1 {
    struct daemons *shared;
    const struct options *opt;
    int ready[2]; /* made by the parent: each daemon writes a byte once running */
    int index;    /* set by the parent before each start: the fork copies it */
};

static int daemon_worker(void *arg) {
    struct act1 *a = arg;
    a->shared->worker[a->index].pid = getpid();
    a->shared->worker[a->index].daemon = mproc_current_process_daemon();
    fprintf(a->opt->out, "%s: pid %d, daemon=%d, parent pid %d; sleeping %d s\n",
            mproc_current_process_name(), (int)getpid(), mproc_current_process_daemon(),
            mproc_parent_process_pid(), LONG_SLEEP);
    fflush(a->opt->out);
    send_byte(a->ready[1]);
    sleep(LONG_SLEEP); /* its parent's exit ends it first */
    a->shared->worker[a->index].finished = 1;
    fprintf(a->opt->out, "%s: exiting\n", mproc_current_process_name());
    return 0;
}

/* The parent: starts the daemons one by one (each reports running before
 * the next starts, so the output's order is fixed), then returns without
 * joining them. */
static int parent(void *arg) {
    struct act1 *a = arg;
    if (pipe(a->ready) != 0)
        return 1;
    for (a->index = 0; a->index < a->opt->workers; a->index++) {
        mproc_process *p;
        mproc_process_options o = {.flags = MPROC_PROCESS_DAEMON};
        if (mproc_process_create(&p, daemon_worker, a, &o) != 0 || mproc_process_start(p) != 0)
            return 1;
        if (!await_byte(a->ready[0]))
            return 1;
    }
    fprintf(a->opt->out,
            "%s: started %ld daemon workers; returning without joining them (at my exit "
            "they are terminated)\n",
            mproc_current_process_name(), a->opt->workers);
    fflush(a->opt->out);
    return 0;
}

static bool act1(const struct options *opt, struct summary *sum) {
    struct daemons *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("process: mmap");
        return false;
    }
    memset(shared, 0, sizeof *shared);
    struct act1 a = {.shared = shared, .opt = opt};
    mproc_process *p;
    int rc = mproc_process_create(&p, parent, &a, NULL);
    if (rc == 0)
        rc = mproc_process_start(p);
    if (rc != 0) {
        fprintf(stderr, "process: parent: %s\n", mproc_strerror(rc));
        munmap(shared, sizeof *shared);
        return false;
    }
    fprintf(opt->out, "%s: started %s (pid %d, daemon=%d); joining it\n",
            mproc_current_process_name(), mproc_process_name(p), mproc_process_pid(p),
            mproc_process_daemon(p));
    fflush(opt->out);
    rc = mproc_process_join(p, BOUND);
    if (rc != 0) { /* stuck: kill it, and its daemons die with it */
        mproc_process_kill(p);
        mproc_process_join(p, BOUND);
    }
    int code = mproc_process_exitcode(p);
    fprintf(opt->out, "%s: %s ended, exitcode=%d\n", mproc_current_process_name(),
            mproc_process_name(p), code);
    for (long i = 0; i < opt->workers; i++) {
        int pid = shared->worker[i].pid;
        bool gone = pid > 0 && gone_within_1s(pid);
        sum->daemons += shared->worker[i].daemon == 1;
        sum->daemons_gone += gone && !shared->worker[i].finished;
        fprintf(opt->out, "%s: daemon worker %ld (pid %d) %s\n", mproc_current_process_name(),
                i + 1, pid, gone ? "is gone: it ended with its parent" : "is STILL RUNNING");
    }
    fflush(opt->out);
    mproc_process_close(p);
    munmap(shared, sizeof *shared);
    return rc == 0 && code == 0;
}

/* ---- act 2: join, exitcode, terminate ---- */

static int sleeper(void *arg) {
    int *go = arg; /* returns 0 once the main process writes a byte */
    return await_byte(go[0]) ? 0 : 1;
}

static int returns_3(void *arg) {
    (void)arg;
    return 3;
}

static int sleeps_long(void *arg) {
    (void)arg;
    sleep(LONG_SLEEP); /* terminate() ends it first */
    return 0;
}

/* Creates and starts a process, printing its name and pid. */
static mproc_process *start(mproc_target target, void *arg, const struct options *opt) {
    mproc_process *p;
    int rc = mproc_process_create(&p, target, arg, NULL);
    if (rc == 0 && (rc = mproc_process_start(p)) != 0)
        mproc_process_close(p);
    if (rc != 0) {
        fprintf(stderr, "process: start: %s\n", mproc_strerror(rc));
        return NULL;
    }
    char buf[16];
    fprintf(opt->out, "started %s, pid %d, daemon=%d, is_alive=%d, exitcode=%s\n",
            mproc_process_name(p), mproc_process_pid(p), mproc_process_daemon(p),
            mproc_process_is_alive(p), exitcode_text(mproc_process_exitcode(p), buf));
    return p;
}

/* Joins p (bounded) and prints the outcome; returns p's exitcode. */
static int join_and_show(mproc_process *p, const char *how, const struct options *opt,
                         struct summary *sum) {
    int rc = mproc_process_join(p, BOUND);
    if (rc != 0) { /* stuck: the summary will say so */
        mproc_process_kill(p);
        mproc_process_join(p, BOUND);
    }
    int alive = mproc_process_is_alive(p);
    sum->alive_after_join += alive;
    char buf[16];
    int code = mproc_process_exitcode(p);
    fprintf(opt->out, "%s %s: join() returned %s, is_alive=%d, exitcode=%s\n", how,
            mproc_process_name(p), mproc_errname(rc), alive, exitcode_text(code, buf));
    return code;
}

static bool act2(const struct options *opt, struct summary *sum) {
    int go[2];
    if (pipe(go) != 0) {
        perror("process: pipe");
        return false;
    }
    mproc_process *procs[3] = {NULL, NULL, NULL};
    bool ok = (procs[0] = start(sleeper, go, opt)) != NULL;
    if (ok) {
        sum->join_timeout = mproc_process_join(procs[0], 0.1);
        char buf[16];
        fprintf(opt->out, "join(0.1) on %s returned %s: still running (is_alive=%d, "
                          "exitcode=%s); letting it return 0\n",
                mproc_process_name(procs[0]), mproc_errname(sum->join_timeout),
                mproc_process_is_alive(procs[0]),
                exitcode_text(mproc_process_exitcode(procs[0]), buf));
        send_byte(go[1]);
        sum->exitcodes[0] = join_and_show(procs[0], "joined", opt, sum);
    }
    ok = ok && (procs[1] = start(returns_3, NULL, opt)) != NULL;
    if (ok)
        sum->exitcodes[1] = join_and_show(procs[1], "joined", opt, sum);
    ok = ok && (procs[2] = start(sleeps_long, NULL, opt)) != NULL;
    if (ok) {
        int rc = mproc_process_terminate(procs[2]);
        sum->alive_after_terminate = mproc_process_is_alive(procs[2]);
        fprintf(opt->out, "terminate(%s) returned %s; right after it is_alive=%d (the signal "
                          "may not have landed yet)\n",
                mproc_process_name(procs[2]), mproc_errname(rc), sum->alive_after_terminate);
        sum->exitcodes[2] = join_and_show(procs[2], "terminated and joined", opt, sum);
    }
    fflush(opt->out);
    for (int i = 0; i < 3; i++)
        if (procs[i] != NULL)
            mproc_process_close(procs[i]);
    close(go[0]);
    close(go[1]);
    return ok;
}

/* ---- the whole tour ---- */

static bool holds(const struct options *opt, const struct summary *sum) {
    return sum->daemons == opt->workers && sum->daemons_gone == opt->workers &&
           sum->join_timeout == ETIMEDOUT && sum->exitcodes[0] == 0 && sum->exitcodes[1] == 3 &&
           sum->exitcodes[2] == -SIGTERM && sum->alive_after_join == 0;
}

static void print_summary(const struct options *opt, const struct summary *sum) {
    const int *e = sum->exitcodes;
    if (opt->json)
        printf("{\"workers\": %ld, \"daemons\": %d, \"daemons_gone\": %d, "
               "\"join_timeout\": \"%s\", \"exitcodes\": [%d, %d, %d], "
               "\"alive_after_join\": %d}\n",
               opt->workers, sum->daemons, sum->daemons_gone, mproc_errname(sum->join_timeout),
               e[0], e[1], e[2], sum->alive_after_join);
    else
        printf("workers=%ld daemons=%d daemons_gone=%d join_timeout=%s exitcodes=%d,%d,%d "
               "alive_after_join=%d\n",
               opt->workers, sum->daemons, sum->daemons_gone, mproc_errname(sum->join_timeout),
               e[0], e[1], e[2], sum->alive_after_join);
    fflush(stdout);
}

int mproc_demo_process(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;
    fprintf(opt.out, "%s: pid %d, %d CPUs\n", mproc_current_process_name(), (int)getpid(),
            mproc_cpu_count());
    struct summary sum = {.exitcodes = {MPROC_EXITCODE_NONE, MPROC_EXITCODE_NONE,
                                        MPROC_EXITCODE_NONE}};
    bool ok = act1(&opt, &sum);
    ok = act2(&opt, &sum) && ok;
    print_summary(&opt, &sum);
    return ok && holds(&opt, &sum) ? 0 : 1;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_process(argc, argv);
}
#endif
