/* SPDX-License-Identifier: MIT */
/* `mproc demo`: list the demos, run one, or run them all as a smoke test. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct demo {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

/* One row per examples/<name>.c; `make demo` runs them in this order. */
static const struct demo demos[] = {
    {"counter", "three processes add to one shared counter under a Lock (--unsafe loses updates)",
     mproc_demo_counter},
    {"terminal", "processes print running/done to one terminal under a Lock (--unsafe interleaves)",
     mproc_demo_terminal},
    {"event", "worker processes wait on an Event until a service is ready (--timeout gives up)",
     mproc_demo_event},
    {"threads", "100 threads each take 1 from 100 under a Lock, ending at 0 (--unsafe loses 99)",
     mproc_demo_threads},
    {"producer-consumer", "producers put buns on a Queue, consumers eat each exactly once "
                          "(--joinable: JoinableQueue)",
     mproc_demo_producer_consumer},
    {"shared-value", "processes count in a shared Value and fill a shared Array, each under "
                     "its own lock",
     mproc_demo_shared_value},
    {"process", "a tour of Process: daemons end with their parent; join(timeout), exitcode, "
                "terminate, is_alive",
     mproc_demo_process},
    {"tickets", "100 client processes rush for 1 ticket in a JSON file, buying under a Lock "
                "(--unsafe oversells, --kill K kills holders)",
     mproc_demo_tickets},
    {"pool", "a Pool maps square over range(10) and prints the results in order "
             "(--kill-worker: SIGKILL a worker mid-map, the rest completes)",
     mproc_demo_pool},
};
enum { NDEMOS = sizeof demos / sizeof demos[0] };

void mproc_cli_demo_usage(FILE *to) {
    fprintf(to, "usage: mproc demo NAME [OPTIONS]   run one demo (NAME --help: its options)\n"
                "       mproc demo --list           list the demos\n"
                "       mproc demo --all            run every demo with default options;\n"
                "                                   exit 1 if any demo's check fails\n");
}

static const struct demo *find(const char *name) {
    for (int i = 0; i < NDEMOS; i++)
        if (strcmp(demos[i].name, name) == 0)
            return &demos[i];
    return NULL;
}

static void list(void) {
    for (int i = 0; i < NDEMOS; i++)
        printf("%-17s %s\n", demos[i].name, demos[i].summary);
}

/* Runs `d` with argv {"mproc demo NAME", args...}; argv[0] is overwritten. */
static int run_one(const struct demo *d, int argc, char **argv) {
    char prog[64];
    snprintf(prog, sizeof prog, "mproc demo %s", d->name);
    argv[0] = prog;
    int status = d->run(argc, argv);
    fflush(stdout);
    return status;
}

static int run_all(void) {
    int failed = 0;
    for (int i = 0; i < NDEMOS; i++) {
        printf("== demo %s: %s\n", demos[i].name, demos[i].summary);
        char *argv[] = {NULL, NULL};
        int status = run_one(&demos[i], 1, argv);
        if (status != 0) {
            printf("== demo %s FAILED (exit status %d)\n", demos[i].name, status);
            failed++;
        }
    }
    printf("== %d demos: %d passed, %d failed\n", NDEMOS, NDEMOS - failed, failed);
    return failed == 0 ? 0 : 1;
}

int mproc_cli_demo(int argc, char **argv) {
    static const struct option longopts[] = {
        {"list", no_argument, NULL, 'l'},
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool want_list = false, want_all = false;
    int c;
    optind = 0;
    /* '+': stop at NAME, so the demo's own options reach the demo. */
    while ((c = getopt_long(argc, argv, "+lah", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': want_list = true; break;
        case 'a': want_all = true; break;
        case 'h': mproc_cli_demo_usage(stdout); return 0;
        default: mproc_cli_demo_usage(stderr); return 2;
        }
    }
    int rest = argc - optind;
    if (want_list + want_all + (rest > 0) != 1) { /* exactly one of --list, --all, NAME */
        mproc_cli_demo_usage(stderr);
        return 2;
    }
    if (want_list) {
        list();
        return 0;
    }
    if (want_all)
        return run_all();
    const struct demo *d = find(argv[optind]);
    if (d == NULL) {
        fprintf(stderr, "mproc demo: unknown demo '%s' (mproc demo --list shows them)\n",
                argv[optind]);
        return 2;
    }
    return run_one(d, rest, argv + optind);
}
