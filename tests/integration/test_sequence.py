#!/usr/bin/python3
"""test_sequence.py - sequences (include/herald/sequence.h), end to end with
the clock override (--now) and the real SMTP server (tests/tools/smtpd.py).

  - onboarding: 50 subscribers join over ten simulated days; steps 0d, 3d
    and 7d --at-local 09:00 (zones: the default, America/New_York,
    Asia/Tokyo, and an unknown one that falls back to the default) reach
    each exactly at the due time this test computes with zoneinfo: a run a
    second before sends nothing of it, a run at it queues and sends it;
    whoever unsubscribed gets nothing more and leaves (rule (3)); the
    server has one copy of each; `sequence stats` counts where everyone is;
  - a step added later reaches only those not yet past its point (4);
  - --include-existing --backfill sends each existing subscriber only their
    latest due step (2);
  - a segment change removes a subscriber before the next step (3), and
    `sequence stats --json` counts each step's unique opens, clicks and
    unsubscribes from the events table;
  - a date attribute with a negative delay (-14d before renewal_date);
  - SIGKILL in the middle of a run sending a step: after `herald run`
    again everyone has exactly one row, sent, and the server at most one
    extra copy per connection, of the same message (1);
  - pause keeps everyone's place and adds nothing; resume sends each at
    most their latest due step (5);
  - a 20,000-subscriber sequence backlog and a campaign of 600 in one run
    at 200 messages/s: within the campaign's span the campaign gets at
    least 40% of what the relay took, the backlog at least 20% (the span
    holds one backlog turn fewer), and neither waits longer than a turn
    and a turn's start (6); the rest of the backlog stays pending.
"""
import collections
import datetime
import json
import os
import re
import signal
import sqlite3
import sys
import time
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests, wait_until  # noqa: E402

DAY = 86400
T0 = 1798761600  # 2027-01-01T00:00:00Z
DEFAULT_ZONE = "Europe/London"


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S+00:00")


def at(w, t, *args, **kw):
    return w.ok("--now", iso(t), *args, **kw)


def world(rate=None):
    w = World()
    w.set("sequences", timezone=DEFAULT_ZONE)
    if rate:
        w.set("smtp", rate=str(rate), connections="2")
    w.init()
    w.server = w.smtp()
    return w


def step_file(w, name, subject):
    return w.write(name, "---\nsubject: %s\n---\n\nHello {{name|reader}}, %s.\n"
                   % (subject, subject))


def add_step(w, t, seq, after, subject, at_local=None):
    args = ["sequence", "add", seq, step_file(w, subject + ".md", subject), "--after", after]
    if at_local:
        args += ["--at-local", at_local]
    out = at(w, t, *args).stdout_text
    m = re.search(r"added issue (\d+)", out)
    check(m, "sequence add printed %r", out)
    return int(m.group(1))


def rows(w, issue):
    """{email: (status, created_at)} of an issue's deliveries."""
    return {e: (st, c) for e, st, c in w.sql(
        "SELECT s.email, d.status, d.created_at FROM deliveries d JOIN subscribers s "
        "ON s.id = d.subscriber_id WHERE d.issue_id = ?", issue)}


def received(w):
    """Counter of (recipient, subject) the server accepted."""
    out = collections.Counter()
    for ev, msg, raw in w.server.messages():
        for r in ev["rcpt_tos"]:
            out[(r, str(msg["Subject"]))] += 1
    return out


def local_due(start, delay, hhmm, zone):
    """start + delay, moved to the next HH:MM in `zone`: computed here with
    zoneinfo, independently of herald's tzset()."""
    base = start + delay
    if hhmm is None:
        return base
    z = zoneinfo.ZoneInfo(zone)
    h, m = map(int, hhmm.split(":"))
    d = datetime.datetime.fromtimestamp(base, z)
    for add in range(3):
        day = (d + datetime.timedelta(days=add)).date()
        cand = datetime.datetime(day.year, day.month, day.day, h, m, tzinfo=z)
        if cand.timestamp() >= base:
            return int(cand.timestamp())
    raise AssertionError("no due time")


def test_onboarding_fifty_over_ten_days():
    with world() as w:
        w.ok("list", "create", "newsletter")
        at(w, T0, "sequence", "create", "onboarding", "--list", "newsletter")
        steps = [("0d", 0, None, "Step zero"), ("3d", 3 * DAY, None, "Step three"),
                 ("7d", 7 * DAY, "09:00", "Step seven")]
        ids = [add_step(w, T0 + 60, "onboarding", a, subj, hhmm) for a, _, hhmm, subj in steps]
        zones = [None, "America/New_York", "Asia/Tokyo", "Mars/Olympus", None]
        people = []  # (email, join time, zone for the computation)
        for i in range(50):
            day, k = divmod(i, 5)
            # two sign-up times a day (fewer distinct due times to run at)
            t = T0 + 3600 + day * DAY + (k % 2) * 6 * 3600 + 17 * 60
            email = "p%02d@example.net" % i
            attrs = ["--attr", "timezone=%s" % zones[k]] if zones[k] else []
            people.append((email, t, zones[k] if zones[k] and zones[k] != "Mars/Olympus"
                           else DEFAULT_ZONE, attrs))
        # who unsubscribes, and when (after step zero, before step three)
        quitter, quit_at = people[7][0], people[7][1] + DAY
        due = {}  # (email, step index) -> due time
        for email, t, zone, _ in people:
            for si, (_, delay, hhmm, _) in enumerate(steps):
                due[(email, si)] = local_due(t, delay, hhmm, zone)
        # the clock: every join, the unsubscribe, and a second before and
        # at every due time; after each run the ledger holds exactly what
        # is due by then
        joins = collections.defaultdict(list)
        for email, t, _, attrs in people:
            joins[t].append((email, attrs))
        times = sorted(set(list(joins) + [quit_at] + [d for d in due.values()] +
                           [d - 1 for d in due.values()]))
        expect_left = {(quitter, 1), (quitter, 2)}
        runs = 0
        for t in times:
            for email, attrs in joins.get(t, []):
                at(w, t, "sub", "add", email, "--list", "newsletter", *attrs)
            if t == quit_at:
                at(w, t, "sub", "unsubscribe", quitter, "--list", "newsletter")
            if t in due.values() or t + 1 in due.values():
                p = at(w, t, "run")
                runs += 1
                for si, issue in enumerate(ids):
                    got = rows(w, issue)
                    want = {e for (e, s), d in due.items()
                            if s == si and d <= t and (e, s) not in expect_left}
                    check(set(got) == want, "at %s step %d: rows for %s, wanted %s\n%s",
                          iso(t), si, sorted(set(got) ^ want), "", p.stdout_text)
                    for e in got:
                        # queued in the run at its due time (the clock runs on
                        # a little during the run), and sent
                        check(0 <= got[e][1] - due[(e, si)] <= 2,
                              "%s step %d queued at %s, due %s", e, si, iso(got[e][1]),
                              iso(due[(e, si)]))
                        check(got[e][0] == "sent", "%s step %d is %s", e, si, got[e][0])
        check(runs >= 80, "only %d runs", runs)
        rec = received(w)
        for (e, si), d in due.items():
            n = rec[(e, steps[si][3])]
            check(n == (0 if (e, si) in expect_left else 1),
                  "%s got step %d %d times", e, si, n)
        st = json.loads(at(w, times[-1], "sequence", "stats", "onboarding", "--json").stdout_text)
        check(st["enrolled"] == 50 and st["left"] == 1 and st["active"] == 49,
              "stats: %s", st)
        check([s["sent"] for s in st["steps"]] == [50, 49, 49], "sent: %s", st["steps"])
        check([s["at_step"] for s in st["steps"]] == [0, 0, 49], "at_step: %s", st["steps"])
        out = at(w, times[-1], "sequence", "stats", "onboarding").stdout_text
        check(re.search(r"^7d +09:00 +%d +49 +49 " % ids[2], out, re.M), "stats: %s", out)


def subjects_of(w, email):
    return sorted(subj for (r, subj), n in received(w).items() if r == email for _ in range(n))


def import_at(w, t, lst, people, extra=()):
    """Import [(email, {attr: value})] at time t (confirmed, with the
    attributes as columns)."""
    cols = sorted({k for _, a in people for k in a})
    text = ",".join(["email"] + cols) + "\n" + "".join(
        ",".join([e] + [a.get(k, "") for k in cols]) + "\n" for e, a in people)
    path = w.write("import-%d.csv" % t, text)
    at(w, t, "sub", "import", "--list", lst, path, *extra)


def test_step_added_later_reaches_only_those_before_it():
    with world() as w:
        w.ok("list", "create", "newsletter")
        at(w, T0, "sequence", "create", "later", "--list", "newsletter")
        s0 = add_step(w, T0 + 10, "later", "0d", "Later zero")
        s7 = add_step(w, T0 + 10, "later", "7d", "Later seven")
        joins = {"a@example.net": T0 + 3600, "b@example.net": T0 + DAY + 3600,
                 "c@example.net": T0 + 3 * DAY, "d@example.net": T0 + 4 * DAY}
        added = T0 + 5 * DAY
        s3 = None
        times = sorted(set([T0 + k * DAY + 2 * 3600 for k in range(13)] + list(joins.values()) +
                           [j + 3 * DAY for j in joins.values()] + [added]))
        for t in times:
            for e, j in joins.items():
                if j == t:
                    at(w, t, "sub", "add", e, "--list", "newsletter")
            if t == added:
                s3 = add_step(w, t, "later", "3d", "Later three")
            at(w, t, "run")
        check(set(rows(w, s0)) == set(joins) and set(rows(w, s7)) == set(joins),
              "steps 0d and 7d: %s %s", rows(w, s0), rows(w, s7))
        got = rows(w, s3)
        # a's and b's 3d points (day 3 and 4) had passed at day 5; c's and d's not
        check(set(got) == {"c@example.net", "d@example.net"}, "step 3d went to %s", got)
        for e in got:
            check(got[e][1] - (joins[e] + 3 * DAY) in (0, 1, 2), "%s queued at %s", e,
                  iso(got[e][1]))
        for e in joins:
            n = 3 if e in got else 2
            check(len(subjects_of(w, e)) == n, "%s got %s", e, subjects_of(w, e))


def test_include_existing_backfill_latest_step_only():
    with world() as w:
        w.ok("list", "create", "newsletter")
        ages = {"old@example.net": 10 * DAY, "mid@example.net": 5 * DAY,
                "new@example.net": 2 * DAY, "fresh@example.net": 3600}
        for e, age in ages.items():
            at(w, T0 - age, "sub", "add", e, "--list", "newsletter")
        # a list of its own, enrolled without --backfill: everyone starts now
        w.ok("list", "create", "other")
        at(w, T0 - 10 * DAY, "sub", "add", "plain@example.net", "--list", "other")
        out = at(w, T0, "sequence", "create", "back", "--list", "newsletter",
                 "--include-existing", "--backfill").stdout_text
        check("enrolled 4 existing subscribers" in out, "create: %s", out)
        at(w, T0, "sequence", "create", "now", "--list", "other", "--include-existing")
        ids = [add_step(w, T0 + 10, "back", a, "Back " + a) for a in ("0d", "3d", "7d")]
        nid = [add_step(w, T0 + 10, "now", a, "Now " + a) for a in ("0d", "3d")]
        at(w, T0 + 20, "run")
        want = {"old@example.net": "7d", "mid@example.net": "3d", "new@example.net": "0d",
                "fresh@example.net": "0d"}
        for e, a in want.items():
            check(subjects_of(w, e) == ["Back " + a], "%s got %s", e, subjects_of(w, e))
        check(subjects_of(w, "plain@example.net") == ["Now 0d"], "plain got %s",
              subjects_of(w, "plain@example.net"))
        # they go on from there: new's 3d comes at its own day 3
        at(w, T0 + DAY + 30, "run")
        check(subjects_of(w, "new@example.net") == ["Back 0d", "Back 3d"], "new: %s",
              subjects_of(w, "new@example.net"))
        check(subjects_of(w, "fresh@example.net") == ["Back 0d"], "fresh: %s",
              subjects_of(w, "fresh@example.net"))
        check(len(rows(w, ids[2])) == 1, "7d rows: %s", rows(w, ids[2]))
        check(len(rows(w, nid[1])) == 0, "plain's 3d is not due yet")


def test_segment_change_removes_before_next_step():
    with world() as w:
        w.ok("list", "create", "newsletter")
        at(w, T0, "sequence", "create", "nurses", "--list", "newsletter", "--where",
           'attr.role = "nurse"')
        s0 = add_step(w, T0, "nurses", "0d", "Nurse zero")
        s3 = add_step(w, T0, "nurses", "3d", "Nurse three")
        for e in ("n1@example.net", "n2@example.net"):
            at(w, T0 + 100, "sub", "add", e, "--list", "newsletter", "--attr", "role=nurse")
        at(w, T0 + 100, "sub", "add", "d1@example.net", "--list", "newsletter",
           "--attr", "role=doctor")
        at(w, T0 + 200, "run")
        check(set(rows(w, s0)) == {"n1@example.net", "n2@example.net"}, "step 0: %s",
              rows(w, s0))
        # what readers did with step 0, as the web endpoint records it
        # (eventlog.c's rows, written here as test_stats.py does)
        sid = dict(w.sql("SELECT email, id FROM subscribers"))
        human = json.dumps({"ua": "human", "agent": "Mozilla/5.0 (X11; Linux x86_64)"})
        con = sqlite3.connect(w.db)
        with con:
            con.executemany(
                "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) "
                "VALUES (?, ?, ?, 1, ?, ?)",
                [("open", s0, sid["n1@example.net"], T0 + 3600, human),
                 ("open", s0, sid["n1@example.net"], T0 + 7200, human),
                 ("click", s0, sid["n2@example.net"], T0 + 3700,
                  json.dumps({"n": 1, "ua": "human"})),
                 ("unsubscribe", s0, sid["d1@example.net"], T0 + 3800,
                  json.dumps({"source": "web"}))])
        con.close()
        at(w, T0 + DAY, "sub", "add", "n2@example.net", "--list", "newsletter",
           "--attr", "role=doctor")
        at(w, T0 + 3 * DAY + 200, "run")
        check(set(rows(w, s3)) == {"n1@example.net"}, "step 3: %s", rows(w, s3))
        st = json.loads(at(w, T0 + 3 * DAY + 300, "sequence", "stats", "nurses",
                           "--json").stdout_text)
        # the doctor was never in the audience: not enrolled, nothing sent
        check(st["enrolled"] == 2 and st["left"] == 1 and st["active"] == 1, "stats %s", st)
        s0st = st["steps"][0]
        check((s0st["sent"], s0st["opens"], s0st["clicks"], s0st["unsubscribes"]) ==
              (2, 1, 1, 1), "step 0 figures: %s", s0st)
        check((st["steps"][1]["sent"], st["steps"][1]["opens"]) == (1, 0), "step 3d: %s",
              st["steps"][1])
        check(subjects_of(w, "d1@example.net") == [], "doctor got mail")
        left = w.sql("SELECT left_reason FROM sequence_enrolments e JOIN subscribers s ON "
                     "s.id = e.subscriber_id WHERE s.email = 'n2@example.net'")
        check(left == [("audience",)], "left: %s", left)


def test_renewal_reminder_before_a_date():
    with world() as w:
        w.ok("list", "create", "members")
        at(w, T0, "sequence", "create", "renewal", "--list", "members", "--start-from",
           "attr.renewal_date", "--include-existing", "--backfill")
        sid = add_step(w, T0, "renewal", "-14d", "Renew soon", "09:00")
        import_at(w, T0 + 60, "members", [
            ("r1@example.net", {"renewal_date": "2027-02-01"}),
            ("r2@example.net", {"renewal_date": "2027-03-01", "timezone": "Asia/Tokyo"}),
            ("r3@example.net", {"renewal_date": ""})])
        r1 = local_due(1801440000, -14 * DAY, "09:00", DEFAULT_ZONE)   # 2027-02-01
        r2 = local_due(1803859200, -14 * DAY, "09:00", "Asia/Tokyo")   # 2027-03-01
        for t in (r1 - 1, r1, r2 - 1, r2, r2 + 30 * DAY):
            at(w, t, "run")
            got = rows(w, sid)
            want = {e for e, d in (("r1@example.net", r1), ("r2@example.net", r2)) if d <= t}
            check(set(got) == want, "at %s: %s, wanted %s", iso(t), got, want)
        check(rows(w, sid)["r2@example.net"][1] - r2 in (0, 1, 2), "r2 at %s",
              rows(w, sid)["r2@example.net"])


def test_sigkill_during_a_step_then_run_again():
    with world(rate=None) as w:
        w.set("smtp", connections="2")
        emails = ["k%03d@example.net" % i for i in range(120)]
        w.ok("list", "create", "newsletter")
        at(w, T0, "sequence", "create", "crash", "--list", "newsletter")
        sid = add_step(w, T0, "crash", "0d", "Crash zero")
        import_at(w, T0 + 10, "newsletter", [(e, {}) for e in emails])
        w.server.stop()
        w.server = w.smtp(rules=[{"stage": "rcpt", "delay": 0.03}])
        bg = w.spawn("--now", iso(T0 + 20), "run")
        wait_until(lambda: w.server.count() >= 30 or bg.poll() is not None, 30,
                   "30 messages before the kill")
        check(bg.poll() is None, "the run ended before the kill: %s", bg.stderr_text)
        bg.signal(signal.SIGKILL)
        bg.wait(10)
        before = w.server.count()
        check(before < len(emails), "everything was sent before the kill")
        p = at(w, T0 + 40, "run")
        got = rows(w, sid)
        check(set(got) == set(emails), "rows: %d of %d", len(got), len(emails))
        check({v[0] for v in got.values()} == {"sent"}, "states %s",
              collections.Counter(v[0] for v in got.values()))
        acc = collections.Counter(r for r, _ in w.server.accepted())
        check(set(acc) == set(emails), "server lacks %s", set(emails) - set(acc))
        dups = sum(n - 1 for n in acc.values())
        # only what was in flight at the kill goes twice: one per connection
        check(dups <= 2, "%d duplicates after one kill\n%s", dups, p.stdout_text)
        mids = collections.defaultdict(set)
        for r, mid in w.server.accepted():
            mids[r].add(mid)
        check(all(len(m) == 1 for m in mids.values()), "a second copy with another Message-ID")
        # and no row twice in the ledger, nor a second enrolment pass
        at(w, T0 + 60, "run")
        check(sum(collections.Counter(r for r, _ in w.server.accepted()).values()) ==
              sum(acc.values()), "a later run sent again")


def test_pause_keeps_place_resume_sends_latest_only():
    with world() as w:
        w.ok("list", "create", "newsletter")
        at(w, T0, "sequence", "create", "p", "--list", "newsletter")
        ids = [add_step(w, T0, "p", a, "P " + a) for a in ("0d", "1d", "2d", "5d")]
        at(w, T0 + 100, "sub", "add", "x@example.net", "--list", "newsletter")
        at(w, T0 + 200, "run")
        check(subjects_of(w, "x@example.net") == ["P 0d"], "before pause")
        at(w, T0 + 300, "sequence", "pause", "p")
        st = json.loads(at(w, T0 + 400, "sequence", "show", "p", "--json").stdout_text)
        check(st["status"] == "paused" and all(s["status"] == "paused" or s["status"] == "sent"
                                               for s in st["steps"]), "show %s", st)
        at(w, T0 + 3 * DAY, "run")
        check(subjects_of(w, "x@example.net") == ["P 0d"], "sent while paused")
        at(w, T0 + 3 * DAY + 100, "sequence", "resume", "p")
        at(w, T0 + 3 * DAY + 200, "run")
        # 1d and 2d fell due during the pause: only the latest goes
        check(subjects_of(w, "x@example.net") == ["P 0d", "P 2d"], "after resume: %s",
              subjects_of(w, "x@example.net"))
        at(w, T0 + 5 * DAY + 200, "run")
        check(subjects_of(w, "x@example.net") == ["P 0d", "P 2d", "P 5d"], "5d: %s",
              subjects_of(w, "x@example.net"))
        check(rows(w, ids[1]) == {}, "1d rows %s", rows(w, ids[1]))
        out = at(w, T0 + 5 * DAY + 300, "sequence", "stats", "p").stdout_text
        # AFTER AT ISSUE AT_STEP SENT QUEUED OPENS CLICKS UNSUBS SUBJECT
        check(re.search(r"^1d +- +%d +0 +0 +0 +0 +0 +0 +P 1d$" % ids[1], out, re.M) and
              re.search(r"^5d +- +%d +1 +1 +0 +0 +0 +0 +P 5d$" % ids[3], out, re.M) and
              "enrolled     1: 1 active (0 before the first step), 0 left" in out,
              "stats: %s", out)
        out = at(w, T0 + 6 * DAY, "sequence", "rm", "p").stdout_text
        check("removed sequence 'p'" in out, "rm: %s", out)
        check(at(w, T0 + 6 * DAY, "sequence", "ls").stdout_text.startswith("no sequences"),
              "ls after rm")
        check(w.sql("SELECT count(*) FROM issues")[0][0] == 4, "the issues stay")


def rate_share(w, backlog, campaign, max_time):
    """A sequence step due to `backlog` subscribers and a campaign to
    `campaign` others, both due when one `herald run --max-time` starts.
    Returns the figures the server saw: {campaign, campaign_s, campaign_rate,
    sequence_in_window, sequence_rate_in_window, sequence_total, run_s,
    longest_gap (the longest time within the campaign's span that one kind
    went without a message), per_second: [(s, campaign, sequence)]}."""
    w.ok("list", "create", "big")
    w.ok("list", "create", "camp")
    import_at(w, T0 - DAY, "big", [("b%05d@example.net" % i, {}) for i in range(backlog)])
    import_at(w, T0 - DAY + 1, "camp", [("c%05d@example.net" % i, {}) for i in range(campaign)])
    at(w, T0, "sequence", "create", "backlog", "--list", "big", "--include-existing")
    add_step(w, T0, "backlog", "0d", "Backlog step")
    # a first run queues the step for everyone, with the relay down (it
    # stops at once, the rows stay pending): the run measured below then
    # only sends, however slow the machine is at queueing
    port = w.section("smtp")["url"]
    w.set("smtp", url="smtp://127.0.0.1:1")
    w.run("--now", iso(T0 + 2), "run")
    w.set("smtp", url=port)
    queued = w.sql("SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0]
    check(queued == backlog, "queued %d of %d", queued, backlog)
    iid = at(w, T0, "issue", "new", w.write("c.md", "---\nsubject: Campaign\nlist: camp\n"
                                             "---\n\nHello.\n")).stdout_text.strip()
    at(w, T0, "issue", "schedule", iid, "--at", iso(T0 + 5))
    t = time.time()
    p = at(w, T0 + 10, "run", "--max-time", str(max_time))
    run_s = time.time() - t
    cam, seq = [], []
    for ev, msg, raw in w.server.messages():
        (cam if str(msg["Subject"]) == "Campaign" else seq).append(ev["time"])
    cam.sort()
    seq.sort()
    check(cam and seq, "campaign %d, sequence %d messages\n%s", len(cam), len(seq),
          p.stdout_text)
    a, b = cam[0], cam[-1]
    span = max(b - a, 1e-3)
    inwin = [x for x in seq if a <= x <= b]
    gap = 0.0
    for times in (cam, inwin):
        edges = [a] + times + [b]
        gap = max([gap] + [y - x for x, y in zip(edges, edges[1:])])
    t0 = min(a, seq[0])
    hist = collections.Counter((int(x - t0), "c") for x in cam)
    hist.update((int(x - t0), "s") for x in seq)
    return {"campaign": len(cam), "campaign_s": span, "campaign_rate": len(cam) / span,
            "longest_gap": gap,
            "sequence_in_window": len(inwin), "sequence_rate_in_window": len(inwin) / span,
            "sequence_total": len(seq), "run_s": run_s, "stdout": p.stdout_text,
            "per_second": [(k, hist[(k, "c")], hist[(k, "s")])
                           for k in range(int(max(cam[-1], seq[-1]) - t0) + 1)]}


def test_backlog_does_not_starve_a_campaign():
    rate = 200
    with world(rate=rate) as w:
        f = rate_share(w, 20000, 600, 8)
        print("     campaign %d in %.1f s (%.0f/s), sequence %.0f/s alongside, %d in all; "
              "longest wait %.1f s; relay rate %d/s"
              % (f["campaign"], f["campaign_s"], f["campaign_rate"],
                 f["sequence_rate_in_window"], f["sequence_total"], f["longest_gap"], rate))
        # (a slower machine or build may not finish the campaign within
        # --max-time: the shares are what is checked)
        both = f["campaign_rate"] + f["sequence_rate_in_window"]
        # turns of equal length: each kind has about half of what the relay
        # took while both had mail (half of `rate`, less each turn's start)
        check(f["campaign_rate"] >= 0.4 * both, "campaign starved: %.0f/s of %.0f/s (%s)",
              f["campaign_rate"], both, f["per_second"])
        # the span from the campaign's first message to its last holds one
        # sequence turn fewer than campaign turns (C S C ...): a third at
        # best, less each turn's start on a loaded machine
        check(f["sequence_rate_in_window"] >= 0.2 * both,
              "sequence starved: %.0f/s of %.0f/s (%s)", f["sequence_rate_in_window"], both,
              f["per_second"])
        # and they alternate: neither goes without a message for longer
        # than the other's turn and a turn's start (RUN_SLICE = 2 s)
        check(f["longest_gap"] <= 2 * 2.0 + 1.5, "a kind waited %.1f s (%s)",
              f["longest_gap"], f["per_second"])
        check(both <= rate * 1.05, "the relay's rate was exceeded: %.0f/s", both)
        # the rest of the backlog waits, queued, for the next run
        left = w.sql("SELECT count(*) FROM deliveries d JOIN sequence_steps t ON "
                     "t.issue_id = d.issue_id WHERE d.status = 'pending'")[0][0]
        check(left == 20000 - f["sequence_total"], "pending %d, sent %d", left,
              f["sequence_total"])


def test_usage_errors_and_refusals():
    with World() as w:
        w.init()
        w.ok("list", "create", "newsletter")
        cases = [
            (["sequence"], 64, "sequence needs a verb"),
            (["sequence", "frob"], 64, "unknown verb 'sequence frob'"),
            (["sequence", "create", "s"], 64, "needs --list LIST"),
            (["sequence", "create", "s", "--list", "nope"], 66, "nope"),
            (["sequence", "create", "s", "--list", "newsletter", "--backfill"], 64,
             "--backfill goes with --include-existing"),
            (["sequence", "create", "s", "--list", "newsletter", "--segment", "x",
              "--where", "exists attr.a"], 64, "not both"),
            (["sequence", "create", "s", "--list", "newsletter", "--start-from", "birthday"],
             64, "invalid --start-from 'birthday'"),
            (["sequence", "create", "s", "--list", "newsletter", "--where", "attr.x ="], 65,
             "sequence s"),
            (["sequence", "show", "nope"], 66, "no sequence 'nope'"),
            (["sequence", "stats"], 64, "sequence stats needs a NAME"),
        ]
        for args, rc, text in cases:
            p = w.run(*args)
            check(p.returncode == rc and text in p.stderr_text,
                  "%s: exit %d, wanted %d with %r: %s", args, p.returncode, rc, text,
                  p.stderr_text)
        w.ok("sequence", "create", "s", "--list", "newsletter")
        p = w.run("sequence", "create", "s", "--list", "newsletter")
        check(p.returncode == 65 and "exists already" in p.stderr_text, "twice: %s",
              p.stderr_text)
        md = step_file(w, "ok.md", "Fine")
        for args, rc, text in [
                (["sequence", "add", "s", md], 64, "needs --after DELAY"),
                (["sequence", "add", "s", md, "--after", "3"], 64, "invalid delay '3'"),
                (["sequence", "add", "s", md, "--after", "3d", "--at-local", "9am"], 64,
                 "invalid time of day '9am'"),
                (["sequence", "add", "nope", md, "--after", "3d"], 66, "no sequence 'nope'")]:
            p = w.run(*args)
            check(p.returncode == rc and text in p.stderr_text,
                  "%s: exit %d, wanted %d with %r: %s", args, p.returncode, rc, text,
                  p.stderr_text)
        bad = w.write("bad.md", "---\nsubject: Hi\nsegment: x\n---\n\nHello.\n")
        p = w.run("sequence", "add", "s", bad, "--after", "1d")
        check(p.returncode == 65 and "bad.md:3" in p.stderr_text, "front matter: %s",
              p.stderr_text)
        w.ok("sequence", "add", "s", md, "--after", "2w")
        p = w.run("sequence", "add", "s", md, "--after", "14d")
        check(p.returncode == 65 and "has a step at 14d already" in p.stderr_text,
              "same delay: %s", p.stderr_text)
        check(w.sql("SELECT count(*) FROM issues") == [(1,)], "a refused step left an issue")
        # a step goes to each subscriber by itself: never scheduled to all
        iid = w.sql("SELECT issue_id FROM sequence_steps")[0][0]
        p = w.run("issue", "schedule", iid, "--at", iso(T0))
        check(p.returncode == 65 and "sequence step" in p.stderr_text, "schedule: %s",
              p.stderr_text)
        ls = json.loads(w.ok("sequence", "ls", "--json").stdout_text)
        check([(x["name"], x["list"], x["status"]) for x in ls] ==
              [("s", "newsletter", "active")], "ls %s", ls)
        # the config's zone is checked like any key
        w.set("sequences", timezone="Mars/Olympus")
        p = w.run("config", "check")
        check(p.returncode == 78 and "Mars/Olympus" in p.stderr_text, "config: %d %s",
              p.returncode, p.stderr_text)


if __name__ == "__main__":
    run_tests([(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")])
