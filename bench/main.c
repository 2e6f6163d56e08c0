/* SPDX-License-Identifier: MIT */
/*
 * mproc-bench: measures mproc and its peers (raw pthreads, Python's
 * multiprocessing) side by side in one run.  Benches register themselves
 * (harness.h); this file only reads the command line and runs them.
 *
 * Exit status: 0; 1 if any impl failed or gave a wrong result; 2 for a bad
 * command line.  Missed targets never change it.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "harness.h"

#define DEFAULT_REPS 7
#define DEFAULT_TARGET_S 0.25
#define QUICK_REPS 3
#define QUICK_TARGET_S 0.02
#define MAX_REPS 1000

static void usage(FILE *f) {
    fprintf(f,
            "usage: mproc-bench [options] [PREFIX...]\n"
            "\n"
            "Measures mproc against its peers in one run and prints, per bench and impl,\n"
            "the median, min and max over the repetitions, then the targets (PASS/MISS).\n"
            "PREFIX selects the benches whose names start with it (default: all).\n"
            "\n"
            "  -j, --json     one JSON line per figure on stdout:\n"
            "                 {\"bench\": B, \"impl\": I, \"median\": X, \"min\": X, \"max\": X, "
            "\"unit\": U}\n"
            "                 notes, targets and skips go to stderr\n"
            "  -r, --reps N   repetitions per impl (default %d)\n"
            "  -q, --quick    %d short repetitions (~%.2f s): a smoke test, not a measurement\n"
            "  -l, --list     list the benches and their impls, then exit\n"
            "  -h, --help     this text\n"
            "\n"
            "Each repetition is calibrated to last about %.2f s.  Python peers run under\n"
            "$MPROC_BENCH_PYTHON (default python3); without it they are reported as skipped.\n"
            "Exit status: 0; 1 if an impl failed or counted wrong; 2 for a bad command line.\n",
            DEFAULT_REPS, QUICK_REPS, QUICK_TARGET_S, DEFAULT_TARGET_S);
}

static int selected(const bench_def *def, char **prefixes, int nprefixes) {
    if (nprefixes == 0)
        return 1;
    for (int i = 0; i < nprefixes; i++)
        if (strncmp(def->name, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

static void list_benches(char **prefixes, int nprefixes) {
    for (size_t i = 0; i < bench_count(); i++) {
        const bench_def *def = bench_at(i);
        if (!selected(def, prefixes, nprefixes))
            continue;
        printf("%-20s %-6s %s\n%-20s %-6s impls:", def->name, def->unit, def->what, "", "");
        for (size_t j = 0; j < BENCH_IMPL_MAX && def->impls[j].name != NULL; j++)
            printf(" %s", def->impls[j].name);
        printf("\n");
    }
}

static int parse_reps(const char *arg, int *reps) {
    char *end;
    long v = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < 1 || v > MAX_REPS) {
        fprintf(stderr, "mproc-bench: --reps wants a whole number from 1 to %d, not '%s'\n",
                MAX_REPS, arg);
        return -1;
    }
    *reps = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},  {"reps", required_argument, NULL, 'r'},
        {"quick", no_argument, NULL, 'q'}, {"list", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},  {NULL, 0, NULL, 0},
    };
    bench_config cfg = {DEFAULT_REPS, DEFAULT_TARGET_S, 0};
    int reps = 0, list = 0, opt;
    while ((opt = getopt_long(argc, argv, "jr:qlh", options, NULL)) != -1) {
        switch (opt) {
        case 'j':
            cfg.json = 1;
            break;
        case 'r':
            if (parse_reps(optarg, &reps) != 0)
                return 2;
            break;
        case 'q':
            cfg.reps = QUICK_REPS;
            cfg.target_s = QUICK_TARGET_S;
            break;
        case 'l':
            list = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (reps != 0)
        cfg.reps = reps; /* --reps wins over --quick, in either order */
    char **prefixes = argv + optind;
    int nprefixes = argc - optind, matched = 0;
    for (size_t i = 0; i < bench_count(); i++)
        matched += selected(bench_at(i), prefixes, nprefixes);
    if (matched == 0) {
        fprintf(stderr, "mproc-bench: no bench matches; see --list\n");
        return 2;
    }
    if (list) {
        list_benches(prefixes, nprefixes);
        return 0;
    }

    double start = bench_now();
    if (!cfg.json)
        printf("mproc-bench: mproc %s, %ld CPUs online; %d repetitions of ~%.2f s per impl\n",
               mproc_version_string(), sysconf(_SC_NPROCESSORS_ONLN), cfg.reps, cfg.target_s);
    fflush(stdout);
    int failed = 0;
    for (size_t i = 0; i < bench_count(); i++)
        if (selected(bench_at(i), prefixes, nprefixes))
            failed |= bench_execute(bench_at(i), &cfg) != 0;
    bench_summary(&cfg);
    if (!cfg.json)
        printf("finished in %.1f s%s\n", bench_now() - start,
               failed ? "; SOME IMPLS FAILED (see the errors above)" : "");
    return failed ? 1 : 0;
}
