#!/usr/bin/python3
"""test_run_faults.py - every SMTP fault ends in the right ledger state.

Each case sends a short issue through tests/tools/smtpd.py with fault rules
(421 at connect, 451/454/550 at RCPT, a drop at DATA, a drop after the final
dot with or without the message kept, a slow server, 554 after the dot) and
checks deliveries.status, attempts, smtp_code and smtp_reply against the
ledger's states and invariants (include/herald/ledger.h) and the outcome
classification of include/herald/smtp.h (a 4xx or a drop defers, a 5xx to
RCPT or after the data bounces, a refused connection is the relay's fault),
with the server's JSON log as the independent record of what was delivered.
Retries happen on a later `herald run`, fast-forwarded with the global
--now option past next_attempt_at; a deferred row whose retry window (3
days) has passed becomes failed; `issue failures` lists failed and bounced
rows with the relay's words and `issue retry` puts failed ones back.  The
issue is `sent` only when no row is pending, sending or deferred; [send]
retry and retry_window change the schedule.  Also: a relay that refuses
connections stops the run (69) unless a second relay [smtp.backup] takes
over; connections are reused (the send summary's "over N connections");
and a relay slow to answer the final dot does not serialise the
connections.
"""
import collections
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, iso, run_tests  # noqa: E402

EX_UNAVAILABLE = 69
HOUR = 3600
DAY = 86400


# --- helpers ---------------------------------------------------------------

def world(emails, connections=2, **smtp_keys):
    """An initialised world with EMAILS subscribed to 'newsletter' and one
    short issue; w.iid is its id."""
    w = World()
    w.init()
    w.set("smtp", connections=connections, **smtp_keys)
    w.subscribe(emails)
    w.iid = w.new_issue()
    return w


def due_now(w):
    """Schedule w's issue at a time already past, so `run` sends it."""
    w.ok("issue", "schedule", w.iid, "--at", iso(time.time() - 60))


def ledger(w):
    """{email: row dict} for every delivery of w's issue."""
    out = {}
    for email, status, attempts, code, reply, nxt in w.sql(
            "SELECT s.email, d.status, d.attempts, d.smtp_code, d.smtp_reply, "
            "d.next_attempt_at FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
            "WHERE d.issue_id = ?", int(w.iid)):
        out[email] = dict(status=status, attempts=attempts, code=code, reply=reply or "",
                          next=nxt)
    return out


def states(w):
    return collections.Counter(r["status"] for r in ledger(w).values())


def issue_status(w):
    return w.sql("SELECT status FROM issues WHERE id = ?", int(w.iid))[0][0]


def delivered(*servers):
    """Counter of recipients over the servers' logs."""
    c = collections.Counter()
    for s in servers:
        c.update(r for r, _ in s.accepted())
    return c


def run(w, *args, now=None, rc=0, timeout=120):
    pre = ("--now", iso(now)) if now is not None else ()
    return w.run(*(pre + ("run",) + args), check_rc=rc, timeout=timeout)


def reader(i):
    return "reader%03d@example.org" % i


# --- relay-level refusals ----------------------------------------------------

def test_421_at_connect_single_relay():
    emails = [reader(i) for i in range(5)]
    with world(emails) as w:
        server = w.smtp(rules=[{"stage": "connect",
                                "reply": "421 4.3.2 Service not available, closing"}])
        due_now(w)
        p = w.run("run", timeout=120)
        check(p.returncode == EX_UNAVAILABLE, "421 at connect: exit %d, wanted 69\n%s%s",
              p.returncode, p.stdout_text, p.stderr_text)
        check("421" in p.stderr_text, "the relay's reply is not shown: %s", p.stderr_text)
        check(server.events("refuse"), "the relay was never tried")
        rows = ledger(w)
        check(all(r["status"] == "pending" and r["attempts"] == 0 for r in rows.values()),
              "rows after a refusing relay: %s", rows)
        check(not server.accepted(), "delivered through a refusing relay?")
        check(issue_status(w) != "sent", "issue sent with nobody mailed")


def test_421_at_connect_backup_takes_over():
    emails = [reader(i) for i in range(20)]
    with world(emails) as w:
        primary = w.smtp(rules=[{"stage": "connect",
                                 "reply": "421 4.3.2 Service not available, closing"}],
                         section="smtp")
        backup = w.smtp(section="smtp.backup")
        w.set("smtp.backup", connections=2, timeout=20)
        w.ok("config", "check")
        due_now(w)
        p = run(w)
        check(primary.events("refuse"), "the first relay was not tried first")
        check(not primary.accepted(), "the refusing relay delivered something")
        got = delivered(backup)
        check(set(got) == set(emails) and max(got.values()) == 1,
              "the backup delivered %s", dict(got))
        check(states(w) == {"sent": 20}, "ledger %s (%s)", states(w), p.stderr_text)
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


# --- recipient-level faults ----------------------------------------------------

def test_451_at_rcpt_deferred_then_sent():
    emails = [reader(i) for i in range(6)] + ["later@example.org"]
    with world(emails) as w:
        server = w.smtp(rules=[{"stage": "rcpt", "match": "^later@",
                                "reply": "451 4.7.1 greylisted, please try again", "times": 1}])
        due_now(w)
        t0 = time.time()
        run(w)
        row = ledger(w)["later@example.org"]
        check(row["status"] == "deferred" and row["attempts"] == 1 and row["code"] == 451,
              "after 451: %s", row)
        check("greylisted" in row["reply"], "reply not kept: %s", row)
        # first backoff step is 5 minutes (default retry schedule)
        check(row["next"] and t0 + 4 * 60 <= row["next"] <= time.time() + 6 * 60,
              "next_attempt_at %s is not about 5 minutes after %d", row["next"], t0)
        check(states(w) == {"sent": 6, "deferred": 1}, "ledger %s", states(w))
        check(issue_status(w) == "sending", "issue %s with a deferred row", issue_status(w))

        # not due yet: a run does nothing and says nothing
        p = run(w)
        check(p.stdout_text == "" and p.stderr_text == "",
              "run with nothing due printed: %r %r", p.stdout_text, p.stderr_text)
        check(delivered(server)["later@example.org"] == 0, "retried before its time")

        run(w, now=t0 + HOUR)
        row = ledger(w)["later@example.org"]
        check(row["status"] == "sent" and row["attempts"] == 2, "after the retry: %s", row)
        got = delivered(server)
        check(set(got) == set(emails) and max(got.values()) == 1, "delivered %s", dict(got))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_454_throttling_defers_and_slows():
    # 120 recipients at rate = 30/s take about 4 s unthrottled.  Four of
    # them, early in the order, get the SES-style throttling reply: those
    # rows are deferred, the rest are sent, and the send slows down: the
    # relay's rate halves (and recovers later), so the 2 s after the first
    # throttling reply see about 30 accepts instead of 60; fail above 45.
    emails = [reader(i) for i in range(120)]
    throttled = [reader(i) for i in (30, 31, 32, 33)]
    with world(emails, connections=2, rate=30) as w:
        server = w.smtp(rules=[{"stage": "rcpt", "match": "^reader03[0-3]@",
                                "reply": "454 4.7.0 Throttling failure: Maximum sending "
                                         "rate exceeded.", "times": 4}])
        due_now(w)
        t0 = time.time()
        run(w)
        elapsed = time.time() - t0
        rows = ledger(w)
        for e in throttled:
            check(rows[e]["status"] == "deferred" and rows[e]["code"] == 454,
                  "%s after 454: %s", e, rows[e])
            check("Throttling" in rows[e]["reply"], "reply not kept: %s", rows[e])
        check(states(w) == {"sent": 116, "deferred": 4}, "ledger %s", states(w))
        got = delivered(server)
        check(len(got) == 116 and max(got.values()) == 1, "delivered %d", len(got))
        # the slow-down: accepts within 2 s after the first throttling reply
        first = min(e["time"] for e in server.events("refuse"))
        after = [e for e in server.events("accept") if first < e["time"] <= first + 2.0]
        print("     %d accepts in the 2 s after the first 454" % len(after))
        check(len(after) <= 45, "%d messages in the 2 s after a throttling reply at "
              "rate = 30: not slowed down (run took %.1f s)", len(after), elapsed)
        check(elapsed < 60, "run took %.1f s", elapsed)
        run(w, now=time.time() + HOUR)
        check(states(w) == {"sent": 120}, "after the retry: %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_550_at_rcpt_bounced():
    emails = [reader(i) for i in range(4)] + ["bad-1@example.org", "bad-2@example.org"]
    with world(emails) as w:
        server = w.smtp(rules=[{"stage": "rcpt", "match": "^bad-",
                                "reply": "550 5.1.1 <mailbox> user unknown"}])
        due_now(w)
        run(w)
        rows = ledger(w)
        for e in ("bad-1@example.org", "bad-2@example.org"):
            check(rows[e]["status"] == "bounced" and rows[e]["code"] == 550 and
                  rows[e]["attempts"] == 1, "%s after 550: %s", e, rows[e])
            check("user unknown" in rows[e]["reply"], "reply not kept: %s", rows[e])
            check(rows[e]["next"] is None, "a bounced row has a retry time: %s", rows[e])
        check(states(w) == {"sent": 4, "bounced": 2}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "bounces keep the issue from being sent: %s",
              issue_status(w))
        # a later run does not try a bounced row again
        run(w, now=time.time() + 5 * DAY)
        check(delivered(server)["bad-1@example.org"] == 0, "a bounced row was re-sent")
        check(ledger(w)["bad-1@example.org"]["attempts"] == 1, "attempted again")


def test_554_after_dot_bounced():
    emails = [reader(i) for i in range(4)] + ["spam@example.org"]
    with world(emails) as w:
        server = w.smtp(rules=[{"stage": "eod", "match": "^spam@",
                                "reply": "554 5.7.1 message rejected as spam"}])
        due_now(w)
        run(w)
        row = ledger(w)["spam@example.org"]
        check(row["status"] == "bounced" and row["code"] == 554, "after 554: %s", row)
        check("rejected as spam" in row["reply"], "reply not kept: %s", row)
        check(states(w) == {"sent": 4, "bounced": 1}, "ledger %s", states(w))
        check("spam@example.org" not in delivered(server), "the refused message was kept")


def test_drops_deferred_then_sent():
    # data: the server closes the connection at DATA;  eod: after the final
    # dot, message discarded;  dup: after the final dot, message KEPT but
    # the reply lost, so the retry is a duplicate with the same Message-ID.
    emails = [reader(i) for i in range(6)] + [
        "dropdata@example.org", "dropeod@example.org", "dup@example.org"]
    with world(emails) as w:
        server = w.smtp(rules=[
            {"stage": "data", "match": "^dropdata@", "action": "drop", "times": 1},
            {"stage": "eod", "match": "^dropeod@", "action": "drop", "times": 1},
            {"stage": "eod", "match": "^dup@", "action": "accept_drop", "times": 1},
        ])
        due_now(w)
        run(w)
        rows = ledger(w)
        for e in ("dropdata@example.org", "dropeod@example.org", "dup@example.org"):
            check(rows[e]["status"] == "deferred" and rows[e]["attempts"] == 1,
                  "%s after a dropped connection: %s", e, rows[e])
            check(rows[e]["next"] and rows[e]["next"] > time.time(), "no retry time: %s",
                  rows[e])
        check(states(w) == {"sent": 6, "deferred": 3}, "ledger %s", states(w))
        check(issue_status(w) == "sending", "issue %s", issue_status(w))

        run(w, now=time.time() + HOUR)
        check(states(w) == {"sent": 9}, "after the retry: %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))
        got = delivered(server)
        check(got["dropdata@example.org"] == 1 and got["dropeod@example.org"] == 1,
              "delivered %s", dict(got))
        check(got["dup@example.org"] == 2, "the kept-then-dropped message: %d copies",
              got["dup@example.org"])
        mids = [m for r, m in server.accepted() if r == "dup@example.org"]
        check(mids[0] and mids[0] == mids[1], "the re-sent copy has another Message-ID: %s",
              mids)
        check(all(got[e] == 1 for e in emails if e != "dup@example.org"), "duplicates: %s",
              dict(got))


def test_slow_server_still_sent():
    emails = [reader(i) for i in range(6)] + ["slow1@example.org", "slow2@example.org",
                                              "sloweod@example.org"]
    with world(emails, connections=3) as w:
        server = w.smtp(rules=[{"stage": "rcpt", "match": "^slow[12]@", "delay": 2},
                               {"stage": "eod", "match": "^sloweod@", "delay": 2}])
        due_now(w)
        run(w)
        check(states(w) == {"sent": 9}, "ledger %s", states(w))
        got = delivered(server)
        check(set(got) == set(emails) and max(got.values()) == 1, "delivered %s", dict(got))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


def test_slow_after_dot_connections_in_parallel():
    # A relay that takes 1 s to answer the final dot (content scanning):
    # over connections = 4 the 8 messages are accepted in two waves of four,
    # about 1 s apart, when the connections really run side by side; 3 s
    # from the first accept to the last if only two ran at a time, 7 s if
    # one waiting answer holds up the rest.  Timed from the server's log, so
    # that herald's start and exit (slow under valgrind) do not count.
    emails = [reader(i) for i in range(8)]
    with world(emails, connections=4) as w:
        server = w.smtp(rules=[{"stage": "eod", "delay": 1}])
        due_now(w)
        run(w)
        check(states(w) == {"sent": 8}, "ledger %s", states(w))
        check(len(delivered(server)) == 8, "delivered %s", dict(delivered(server)))
        times = sorted(e["time"] for e in server.events("accept"))
        span = times[-1] - times[0]
        print("     8 accepts over %.1f s" % span)
        check(span < 2.5, "8 messages, 1 s each after the dot, over 4 connections were "
              "accepted over %.1f s: the connections wait for each other", span)


# --- the retry window, failures, retry -------------------------------------------

def test_retry_window_failures_and_retry():
    emails = [reader(i) for i in range(4)] + ["never@example.org", "bad@example.org"]
    with world(emails) as w:
        w.smtp(rules=[
            {"stage": "rcpt", "match": "^never@", "reply": "451 4.3.0 mailbox busy"},
            {"stage": "rcpt", "match": "^bad@", "reply": "550 5.1.1 no such user here"},
        ])
        due_now(w)
        t0 = time.time()
        run(w)
        check(ledger(w)["never@example.org"]["status"] == "deferred", "after 451: %s",
              ledger(w)["never@example.org"])

        # an hour later: retried, still deferred (the window is 3 days)
        run(w, now=t0 + HOUR)
        row = ledger(w)["never@example.org"]
        check(row["status"] == "deferred" and row["attempts"] == 2, "after an hour: %s", row)
        check(issue_status(w) == "sending", "issue %s with a deferred row", issue_status(w))

        # four days later: the window has passed -> failed
        run(w, now=t0 + 4 * DAY)
        row = ledger(w)["never@example.org"]
        check(row["status"] == "failed", "after 4 days: %s", row)
        check(row["code"] == 451 and "mailbox busy" in row["reply"], "reply lost: %s", row)
        check(states(w) == {"sent": 4, "failed": 1, "bounced": 1}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "nothing pending/deferred but issue %s",
              issue_status(w))

        # issue failures lists the failed and bounced rows with the relay's words
        p = w.ok("issue", "failures", w.iid, "--json")
        fails = json.loads(p.stdout_text)
        check(isinstance(fails, list) and len(fails) == 2, "failures: %s", p.stdout_text)
        by = {f["email"]: f for f in fails}
        check(set(by) == {"never@example.org", "bad@example.org"}, "failures: %s", by)
        for f in fails:
            check({"email", "status", "attempts", "smtp_code", "smtp_reply",
                   "updated_at"} <= set(f), "fields: %s", sorted(f))
        check(by["never@example.org"]["status"] == "failed" and
              by["never@example.org"]["smtp_code"] == 451 and
              "mailbox busy" in by["never@example.org"]["smtp_reply"] and
              by["never@example.org"]["attempts"] >= 2, "failed entry: %s",
              by["never@example.org"])
        check(by["bad@example.org"]["status"] == "bounced" and
              by["bad@example.org"]["smtp_code"] == 550 and
              "no such user here" in by["bad@example.org"]["smtp_reply"],
              "bounced entry: %s", by["bad@example.org"])
        text = w.ok("issue", "failures", w.iid).stdout_text
        for needle in ("never@example.org", "mailbox busy", "bad@example.org",
                       "no such user here"):
            check(needle in text, "issue failures does not show %r:\n%s", needle, text)

        # retry: failed -> pending, bounced stays; a run sends it (the relay
        # has recovered: a fresh server without the rules)
        server2 = w.smtp()
        p = w.ok("--now", iso(t0 + 4 * DAY + 60), "issue", "retry", w.iid)
        check(re.search(r"\b1\b", p.stdout_text), "retry does not say how many: %r",
              p.stdout_text)
        row = ledger(w)["never@example.org"]
        check(row["status"] == "pending", "after issue retry: %s", row)
        check(ledger(w)["bad@example.org"]["status"] == "bounced", "a bounce was retried")
        run(w, now=t0 + 4 * DAY + 120)
        got = delivered(server2)
        check(dict(got) == {"never@example.org": 1}, "after retry delivered %s", dict(got))
        check(states(w) == {"sent": 5, "bounced": 1}, "ledger %s", states(w))
        check(issue_status(w) == "sent", "issue %s", issue_status(w))
        check(json.loads(w.ok("issue", "failures", w.iid, "--json").stdout_text)[0]["email"]
              == "bad@example.org", "failures after the retry")


def test_custom_retry_schedule():
    # [send] retry = 2m 10m, retry_window = 1h: the backoff follows the
    # configured steps, the last one repeating, and the row fails once an
    # hour has passed since its first attempt.
    with world([reader(0), "later@example.org"]) as w:
        w.set("send", retry="2m 10m", retry_window="1h")
        w.smtp(rules=[{"stage": "rcpt", "match": "^later@", "reply": "451 4.3.0 try later"}])
        due_now(w)
        t0 = time.time()
        run(w)
        row = ledger(w)["later@example.org"]
        check(row["status"] == "deferred" and t0 + 100 <= row["next"] <= time.time() + 140,
              "first step is 2m: next %s, now %d: %s", row["next"], t0, row)
        run(w, now=t0 + 5 * 60)
        row = ledger(w)["later@example.org"]
        check(row["status"] == "deferred" and row["attempts"] == 2 and
              t0 + 5 * 60 + 540 <= row["next"] <= time.time() + 5 * 60 + 660,
              "second step is 10m: %s", row)
        run(w, now=t0 + 20 * 60)
        row = ledger(w)["later@example.org"]
        check(row["status"] == "deferred" and row["attempts"] == 3 and
              t0 + 20 * 60 + 540 <= row["next"] <= time.time() + 20 * 60 + 660,
              "after the last step, the last step repeats (10m): %s", row)
        run(w, now=t0 + 2 * HOUR)
        row = ledger(w)["later@example.org"]
        check(row["status"] == "failed", "2 h later, with retry_window = 1h: %s", row)
        check(issue_status(w) == "sent", "issue %s", issue_status(w))


# --- connections are reused ---------------------------------------------------------

def test_connections_reused():
    # 200 recipients over connections = 4; three refusals at RCPT, each
    # transaction ended with RSET and the session kept: 4 connections.
    emails = [reader(i) for i in range(197)] + ["bad-%d@example.org" % i for i in range(3)]
    with world(emails, connections=4) as w:
        server = w.smtp(rules=[{"stage": "rcpt", "match": "^bad-",
                                "reply": "550 5.1.1 user unknown"}])
        p = w.ok("send", w.iid, timeout=120)
        m = re.search(r"over (\d+) connections?", p.stdout_text)
        check(m, "no connection count in the summary: %s", p.stdout_text)
        n = int(m.group(1))
        check(1 <= n <= 4, "%d connections for 200 messages (connections = 4): %s", n,
              p.stdout_text)
        check(re.search(r"200 recipients: 197 sent, 0 deferred, 3 bounced", p.stdout_text),
              "summary: %s", p.stdout_text)
        got = delivered(server)
        check(len(got) == 197 and max(got.values()) == 1, "delivered %d", len(got))
        # every session ends with QUIT (RFC 5321 §4.1.1.10)
        check(len(server.events("quit")) == n, "%d QUITs for %d connections",
              len(server.events("quit")), n)


def test_pipelined_and_not():
    # The same faults on a relay offering PIPELINING (RFC 2920: MAIL, RCPT
    # and DATA in one write) and on one that does not (one command, one
    # reply): the same ledger, and each relay spoken to as it asked.
    for pipelining in (True, False):
        emails = [reader(i) for i in range(4)] + [
            "bad@example.org", "dropdata@example.org", "spam@example.org"]
        with world(emails, connections=1) as w:
            server = w.smtp(pipelining=pipelining, rules=[
                {"stage": "rcpt", "match": "^bad@", "reply": "550 5.1.1 user unknown"},
                {"stage": "data", "match": "^dropdata@", "action": "drop", "times": 1},
                {"stage": "eod", "match": "^spam@", "reply": "554 5.7.1 rejected as spam"}])
            due_now(w)
            run(w)
            rows = ledger(w)
            check(rows["bad@example.org"]["status"] == "bounced" and
                  rows["bad@example.org"]["code"] == 550, "pipelining %s: %s", pipelining,
                  rows["bad@example.org"])
            check(rows["spam@example.org"]["status"] == "bounced" and
                  rows["spam@example.org"]["code"] == 554 and
                  "rejected as spam" in rows["spam@example.org"]["reply"],
                  "pipelining %s: %s", pipelining, rows["spam@example.org"])
            check(rows["dropdata@example.org"]["status"] == "deferred",
                  "pipelining %s: %s", pipelining, rows["dropdata@example.org"])
            check(states(w) == {"sent": 4, "bounced": 2, "deferred": 1},
                  "pipelining %s: ledger %s", pipelining, states(w))
            got = delivered(server)
            check(sorted(got) == sorted(reader(i) for i in range(4)) and
                  max(got.values()) == 1, "pipelining %s: delivered %s", pipelining, dict(got))
            grouped = server.events("pipelined")
            unasked = server.events("pipelined_unasked")
            check(not unasked, "commands pipelined to a relay that did not offer it: %s",
                  unasked)
            if pipelining:
                # every MAIL of the 7 came with its RCPT and DATA behind it,
                # and (one connection, a queue of messages) the next MAIL
                # came behind the previous message's final dot
                at_mail = [e for e in grouped if e["stage"] == "mail"]
                check(len(at_mail) >= 7 and all("RCPT TO:" in e["behind"] for e in at_mail),
                      "MAIL not pipelined: %s", grouped)
                at_dot = [e for e in grouped if e["stage"] == "eod"]
                check(at_dot and all(e["behind"].startswith("MAIL FROM:") for e in at_dot),
                      "no envelope behind a final dot: %s", grouped)
            else:
                check(not grouped, "pipelined events without PIPELINING: %s", grouped)


def test_tls_sessions():
    # herald's transactions go through libcurl's TLS layer once libcurl has
    # opened the session: STARTTLS (RFC 3207, required by the server before
    # MAIL) and TLS from the first byte (smtps, RFC 8314), the certificate
    # checked against ca_file, pipelined, a refusal and a drop among them.
    for mode in ("starttls", "implicit"):
        emails = [reader(i) for i in range(5)] + ["bad@example.org", "dropeod@example.org"]
        with world(emails, connections=1) as w:
            server = w.smtp(tls=mode, rules=[
                {"stage": "rcpt", "match": "^bad@", "reply": "550 5.1.1 user unknown"},
                {"stage": "eod", "match": "^dropeod@", "action": "drop", "times": 1}])
            scheme = "smtps" if mode == "implicit" else "smtp"
            w.set("smtp", url="%s://127.0.0.1:%d" % (scheme, server.port),
                  starttls="required" if mode == "starttls" else "never",
                  ca_file=server.cert, tls_verify="yes")
            due_now(w)
            run(w)
            check(states(w) == {"sent": 5, "bounced": 1, "deferred": 1}, "%s: ledger %s", mode,
                  states(w))
            accepted = server.events("accept")
            check(len(accepted) == 5 and all(e["tls"] for e in accepted),
                  "%s: accepted %s", mode, [(e["rcpt_tos"], e["tls"]) for e in accepted])
            for _, msg, raw in server.messages():
                check(msg["Message-ID"] and msg.get_body(("plain",)) is not None and
                      raw.endswith(b"\n") and b"\r\n.\r\n" not in raw,
                      "%s: a damaged message: %r", mode, raw[-200:])
            check(server.events("pipelined"), "%s: not pipelined under TLS", mode)
            run(w, now=time.time() + HOUR)
            check(states(w) == {"sent": 6, "bounced": 1}, "%s: after the retry %s", mode,
                  states(w))


def test_mail_from_refused_stops_the_send():
    # 5xx to MAIL FROM is the relay refusing our sender, not any recipient:
    # the send stops and every row stays pending, also when RCPT and DATA
    # were already on their way behind it (their 503s are read and dropped).
    for pipelining in (True, False):
        emails = [reader(i) for i in range(3)]
        with world(emails, connections=1) as w:
            server = w.smtp(pipelining=pipelining, rules=[
                {"stage": "mail", "match": ".", "reply": "550 5.7.1 sender not allowed"}])
            due_now(w)
            p = w.run("send", w.iid, timeout=60)
            check(p.returncode != 0, "pipelining %s: exit 0 after 550 to MAIL", pipelining)
            check("MAIL FROM" in p.stderr_text and "550 5.7.1 sender not allowed" in
                  p.stderr_text, "pipelining %s: stderr %s", pipelining, p.stderr_text)
            check(not delivered(server), "pipelining %s: delivered", pipelining)
            check(set(r["status"] for r in ledger(w).values()) <= {"pending", "queued"},
                  "pipelining %s: ledger %s", pipelining, states(w))


def test_relay_closes_kept_session():
    # The relay answers 250 and closes the session (as after an idle timeout
    # or its per-session message limit): the next message goes on a new
    # connection, sent once, never counted as a failure.
    emails = [reader(i) for i in range(6)]
    with world(emails, connections=1) as w:
        server = w.smtp(rules=[{"stage": "eod", "match": "^reader00[02]@",
                                "action": "accept_close"}])
        p = w.ok("send", w.iid, timeout=60)
        check(re.search(r"6 recipients: 6 sent, 0 deferred, 0 bounced", p.stdout_text),
              "summary: %s", p.stdout_text)
        m = re.search(r"over (\d+) connections?", p.stdout_text)
        check(m and int(m.group(1)) >= 2, "connections: %s", p.stdout_text)
        got = delivered(server)
        check(len(got) == 6 and max(got.values()) == 1, "delivered %s", dict(got))
        check(len(server.events("close")) >= 1, "the rule never fired: %s", server.events())


run_tests([
    ("pipelined_and_not", test_pipelined_and_not),
    ("tls_sessions", test_tls_sessions),
    ("mail_from_refused_stops_the_send", test_mail_from_refused_stops_the_send),
    ("relay_closes_kept_session", test_relay_closes_kept_session),
    ("421_at_connect_single_relay", test_421_at_connect_single_relay),
    ("421_at_connect_backup_takes_over", test_421_at_connect_backup_takes_over),
    ("451_at_rcpt_deferred_then_sent", test_451_at_rcpt_deferred_then_sent),
    ("454_throttling_defers_and_slows", test_454_throttling_defers_and_slows),
    ("550_at_rcpt_bounced", test_550_at_rcpt_bounced),
    ("554_after_dot_bounced", test_554_after_dot_bounced),
    ("drops_deferred_then_sent", test_drops_deferred_then_sent),
    ("slow_server_still_sent", test_slow_server_still_sent),
    ("slow_after_dot_connections_in_parallel", test_slow_after_dot_connections_in_parallel),
    ("retry_window_failures_and_retry", test_retry_window_failures_and_retry),
    ("custom_retry_schedule", test_custom_retry_schedule),
    ("connections_reused", test_connections_reused),
])
