/* SPDX-License-Identifier: MIT */
/* The mproc command's subcommands and the demos it runs.  Each takes argv
 * with argv[0] set to the name to show in messages ("mproc demo counter"). */
#ifndef MPROC_CLI_H
#define MPROC_CLI_H

#include <stdio.h>

int mproc_cli_demo(int argc, char **argv);
void mproc_cli_demo_usage(FILE *to);

/* From examples/<name>.c, compiled with -DMPROC_DEMO_NO_MAIN. */
int mproc_demo_counter(int argc, char **argv);
int mproc_demo_terminal(int argc, char **argv);
int mproc_demo_event(int argc, char **argv);
int mproc_demo_threads(int argc, char **argv);
int mproc_demo_producer_consumer(int argc, char **argv);
int mproc_demo_shared_value(int argc, char **argv);
int mproc_demo_process(int argc, char **argv);
int mproc_demo_tickets(int argc, char **argv);
int mproc_demo_pool(int argc, char **argv);

#endif
