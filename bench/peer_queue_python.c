/* SPDX-License-Identifier: MIT */
/*
 * python_mp for the queue benches: multiprocessing.Queue under the same
 * protocol as peer_queue_run.c (python_peer.h has the snippets' contract).
 *
 * A message is seq (8 bytes) + producer (8 bytes) + zero padding; None is
 * STOP.  Warm-up messages are all 'w'; consumers draw them from a shared
 * count.  A multiprocessing.Barrier stands in for the C barrier, and every
 * worker is bounded by signal.alarm.
 */
#include "peer_queue.h"

#define PY_STREAM                                                                          \
    "import signal\n"                                                                      \
    "WARM = 200\n"                                                                         \
    "def _produce(me, q, m, bar, warm):\n"                                                 \
    "    for _ in range(WARM):\n"                                                          \
    "        q.put(warm)\n"                                                                \
    "    bar.wait()\n"                                                                     \
    "    t0 = perf_counter()\n"                                                            \
    "    who = me.to_bytes(8, 'little') + bytes(SIZE - 16)\n"                              \
    "    for i in range(m):\n"                                                             \
    "        q.put(i.to_bytes(8, 'little') + who)\n"                                       \
    "    q.put(None)\n"                                                                    \
    "    return t0, 0, 0, 0\n"                                                             \
    "def _consume(q, bar, warm, warm_left):\n"                                             \
    "    count = total = bad = 0\n"                                                        \
    "    while True:\n"                                                                    \
    "        with warm_left.get_lock():\n"                                                 \
    "            if warm_left.value == 0:\n"                                               \
    "                break\n"                                                              \
    "            warm_left.value -= 1\n"                                                   \
    "        bad |= q.get() != warm\n"                                                     \
    "    bar.wait()\n"                                                                     \
    "    t0 = perf_counter()\n"                                                            \
    "    nxt = [0] * NPROD\n"                                                              \
    "    while True:\n"                                                                    \
    "        msg = q.get()\n"                                                              \
    "        if msg is None:\n"                                                            \
    "            break\n"                                                                  \
    "        seq, p = int.from_bytes(msg[:8], 'little'), int.from_bytes(msg[8:16], 'little')\n" \
    "        ok = len(msg) == SIZE and p < NPROD and seq >= nxt[p]\n"                      \
    "        if not ok or (NCONS == 1 and seq != nxt[p]):\n"                               \
    "            bad = 1\n"                                                                \
    "        else:\n"                                                                      \
    "            nxt[p] = seq + 1\n"                                                       \
    "        count += 1\n"                                                                 \
    "        total += seq\n"                                                               \
    "    return t0, count, total, bad\n"                                                   \
    "def _worker(me, q, m, bar, warm_left, res, gate):\n"                                  \
    "    signal.alarm(120)\n"                                                              \
    "    gate_pass(gate)\n"                                                                \
    "    warm = b'w' * SIZE\n"                                                             \
    "    if me < NPROD:\n"                                                                 \
    "        t0, count, total, bad = _produce(me, q, m, bar, warm)\n"                      \
    "    else:\n"                                                                          \
    "        t0, count, total, bad = _consume(q, bar, warm, warm_left)\n"                  \
    "    res[5 * me:5 * me + 5] = [t0, perf_counter(), count, total, bad]\n"               \
    "def main():\n"                                                                        \
    "    nproc = NPROD + NCONS\n"                                                          \
    "    def run(n):\n"                                                                    \
    "        m = (n + NPROD - 1) // NPROD\n"                                               \
    "        q, bar = ctx.Queue(), ctx.Barrier(nproc)\n"                                   \
    "        warm_left, res = ctx.Value('i', WARM * NPROD), ctx.RawArray('d', 5 * nproc)\n" \
    "        procs = run_gated(_worker, (q, m, bar, warm_left, res), nproc)\n"             \
    "        codes = [p.exitcode for p in procs]\n"                                        \
    "        col = lambda k: [res[5 * i + k] for i in range(nproc)]\n"                     \
    "        count, total, bad = sum(col(2)), sum(col(3)), any(col(4))\n"                  \
    "        if (codes != [0] * nproc or count != NPROD * m\n"                             \
    "                or total != NPROD * m * (m - 1) // 2 or bad):\n"                      \
    "            raise BenchError('%d messages (want %d), seq sum %d, exit codes %s, bad %s'\n" \
    "                             % (count, NPROD * m, total, codes, bad))\n"              \
    "        return NPROD * m, max(col(1)) - min(col(0))\n"                                \
    "    measure(run, 1000)\n"                                                             \
    "    note('Python %s; multiprocessing.Queue put/get of %d-byte bytes; counts and seqs '\n" \
    "         'exact in every rep' % (sys.version.split()[0], SIZE))\n"

const char python_queue_1p1c_64[] = "SIZE, NPROD, NCONS = 64, 1, 1\n" PY_STREAM;
const char python_queue_1p1c_4k[] = "SIZE, NPROD, NCONS = 4096, 1, 1\n" PY_STREAM;
const char python_queue_2p2c_64[] = "SIZE, NPROD, NCONS = 64, 2, 2\n" PY_STREAM;

const char python_queue_pingpong[] =
    "import signal\n"
    "SIZE, WARM = 64, 200\n"
    "def _rounds(me, qa, qb, lo, hi):\n"
    "    pad, bad = bytes(SIZE - 8), 0\n"
    "    for i in range(lo, hi):\n"
    "        if me == 0:\n"
    "            qa.put(i.to_bytes(8, 'little') + pad)\n"
    "            msg = qb.get()\n"
    "        else:\n"
    "            msg = qa.get()\n"
    "            qb.put(msg)\n"
    "        bad |= len(msg) != SIZE or int.from_bytes(msg[:8], 'little') != i\n"
    "    return bad\n"
    "def _worker(me, qa, qb, n, bar, res, gate):\n"
    "    signal.alarm(120)\n"
    "    gate_pass(gate)\n"
    "    bad = _rounds(me, qa, qb, 0, WARM)\n"
    "    bar.wait()\n"
    "    t0 = perf_counter()\n"
    "    bad |= _rounds(me, qa, qb, WARM, WARM + n)\n"
    "    res[3 * me:3 * me + 3] = [t0, perf_counter(), bad]\n"
    "def main():\n"
    "    def run(n):\n"
    "        qa, qb, bar, res = ctx.Queue(), ctx.Queue(), ctx.Barrier(2), ctx.RawArray('d', 6)\n"
    "        procs = run_gated(_worker, (qa, qb, n, bar, res))\n"
    "        codes = [p.exitcode for p in procs]\n"
    "        if codes != [0, 0] or res[2] or res[5]:\n"
    "            raise BenchError('exit codes %s, bad %s' % (codes, [res[2], res[5]]))\n"
    "        return n, max(res[1], res[4]) - min(res[0], res[3])\n"
    "    measure(run, 100)\n"
    "    note('Python %s; two multiprocessing.Queue, B echoes what A puts; seqs exact in '\n"
    "         'every rep' % sys.version.split()[0])\n";
