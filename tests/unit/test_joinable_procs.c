/* SPDX-License-Identifier: MIT */
/*
 * JoinableQueue between processes: task_done counts per process (items got
 * by one process cannot be finished by another, a documented deviation from
 * Python), the unfinished count across processes, joiners in other
 * processes woken by the last task_done, and the headline: a consumer
 * SIGKILLed between get and task_done leaves its items abandoned, so join
 * returns MPROC_E_ABANDONED (soon after the death, zombie or reaped) instead
 * of waiting forever, with the exact abandoned count, sticky until forgiven.
 * Also: a new process with a dead consumer's PID does not hide the death, a
 * consumer killed asleep inside get abandons nothing, max_consumers records
 * are freed by death, and a named queue shared by opened handles.
 *
 * Children report through exit codes: 0, or the number of the step that
 * failed.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "support.h"

#define BOUND 10.0 /* seconds: no wait in these tests may take longer */

/* In a child: exit with `step` unless `cond`. */
#define CHECK(step, cond)                                                                  \
    do {                                                                                   \
        if (!(cond))                                                                       \
            _exit(step);                                                                   \
    } while (0)

static mproc_queue *make(unsigned max_consumers) {
    mproc_queue_options opts = {.capacity = 1 << 16, .max_consumers = max_consumers};
    mproc_queue *queue = NULL;
    int rc = mproc_joinable_queue_create(&queue, 0, &opts);
    cr_assert_eq(rc, 0, "%s", mproc_strerror(rc));
    return queue;
}

static uint64_t unfinished(mproc_queue *queue) {
    uint64_t count = UINT64_MAX;
    cr_assert_eq(mproc_queue_unfinished(queue, &count), 0);
    return count;
}

static uint64_t abandoned(mproc_queue *queue) {
    uint64_t count = UINT64_MAX;
    cr_assert_eq(mproc_queue_abandoned(queue, &count), 0);
    return count;
}

static void put_ints(mproc_queue *queue, int first, int n) {
    for (int value = first; value < first + n; value++)
        cr_assert_eq(mproc_queue_put(queue, &value, sizeof value, BOUND), 0);
}

/* 0 when `n` items came, in order from `first`; usable in children. */
static int get_ints(mproc_queue *queue, int first, int n) {
    for (int i = 0; i < n; i++) {
        int value = -1;
        size_t len = 0;
        if (mproc_queue_get(queue, &value, sizeof value, &len, BOUND) != 0 ||
            len != sizeof value || value != first + i)
            return -1;
    }
    return 0;
}

static int task_dones(mproc_queue *queue, int n) {
    for (int i = 0; i < n; i++)
        if (mproc_queue_task_done(queue) != 0)
            return -1;
    return 0;
}

static void expect_exit(pid_t pid, int code) {
    cr_assert_eq(t_exit_code(pid, BOUND), code, "child %d", (int)pid);
}

static void expect_killed(pid_t pid) {
    int status = t_wait(pid, BOUND);
    cr_assert(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* The state letter of process `pid` in /proc (0 if unreadable). */
static char proc_state(pid_t pid) {
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    /* pid (comm) state: comm is ours ("test_joinable_p"), without ')' */
    if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
        state = 0;
    fclose(f);
    return state;
}

/* A consumer that gets `got` items (from `first`), finishes `finish` of
 * them, signals 'r' and then waits: to be killed, or told by 'g' to finish
 * the rest and exit. */
static pid_t spawn_consumer(mproc_queue *queue, int first, int got, int finish, t_pipe *ready,
                            t_pipe *go) {
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        CHECK(1, get_ints(queue, first, got) == 0);
        CHECK(2, task_dones(queue, finish) == 0);
        t_signal(ready, 'r');
        CHECK(3, t_await(go, BOUND) == 'g');
        CHECK(4, task_dones(queue, got - finish) == 0);
        _exit(0);
    }
    cr_assert_eq(t_await(ready, BOUND), 'r');
    return pid;
}

/* ---- task_done is per process ---- */

Test(joinable_procs, task_done_only_finishes_items_the_calling_process_got) {
    mproc_queue *queue = make(0);
    put_ints(queue, 0, 3);
    cr_assert_eq(get_ints(queue, 0, 2), 0); /* the parent got 0 and 1 */
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    pid_t pid = t_fork();
    if (pid == 0) {
        /* The inherited handle remembers the parent's record: the child
         * must not use it. */
        CHECK(1, mproc_queue_task_done(queue) == EOVERFLOW);
        t_signal(&ready, 'r');
        CHECK(2, t_await(&go, BOUND) == 'g');
        CHECK(3, get_ints(queue, 2, 1) == 0);
        CHECK(4, mproc_queue_task_done(queue) == 0);
        CHECK(5, mproc_queue_task_done(queue) == EOVERFLOW);
        _exit(0);
    }
    cr_assert_eq(t_await(&ready, BOUND), 'r');
    cr_assert_eq(unfinished(queue), 3, "the child's refused task_done changed nothing");
    t_signal(&go, 'g');
    expect_exit(pid, 0);
    cr_assert_eq(unfinished(queue), 2);
    cr_assert_eq(mproc_queue_task_done(queue), 0);
    cr_assert_eq(mproc_queue_task_done(queue), 0);
    cr_assert_eq(mproc_queue_task_done(queue), EOVERFLOW, "the child's item is not ours");
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(abandoned(queue), 0, "the child exited with nothing open");
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* unfinished == puts - task_done calls, whichever process does what. */
Test(joinable_procs, unfinished_is_exact_across_processes) {
    mproc_queue *queue = make(0);
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    put_ints(queue, 0, 3);
    pid_t pid = t_fork();
    if (pid == 0) {
        CHECK(1, get_ints(queue, 0, 2) == 0);
        t_signal(&ready, 'r'); /* got 2 */
        CHECK(2, t_await(&go, BOUND) == 'g');
        CHECK(3, task_dones(queue, 1) == 0);
        t_signal(&ready, 'r'); /* finished 1 */
        CHECK(4, t_await(&go, BOUND) == 'g');
        CHECK(5, task_dones(queue, 1) == 0);
        _exit(0);
    }
    cr_assert_eq(t_await(&ready, BOUND), 'r');
    cr_assert_eq(unfinished(queue), 3, "gets alone change nothing");
    size_t qsize;
    cr_assert_eq(mproc_queue_qsize(queue, &qsize), 0);
    cr_assert_eq(qsize, 1);
    t_signal(&go, 'g');
    cr_assert_eq(t_await(&ready, BOUND), 'r');
    cr_assert_eq(unfinished(queue), 2);
    cr_assert_eq(get_ints(queue, 2, 1), 0);
    cr_assert_eq(unfinished(queue), 2);
    cr_assert_eq(mproc_queue_task_done(queue), 0);
    cr_assert_eq(unfinished(queue), 1);
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT);
    t_signal(&go, 'g');
    expect_exit(pid, 0);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* ---- joiners in other processes ---- */

#define JOINERS 3

struct joined {
    _Atomic int rc[JOINERS]; /* -1 until that joiner's join returned */
    _Atomic double returned_at[JOINERS];
};

Test(joinable_procs, last_task_done_in_one_process_wakes_joiners_in_others) {
    mproc_queue *queue = make(0);
    struct joined *sh = t_shared(sizeof *sh);
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    put_ints(queue, 0, 2);
    pid_t consumer = spawn_consumer(queue, 0, 2, 1, &ready, &go);
    pid_t joiners[JOINERS];
    for (int i = 0; i < JOINERS; i++) {
        atomic_store(&sh->rc[i], -1);
        joiners[i] = t_fork();
        if (joiners[i] == 0) {
            int rc = mproc_queue_join(queue, BOUND);
            atomic_store(&sh->returned_at[i], t_now());
            atomic_store(&sh->rc[i], rc);
            _exit(0);
        }
    }
    for (int i = 0; i < JOINERS; i++)
        cr_assert(t_wait_sleeping(joiners[i], BOUND), "joiner %d never went to sleep", i);
    for (int i = 0; i < JOINERS; i++)
        cr_assert_eq(atomic_load(&sh->rc[i]), -1, "joiner %d returned with a task open", i);
    /* The consumer's last task_done: it runs within a few ms of `go`. */
    double go_at = t_now();
    t_signal(&go, 'g');
    expect_exit(consumer, 0); /* it finished its second item */
    for (int i = 0; i < JOINERS; i++) {
        expect_exit(joiners[i], 0);
        cr_assert_eq(atomic_load(&sh->rc[i]), 0, "joiner %d: %s", i,
                     mproc_errname(atomic_load(&sh->rc[i])));
        cr_assert_lt(atomic_load(&sh->returned_at[i]) - go_at, 1.0, "joiner %d", i);
    }
    cr_assert_eq(abandoned(queue), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* ---- dead consumers: abandoned tasks ---- */

Test(joinable_procs, consumer_killed_before_task_done_makes_join_return_abandoned) {
    mproc_queue *queue = make(0);
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    put_ints(queue, 0, 5);
    pid_t consumer = spawn_consumer(queue, 0, 3, 1, &ready, &go); /* got 3, finished 1 */
    cr_assert_eq(unfinished(queue), 4);
    cr_assert_eq(abandoned(queue), 0, "alive: nothing abandoned yet");
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT);
    cr_assert_eq(kill(consumer, SIGKILL), 0);
    expect_killed(consumer);
    cr_assert_eq(abandoned(queue), 2, "its 2 unfinished items");
    cr_assert_eq(unfinished(queue), 2, "the 2 still queued");
    cr_assert_eq(mproc_queue_join(queue, 0.05), ETIMEDOUT, "queued tasks are still open");
    cr_assert_eq(get_ints(queue, 3, 2), 0);
    cr_assert_eq(task_dones(queue, 2), 0);
    cr_assert_eq(unfinished(queue), 0);
    /* Every task done or abandoned: join stops waiting, and says why. */
    cr_assert_eq(mproc_queue_join(queue, BOUND), MPROC_E_ABANDONED);
    cr_assert_eq(mproc_queue_join(queue, 0), MPROC_E_ABANDONED, "sticky");
    cr_assert_eq(abandoned(queue), 2);
    /* A new open task comes first: join waits for it, then says ABANDONED. */
    put_ints(queue, 5, 1);
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT);
    cr_assert_eq(get_ints(queue, 5, 1), 0);
    cr_assert_eq(task_dones(queue, 1), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), MPROC_E_ABANDONED);
    cr_assert_eq(mproc_queue_forgive(queue, 3), EINVAL, "more than abandoned");
    cr_assert_eq(abandoned(queue), 2);
    cr_assert_eq(mproc_queue_forgive(queue, 1), 0);
    cr_assert_eq(abandoned(queue), 1);
    cr_assert_eq(mproc_queue_join(queue, 0), MPROC_E_ABANDONED, "one left unforgiven");
    cr_assert_eq(mproc_queue_forgive(queue, 2), EINVAL);
    cr_assert_eq(mproc_queue_forgive(queue, 1), 0);
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(mproc_queue_join(queue, BOUND), 0);
    /* The queue works on: a new task is joined normally. */
    put_ints(queue, 6, 1);
    cr_assert_eq(get_ints(queue, 6, 1), 0);
    cr_assert_eq(task_dones(queue, 1), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* The joiner sleeps before the death; the consumer stays an unreaped
 * zombie throughout (its record must count as dead all the same). */
struct join_result {
    mproc_queue *queue;
    _Atomic pid_t tid; /* 0 until the thread runs */
    int rc;
    double returned_at;
};

static void *join_bounded(void *arg) {
    struct join_result *j = arg;
    atomic_store(&j->tid, gettid());
    j->rc = mproc_queue_join(j->queue, BOUND);
    j->returned_at = t_now();
    return NULL;
}

Test(joinable_procs, sleeping_join_sees_an_unreaped_dead_consumer_within_a_second) {
    mproc_queue *queue = make(0);
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    put_ints(queue, 0, 3);
    pid_t consumer = spawn_consumer(queue, 0, 3, 1, &ready, &go);
    struct join_result j = {.queue = queue, .rc = -1};
    pthread_t joiner;
    cr_assert_eq(pthread_create(&joiner, NULL, join_bounded, &j), 0);
    double end = t_now() + BOUND;
    while (atomic_load(&j.tid) == 0 && t_now() < end)
        sched_yield();
    pid_t tid = atomic_load(&j.tid);
    cr_assert_neq(tid, 0);
    cr_assert(t_wait_sleeping(tid, BOUND), "the joiner never went to sleep");
    double killed_at = t_now();
    cr_assert_eq(kill(consumer, SIGKILL), 0);
    cr_assert_eq(pthread_join(joiner, NULL), 0); /* join is bounded */
    cr_assert_eq(j.rc, MPROC_E_ABANDONED, "%s", mproc_errname(j.rc));
    /* join reaps every 50 ms (MPROC_QUEUE_LIVENESS_MS), so it returns about
     * 100 ms after the death at worst; 1 s is the slack of a loaded machine. */
    cr_assert_lt(j.returned_at - killed_at, 1.0);
    cr_assert_eq(proc_state(consumer), 'Z', "still unreaped when join saw it dead");
    cr_assert_eq(abandoned(queue), 2);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), MPROC_E_ABANDONED);
    expect_killed(consumer);
    cr_assert_eq(mproc_queue_forgive(queue, 2), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

Test(joinable_procs, consumer_killed_after_finishing_everything_abandons_nothing) {
    mproc_queue *queue = make(0);
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    put_ints(queue, 0, 2);
    pid_t consumer = spawn_consumer(queue, 0, 2, 2, &ready, &go);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(kill(consumer, SIGKILL), 0);
    expect_killed(consumer);
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

Test(joinable_procs, abandoned_count_adds_up_over_several_deaths) {
    mproc_queue *queue = make(0);
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    put_ints(queue, 0, 5);
    pid_t first = spawn_consumer(queue, 0, 2, 1, &ready, &go);  /* 1 open */
    pid_t second = spawn_consumer(queue, 2, 3, 0, &ready, &go); /* 3 open */
    cr_assert_eq(kill(first, SIGKILL), 0);
    expect_killed(first);
    cr_assert_eq(abandoned(queue), 1);
    cr_assert_eq(unfinished(queue), 3);
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT, "the second consumer lives");
    cr_assert_eq(kill(second, SIGKILL), 0);
    expect_killed(second);
    cr_assert_eq(abandoned(queue), 4);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, BOUND), MPROC_E_ABANDONED);
    cr_assert_eq(mproc_queue_forgive(queue, 5), EINVAL);
    cr_assert_eq(mproc_queue_forgive(queue, 4), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* A new process that got the dead consumer's PID before anyone looked
 * (records are reaped lazily) is not taken for it: identity is PID and
 * start time. */
static t_pipe *impostor_go;

static int impostor(void *arg) {
    (void)arg;
    return t_await(impostor_go, BOUND) == 'g' ? 0 : 1;
}

Test(joinable_procs, a_new_process_with_the_dead_consumers_pid_does_not_hide_its_death) {
    mproc_queue *queue = make(0);
    t_pipe ready, go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    put_ints(queue, 0, 2);
    pid_t consumer = spawn_consumer(queue, 0, 2, 0, &ready, &go);
    /* Start times are in clock ticks (10 ms): let a few pass, so that the
     * impostor cannot share the consumer's. */
    struct timespec ticks = {0, 30 * 1000 * 1000};
    nanosleep(&ticks, NULL);
    cr_assert_eq(kill(consumer, SIGKILL), 0);
    expect_killed(consumer);
    impostor_go = &go;
    pid_t again = t_fork_with_pid(consumer, impostor, NULL);
    cr_assert_eq(again, consumer, "could not reuse pid %d", (int)consumer);
    cr_assert_eq(mproc_queue_join(queue, BOUND), MPROC_E_ABANDONED);
    cr_assert_eq(abandoned(queue), 2);
    cr_assert_eq(unfinished(queue), 0);
    t_signal(&go, 'g');
    expect_exit(again, 0);
    cr_assert_eq(mproc_queue_forgive(queue, 2), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* A consumer asleep in get holds the get lock with nothing taken: its death
 * abandons nothing, and the consumer queued behind it on the get lock takes
 * the lock over and gets the next item. */
Test(joinable_procs, consumer_killed_asleep_in_get_abandons_nothing) {
    mproc_queue *queue = make(0);
    t_pipe ready;
    t_pipe_open(&ready);
    pid_t asleep = t_fork();
    if (asleep == 0) {
        int value;
        size_t len;
        t_signal(&ready, 'r');
        mproc_queue_get(queue, &value, sizeof value, &len, BOUND);
        _exit(1); /* nothing is put before it dies */
    }
    cr_assert_eq(t_await(&ready, BOUND), 'r');
    cr_assert(t_wait_sleeping(asleep, BOUND), "the first consumer never slept in get");
    pid_t behind = t_fork();
    if (behind == 0) {
        t_signal(&ready, 'r');
        CHECK(1, get_ints(queue, 0, 1) == 0);
        CHECK(2, task_dones(queue, 1) == 0);
        _exit(0);
    }
    cr_assert_eq(t_await(&ready, BOUND), 'r');
    cr_assert(t_wait_sleeping(behind, BOUND), "the second consumer never slept");
    int value;
    size_t len;
    cr_assert_eq(mproc_queue_get(queue, &value, sizeof value, &len, 0), MPROC_E_EMPTY,
                 "the get lock is held: a non-blocking get finds nothing");
    cr_assert_eq(kill(asleep, SIGKILL), 0);
    expect_killed(asleep);
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    put_ints(queue, 0, 3);
    expect_exit(behind, 0); /* got item 0 and finished it */
    cr_assert_eq(unfinished(queue), 2);
    cr_assert_eq(get_ints(queue, 1, 2), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), ETIMEDOUT);
    cr_assert_eq(task_dones(queue, 2), 0);
    cr_assert_eq(mproc_queue_join(queue, BOUND), 0);
    cr_assert_eq(abandoned(queue), 0);
    t_pipe_close(&ready);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* With max_consumers = 2, a third consumer process finds no record while
 * the two that got items live, and gets one once a holder died. */
Test(joinable_procs, a_dead_consumer_frees_its_record_for_a_new_one) {
    mproc_queue *queue = make(2);
    t_pipe ready, go, third_ready, third_go;
    t_pipe_open(&ready);
    t_pipe_open(&go);
    t_pipe_open(&third_ready);
    t_pipe_open(&third_go);
    put_ints(queue, 0, 3);
    pid_t first = spawn_consumer(queue, 0, 1, 0, &ready, &go);
    pid_t second = spawn_consumer(queue, 1, 1, 0, &ready, &go);
    pid_t third = t_fork();
    if (third == 0) {
        int value;
        size_t len;
        CHECK(1, mproc_queue_get(queue, &value, sizeof value, &len, 0) == EAGAIN);
        CHECK(3, mproc_queue_task_done(queue) == EOVERFLOW);
        t_signal(&third_ready, 'r');
        CHECK(4, t_await(&third_go, BOUND) == 'g');
        CHECK(5, get_ints(queue, 2, 1) == 0);
        CHECK(6, task_dones(queue, 1) == 0);
        _exit(0);
    }
    cr_assert_eq(t_await(&third_ready, BOUND), 'r');
    cr_assert_eq(unfinished(queue), 3);
    size_t qsize;
    cr_assert_eq(mproc_queue_qsize(queue, &qsize), 0);
    cr_assert_eq(qsize, 1, "the refused gets took nothing");
    cr_assert_eq(kill(first, SIGKILL), 0);
    expect_killed(first);
    t_signal(&third_go, 'g');
    expect_exit(third, 0);
    t_signal(&go, 'g'); /* the second finishes its item */
    expect_exit(second, 0);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(abandoned(queue), 1, "the first consumer's item");
    cr_assert_eq(mproc_queue_join(queue, BOUND), MPROC_E_ABANDONED);
    cr_assert_eq(mproc_queue_forgive(queue, 1), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    t_pipe_close(&ready);
    t_pipe_close(&go);
    t_pipe_close(&third_ready);
    t_pipe_close(&third_go);
    cr_assert_eq(mproc_queue_close(queue), 0);
}

/* ---- a named queue ---- */

#define NAMED_CONSUMERS 3
#define NAMED_ITEMS 300

struct named_shared {
    _Atomic int processed[NAMED_ITEMS]; /* before each item's task_done */
};

static mproc_queue *open_named(const char *name) {
    mproc_queue_options joinable = {.flags = MPROC_QUEUE_JOINABLE};
    mproc_queue *queue = NULL;
    return mproc_queue_open(&queue, name, MPROC_ATTACH, 0, &joinable) == 0 ? queue : NULL;
}

static void named_consumer(const char *name, struct named_shared *sh) {
    mproc_queue *queue = open_named(name);
    CHECK(1, queue != NULL);
    for (;;) {
        int value = -1;
        size_t len = 0;
        CHECK(2, mproc_queue_get(queue, &value, sizeof value, &len, BOUND) == 0);
        if (len == 0) /* stop */
            break;
        CHECK(3, len == sizeof value && value >= 0 && value < NAMED_ITEMS);
        atomic_fetch_add(&sh->processed[value], 1);
        CHECK(4, mproc_queue_task_done(queue) == 0);
    }
    CHECK(5, mproc_queue_task_done(queue) == 0);
    CHECK(6, mproc_queue_close(queue) == 0);
    _exit(0);
}

static void named_producer(const char *name, struct named_shared *sh) {
    mproc_queue *queue = open_named(name);
    CHECK(1, queue != NULL);
    for (int i = 0; i < NAMED_ITEMS; i++)
        CHECK(2, mproc_queue_put(queue, &i, sizeof i, BOUND) == 0);
    CHECK(3, mproc_queue_join(queue, BOUND) == 0);
    for (int i = 0; i < NAMED_ITEMS; i++)
        CHECK(4, atomic_load(&sh->processed[i]) == 1);
    for (int i = 0; i < NAMED_CONSUMERS; i++)
        CHECK(5, mproc_queue_put(queue, NULL, 0, BOUND) == 0);
    CHECK(6, mproc_queue_join(queue, BOUND) == 0);
    CHECK(7, mproc_queue_close(queue) == 0);
    _exit(0);
}

Test(joinable_procs, named_queue_producer_joins_consumers_that_opened_it_by_name) {
    const char *name = t_name("jqnamed");
    mproc_queue_options opts = {.flags = MPROC_QUEUE_JOINABLE, .capacity = 1 << 16};
    mproc_queue *queue, *wrong;
    cr_assert_eq(mproc_queue_open(&queue, name, MPROC_CREATE | MPROC_EXCL, 8, &opts), 0);
    cr_assert_eq(mproc_queue_open(&wrong, name, MPROC_ATTACH, 0, NULL), MPROC_E_KIND);
    struct named_shared *sh = t_shared(sizeof *sh);
    pid_t consumers[NAMED_CONSUMERS], producer;
    for (int i = 0; i < NAMED_CONSUMERS; i++)
        if ((consumers[i] = t_fork()) == 0)
            named_consumer(name, sh);
    if ((producer = t_fork()) == 0)
        named_producer(name, sh);
    expect_exit(producer, 0);
    for (int i = 0; i < NAMED_CONSUMERS; i++)
        expect_exit(consumers[i], 0);
    cr_assert_eq(unfinished(queue), 0);
    cr_assert_eq(abandoned(queue), 0);
    cr_assert_eq(mproc_queue_join(queue, 0), 0);
    cr_assert_eq(mproc_queue_close(queue), 0);
    cr_assert_eq(mproc_unlink(name), 0);
}
