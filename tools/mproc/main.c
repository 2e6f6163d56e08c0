/* SPDX-License-Identifier: MIT */
/* The mproc command: `mproc demo`, `mproc version`, `mproc help`. */
#include <mproc.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"demo", "run the tutorial demos (mproc demo --list)", mproc_cli_demo},
    {"version", "print the mproc version", cmd_version},
    {"help", "show help for the command or a subcommand", cmd_help},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *to) {
    fprintf(to, "usage: mproc COMMAND [OPTIONS]\n"
                "Python's multiprocessing for C: crash-robust process-shared locks.\n\n"
                "Commands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(to, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(to, "\nmproc COMMAND --help shows a command's options.\n");
}

static const struct command *find(const char *name) {
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Parses a command that takes only --help; returns -1 to go on, else the
 * exit status. */
static int only_help(int argc, char **argv, const char *text) {
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (c != 'h') {
            fputs(text, stderr);
            return 2;
        }
        fputs(text, stdout);
        return 0;
    }
    return -1;
}

static int cmd_version(int argc, char **argv) {
    int status = only_help(argc, argv, "usage: mproc version\n"
                                       "Print the version of the mproc library.\n");
    if (status >= 0)
        return status;
    if (optind < argc) {
        fprintf(stderr, "mproc version: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    printf("mproc %s\n", mproc_version_string());
    return 0;
}

static int cmd_help(int argc, char **argv) {
    int status = only_help(argc, argv, "usage: mproc help [COMMAND]\n"
                                       "Show help for mproc or for one COMMAND.\n");
    if (status >= 0)
        return status;
    if (optind == argc) {
        usage(stdout);
        return 0;
    }
    const struct command *cmd = find(argv[optind]);
    if (cmd == NULL || optind + 1 != argc) {
        fprintf(stderr, "mproc help: unknown command '%s'\n", argv[optind]);
        return 2;
    }
    char prog[32];
    snprintf(prog, sizeof prog, "mproc %s", cmd->name);
    char help[] = "--help";
    char *sub[] = {prog, help, NULL};
    return cmd->run(2, sub);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(1, argv);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cmd_version(1, argv);
    const struct command *cmd = find(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "mproc: unknown command '%s' (mproc help lists them)\n", argv[1]);
        return 2;
    }
    char prog[32];
    snprintf(prog, sizeof prog, "mproc %s", cmd->name);
    argv[1] = prog;
    return cmd->run(argc - 1, argv + 1);
}
