#!/usr/bin/python3
"""test_run_control.py - the cron entry point and control of a running send.

What the cron entry point and the send controls promise (docs/sending.md,
"How a send works", and docs/operations.md, "Cron"), each point checked:
  - `herald run` with nothing due exits 0 and prints nothing at all; it
    sends an issue whose scheduled time has come and leaves one scheduled
    in the future alone (until --now says its time has come);
  - `issue pause` during a send: the process stops within seconds, exit 0,
    in-flight messages recorded, the rest pending, status paused; `send`
    refuses a paused issue (65); `issue resume` + `run` finish it with no
    duplicates.  `issue cancel` during a send stops it for good;
  - someone who unsubscribes during the send is skipped, someone who joins
    is not added;
  - pacing: 200 messages at rate = 50 take about 4 s; max_per_hour = 100
    sends exactly 100 of 150, the run then ends, the window is remembered
    across runs, and two hours later the rest go; a relay whose window is
    full lets the next relay of the pool send; --max-time stops gracefully;
  - progress: off a terminal a long send prints progress lines ("/s");
    with --quiet, send and run print nothing.
The SMTP server is tests/tools/smtpd.py; its JSON log is the record of what
was delivered.
"""
import collections
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, iso, run_tests, wait_until  # noqa: E402

EX_DATAERR = 65
HOUR = 3600


def world(n, connections=2, **smtp_keys):
    w = World()
    w.init()
    w.set("smtp", connections=connections, **smtp_keys)
    w.emails = ["reader%03d@example.org" % i for i in range(n)]
    w.subscribe(w.emails)
    w.iid = w.new_issue()
    return w


def states(w, iid=None):
    return collections.Counter(s for s, in w.sql(
        "SELECT status FROM deliveries WHERE issue_id = ?", int(iid or w.iid)))


def issue_status(w, iid=None):
    return w.sql("SELECT status FROM issues WHERE id = ?", int(iid or w.iid))[0][0]


def delivered(server):
    return collections.Counter(r for r, _ in server.accepted())


def sent_rows(w):
    return {e for e, in w.sql("SELECT s.email FROM deliveries d JOIN subscribers s "
                              "ON s.id = d.subscriber_id WHERE d.status = 'sent' "
                              "AND d.issue_id = ?", int(w.iid))}


def quiet_output(p, what):
    check(p.stdout_text == "" and p.stderr_text == "", "%s printed: %r %r", what,
          p.stdout_text, p.stderr_text)


# --- run: nothing due, scheduled ----------------------------------------------------

def test_run_nothing_due_is_silent():
    with world(3) as w:
        w.smtp()
        # a fresh database, a draft issue, and one scheduled for tomorrow
        quiet_output(w.run("run", check_rc=0), "run with nothing due")
        later = w.new_issue(subject="Tomorrow")
        w.ok("issue", "schedule", later, "--at", iso(time.time() + 86400))
        quiet_output(w.run("run", check_rc=0), "run with nothing due")
        quiet_output(w.run("--quiet", "run", check_rc=0), "run --quiet with nothing due")
        check(w.sql("SELECT count(*) FROM deliveries")[0][0] == 0, "a run started a send")
        check(issue_status(w) == "draft" and issue_status(w, later) == "scheduled",
              "statuses changed: %s", w.sql("SELECT id, status FROM issues"))


def test_run_sends_due_scheduled_issue_only():
    with world(5) as w:
        server = w.smtp()
        t0 = time.time()
        w.ok("issue", "schedule", w.iid, "--at", iso(t0 - 120))
        later = w.new_issue(subject="Next week")
        w.ok("issue", "schedule", later, "--at", iso(t0 + 7 * 86400))
        w.ok("run")
        check(issue_status(w) == "sent", "the due issue is %s", issue_status(w))
        check(issue_status(w, later) == "scheduled", "the future issue is %s",
              issue_status(w, later))
        check(not states(w, later), "the future issue was snapshotted")
        subjects = collections.Counter(msg["Subject"] for _, msg, _ in server.messages())
        check(subjects == {"Hello": 5}, "delivered %s", dict(subjects))
        # a week later its time has come
        w.ok("--now", iso(t0 + 7 * 86400 + 60), "run")
        check(issue_status(w, later) == "sent", "the future issue is %s a week later",
              issue_status(w, later))
        subjects = collections.Counter(msg["Subject"] for _, msg, _ in server.messages())
        check(subjects == {"Hello": 5, "Next week": 5}, "delivered %s", dict(subjects))
        # nothing more to do: silent again
        quiet_output(w.run("--now", iso(t0 + 7 * 86400 + 120), "run", check_rc=0),
                     "run after everything was sent")


# --- pause / resume / cancel during a send --------------------------------------------

def start_slow_send(w, n_slow, delay):
    """A smtpd whose first n_slow RCPTs take `delay` s, and `herald send`
    started in the background; returns (server, bg) once a few messages
    have gone."""
    server = w.smtp(rules=[{"stage": "rcpt", "delay": delay, "times": n_slow}])
    bg = w.spawn("send", w.iid)
    wait_until(lambda: server.count() >= 3 or bg.poll() is not None, 30, "3 messages")
    check(bg.poll() is None, "the send ended too soon: %s", bg.stderr_text)
    return server, bg


def test_pause_resume_during_send():
    with world(40) as w:
        # the first 16 recipients take 0.5 s each over 2 connections: ~4 s
        server, bg = start_slow_send(w, 16, 0.5)
        w.ok("issue", "pause", w.iid)
        t = time.time()
        rc = bg.wait(15)
        check(rc == 0, "paused send: exit %d: %s", rc, bg.stderr_text)
        check(time.time() - t < 5, "took %.1f s to notice the pause", time.time() - t)
        check(issue_status(w) == "paused", "issue %s", issue_status(w))
        st = states(w)
        check(st["sending"] == 0, "rows left in 'sending': %s", st)
        check(st["pending"] > 0 and st["pending"] + st["sent"] == 40, "ledger %s", st)
        check(sent_rows(w) == set(delivered(server)), "in-flight messages not recorded")
        # nothing moves while paused
        n = server.count()
        p = w.run("send", w.iid)
        check(p.returncode == EX_DATAERR and re.search(r"paused", p.stderr_text),
              "send on a paused issue: exit %d %s", p.returncode, p.stderr_text)
        w.ok("run")
        check(server.count() == n and issue_status(w) == "paused", "run sent a paused issue")
        w.ok("issue", "resume", w.iid)
        check(issue_status(w) == "sending", "resumed issue is %s", issue_status(w))
        w.ok("run", timeout=120)
        got = delivered(server)
        check(set(got) == set(w.emails) and max(got.values()) == 1, "delivered %s",
              {r: c for r, c in got.items() if c != 1} or len(got))
        check(states(w) == {"sent": 40}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_pause_and_resume_before_start():
    with world(3) as w:
        server = w.smtp()
        w.ok("issue", "schedule", w.iid, "--at", iso(time.time() + 600))
        w.ok("issue", "pause", w.iid)
        check(issue_status(w) == "paused", "issue %s", issue_status(w))
        w.ok("--now", iso(time.time() + 1200), "run")
        check(server.count() == 0, "a paused scheduled issue was sent")
        w.ok("issue", "resume", w.iid)
        check(issue_status(w) == "scheduled", "resumed (never started) issue is %s",
              issue_status(w))
        w.ok("--now", iso(time.time() + 1200), "run")
        check(issue_status(w) == "sent" and server.count() == 3, "after resume: %s, %d",
              issue_status(w), server.count())


def test_cancel_during_send():
    with world(40) as w:
        server, bg = start_slow_send(w, 16, 0.5)
        w.ok("issue", "cancel", w.iid)
        t = time.time()
        rc = bg.wait(15)
        check(rc == 0, "cancelled send: exit %d: %s", rc, bg.stderr_text)
        check(time.time() - t < 5, "took %.1f s to notice the cancel", time.time() - t)
        check(issue_status(w) == "cancelled", "issue %s", issue_status(w))
        st = states(w)
        check(st["sending"] == 0, "rows left in 'sending': %s", st)
        check(st["sent"] < 40, "everything was sent anyway: %s", st)
        check(sent_rows(w) == set(delivered(server)), "in-flight messages not recorded")
        n = server.count()
        w.ok("run")
        w.ok("--now", iso(time.time() + 86400), "run")
        check(server.count() == n, "run resumed a cancelled issue")
        check(issue_status(w) == "cancelled", "issue %s", issue_status(w))


def test_unsubscribe_during_send():
    with world(30) as w:
        # everyone is slow (0.25 s at RCPT, 2 connections: ~4 s); the last
        # subscriber (highest id) leaves right after the snapshot.  One
        # build worker keeps the claimed backlog small (16 rows) whatever
        # the machine's CPU count, so the last row is not yet claimed.
        w.set("send", workers=1)
        server = w.smtp(rules=[{"stage": "rcpt", "delay": 0.25}])
        last = w.emails[-1]
        bg = w.spawn("send", w.iid)
        wait_until(lambda: w.sql("SELECT count(*) FROM deliveries")[0][0] == 30, 20,
                   "the snapshot")
        w.ok("sub", "unsubscribe", last, "--list", "newsletter")
        w.ok("sub", "add", "newcomer@example.org", "--list", "newsletter")
        rc = bg.wait(60)
        check(rc == 0, "send: exit %d %s", rc, bg.stderr_text)
        got = delivered(server)
        check(last not in got, "mailed someone who unsubscribed during the send")
        check("newcomer@example.org" not in got, "mailed someone who joined during the send")
        check(set(got) == set(w.emails[:-1]) and max(got.values()) == 1, "delivered %s",
              dict(got))
        row = w.sql("SELECT d.status FROM deliveries d JOIN subscribers s ON s.id = "
                    "d.subscriber_id WHERE s.email = ?", last)
        check(row == [("skipped",)], "the leaver's row: %s", row)
        check(not w.sql("SELECT 1 FROM deliveries d JOIN subscribers s ON s.id = "
                        "d.subscriber_id WHERE s.email = 'newcomer@example.org'"),
              "the newcomer was added to the send")
        check(states(w) == {"sent": 29, "skipped": 1}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


# --- pacing -------------------------------------------------------------------------------

def test_rate_limit():
    with world(200, connections=4, rate=50) as w:
        server = w.smtp()
        t = time.time()
        w.ok("send", w.iid, timeout=120)
        elapsed = time.time() - t
        check(3 <= elapsed <= 12, "200 messages at 50/s took %.1f s (about 4 wanted)",
              elapsed)
        times = sorted(e["time"] for e in server.events("accept"))
        check(len(times) == 200, "delivered %d", len(times))
        check(times[-1] - times[0] >= 2.5, "the messages went in %.1f s: not paced",
              times[-1] - times[0])
        busiest = max(sum(1 for x in times if s <= x < s + 1) for s in times)
        check(busiest <= 100, "%d messages in one second at rate = 50", busiest)


def run_limited(w, limit, *args):
    """herald ARGS, which must exit 0 within `limit` seconds."""
    bg = w.spawn(*args)
    rc = bg.wait(limit)
    check(rc == 0, "herald %s: exit %d: %s", " ".join(args), rc, bg.stderr_text)
    return bg


def test_max_per_hour_window():
    with world(150, connections=4, max_per_hour=100) as w:
        server = w.smtp()
        t0 = time.time()
        w.ok("issue", "schedule", w.iid, "--at", iso(t0 - 60))
        # the run ends when the window is full: the rest waits for a later
        # run (cron), not for an hour in this one
        run_limited(w, 20, "run")
        check(server.count() == 100, "sent %d in the first hour, wanted exactly 100",
              server.count())
        st = states(w)
        check(st == {"sent": 100, "pending": 50}, "ledger %s", st)
        check(issue_status(w) == "sending", "issue %s", issue_status(w))
        # half an hour later the window is still full: across runs
        run_limited(w, 20, "--now", iso(t0 + HOUR / 2), "run")
        check(server.count() == 100, "the window was forgotten between runs: %d sent",
              server.count())
        # two hours later the rest go
        run_limited(w, 20, "--now", iso(t0 + 2 * HOUR), "run")
        got = delivered(server)
        check(set(got) == set(w.emails) and max(got.values()) == 1, "delivered %d",
              len(got))
        check(states(w) == {"sent": 150}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_full_window_lets_the_next_relay_send():
    with world(30, connections=2, max_per_hour=10) as w:
        primary = w.smtp(section="smtp")
        backup = w.smtp(section="smtp.backup")
        w.set("smtp.backup", connections=2, timeout=20)
        w.ok("issue", "schedule", w.iid, "--at", iso(time.time() - 60))
        run_limited(w, 20, "run")
        check(primary.count() == 10, "the first relay sent %d, its window is 10/h",
              primary.count())
        check(backup.count() == 20, "the backup sent %d of the other 20", backup.count())
        got = delivered(primary) + delivered(backup)
        check(set(got) == set(w.emails) and max(got.values()) == 1, "delivered %s", dict(got))
        check(states(w) == {"sent": 30}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_max_time_stops_gracefully():
    with world(100, connections=2, rate=10) as w:
        server = w.smtp()
        w.ok("issue", "schedule", w.iid, "--at", iso(time.time() - 60))
        t = time.time()
        w.ok("run", "--max-time", "2", timeout=60)
        elapsed = time.time() - t
        check(elapsed < 8, "run --max-time 2 took %.1f s", elapsed)
        st = states(w)
        check(st["sending"] == 0 and st["pending"] > 0 and st["sent"] > 0,
              "ledger after --max-time: %s", st)
        check(sent_rows(w) == set(delivered(server)), "in-flight messages not recorded")
        w.set("smtp", rate=0)
        w.ok("run", timeout=60)
        got = delivered(server)
        check(set(got) == set(w.emails) and max(got.values()) == 1, "delivered %d", len(got))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


# --- progress ---------------------------------------------------------------------------------

PROGRESS = re.compile(r"\d+/\d+.*\d(\.\d+)?/s")


def test_progress_off_a_terminal():
    with world(70, rate=10) as w:
        w.smtp()
        p = w.ok("send", w.iid, timeout=60)   # ~7 s, stdout and stderr are pipes
        lines = [l for l in (p.stdout_text + p.stderr_text).splitlines()
                 if PROGRESS.search(l)]
        check(lines, "no progress line in a 7 s send:\n%s%s", p.stdout_text, p.stderr_text)
        check("\r" not in p.stdout_text + p.stderr_text, "a progress bar off a terminal")
        check(re.search(r"issue %s: 70 recipients: 70 sent" % w.iid, p.stdout_text),
              "summary: %s", p.stdout_text)


def test_quiet_prints_nothing():
    with world(60, rate=10) as w:
        server = w.smtp()
        p = w.ok("--quiet", "send", w.iid, timeout=60)   # ~6 s
        quiet_output(p, "send --quiet")
        check(server.count() == 60, "delivered %d", server.count())
        # and the cron path
        w.set("smtp", rate=0)
        later = w.new_issue(subject="Again")
        w.ok("issue", "schedule", later, "--at", iso(time.time() - 60))
        quiet_output(w.ok("--quiet", "run", timeout=60), "run --quiet")
        check(server.count() == 120 and issue_status(w, later) == "sent",
              "run --quiet did not send: %d", server.count())


run_tests([
    ("run_nothing_due_is_silent", test_run_nothing_due_is_silent),
    ("run_sends_due_scheduled_issue_only", test_run_sends_due_scheduled_issue_only),
    ("pause_resume_during_send", test_pause_resume_during_send),
    ("pause_and_resume_before_start", test_pause_and_resume_before_start),
    ("cancel_during_send", test_cancel_during_send),
    ("unsubscribe_during_send", test_unsubscribe_during_send),
    ("rate_limit", test_rate_limit),
    ("max_per_hour_window", test_max_per_hour_window),
    ("full_window_lets_the_next_relay_send", test_full_window_lets_the_next_relay_send),
    ("max_time_stops_gracefully", test_max_time_stops_gracefully),
    ("progress_off_a_terminal", test_progress_off_a_terminal),
    ("quiet_prints_nothing", test_quiet_prints_nothing),
])
