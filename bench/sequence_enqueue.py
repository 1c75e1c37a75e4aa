#!/usr/bin/python3
"""sequence_enqueue.py - what a `herald run` pass costs for a large
sequence (sequence_enqueue_due(), sequence.h): N subscribers in four
zones, three steps with --at-local 09:00; prints the time of the pass that
queues the first step for everyone, of one with nothing due, and of one
that queues the second step.  The relay is unreachable on purpose: the
rows are queued, the send stops at once, so the time is the queueing.

    bench/sequence_enqueue.py [N]      (default 100,000; $HERALD_BIN)
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import test_sequence as T  # noqa: E402


def timed(w, t, what):
    start = time.time()
    p = w.run("--now", T.iso(t), "run")
    line = (p.stdout_text.splitlines() or [""])[0]
    print("%-34s %6.2f s   %s" % (what, time.time() - start, line))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    zones = ["", "America/New_York", "Asia/Tokyo", "Europe/Berlin"]
    with T.world() as w:
        w.ok("list", "create", "big")
        start = time.time()
        T.import_at(w, T.T0 - T.DAY, "big", [("b%06d@example.net" % i,
                                               {"timezone": zones[i % 4]}) for i in range(n)])
        print("%-34s %6.2f s" % ("import %d subscribers" % n, time.time() - start))
        T.at(w, T.T0, "sequence", "create", "bench", "--list", "big", "--include-existing")
        for a in ("0d", "3d", "7d"):
            T.add_step(w, T.T0, "bench", a, "Step " + a, "09:00")
        w.set("smtp", url="smtp://127.0.0.1:1")
        timed(w, T.T0 + 2 * T.DAY, "pass queuing step 0d for all")
        timed(w, T.T0 + 2 * T.DAY + 300, "pass with nothing due")
        timed(w, T.T0 + 3 * T.DAY + 12 * 3600, "pass queuing step 3d")


if __name__ == "__main__":
    main()
