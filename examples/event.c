/* SPDX-License-Identifier: MIT */
/*
 * event: worker processes wait on an Event until a service is ready.
 *
 * The Python tutorials' Redis example, in C:
 *
 *     def worker(ready, n):
 *         start = time.time()
 *         if ready.wait(timeout):                 # the service is up
 *             print(f"worker {n}: ready after {time.time() - start:.3f} s")
 *         else:
 *             print(f"worker {n}: gave up")
 *
 *     ready = Event()
 *     procs = [Process(target=worker, args=(ready, n)) for n in (1, 2, 3)]
 *     ...
 *     while not redis_answers_ping():            # the main process checks
 *         time.sleep(0.1)
 *     ready.set()
 *
 * Our "service" needs no server: after --delay seconds the main process
 * writes a banner into shared memory and marks it up, checks it, and only
 * then sets the Event.  A worker that returns from the wait uses the
 * service (reads the banner); the set (release) and the wait (acquire)
 * order the main process's writes before those reads.  --timeout bounds
 * each wait: a worker that gives up prints the code mproc_event_wait()
 * returned (ETIMEDOUT) and exits with status 3, which the summary counts.
 *
 * Build it alone:  cc -o event event.c $(pkg-config --cflags --libs mproc)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, MAP_ANONYMOUS, even under -std=c11 */
#endif
#include <mproc.h>

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The entry point the `mproc demo event` command calls. */
int mproc_demo_event(int argc, char **argv);

enum { MAX_WORKERS = 64 };

/* A worker's exit status: 0 the service was ready, 1 an error. */
enum { EXIT_TIMED_OUT = 3 };

static const char banner[] = "mproc demo service v1";

/*
 * The service, in MAP_SHARED memory.  The main process writes banner and up
 * before mproc_event_set(); a worker reads them only after its wait returned
 * 0, so the Event orders the two.  waited[i] is written by worker i alone
 * and read by the main process after waitpid().
 */
struct service {
    char banner[sizeof banner];
    int up;
    double waited[MAX_WORKERS];
};

struct options {
    long workers;
    double delay;   /* seconds until the service is up */
    double timeout; /* each worker's wait; MPROC_FOREVER by default */
    bool json;
    FILE *out;      /* the step lines; stderr with --json so stdout is pure JSON */
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--workers N] [--delay S] [--timeout S] [--json]\n"
            "N worker processes wait on one mproc_event until the main process has\n"
            "started a service (after S seconds), checked it, and set the event.\n"
            "  -n, --workers N    worker processes (default 3, at most %d)\n"
            "  -d, --delay S      seconds until the service is up (default 0.2)\n"
            "  -t, --timeout S    each worker waits at most S seconds (default: no\n"
            "                     limit); one that gives up prints ETIMEDOUT\n"
            "  -j, --json         print the summary as one JSON object\n"
            "  -h, --help         show this help\n"
            "Exit status: 0 if every worker saw the service ready, 3 if any gave up\n"
            "(timed out), 1 on any other failure, 2 on a usage error.\n",
            prog, MAX_WORKERS);
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

/* Also refuses NaN: it fails both comparisons. */
static bool parse_seconds(const char *text, double hi, double *value) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= 0.0 && v <= hi))
        return false;
    *value = v;
    return true;
}

/* Returns -1 to go on, or the exit status (0 after --help). */
static int parse_options(int argc, char **argv, struct options *opt) {
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'n'}, {"delay", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.workers = 3, .delay = 0.2, .timeout = MPROC_FOREVER};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "n:d:t:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!parse_long(optarg, 1, MAX_WORKERS, &opt->workers)) {
                fprintf(stderr, "%s: --workers wants 1..%d, not '%s'\n", argv[0], MAX_WORKERS,
                        optarg);
                return 2;
            }
            break;
        case 'd':
            if (!parse_seconds(optarg, 10.0, &opt->delay)) {
                fprintf(stderr, "%s: --delay wants 0..10 seconds, not '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        case 't':
            if (!parse_seconds(optarg, 60.0, &opt->timeout)) {
                fprintf(stderr, "%s: --timeout wants 0..60 seconds, not '%s'\n", argv[0],
                        optarg);
                return 2;
            }
            break;
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

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps `seconds` on the monotonic clock; an absolute deadline, so a
 * signal that interrupts the sleep does not stretch it. */
static void sleep_for(double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    double end = (double)until.tv_nsec / 1e9 + seconds;
    until.tv_sec += (time_t)end;
    until.tv_nsec = (long)((end - (double)(time_t)end) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        continue;
}

/* The worker's whole life: Python's worker().  Returns its exit status. */
static int worker(struct service *service, mproc_event *ready, int number,
                  const struct options *opt) {
    double start = now();
    int rc = mproc_event_wait(ready, opt->timeout);
    double waited = now() - start;
    service->waited[number - 1] = waited;
    if (rc == ETIMEDOUT) {
        fprintf(opt->out, "worker %d: gave up after %.3f s: %s: %s\n", number, waited,
                mproc_errname(rc), mproc_strerror(rc));
        fflush(opt->out);
        return EXIT_TIMED_OUT;
    }
    if (rc != 0) {
        fprintf(stderr, "event: worker %d: mproc_event_wait: %s\n", number, mproc_strerror(rc));
        return 1;
    }
    /* Use the service.  Plain reads: the wait's acquire pairs with the
     * set's release, so the main process's writes are visible. */
    if (!service->up || strcmp(service->banner, banner) != 0) {
        fprintf(stderr, "event: worker %d: the event was set but the service is down\n",
                number);
        return 1;
    }
    fprintf(opt->out, "worker %d: service ready after %.3f s: \"%s\"\n", number, waited,
            service->banner);
    fflush(opt->out);
    return 0;
}

/* Forks worker `number`.  It writes one byte to `waiting` just before it
 * waits, so the main process starts the clock only once all are waiting. */
static pid_t spawn(struct service *service, mproc_event *ready, int number,
                   const int waiting[2], const struct options *opt) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    close(waiting[0]);
    /* A bound on the child's life (an unlimited wait included), so the
     * main process's reads and waitpid() return whatever happens. */
    double timeout = opt->timeout < 0 ? 0.0 : opt->timeout;
    alarm((unsigned)(10.0 + opt->delay + timeout));
    char byte = 'w';
    while (write(waiting[1], &byte, 1) < 0 && errno == EINTR)
        continue;
    close(waiting[1]);
    int status = worker(service, ready, number, opt);
    int rc = mproc_event_close(ready);
    if (rc != 0) {
        fprintf(stderr, "event: mproc_event_close: %s\n", mproc_strerror(rc));
        status = 1;
    }
    _exit(status); /* not exit(): the parent's stdio buffers and atexit are not ours */
}

/* Returns when every started worker is about to wait, or has died (the
 * pipe then reads end-of-file). */
static void await_waiting(int fd, long count) {
    char bytes[MAX_WORKERS];
    long got = 0;
    while (got < count) {
        ssize_t n = read(fd, bytes, (size_t)(count - got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        got += n;
    }
}

/* The main process's part: the tutorial's ping loop, then set(). */
static int start_service(struct service *service, mproc_event *ready,
                         const struct options *opt) {
    fprintf(opt->out, "main: all %ld workers waiting; the service is up in %.3f s\n",
            opt->workers, opt->delay);
    fflush(opt->out);
    sleep_for(opt->delay);
    memcpy(service->banner, banner, sizeof banner);
    service->up = 1;
    /* The tutorial pings Redis until it answers; our service answers as
     * soon as it is written, so one check stands in for the loop. */
    if (!service->up || strcmp(service->banner, banner) != 0) {
        fprintf(stderr, "event: the service did not come up\n");
        return 1;
    }
    fprintf(opt->out, "main: service is up (\"%s\"); setting the event\n", service->banner);
    fflush(opt->out);
    int rc = mproc_event_set(ready);
    if (rc != 0) {
        fprintf(stderr, "event: mproc_event_set: %s\n", mproc_strerror(rc));
        return 1;
    }
    return 0;
}

struct tally {
    int ready, timed_out, failed;
};

/* Waits for every worker and sorts them by exit status. */
static void reap(const pid_t *pids, long count, struct tally *tally) {
    for (long i = 0; i < count; i++) {
        int status;
        pid_t got;
        while ((got = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            perror("event: waitpid");
            tally->failed++;
        } else if (WIFSIGNALED(status)) {
            fprintf(stderr, "event: worker %ld killed by signal %d\n", i + 1, WTERMSIG(status));
            tally->failed++;
        } else if (WEXITSTATUS(status) == 0) {
            tally->ready++;
        } else if (WEXITSTATUS(status) == EXIT_TIMED_OUT) {
            tally->timed_out++;
        } else {
            tally->failed++;
        }
    }
}

/* Runs the workers and the service; false on a failure of the main
 * process's own (already reported). */
static bool run(struct service *service, mproc_event *ready, const struct options *opt,
                struct tally *tally) {
    int waiting[2];
    if (pipe(waiting) != 0) {
        perror("event: pipe");
        return false;
    }
    fflush(NULL); /* or the children would inherit, and print, our pending output */
    pid_t pids[MAX_WORKERS];
    long started = 0;
    for (; started < opt->workers; started++) {
        pids[started] = spawn(service, ready, (int)started + 1, waiting, opt);
        if (pids[started] < 0) {
            perror("event: fork");
            break;
        }
    }
    close(waiting[1]); /* so that the read sees end-of-file if all die */
    await_waiting(waiting[0], started);
    close(waiting[0]);
    bool ok = started == opt->workers;
    if (start_service(service, ready, opt) != 0)
        ok = false;
    reap(pids, started, tally);
    tally->failed += (int)(opt->workers - started);
    return ok;
}

static void summary(const struct options *opt, const struct tally *tally,
                    const struct service *service) {
    double max_wait = 0.0;
    for (long i = 0; i < opt->workers; i++)
        if (service->waited[i] > max_wait)
            max_wait = service->waited[i];
    char timeout[32] = "none";
    if (opt->timeout >= 0)
        snprintf(timeout, sizeof timeout, "%.3f", opt->timeout);
    if (opt->json)
        printf("{\"ready\": %d, \"timed_out\": %d, \"failed\": %d, \"workers\": %ld, "
               "\"delay\": %.3f, \"timeout\": %s, \"max_wait\": %.3f}\n",
               tally->ready, tally->timed_out, tally->failed, opt->workers, opt->delay,
               opt->timeout >= 0 ? timeout : "null", max_wait);
    else
        printf("ready=%d timed_out=%d failed=%d workers=%ld delay=%.3f timeout=%s "
               "max_wait=%.3f\n",
               tally->ready, tally->timed_out, tally->failed, opt->workers, opt->delay,
               timeout, max_wait);
    fflush(stdout);
}

int mproc_demo_event(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;

    struct service *service = mmap(NULL, sizeof *service, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (service == MAP_FAILED) {
        perror("event: mmap");
        return 1;
    }
    memset(service, 0, sizeof *service);
    mproc_event *ready;
    int rc = mproc_event_create(&ready, NULL);
    if (rc != 0) {
        fprintf(stderr, "event: mproc_event_create: %s\n", mproc_strerror(rc));
        munmap(service, sizeof *service);
        return 1;
    }

    struct tally tally = {0};
    bool ran = run(service, ready, &opt, &tally);
    summary(&opt, &tally, service);
    if (!ran || tally.failed > 0)
        status = 1;
    else if (tally.timed_out > 0)
        status = EXIT_TIMED_OUT;
    else
        status = 0;

    rc = mproc_event_close(ready);
    if (rc != 0) {
        fprintf(stderr, "event: mproc_event_close: %s\n", mproc_strerror(rc));
        status = 1;
    }
    munmap(service, sizeof *service);
    return status;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_event(argc, argv);
}
#endif
