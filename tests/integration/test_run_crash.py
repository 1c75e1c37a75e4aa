#!/usr/bin/python3
"""test_run_crash.py - a send survives SIGKILL, SIGTERM and a second run.

What a crash-safe send promises (the ledger's invariants in
include/herald/ledger.h, the run lock in include/herald/lock.h), each point
checked:
  - a send of 3,000 recipients over connections = 4 is SIGKILLed at several
    random points (one at a random instant in its first second, the others
    after a random number of messages) and resumed each time with
    `herald run`; at the end the server's log (tests/tools/smtpd.py) shows
    every recipient, at most `connections` duplicates per kill, every
    duplicate with the same Message-ID as the first copy, and the ledger
    has no row left pending or sending and the issue is sent;
  - two `herald run` started at the same moment: one sends, the other exits
    75 at once saying "another herald" and the holder's pid, and `send` is
    refused the same way while the lock is held; no duplicates;
  - SIGTERM: the in-flight messages are finished and recorded, exit 0, no
    row left in 'sending', the rest pending; a resume mails nobody twice;
  - a second signal (SIGINT then SIGTERM) aborts at once, and the next run
    still finishes the send within the duplicate bound.
The random points come from a seeded generator: set HERALD_TEST_SEED to
replay a failing run (the seed is printed on failure).
"""
import collections
import os
import random
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, World, check, iso, run_tests, wait_until  # noqa: E402

EX_TEMPFAIL = 75
SEED = int(os.environ.get("HERALD_TEST_SEED", "20261126"))


def world(n, connections=4):
    w = World()
    w.init()
    w.set("smtp", connections=connections)
    w.emails = ["r%05d@example.org" % i for i in range(n)]
    w.subscribe(w.emails)
    w.iid = w.new_issue(subject="Crash test", body="Hi {{name|reader}}.\n")
    w.ok("issue", "schedule", w.iid, "--at", iso(time.time() - 60))
    return w


def states(w):
    return collections.Counter(s for s, in w.sql(
        "SELECT status FROM deliveries WHERE issue_id = ?", int(w.iid)))


def issue_status(w):
    return w.sql("SELECT status FROM issues WHERE id = ?", int(w.iid))[0][0]


def sent_rows(w):
    return {e for e, in w.sql("SELECT s.email FROM deliveries d JOIN subscribers s "
                              "ON s.id = d.subscriber_id WHERE d.status = 'sent'")}


def check_duplicates(server, emails, bound):
    """Every recipient delivered; at most `bound` extra copies, each with
    the first copy's Message-ID; returns the number of duplicates."""
    acc = server.accepted()
    got = collections.Counter(r for r, _ in acc)
    missing = set(emails) - set(got)
    check(not missing, "%d recipients never mailed, e.g. %s", len(missing),
          sorted(missing)[:5])
    check(set(got) == set(emails), "mailed strangers: %s", set(got) - set(emails))
    dups = len(acc) - len(got)
    check(dups <= bound, "%d duplicates, at most %d allowed: %s", dups, bound,
          {r: n for r, n in got.items() if n > 1})
    mids = collections.defaultdict(set)
    for r, m in acc:
        mids[r].add(m)
    bad = {r: m for r, m in mids.items() if len(m) != 1 or None in m}
    check(not bad, "a re-sent copy has another Message-ID: %s", bad)
    check(len({next(iter(m)) for m in mids.values()}) == len(emails),
          "two recipients share a Message-ID")
    return dups


def test_sigkill_at_random_points():
    rng = random.Random(SEED)
    kills = 4
    with world(3000) as w:
        server = w.smtp()
        unrecorded, ever = set(), set()
        try:
            for k in range(kills):
                base = server.count()
                bg = w.spawn("run")
                if k == 0:
                    # anywhere in the first second (the snapshot, the first
                    # connections, the first messages), but before 600 went
                    until = time.time() + rng.uniform(0.02, 1.0)
                    wait_until(lambda: time.time() >= until or server.count() >= 600 or
                               bg.poll() is not None, 10, "the first kill", interval=0.005)
                else:
                    target = base + rng.randint(20, 400)
                    wait_until(lambda: server.count() >= target or bg.poll() is not None,
                               60, "%d messages" % target, interval=0.005)
                    time.sleep(rng.uniform(0, 0.05))
                check(bg.poll() is None, "run %d ended before the kill (exit %s): %s", k,
                      bg.poll(), bg.stderr_text)
                bg.signal(signal.SIGKILL)
                bg.wait(10)
                # what the server kept but the ledger does not have as sent
                # will be sent again: at most one per connection per kill
                time.sleep(0.3)   # let the server finish what it received
                now_unrecorded = {r for r, _ in server.accepted()} - sent_rows(w)
                new = now_unrecorded - unrecorded
                check(len(new) <= 4, "kill %d: %d messages delivered but not recorded "
                      "(connections = 4): %s", k, len(new), sorted(new))
                unrecorded = now_unrecorded
                ever |= new
            check(server.count() < 3000, "everything was sent before the last kill")
            p = w.run("run", timeout=120)
            check(p.returncode == 0, "resume after %d kills: exit %d\n%s", kills,
                  p.returncode, p.stderr_text)
            dups = check_duplicates(server, w.emails, 4 * kills)
            twice = {r for r, n in collections.Counter(
                r for r, _ in server.accepted()).items() if n > 1}
            check(twice <= ever, "re-sent although recorded as sent: %s", twice - ever)
            check(states(w) == {"sent": 3000}, "ledger %s", states(w))
            check(issue_status(w) == "sent", "issue %s", issue_status(w))
            # the ledger agrees with the server
            check(sent_rows(w) == set(w.emails), "sent rows differ from the log")
            p = w.run("run", check_rc=0)
            check(p.stdout_text == "" and p.stderr_text == "",
                  "nothing due, yet run printed %r %r", p.stdout_text, p.stderr_text)
            print("     %d duplicates after %d kills (seed %d)" % (dups, kills, SEED))
        except Exception as e:
            raise Failure("%s: %s [HERALD_TEST_SEED=%d]" % (type(e).__name__, e, SEED)) from e


def test_two_runs_at_once():
    with world(100) as w:
        # 100 recipients, 0.1 s each at RCPT over 4 connections: ~2.5 s
        server = w.smtp(rules=[{"stage": "rcpt", "delay": 0.1}])
        a = w.spawn("run")
        b = w.spawn("run")
        first = wait_until(lambda: [p for p in (a, b) if p.poll() is not None], 10,
                           "one of the two runs to exit")[0]
        loser, winner = (first, b if first is a else a)
        check(loser.poll() == EX_TEMPFAIL, "the second run exited %d, wanted 75: %s%s",
              loser.poll(), loser.stdout_text, loser.stderr_text)
        check(time.time() - loser.started < 5, "the second run did not exit at once")
        msg = loser.stderr_text.strip()
        check("another herald" in msg, "message: %r", msg)
        check(len(msg.splitlines()) == 1, "not one line: %r", msg)
        check(winner.poll() is None, "the winner ended before the loser was refused")
        # send takes the same lock
        p = w.run("send", w.iid)
        check(p.returncode == EX_TEMPFAIL and "another herald" in p.stderr_text,
              "send while run holds the lock: exit %d %s", p.returncode, p.stderr_text)
        # (checked here rather than on the loser above: a loser that starts
        # in the same instant may look before the holder has written its pid)
        check(re.search(r"\b%d\b" % winner.pid, p.stderr_text),
              "the holder's pid %d is not in %r", winner.pid, p.stderr_text)
        rc = winner.wait(60)
        check(rc == 0, "the winner exited %d: %s", rc, winner.stderr_text)
        dups = check_duplicates(server, w.emails, 0)
        check(dups == 0, "duplicates")
        check(states(w) == {"sent": 100}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_sigterm_finishes_in_flight():
    with world(300) as w:
        # the first 100 RCPTs take 0.1 s each (~2.5 s over 4 connections)
        server = w.smtp(rules=[{"stage": "rcpt", "delay": 0.1, "times": 100}])
        bg = w.spawn("run")
        wait_until(lambda: server.count() >= 30 or bg.poll() is not None, 30,
                   "30 messages")
        check(bg.poll() is None, "the send ended before SIGTERM: %s", bg.stderr_text)
        bg.signal(signal.SIGTERM)
        t = time.time()
        rc = bg.wait(15)
        check(rc == 0, "SIGTERM: exit %d, wanted 0: %s", rc, bg.stderr_text)
        check(time.time() - t < 8, "took %.1f s to stop", time.time() - t)
        st = states(w)
        check(st["sending"] == 0, "rows left in 'sending': %s", st)
        check(st["pending"] > 0, "nothing left pending: SIGTERM came too late? %s", st)
        check(st["pending"] + st["sent"] == 300, "ledger %s", st)
        # every in-flight message finished and was recorded: the ledger's
        # sent rows are exactly what the server accepted
        got = collections.Counter(r for r, _ in server.accepted())
        check(sent_rows(w) == set(got), "sent rows != accepted: %d vs %d",
              len(sent_rows(w)), len(got))
        p = w.run("run", timeout=120)
        check(p.returncode == 0, "resume: %d %s", p.returncode, p.stderr_text)
        check_duplicates(server, w.emails, 0)
        check(states(w) == {"sent": 300}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_second_signal_aborts():
    with world(40) as w:
        # the first four messages (one per connection) hang for 10 s at RCPT
        server = w.smtp(rules=[{"stage": "rcpt", "delay": 10, "times": 4}])
        bg = w.spawn("run")
        wait_until(lambda: w.sql("SELECT count(*) FROM deliveries WHERE status = 'sending'")
                   [0][0] >= 1 if os.path.exists(w.db) else False, 20, "a claimed row")
        time.sleep(0.5)
        bg.signal(signal.SIGINT)
        time.sleep(0.5)
        check(bg.poll() is None, "exited on the first signal with messages in flight")
        bg.signal(signal.SIGTERM)
        t = time.time()
        bg.wait(15)
        check(time.time() - t < 4, "the second signal took %.1f s to stop the run "
              "(messages were still in flight for ~9 s)", time.time() - t)
        p = w.run("run", timeout=120)
        check(p.returncode == 0, "resume: %d %s", p.returncode, p.stderr_text)
        # (aiosmtpd cancels a transaction whose client is gone, so the hung
        # ones are not delivered; the bound holds either way)
        check_duplicates(server, w.emails, 4)
        check(states(w) == {"sent": 40}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


run_tests([
    ("sigkill_at_random_points", test_sigkill_at_random_points),
    ("two_runs_at_once", test_two_runs_at_once),
    ("sigterm_finishes_in_flight", test_sigterm_finishes_in_flight),
    ("second_signal_aborts", test_second_signal_aborts),
])
