/* SPDX-License-Identifier: MIT */
/*
 * tickets: the Python tutorials' ticket rush, in C.
 *
 *     def search(i):                      # look the count up and show it
 *         count = json.load(open("db.json"))["count"]
 *         print(f"client {i}: sees {count} tickets left")
 *
 *     def buy(i):
 *         db = json.load(open("db.json"))
 *         time.sleep(0.1)                 # the network's delay
 *         if db["count"] > 0:
 *             db["count"] -= 1
 *             json.dump(db, open("db.json", "w"))
 *             print(f"client {i}: bought a ticket")
 *
 *     def client(i, lock):
 *         search(i)
 *         time.sleep(random.random() / 10)
 *         with lock:
 *             buy(i)
 *
 *     lock = Lock()
 *     for i in range(100):
 *         Process(target=client, args=(i, lock)).start()
 *
 * The "database" is a JSON file {"count": T}, read and written with json-c.
 * N client processes each look up the count and print it, pause a random
 * time up to --delay-ms (the network), then buy under one mproc_lock:
 * re-read the count and, if it is above 0, write count - 1.  Exactly
 * min(T, N) tickets are sold and the count never goes below 0.  (Unlike the
 * tutorial, the pause is not repeated inside the lock, where 100 clients
 * would wait it out one after another.)
 *
 * --unsafe drops the lock.  Rather than hope that the clients' read-to-write
 * windows overlap, it makes them: every client reads, then waits at an
 * mproc_barrier until all have read, then writes its count - 1.  Every client
 * saw T, so every client believes it bought (sold = N when T > 0) while the
 * file ends at T - 1: the oversell is the same on every run.  (The file
 * cannot go negative here as in some tellings of the tutorial: each client
 * writes its own count - 1, not a shared running total.)
 *
 * --kill K: K random clients are SIGKILLed while they hold the lock, half-way
 * through writing the file.  The next client to acquire it gets EOWNERDEAD
 * and re-reads the file, which is whole: every write goes to a temporary file
 * that rename() then puts in place of the database (rename within one
 * directory is atomic, so a reader sees the old file or the new one, never a
 * mix, whatever instruction the writer dies at).  The victim's half-written
 * temporary file is thrown away.  Nothing is oversold, no ticket is lost
 * (sold = min(T, N - K)), and nothing hangs.  (Against a power cut the write
 * would also need fsync(); against a killed process it does not: the data is
 * in the kernel's cache once write() returns.)
 *
 * Sales are counted by the clients' exit codes: 1 bought, 0 sold out (2: an
 * error); -9 is a client killed by SIGKILL.  The summary:
 *   sold=S clients=N tickets=T oversold=O killed=K
 * oversold = S - T when S > T, else 0.  Exit status 0 when, with the lock,
 * S = min(T, N - K), the file says T - S and exactly K clients were killed
 * (with --unsafe: when every client ran); 1 otherwise; 2 on a usage error.
 *
 * The file lives in a new temporary directory, removed at the end, unless
 * --db PATH names it (created or overwritten with {"count": T}, and left).
 *
 * Sections: options; the database (json-c); a client; the main process.
 *
 * Build it alone:  cc -o tickets tickets.c $(pkg-config --cflags --libs mproc json-c)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, mkdtemp, rand_r, even under -std=c11 */
#endif
#include <mproc.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The entry point the `mproc demo tickets` command calls. */
int mproc_demo_tickets(int argc, char **argv);

/* Each running client costs the main process a pidfd: 500 stays well under
 * the usual limit of 1024 open files. */
enum { MAX_CLIENTS = 500, MAX_TICKETS = 1000000, MAX_DELAY_MS = 10000 };
#define BOUND 10.0 /* s: no single wait in this demo is longer, whatever goes wrong */
#define RUN_BOUND 60.0 /* s: the joins of all the clients together */

/* A client's exit code. */
enum outcome { SOLD_OUT = 0, BOUGHT = 1, FAILED = 2 };

struct options {
    long clients, tickets, delay_ms, kill;
    bool unsafe, json;
    const char *db; /* --db PATH, or NULL: a temporary directory */
    FILE *out;      /* the narration; stderr with --json so stdout is pure JSON */
};

/* What every client needs, fixed before the first starts (each child gets
 * a copy at fork). */
struct shop {
    const struct options *opt;
    char path[PATH_MAX];      /* the database */
    char tmp[PATH_MAX + 16];  /* path + ".tmp": the writer's file, under the lock */
    mproc_lock *lock;         /* NULL with --unsafe */
    mproc_barrier *gate;      /* --unsafe only: all read before any writes */
    int holding[2];           /* --kill: a victim writes its index here once it holds the lock */
    unsigned seed;
};

struct client {
    struct shop *shop;
    int index; /* 1..N */
    bool victim;
};

static void usage(FILE *to, const char *prog) {
    fprintf(to,
            "usage: %s [--clients N] [--tickets T] [--delay-ms MAX] [--unsafe]\n"
            "          [--kill K] [--db PATH] [--json]\n"
            "N client processes look up a JSON file {\"count\": T}, pause, then buy a\n"
            "ticket under one mproc_lock: exactly min(T, N) are sold.\n"
            "  -n, --clients N     client processes (default 100, at most %d)\n"
            "  -t, --tickets T     tickets on sale (default 1, at most %d)\n"
            "  -d, --delay-ms MAX  each client pauses a random 0..MAX ms between its\n"
            "                      look-up and its purchase (default 100, at most %d)\n"
            "  -u, --unsafe        no lock: all clients read before any writes, so all\n"
            "                      of them buy and the tickets are oversold (exits 0)\n"
            "  -k, --kill K        SIGKILL K random clients while they hold the lock,\n"
            "                      half-way through their write (0..N; not with --unsafe)\n"
            "  -b, --db PATH       the database file: created or overwritten, and left\n"
            "                      (default: a temporary directory, removed at the end)\n"
            "  -j, --json          print the summary as one JSON object\n"
            "  -h, --help          show this help\n"
            "Summary: sold=S clients=N tickets=T oversold=O killed=K.  Exit status 0\n"
            "if the sale was exact (or --unsafe), 1 if not or on error, 2 on a usage\n"
            "error.\n",
            prog, MAX_CLIENTS, MAX_TICKETS, MAX_DELAY_MS);
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
        {"clients", required_argument, NULL, 'n'}, {"tickets", required_argument, NULL, 't'},
        {"delay-ms", required_argument, NULL, 'd'}, {"unsafe", no_argument, NULL, 'u'},
        {"kill", required_argument, NULL, 'k'},    {"db", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct options){.clients = 100, .tickets = 1, .delay_ms = 100};
    optind = 0; /* restart the scan: the mproc command ran getopt before us */
    int c;
    while ((c = getopt_long(argc, argv, "n:t:d:uk:b:jh", longopts, NULL)) != -1) {
        long *number = NULL, lo = 0, hi = 0;
        switch (c) {
        case 'n': number = &opt->clients, lo = 1, hi = MAX_CLIENTS; break;
        case 't': number = &opt->tickets, hi = MAX_TICKETS; break;
        case 'd': number = &opt->delay_ms, hi = MAX_DELAY_MS; break;
        case 'k': number = &opt->kill, hi = MAX_CLIENTS; break;
        case 'u': opt->unsafe = true; break;
        case 'b': opt->db = optarg; break;
        case 'j': opt->json = true; break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: fprintf(stderr, "Try '%s --help'.\n", argv[0]); return 2;
        }
        if (number != NULL && !parse_long(optarg, lo, hi, number)) {
            const struct option *o = longopts;
            while (o->val != c)
                o++;
            fprintf(stderr, "%s: --%s wants %ld..%ld, not '%s'\n", argv[0], o->name, lo, hi,
                    optarg);
            return 2;
        }
    }
    const char *error = NULL;
    if (optind < argc)
        error = "unexpected argument";
    else if (opt->kill > opt->clients)
        error = "--kill wants at most --clients";
    else if (opt->kill > 0 && opt->unsafe)
        error = "--kill kills lock holders: it needs the lock, not --unsafe";
    else if (opt->db != NULL && (opt->db[0] == '\0' || strlen(opt->db) >= PATH_MAX - 32))
        error = "--db wants a shorter, non-empty path";
    if (error != NULL) {
        fprintf(stderr, "%s: %s%s%s\n", argv[0], error, optind < argc ? " " : "",
                optind < argc ? argv[optind] : "");
        return 2;
    }
    opt->out = opt->json ? stderr : stdout;
    return -1;
}

/* One narration line, in one write(): the lines of the many clients never
 * mix, even on unbuffered stderr (--json). */
__attribute__((format(printf, 2, 3))) static void say(const struct shop *shop,
                                                      const char *format, ...) {
    char line[512];
    va_list ap;
    va_start(ap, format);
    int len = vsnprintf(line, sizeof line - 1, format, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len > sizeof line - 2)
        len = (int)sizeof line - 2;
    line[len++] = '\n';
    FILE *out = shop->opt->out;
    fflush(out);
    if (write(fileno(out), line, (size_t)len) < 0)
        return; /* nowhere to say it */
}

static void sleep_ms(long ms) {
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the database: one JSON file, read and written with json-c ---- */

/* Reads the file's "count" into *count.  False (said on stderr) if the file
 * is missing or not a JSON object with an integer "count". */
static bool db_read(const char *path, long long *count) {
    json_object *root = json_object_from_file(path);
    if (root == NULL) {
        const char *why = json_util_get_last_err();
        fprintf(stderr, "tickets: %s: %s", path, why != NULL ? why : "unreadable\n");
        return false;
    }
    json_object *field;
    bool ok = json_object_object_get_ex(root, "count", &field) &&
              json_object_is_type(field, json_type_int);
    if (ok)
        *count = (long long)json_object_get_int64(field);
    else
        fprintf(stderr, "tickets: %s: no integer \"count\"\n", path);
    json_object_put(root);
    return ok;
}

/* The file's text: {"count": count} as json-c writes it, and a newline.
 * False if json-c failed or the text does not fit. */
static bool db_text(long long count, char *text, size_t size) {
    json_object *root = json_object_new_object();
    bool ok = root != NULL &&
              json_object_object_add(root, "count", json_object_new_int64(count)) == 0;
    const char *json = ok ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_SPACED) : NULL;
    int len = json != NULL ? snprintf(text, size, "%s\n", json) : -1;
    json_object_put(root);
    return len > 0 && (size_t)len < size;
}

/* Writes {"count": count} to `tmp`, then renames `tmp` over `path` (same
 * directory: the swap is atomic).  `torn`: write only the first half of the
 * text and stop there, as a writer killed mid-write would; `path` is then
 * untouched.  False (said on stderr) on an error. */
static bool db_write(const char *path, const char *tmp, long long count, bool torn) {
    char text[64];
    if (!db_text(count, text, sizeof text)) {
        fprintf(stderr, "tickets: writing %s: json-c failed\n", path);
        return false;
    }
    size_t len = strlen(text) / (torn ? 2 : 1);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    ok = (fd < 0 || close(fd) == 0) && ok;
    ok = ok && (torn || rename(tmp, path) == 0);
    if (!ok)
        fprintf(stderr, "tickets: writing %s: %s\n", path, strerror(errno));
    return ok;
}

/* ---- a client ---- */

/* The --kill victim, holding the lock: it writes half the new file, tells
 * the main process, and waits for its SIGKILL.  Returns only if that does
 * not come within BOUND. */
static void hold_until_killed(const struct client *c, long long count) {
    const struct shop *shop = c->shop;
    if (count > 0)
        db_write(shop->path, shop->tmp, count - 1, true);
    say(shop, "client %d: holding the lock, half-way through writing; main, kill me now",
        c->index);
    int index = c->index;
    if (write(shop->holding[1], &index, sizeof index) != (ssize_t)sizeof index)
        perror("tickets: victim: write");
    sleep_ms((long)(BOUND * 1000));
    fprintf(stderr, "tickets: client %d was not killed\n", c->index);
}

static int buy_locked(const struct client *c) {
    const struct shop *shop = c->shop;
    int outcome = FAILED, rc;
    MPROC_WITH_RC(shop->lock, rc) {
        if (rc == EOWNERDEAD) {
            /* The last holder died, maybe mid-write.  Its rename never
             * happened, so the database is the whole last good file: drop the
             * half-written temporary and read the database again, below. */
            say(shop, "client %d: EOWNERDEAD: the last holder died holding the lock; "
                      "the file is whole (rename is atomic): re-reading it",
                c->index);
            unlink(shop->tmp);
        }
        long long count;
        if (!db_read(shop->path, &count))
            break; /* leaves the with-block: released */
        if (c->victim) {
            hold_until_killed(c, count);
            break;
        }
        if (count <= 0) {
            say(shop, "client %d: sold out", c->index);
            outcome = SOLD_OUT;
        } else if (db_write(shop->path, shop->tmp, count - 1, false)) {
            say(shop, "client %d: bought a ticket (%lld left -> %lld)", c->index, count,
                count - 1);
            outcome = BOUGHT;
        }
    }
    if (rc != 0 && rc != EOWNERDEAD)
        fprintf(stderr, "tickets: client %d: mproc_lock_acquire: %s\n", c->index,
                mproc_strerror(rc));
    return outcome;
}

static int buy_unsafe(const struct client *c) {
    const struct shop *shop = c->shop;
    long long count;
    bool ok = db_read(shop->path, &count);
    if (!ok) /* the others would wait at the gate for a party that never comes */
        mproc_barrier_abort(shop->gate);
    /* The window, made certain: nobody writes until everybody has read. */
    int rc = mproc_barrier_wait(shop->gate, NULL);
    if (!ok || rc != 0) {
        if (rc != 0)
            fprintf(stderr, "tickets: client %d: mproc_barrier_wait: %s\n", c->index,
                    mproc_strerror(rc));
        return FAILED;
    }
    if (count <= 0) {
        say(shop, "client %d: sold out", c->index);
        return SOLD_OUT;
    }
    /* Writers race here, so each has its own temporary file. */
    char tmp[sizeof shop->tmp + 16];
    snprintf(tmp, sizeof tmp, "%s.%d", shop->tmp, c->index);
    if (!db_write(shop->path, tmp, count - 1, false))
        return FAILED;
    say(shop, "client %d: bought a ticket (%lld left -> %lld), it believes", c->index, count,
        count - 1);
    return BOUGHT;
}

/* The client's whole life: look up, pause, buy. */
static int client(void *arg) {
    const struct client *c = arg;
    const struct shop *shop = c->shop;
    long long count;
    if (!db_read(shop->path, &count)) {
        if (shop->gate != NULL)
            mproc_barrier_abort(shop->gate);
        return FAILED;
    }
    say(shop, "client %d: sees %lld ticket%s left", c->index, count, count == 1 ? "" : "s");
    unsigned seed = shop->seed ^ ((unsigned)c->index * 2654435761u);
    sleep_ms(rand_r(&seed) % (shop->opt->delay_ms + 1)); /* the network */
    return shop->lock != NULL ? buy_locked(c) : buy_unsafe(c);
}

/* ---- the main process ---- */

struct tally {
    int sold, sold_out, killed, failed;
    long long left; /* the file's count at the end; -1 if unreadable */
};

/* The database's place: --db PATH, or db.json in a new temporary directory
 * (whose name goes to `dir`).  False (said) on an error. */
static bool place(struct shop *shop, char dir[PATH_MAX]) {
    const struct options *opt = shop->opt;
    dir[0] = '\0';
    if (opt->db != NULL) {
        snprintf(shop->path, sizeof shop->path, "%s", opt->db);
    } else {
        const char *base = getenv("TMPDIR");
        snprintf(dir, PATH_MAX, "%s/mproc-tickets-XXXXXX",
                 base != NULL && base[0] != '\0' && strlen(base) < PATH_MAX - 64 ? base : "/tmp");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "tickets: mkdtemp %s: %s\n", dir, strerror(errno));
            dir[0] = '\0';
            return false;
        }
        snprintf(shop->path, sizeof shop->path, "%s/db.json", dir);
    }
    snprintf(shop->tmp, sizeof shop->tmp, "%s.tmp", shop->path);
    return db_write(shop->path, shop->tmp, opt->tickets, false);
}

/* Removes the temporary directory and everything in it (the database, and
 * a killed last holder's temporary file), or with --db only that file. */
static bool tidy(const struct shop *shop, const char *dir) {
    if (dir[0] == '\0')
        return unlink(shop->tmp) == 0 || errno == ENOENT;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    if (rmdir(dir) != 0) {
        fprintf(stderr, "tickets: rmdir %s: %s\n", dir, strerror(errno));
        return false;
    }
    return true;
}

/* Picks K distinct random victims (a partial Fisher-Yates shuffle). */
static bool pick_victims(struct client *clients, long n, long k, unsigned *seed) {
    int *order = malloc((size_t)n * sizeof *order);
    if (order == NULL) {
        perror("tickets: malloc");
        return false;
    }
    for (long i = 0; i < n; i++)
        order[i] = (int)i;
    for (long i = 0; i < k; i++) {
        long j = i + (long)(rand_r(seed) % (unsigned)(n - i));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
        clients[order[i]].victim = true;
    }
    free(order);
    return true;
}

/* Reads `expected` victims' "I hold the lock" from the pipe and SIGKILLs
 * each at once, while it still holds the lock. */
static void kill_victims(const struct shop *shop, mproc_process **procs, long expected) {
    for (long killed = 0; killed < expected; killed++) {
        struct pollfd pfd = {.fd = shop->holding[0], .events = POLLIN};
        int index, n;
        while ((n = poll(&pfd, 1, (int)(BOUND * 1000))) < 0 && errno == EINTR)
            continue;
        if (n != 1 || read(shop->holding[0], &index, sizeof index) != (ssize_t)sizeof index ||
            index < 1 || index > shop->opt->clients) {
            fprintf(stderr, "tickets: no victim reported holding the lock within %.0f s\n", BOUND);
            return;
        }
        int rc = mproc_process_kill(procs[index - 1]);
        say(shop, "main: SIGKILL to client %d (pid %d), which holds the lock: %s", index,
            mproc_process_pid(procs[index - 1]), mproc_errname(rc));
    }
}

/* Starts the clients, kills the victims, joins everyone and counts. */
static void run(struct shop *shop, struct client *clients, struct tally *tally) {
    long n = shop->opt->clients, victims = 0;
    mproc_process **procs = calloc((size_t)n, sizeof *procs);
    long started = 0;
    for (; procs != NULL && started < n; started++) {
        int rc = mproc_process_create(&procs[started], client, &clients[started], NULL);
        if (rc == 0 && (rc = mproc_process_start(procs[started])) != 0)
            mproc_process_close(procs[started]);
        if (rc != 0) {
            fprintf(stderr, "tickets: starting client %ld: %s\n", started + 1, mproc_strerror(rc));
            if (shop->gate != NULL) /* the started ones would wait for it */
                mproc_barrier_abort(shop->gate);
            break;
        }
        victims += clients[started].victim;
    }
    if (victims > 0)
        kill_victims(shop, procs, victims);
    /* Bounded: one deadline for all the joins; a client still running then
     * is killed (and will not be counted as a sale). */
    double deadline = now() + RUN_BOUND;
    for (long i = 0; i < started; i++) {
        double left = deadline - now();
        if (mproc_process_join(procs[i], left > 0 ? left : 0) != 0) {
            fprintf(stderr, "tickets: client %ld still running: killing it\n", i + 1);
            mproc_process_kill(procs[i]);
            mproc_process_join(procs[i], BOUND);
        }
        int code = mproc_process_exitcode(procs[i]);
        tally->sold += code == BOUGHT;
        tally->sold_out += code == SOLD_OUT;
        tally->killed += code == -SIGKILL;
        tally->failed += code != BOUGHT && code != SOLD_OUT && code != -SIGKILL;
        mproc_process_close(procs[i]);
    }
    tally->failed += (int)(n - started);
    free(procs);
}

static void print_summary(const struct options *opt, const struct tally *t) {
    long oversold = t->sold > opt->tickets ? t->sold - opt->tickets : 0;
    if (!opt->json) {
        printf("sold=%d clients=%ld tickets=%ld oversold=%ld killed=%d\n", t->sold,
               opt->clients, opt->tickets, oversold, t->killed);
    } else { /* json-c writes this one too */
        json_object *o = json_object_new_object();
        json_object_object_add(o, "sold", json_object_new_int(t->sold));
        json_object_object_add(o, "clients", json_object_new_int64(opt->clients));
        json_object_object_add(o, "tickets", json_object_new_int64(opt->tickets));
        json_object_object_add(o, "oversold", json_object_new_int64(oversold));
        json_object_object_add(o, "killed", json_object_new_int(t->killed));
        json_object_object_add(o, "left", json_object_new_int64(t->left));
        json_object_object_add(o, "unsafe", json_object_new_boolean(opt->unsafe));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED));
        json_object_put(o);
    }
    fflush(stdout);
}

/* With the lock: exactly min(T, N - K) sold, the file agrees, K killed. */
static bool exact(const struct options *opt, const struct tally *t) {
    long buyers = opt->clients - opt->kill;
    long want = opt->tickets < buyers ? opt->tickets : buyers;
    return t->sold == want && t->left == opt->tickets - t->sold && t->killed == opt->kill;
}

/* Makes what the clients share: the file, the lock or the gate, the pipe. */
static bool open_shop(struct shop *shop, char dir[PATH_MAX]) {
    const struct options *opt = shop->opt;
    int rc = opt->unsafe ? mproc_barrier_create(&shop->gate, (unsigned)opt->clients, NULL, NULL,
                                                BOUND, NULL)
                         : mproc_lock_create(&shop->lock, NULL);
    if (rc != 0) {
        fprintf(stderr, "tickets: mproc_%s_create: %s\n", opt->unsafe ? "barrier" : "lock",
                mproc_strerror(rc));
        return false;
    }
    if (opt->kill > 0 && pipe(shop->holding) != 0) {
        perror("tickets: pipe");
        return false;
    }
    return place(shop, dir);
}

static void close_shop(struct shop *shop) {
    if (shop->lock != NULL)
        mproc_lock_close(shop->lock);
    if (shop->gate != NULL)
        mproc_barrier_close(shop->gate);
    if (shop->holding[0] >= 0) {
        close(shop->holding[0]);
        close(shop->holding[1]);
    }
}

int mproc_demo_tickets(int argc, char **argv) {
    struct options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;
    struct shop shop = {.opt = &opt, .holding = {-1, -1},
                        .seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16)};
    char dir[PATH_MAX] = "";
    struct client *clients = calloc((size_t)opt.clients, sizeof *clients);
    bool ok = clients != NULL && open_shop(&shop, dir);
    struct tally tally = {.left = -1};
    if (ok) {
        for (long i = 0; i < opt.clients; i++)
            clients[i] = (struct client){.shop = &shop, .index = (int)i + 1};
        ok = pick_victims(clients, opt.clients, opt.kill, &shop.seed);
    }
    if (ok) {
        say(&shop, "main: %s holds {\"count\": %ld}; %ld clients look it up, pause up to %ld ms, "
                   "then buy %s",
            shop.path, opt.tickets, opt.clients, opt.delay_ms,
            opt.unsafe ? "without a lock, all reading before any writes" : "under one mproc_lock");
        if (opt.kill > 0)
            say(&shop, "main: %ld of them will be SIGKILLed while they hold the lock", opt.kill);
        run(&shop, clients, &tally);
        ok = db_read(shop.path, &tally.left) && tally.failed == 0;
        say(&shop, "main: %d bought, %d found it sold out, %d killed, %d failed; the file says "
                   "{\"count\": %lld}",
            tally.sold, tally.sold_out, tally.killed, tally.failed, tally.left);
    }
    print_summary(&opt, &tally);
    if (ok && !opt.unsafe && !exact(&opt, &tally)) {
        fprintf(stderr, "tickets: the sale was not exact despite the lock\n");
        ok = false;
    }
    if (!tidy(&shop, dir))
        ok = false;
    close_shop(&shop);
    free(clients);
    return ok ? 0 : 1;
}

#ifndef MPROC_DEMO_NO_MAIN
int main(int argc, char **argv) {
    return mproc_demo_tickets(argc, argv);
}
#endif
