/* SPDX-License-Identifier: MIT */
/*
 * Runs Python peers (python_peer.h has the snippet's contract).
 *
 * The interpreter times itself: starting python3 and importing
 * multiprocessing takes tens of milliseconds, far beyond any figure, so the
 * clock runs only inside the snippet's run(n).  Calibration mirrors
 * harness.c's so that both sides run repetitions of the same length.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "python_peer.h"

static const char prelude[] =
    "import faulthandler, os, sys\n"
    "from time import perf_counter\n"
    "TARGET, REPS, KIND, SCALE = (float(sys.argv[1]), int(sys.argv[2]), sys.argv[3],\n"
    "                             float(sys.argv[4]))\n"
    "# A hung peer (a lost wake-up, a dead child) must not hang the whole bench.\n"
    "faulthandler.dump_traceback_later(60 + 10 * REPS * TARGET, exit=True)\n"
    "def _out(kind, text):\n"
    "    sys.stdout.write(kind + ' ' + str(text).replace('\\n', ' ') + '\\n')\n"
    "    sys.stdout.flush()\n"
    "def note(text):\n"
    "    _out('note', text)\n"
    "class BenchError(Exception):\n"
    "    pass\n"
    "def _value(ops, seconds):\n"
    "    if KIND == 'per_op':\n"
    "        return seconds / ops * SCALE\n"
    "    return ops / seconds * SCALE\n"
    "def measure(run, n0=1):\n"
    "    n = n0\n"
    "    for _ in range(64):\n"
    "        ops, s = run(n)\n"
    "        if s >= TARGET * 0.2:\n"
    "            n = max(1, int(n * TARGET / s))\n"
    "            break\n"
    "        grow = TARGET * 0.3 / s if s > 0 else 100\n"
    "        n = int(n * min(100, max(2, grow)))\n"
    "    else:\n"
    "        raise BenchError('calibration never reached %.3f s' % (TARGET * 0.2))\n"
    "    for _ in range(REPS):\n"
    "        ops, s = run(n)\n"
    "        _out('value', repr(_value(ops, s)))\n"
    "# The Python side of bench_gate: run_gated() starts nproc processes of\n"
    "# target(i, *args, gate), each of which calls gate_pass(gate) when ready;\n"
    "# they are released together and joined.  Returns the joined processes.\n"
    "def gate_pass(gate):\n"
    "    ready_w, go_r = gate\n"
    "    os.write(ready_w, b'r')\n"
    "    os.close(ready_w)\n"
    "    if os.read(go_r, 1) != b'g':\n"
    "        os._exit(3)\n"
    "def run_gated(target, args, nproc=2):\n"
    "    ready_r, ready_w = os.pipe()\n"
    "    go_r, go_w = os.pipe()\n"
    "    procs = [ctx.Process(target=target, args=(i,) + tuple(args) + ((ready_w, go_r),))\n"
    "             for i in range(nproc)]\n"
    "    for p in procs:\n"
    "        p.start()\n"
    "    os.close(ready_w)\n"
    "    os.close(go_r)\n"
    "    ready = 0\n"
    "    while ready < nproc:\n"
    "        chunk = os.read(ready_r, nproc - ready)\n"
    "        if not chunk:\n"
    "            break\n"
    "        ready += len(chunk)\n"
    "    if ready == nproc:\n"
    "        os.write(go_w, b'g' * nproc)\n"
    "    os.close(go_w)\n"
    "    os.close(ready_r)\n"
    "    for p in procs:\n"
    "        p.join()\n"
    "    return procs\n"
    "try:\n"
    "    import multiprocessing\n"
    "    ctx = multiprocessing.get_context('fork')\n"
    "    ctx.Lock()\n"
    "except (ImportError, ValueError, OSError) as e:\n"
    "    _out('skip', 'multiprocessing unusable here: %r' % (e,))\n"
    "    sys.exit(0)\n";

static const char epilogue[] =
    "\n"
    "try:\n"
    "    main()\n"
    "except BenchError as e:\n"
    "    _out('error', e)\n"
    "    sys.exit(1)\n";

/* Forks the interpreter with stdout on a pipe.  Returns its pid and the read
 * end; -1 with `why` set when the interpreter could not be executed (a
 * missing python3 is a skip, not a failure); -2 when this process could not
 * make a pipe or fork. */
static pid_t spawn(const char *python, char *const argv[], int *out_fd, char *why,
                   size_t whylen) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return -2;
    }
    /* exec errors come back through err[], which a successful exec closes. */
    if (pipe2(err, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        close(out[0]), close(out[1]);
        return -2;
    }
    fflush(NULL);
    pid_t pid = fork();
    int code = errno;
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        execvp(python, argv);
        code = errno;
        ssize_t ignored = write(err[1], &code, sizeof code);
        (void)ignored;
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    ssize_t got = pid > 0 ? read(err[0], &code, sizeof code) : -1;
    close(err[0]);
    if (pid > 0 && got != (ssize_t)sizeof code) {
        *out_fd = out[0];
        return pid;
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    close(out[0]);
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(code));
        return -2;
    }
    if (code == ENOENT)
        snprintf(why, whylen, "%s not found", python);
    else
        snprintf(why, whylen, "cannot run %s: %s", python, strerror(code));
    return -1;
}

typedef struct parse_state {
    const bench_def *def;
    const bench_impl *impl;
    size_t cap, nvalues;
    double *values;
    int skipped, failed;
    char *why;
    size_t whylen;
} parse_state;

static void parse_line(parse_state *st, char *line) {
    line[strcspn(line, "\n")] = '\0';
    char *text = strchr(line, ' ');
    text = text != NULL ? text + 1 : line + strlen(line);
    if (strncmp(line, "value ", 6) == 0) {
        char *end;
        double v = strtod(text, &end);
        if (*end != '\0' || st->nvalues == st->cap) {
            fprintf(stderr, "mproc-bench: %s/%s: bad figure '%s'\n", st->def->name,
                    st->impl->name, text);
            st->failed = 1;
        } else {
            st->values[st->nvalues++] = v;
        }
    } else if (strncmp(line, "note ", 5) == 0) {
        bench_note(st->def, st->impl->name, "%s", text);
    } else if (strncmp(line, "skip ", 5) == 0) {
        snprintf(st->why, st->whylen, "%s", text);
        st->skipped = 1;
    } else if (strncmp(line, "error ", 6) == 0) {
        fprintf(stderr, "mproc-bench: %s/%s: ERROR: %s\n", st->def->name, st->impl->name, text);
        st->failed = 1;
    } else {
        fprintf(stderr, "mproc-bench: %s/%s: python says: %s\n", st->def->name,
                st->impl->name, line);
    }
}

bench_status python_peer_run(const bench_def *def, const bench_impl *impl,
                             const bench_config *cfg, double *values, size_t *nvalues,
                             char *why, size_t whylen) {
    const char *python = getenv("MPROC_BENCH_PYTHON");
    if (python == NULL || *python == '\0')
        python = "python3";
    size_t len = sizeof prelude + strlen(impl->python) + sizeof epilogue;
    char *script = malloc(len);
    if (script == NULL) {
        fprintf(stderr, "mproc-bench: %s/%s: out of memory\n", def->name, impl->name);
        return BENCH_FAILED;
    }
    snprintf(script, len, "%s%s%s", prelude, impl->python, epilogue);
    char target[32], reps[16], scale[32];
    snprintf(target, sizeof target, "%.17g", cfg->target_s);
    snprintf(reps, sizeof reps, "%d", cfg->reps);
    snprintf(scale, sizeof scale, "%.17g", def->scale);
    char *argv[] = {(char *)python, "-c", script, target, reps,
                    def->kind == BENCH_PER_OP ? "per_op" : "rate", scale, NULL};

    int out_fd;
    pid_t pid = spawn(python, argv, &out_fd, why, whylen);
    free(script);
    if (pid == -2)
        fprintf(stderr, "mproc-bench: %s/%s: %s\n", def->name, impl->name, why);
    if (pid < 0)
        return pid == -1 ? BENCH_SKIPPED : BENCH_FAILED;
    parse_state st = {def, impl, (size_t)cfg->reps, 0, values, 0, 0, why, whylen};
    FILE *in = fdopen(out_fd, "r");
    char *line = NULL;
    size_t cap = 0;
    while (in != NULL && getline(&line, &cap, in) >= 0)
        parse_line(&st, line);
    free(line);
    if (in != NULL)
        fclose(in);
    else
        close(out_fd);

    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *nvalues = st.nvalues;
    if (st.skipped && !st.failed)
        return BENCH_SKIPPED;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "mproc-bench: %s/%s: %s exited abnormally (status 0x%x)\n", def->name,
                impl->name, python, (unsigned)status);
        return BENCH_FAILED;
    }
    if (st.failed || st.nvalues != (size_t)cfg->reps) {
        if (!st.failed)
            fprintf(stderr, "mproc-bench: %s/%s: %zu figures for %d repetitions\n", def->name,
                    impl->name, st.nvalues, cfg->reps);
        return BENCH_FAILED;
    }
    return BENCH_OK;
}
