/* SPDX-License-Identifier: MIT */
/*
 * The harness (harness.h says what each function does; gate.c has the fork
 * gate and shared memory).  In this file, in order:
 *   registry       bench_register, kept sorted by name
 *   output         where notes, targets and errors go
 *   measuring      calibrate, then repetitions interleaved across impls
 *   printing       the table or the JSON lines, then the targets
 *   bench_execute  one bench from start to finish
 *
 * Output: figures go to stdout.  Notes, targets and skips go to stdout in
 * the table and to stderr with --json, so that stdout then holds exactly one
 * JSON line per figure.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "python_peer.h"

/* ---- registry ---- */

#define REGISTRY_MAX 64
static const bench_def *registry[REGISTRY_MAX];
static size_t registered;

void bench_register(const bench_def *def) {
    if (registered == REGISTRY_MAX) {
        fprintf(stderr, "mproc-bench: more than %d benches; raise REGISTRY_MAX\n",
                REGISTRY_MAX);
        abort();
    }
    /* Constructors run in link order; keep the list sorted by name so the
     * order of a run never depends on how the files were linked. */
    size_t i = registered++;
    while (i > 0 && strcmp(registry[i - 1]->name, def->name) > 0) {
        registry[i] = registry[i - 1];
        i--;
    }
    registry[i] = def;
}

size_t bench_count(void) { return registered; }

const bench_def *bench_at(size_t i) { return i < registered ? registry[i] : NULL; }

/* ---- where output goes ---- */

static const bench_config *cur_cfg;
static FILE *notes_buf;  /* notes made while impls run: printed under the figures */
static FILE *checks_buf; /* the report hook's targets: printed with the others */
static int tally_pass, tally_miss, tally_skip;

static FILE *info_stream(void) { return cur_cfg != NULL && cur_cfg->json ? stderr : stdout; }

/* With --json the lines on stderr have no table around them: name the bench. */
static void info_prefix(FILE *f, const bench_def *def) {
    if (cur_cfg != NULL && cur_cfg->json)
        fprintf(f, "%s: ", def->name);
    else
        fputs("  ", f);
}

void bench_note(const bench_def *def, const char *impl, const char *fmt, ...) {
    FILE *f = notes_buf != NULL ? notes_buf : info_stream();
    info_prefix(f, def);
    fprintf(f, "note: %s%s", impl != NULL ? impl : "", impl != NULL ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

static void target_line(FILE *f, const bench_def *def, const char *verdict, const char *what,
                        const char *got) {
    info_prefix(f, def);
    fprintf(f, "target %-4s %s: %s\n", verdict, what, got);
}

void bench_check(const bench_def *def, const char *what, const char *got, int pass) {
    if (pass)
        tally_pass++;
    else
        tally_miss++;
    target_line(checks_buf != NULL ? checks_buf : info_stream(), def, pass ? "PASS" : "MISS",
                what, got);
}

void bench_error(const bench_ctx *ctx, const char *fmt, ...) {
    fprintf(stderr, "mproc-bench: %s/%s: ERROR: ", ctx->def->name, ctx->impl->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const bench_result *bench_find(const bench_result *results, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(results[i].impl->name, name) == 0)
            return &results[i];
    return NULL;
}

/* ---- measuring ---- */

double bench_value(const bench_def *def, double ops, double seconds) {
    return def->kind == BENCH_PER_OP ? seconds / ops * def->scale : ops / seconds * def->scale;
}

/* Grows n until a run lasts a fifth of the target, then scales n to the
 * target: long enough a sample to extrapolate from, short enough to keep
 * calibration well under one repetition. */
static int calibrate(const bench_def *def, const bench_impl *impl, double target,
                     uint64_t *n_out) {
    bench_ctx ctx = {def, impl, -1};
    uint64_t n = impl->n0 != 0 ? impl->n0 : 1;
    for (int tries = 0; tries < 64; tries++) {
        bench_run run = {0};
        if (impl->run(&ctx, n, &run) != 0)
            return -1;
        if (run.seconds >= target * 0.2) {
            double want = (double)n * target / run.seconds;
            *n_out = want < 1 ? 1 : (uint64_t)want;
            return 0;
        }
        double grow = run.seconds > 0 ? target * 0.3 / run.seconds : 100;
        grow = grow < 2 ? 2 : grow > 100 ? 100 : grow;
        n = (uint64_t)((double)n * grow);
    }
    bench_error(&ctx, "calibration never reached %.3f s", target * 0.2);
    return -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_extra_median(const bench_result *res, int k) {
    if (res->nruns == 0 || k < 0 || k >= BENCH_EXTRA_MAX)
        return 0;
    double values[res->nruns];
    for (size_t r = 0; r < res->nruns; r++)
        values[r] = res->runs[r].extra[k];
    qsort(values, res->nruns, sizeof *values, cmp_double);
    size_t n = res->nruns;
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static void summarize(bench_result *res, double *values, size_t n) {
    qsort(values, n, sizeof *values, cmp_double);
    res->min = values[0];
    res->max = values[n - 1];
    res->median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(values[i]) || values[i] <= 0) {
            fprintf(stderr, "mproc-bench: %s: a repetition gave no measurable figure\n",
                    res->impl->name);
            res->status = BENCH_FAILED;
        }
}

/* Native impls: calibrate each, then repetition r of every impl before
 * repetition r+1 of any, so that drift of the host spreads evenly. */
static void run_native(const bench_def *def, bench_result *res, size_t nimpl) {
    uint64_t n[BENCH_IMPL_MAX] = {0};
    for (size_t i = 0; i < nimpl; i++) {
        if (res[i].impl->run == NULL)
            continue;
        res[i].runs = calloc((size_t)cur_cfg->reps, sizeof *res[i].runs);
        if (res[i].runs == NULL || calibrate(def, res[i].impl, cur_cfg->target_s, &n[i]) != 0)
            res[i].status = BENCH_FAILED;
    }
    for (int rep = 0; rep < cur_cfg->reps; rep++)
        for (size_t i = 0; i < nimpl; i++) {
            if (res[i].impl->run == NULL || res[i].status != BENCH_OK)
                continue;
            bench_ctx ctx = {def, res[i].impl, rep};
            bench_run *run = &res[i].runs[rep];
            if (res[i].impl->run(&ctx, n[i], run) != 0)
                res[i].status = BENCH_FAILED;
            else
                res[i].nruns++;
        }
    double values[cur_cfg->reps];
    for (size_t i = 0; i < nimpl; i++) {
        if (res[i].impl->run == NULL || res[i].status != BENCH_OK)
            continue;
        for (size_t r = 0; r < res[i].nruns; r++)
            values[r] = bench_value(def, (double)res[i].runs[r].ops, res[i].runs[r].seconds);
        summarize(&res[i], values, res[i].nruns);
    }
}

static void run_python(const bench_def *def, bench_result *res, size_t nimpl) {
    double values[cur_cfg->reps];
    for (size_t i = 0; i < nimpl; i++) {
        if (res[i].impl->python == NULL)
            continue;
        size_t got = 0;
        res[i].status = python_peer_run(def, res[i].impl, cur_cfg, values, &got, res[i].why,
                                        sizeof res[i].why);
        if (res[i].status == BENCH_OK)
            summarize(&res[i], values, got);
    }
}

/* ---- printing ---- */

/* Three or four significant digits below 1000; whole numbers with
 * thousands separators above, where more digits are only noise. */
static const char *fmt_num(char buf[32], double v) {
    if (v < 1000) {
        snprintf(buf, 32, v >= 100 ? "%.1f" : v >= 10 ? "%.2f" : "%.3f", v);
        return buf;
    }
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%.0f", v);
    char *out = buf;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            *out++ = ',';
        *out++ = digits[i];
    }
    *out = '\0';
    return buf;
}

/* JSON numbers: enough digits to be exact where it matters, never an exponent. */
static void json_num(char buf[32], double v) {
    snprintf(buf, 32, v < 1e6 ? "%.6g" : "%.0f", v);
    if (strchr(buf, 'e') != NULL)
        snprintf(buf, 32, "%.9f", v);
}

static void print_rows(const bench_def *def, const bench_result *res, size_t nimpl) {
    const char *better = def->kind == BENCH_PER_OP ? "lower" : "higher";
    if (!cur_cfg->json) {
        printf("\n%s: %s (%s%s; %s is better)\n", def->name, def->what, def->unit,
               def->kind == BENCH_PER_OP ? " per op" : "", better);
        printf("  %-16s %14s %14s %14s  %s\n", "impl", "median", "min", "max", "unit");
    }
    for (size_t i = 0; i < nimpl; i++) {
        const bench_result *r = &res[i];
        char a[32], b[32], c[32];
        if (r->status == BENCH_OK && cur_cfg->json) {
            json_num(a, r->median), json_num(b, r->min), json_num(c, r->max);
            printf("{\"bench\": \"%s\", \"impl\": \"%s\", \"median\": %s, \"min\": %s, "
                   "\"max\": %s, \"unit\": \"%s\"}\n",
                   def->name, r->impl->name, a, b, c, def->unit);
        } else if (r->status == BENCH_OK) {
            printf("  %-16s %14s %14s %14s  %s\n", r->impl->name, fmt_num(a, r->median),
                   fmt_num(b, r->min), fmt_num(c, r->max), def->unit);
        } else {
            FILE *f = info_stream();
            if (cur_cfg->json)
                fprintf(f, "%s: %s ", def->name, r->impl->name);
            else
                fprintf(f, "  %-16s ", r->impl->name);
            if (r->status == BENCH_SKIPPED)
                fprintf(f, "skipped: %s\n", r->why);
            else
                fprintf(f, "FAILED (see the error above)\n");
        }
    }
    fflush(stdout);
}

static void print_targets(const bench_def *def, const bench_result *res, size_t nimpl) {
    for (size_t t = 0; t < BENCH_TARGET_MAX && def->targets[t].impl != NULL; t++) {
        const bench_target *tg = &def->targets[t];
        const char *op = tg->cmp == BENCH_AT_MOST ? "<=" : ">=";
        char what[128], got[160];
        if (tg->versus != NULL)
            snprintf(what, sizeof what, "%s %s %.2fx %s", tg->impl, op, tg->factor, tg->versus);
        else
            snprintf(what, sizeof what, "%s median %s %g %s", tg->impl, op, tg->factor,
                     def->unit);
        const bench_result *a = bench_find(res, nimpl, tg->impl);
        const bench_result *b = tg->versus != NULL ? bench_find(res, nimpl, tg->versus) : NULL;
        int a_ok = a != NULL && a->status == BENCH_OK;
        int b_ok = tg->versus == NULL || (b != NULL && b->status == BENCH_OK);
        if (!a_ok || !b_ok) {
            snprintf(got, sizeof got, "no figure for %s", !a_ok ? tg->impl : tg->versus);
            tally_skip++;
            target_line(checks_buf != NULL ? checks_buf : info_stream(), def, "SKIP", what, got);
            continue;
        }
        /* A ratio of medians, or the median itself against an absolute figure. */
        double value = b != NULL ? a->median / b->median : a->median;
        int pass = tg->cmp == BENCH_AT_MOST ? value <= tg->factor : value >= tg->factor;
        char num[32];
        if (b != NULL)
            snprintf(got, sizeof got, "%.3fx (medians)", value);
        else
            snprintf(got, sizeof got, "%s %s (median)", fmt_num(num, value), def->unit);
        bench_check(def, what, got, pass);
    }
}

static void flush_buffer(FILE **stream, char **text, size_t *len) {
    if (*stream == NULL)
        return;
    fclose(*stream);
    *stream = NULL;
    fwrite(*text, 1, *len, info_stream());
    free(*text);
}

int bench_execute(const bench_def *def, const bench_config *cfg) {
    bench_result res[BENCH_IMPL_MAX];
    size_t nimpl = 0;
    memset(res, 0, sizeof res);
    while (nimpl < BENCH_IMPL_MAX && def->impls[nimpl].name != NULL) {
        res[nimpl].impl = &def->impls[nimpl];
        nimpl++;
    }
    cur_cfg = cfg;
    char *notes = NULL, *checks = NULL;
    size_t notes_len = 0, checks_len = 0;
    notes_buf = open_memstream(&notes, &notes_len);

    run_native(def, res, nimpl);
    run_python(def, res, nimpl);

    print_rows(def, res, nimpl);
    flush_buffer(&notes_buf, &notes, &notes_len);
    /* The declared targets first, then the report hook's own. */
    checks_buf = open_memstream(&checks, &checks_len);
    print_targets(def, res, nimpl);
    if (def->report != NULL)
        def->report(def, res, nimpl);
    flush_buffer(&checks_buf, &checks, &checks_len);
    fflush(info_stream());

    int failed = 0;
    for (size_t i = 0; i < nimpl; i++) {
        failed |= res[i].status == BENCH_FAILED;
        free(res[i].runs);
    }
    return failed ? -1 : 0;
}

void bench_summary(const bench_config *cfg) {
    cur_cfg = cfg;
    FILE *f = info_stream();
    fprintf(f, "%stargets: %d PASS, %d MISS, %d SKIP (reported only; they never fail the run)\n",
            cfg->json ? "" : "\n", tally_pass, tally_miss, tally_skip);
}
