#!/usr/bin/python3
"""test_stats.py - `herald stats ID` as text, --json and --html, after a real send.

An issue with three links (two web links, one mailto) goes to ten
subscribers through tests/tools/smtpd.py, which refuses one with 550 (a
bounced delivery and a hard bounce event, written by the sender) and one with
451 (deferred).  Then the events the web server and `herald bounce` record are
inserted with sqlite3 exactly as they write them: open {"ua", "agent"}, click
{"n", "ua"}, unsubscribe with issue_id, subscriber_id and list_id, bounce
{"class"}, complaint; with times relative to each recipient's real
deliveries.sent_at, so the machine-open rules (user-agent class; at most 2 s
after delivery) are exercised on real rows.  Events of another issue and
events without an issue must not count.

Checked: the --json object exactly (every key, also when zero, before the
send and after it), the same figures in the text output, and the --html page:
self-contained (no external src/href), the subject escaped in the title, an
inline SVG with one bar per hour that has opens or clicks, each with a
<title>, hour labels in local time (TZ set), and the figures in its tables
equal to the JSON.
"""
import html
import html.parser
import json
import os
import re
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests  # noqa: E402

EX_CANTCREAT = 73
SUBJECT = 'Q1 <results> & "more"'
BODY = ("Dear {{name|reader}}, read [the report](https://example.org/report), "
        "[the data](https://example.org/data?who={{email}}) and write to "
        "<editor@example.org>.\n")
LINKS = ["https://example.org/report", "https://example.org/data?who={{email}}",
         "mailto:editor@example.org"]
RULES = [{"stage": "rcpt", "match": "^bad-", "reply": "550 5.1.1 <mailbox> user unknown"},
         {"stage": "rcpt", "match": "^later-", "reply": "451 4.7.1 greylisted"}]
READERS = ["r%d@example.org" % i for i in range(8)]
EMAILS = READERS + ["bad-1@example.org", "later-1@example.org"]

HUMAN = {"ua": "human", "agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
MACHINE = {"ua": "machine", "agent": "Mozilla/5.0"}

ZERO = {
    "recipients": 0,
    "deliveries": {"pending": 0, "sending": 0, "sent": 0, "deferred": 0, "bounced": 0,
                   "failed": 0, "skipped": 0},
    "opens": {"total": 0, "unique": 0, "human": 0, "machine": 0},
    "clicks": {"total": 0, "unique": 0,
               "links": [{"n": i + 1, "url": u, "total": 0, "unique": 0}
                         for i, u in enumerate(LINKS)]},
    "unsubscribes": 0,
    "bounces": {"hard": 0, "soft": 0, "complaints": 0, "reasons": []},
    "rates": {"open_rate": 0.0, "click_rate": 0.0, "click_to_open_rate": 0.0,
              "unsubscribe_rate": 0.0, "complaint_rate": 0.0, "bounce_rate": 0.0},
    # the sunset rule's count and the audience as sent: none before a send
    "skipped": {"unengaged": 0},
    "audience": None,
    # the answers to "Why are you leaving?" from this issue's mail (prefs.h)
    "leave_reasons": {"too_many": 0, "not_relevant": 0, "never_signed_up": 0, "other": 0},
    # the [tracking] mode the send went under (tracking.h): none before a send
    "tracking": {"mode": None, "unique": True},
}


def stats_json(w, iid, *extra, env=None):
    p = w.ok("stats", iid, "--json", *extra, env=env)
    try:
        return json.loads(p.stdout_text)
    except ValueError as e:
        raise AssertionError("stats --json: not JSON (%s): %r" % (e, p.stdout_text))


class Page(html.parser.HTMLParser):
    """What the checks need from the report page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.title = None
        self.figures = {}       # data-key -> (text, data-value)
        self.links = {}         # n -> {"url", "total", "unique"}
        self.rects = []         # [class, title text or None]
        self.hour_labels = []
        self.external = []      # src/href values that would fetch something
        self.svg = 0
        self._cur = None        # (kind, key) the text goes to
        self._row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(tag)
        for k in ("src", "href", "xlink:href"):
            if k in a and re.match(r"(?i)\s*(https?:)?//", a[k] or ""):
                self.external.append(a[k])
        if tag == "link" or tag == "script":
            self.external.append("<%s>" % tag)
        if tag == "svg":
            self.svg += 1
        if tag == "title" and "svg" not in self.stack[:-1]:
            self._cur = ("title", None)
            self.title = ""
        elif tag == "title" and self.stack[-2:-1] == ["rect"]:
            self._cur = ("rect-title", None)
            self.rects[-1][1] = ""
        elif tag == "rect" and "legend" not in (a.get("class") or ""):
            self.rects.append([a.get("class"), None])
        elif tag == "text" and a.get("class") == "hour":
            self._cur = ("hour", None)
            self.hour_labels.append("")
        elif tag == "tr" and "data-n" in a:
            self._row = int(a["data-n"])
            self.links[self._row] = {"url": ""}
        elif tag == "code" and self._row is not None:
            self._cur = ("url", None)
        elif tag == "td" and "data-key" in a:
            if self._row is not None:
                self._cur = ("link", a["data-key"])
                self.links[self._row][a["data-key"]] = ""
            else:
                self._cur = ("figure", a["data-key"])
                self.figures[a["data-key"]] = ["", a.get("data-value")]

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop() == tag:
                break
        if tag in ("title", "text", "code", "td"):
            self._cur = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if not self._cur:
            return
        kind, key = self._cur
        if kind == "title":
            self.title += data
        elif kind == "rect-title":
            self.rects[-1][1] += data
        elif kind == "hour":
            self.hour_labels[-1] += data
        elif kind == "url":
            self.links[self._row]["url"] += data
        elif kind == "link":
            self.links[self._row][key] += data
        elif kind == "figure":
            self.figures[key][0] += data


def insert_events(db, rows):
    """rows: (kind, issue_id or None, subscriber_id or None, at, detail dict)."""
    con = sqlite3.connect(db, timeout=10)
    try:
        with con:
            con.executemany("INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, "
                            "detail) VALUES (?, ?, ?, 1, ?, ?)",
                            [(k, i, s, at, json.dumps(d, separators=(",", ":")))
                             for k, i, s, at, d in rows])
    finally:
        con.close()


def test_stats_report():
    with World() as w:
        w.init()
        w.smtp(rules=RULES)
        w.subscribe(EMAILS)
        iid = w.new_issue(subject=SUBJECT, body=BODY)
        other = w.new_issue(subject="Other", body="Nothing to see.\n")
        show = json.loads(w.ok("issue", "show", iid, "--json").stdout_text)
        check(show["links"] == LINKS, "issue links %s", show["links"])

        # a draft: every key present, all zero, the links listed
        st = stats_json(w, iid)
        check(st == dict(ZERO, issue={"id": int(iid), "subject": SUBJECT, "status": "draft"}),
              "draft stats: %s", st)
        page = w.write("draft.html", "")
        w.ok("stats", iid, "--html", page)
        text = open(page, encoding="utf-8").read()
        check("<svg" not in text and "has not been sent yet" in text, "draft page chart")

        p = w.run("send", iid)
        check(p.returncode == 0, "send failed: %s", p.stderr_text)
        rows = w.sql("SELECT s.email, s.id, d.status, d.sent_at FROM deliveries d "
                     "JOIN subscribers s ON s.id = d.subscriber_id WHERE d.issue_id = ?",
                     int(iid))
        sub = {e: i for e, i, _, _ in rows}
        sent_at = {e: t for e, _, _, t in rows}
        status = {e: s for e, _, s, _ in rows}
        check(all(status[e] == "sent" for e in READERS) and status["bad-1@example.org"] ==
              "bounced" and status["later-1@example.org"] == "deferred", "send: %s", status)
        start = w.sql("SELECT started_at FROM issues WHERE id = ?", int(iid))[0][0]
        check(start and all(sent_at[e] >= start for e in READERS), "started_at %s", start)

        def r(i):
            return READERS[i]

        def at_sent(i, d):
            return sent_at[r(i)] + d

        I, O = int(iid), int(other)
        events = [
            # opens: r0 human x3 (one past the chart's 72 hours); r1 machine
            # ua then human; r2 human ua 1 s after delivery (machine); r3
            # machine ua twice; r5 human 3 s after (human); r6 human 2 s
            # after (machine); r4 opens another issue only
            ("open", I, sub[r(0)], start + 3605, HUMAN),
            ("open", I, sub[r(0)], start + 7300, HUMAN),
            ("open", I, sub[r(0)], start + 80 * 3600, HUMAN),
            ("open", I, sub[r(1)], at_sent(1, 1), MACHINE),
            ("open", I, sub[r(1)], start + 5000, HUMAN),
            ("open", I, sub[r(2)], at_sent(2, 1), HUMAN),
            ("open", I, sub[r(3)], start + 4000, MACHINE),
            ("open", I, sub[r(3)], start + 4001, MACHINE),
            ("open", I, sub[r(5)], at_sent(5, 3), HUMAN),
            ("open", I, sub[r(6)], at_sent(6, 2), HUMAN),
            ("open", O, sub[r(4)], start + 100, HUMAN),
            # clicks: link 1 by r0 twice, r1, r7 (who never loaded images);
            # link 2 by r0 and r5; link 3 (mailto) by nobody
            ("click", I, sub[r(0)], start + 3700, {"n": 1, "ua": "human"}),
            ("click", I, sub[r(0)], start + 3800, {"n": 1, "ua": "human"}),
            ("click", I, sub[r(0)], start + 7400, {"n": 2, "ua": "human"}),
            ("click", I, sub[r(1)], start + 5100, {"n": 1, "ua": "human"}),
            ("click", I, sub[r(5)], start + 600, {"n": 2, "ua": "human"}),
            ("click", I, sub[r(7)], start + 20000, {"n": 1, "ua": "human"}),
            ("click", O, sub[r(7)], start + 20000, {"n": 1, "ua": "human"}),
            # unsubscribes through this issue: r4, r7; r3 from the CLI (no issue)
            ("unsubscribe", I, sub[r(4)], start + 4100, {"source": "one-click"}),
            ("unsubscribe", I, sub[r(7)], start + 20100, {"source": "web"}),
            ("unsubscribe", None, sub[r(3)], start + 4100, {"source": "cli"}),
            # bounces (bad-1's hard one is the sender's): r2 hard; r3 soft
            # then hard (hard); r6 soft twice (soft); r5 on the other issue
            ("bounce", I, sub[r(2)], start + 900, {"class": "hard", "source": "dsn"}),
            ("bounce", I, sub[r(3)], start + 600, {"class": "soft", "source": "dsn"}),
            ("bounce", I, sub[r(3)], start + 9000, {"class": "hard", "source": "dsn"}),
            ("bounce", I, sub[r(6)], start + 600, {"class": "soft", "source": "dsn"}),
            ("bounce", I, sub[r(6)], start + 700, {"class": "soft", "source": "dsn"}),
            ("bounce", O, sub[r(5)], start + 700, {"class": "hard", "source": "dsn"}),
            ("complaint", I, sub[r(1)], start + 8000, {"source": "arf"}),
        ]
        insert_events(w.db, events)

        want = {
            "issue": {"id": I, "subject": SUBJECT, "status": "sending"},
            "recipients": 10,
            "deliveries": {"pending": 0, "sending": 0, "sent": 8, "deferred": 1,
                           "bounced": 1, "failed": 0, "skipped": 0},
            "opens": {"total": 10, "unique": 6, "human": 3, "machine": 3},
            "clicks": {"total": 6, "unique": 4, "links": [
                {"n": 1, "url": LINKS[0], "total": 4, "unique": 3},
                {"n": 2, "url": LINKS[1], "total": 2, "unique": 2},
                {"n": 3, "url": LINKS[2], "total": 0, "unique": 0}]},
            "unsubscribes": 2,
            "bounces": {"hard": 3, "soft": 1, "complaints": 1},
            # against delivered = 8; bounce rate against 8 sent + 1 bounced
            "rates": {"open_rate": 0.375, "click_rate": 0.5, "click_to_open_rate": 0.6667,
                      "unsubscribe_rate": 0.25, "complaint_rate": 0.125,
                      "bounce_rate": 0.4444},
            # no [audience] sunset_after: nobody left out; the audience as sent
            "skipped": {"unengaged": 0},
            "audience": {"lists": ["newsletter"], "segment": None, "where": None,
                         "sunset_after": 0, "sunset_skipped": False},
            "leave_reasons": {"too_many": 0, "not_relevant": 0, "never_signed_up": 0,
                              "other": 0},
            "tracking": {"mode": "on", "unique": True},
        }
        st = stats_json(w, iid)
        # the bounces table holds bad-1's rejection at SMTP time (the events
        # above stand for DSNs without their table rows), classified by the
        # same code that reads DSNs: 550 5.1.1 is a hard userunknown
        reasons = st["bounces"].pop("reasons", None)
        check(isinstance(reasons, list) and len(reasons) == 1, "reasons: %s", reasons)
        check(reasons[0]["class"] == "hard" and reasons[0]["reason"] == "userunknown"
              and reasons[0]["count"] == 1 and reasons[0]["status"] == "5.1.1"
              and "user unknown" in reasons[0]["diagnostic"], "reason: %s", reasons[0])
        check(list(st) == list(want), "top-level keys %s", list(st))
        for k in want:
            check(st[k] == want[k], "%s: got %s, wanted %s", k, st[k], want[k])
        raw = w.ok("stats", iid, "--json").stdout_text
        check("0.6667," in raw and "0.66670000" not in raw, "rates not rounded: %s", raw)

        # the text output: the same figures
        text = w.ok("stats", iid).stdout_text
        for pat in (r"^issue %d: %s \[sending\]$" % (I, re.escape(SUBJECT)),
                    r"^  recipients +10$", r"^  sent +8$", r"^  deferred +1$",
                    r"^  bounced +1$", r"^  failed +0$", r"^  skipped +0$",
                    r"^  delivered +8\b",
                    r"^  opens +10  total, 6 unique: 3 human, 3 machine$",
                    r"^  clicks +6  total, 4 unique$",
                    r"^    link 1 +4  total, 3 unique  %s$" % re.escape(LINKS[0]),
                    r"^    link 2 +2  total, 2 unique  %s$" % re.escape(LINKS[1]),
                    r"^    link 3 +0  total, 0 unique  %s$" % re.escape(LINKS[2]),
                    r"^  unsubscribes +2$", r"^  bounces +3  hard, 1 soft$",
                    r"^  complaints +1$",
                    r"^    hard +userunknown +1  5\.1\.1 +550 5\.1\.1 .*user unknown$",
                    r"^  open rate +37\.5%  unique human opens / delivered$",
                    r"^  click rate +50\.0%", r"^  click-to-open +66\.7%",
                    r"^  unsubscribe rate +25\.0%", r"^  complaint rate +12\.5%",
                    r"^  bounce rate +44\.4%"):
            check(re.search(pat, text, re.M), "text output lacks %r:\n%s", pat, text)

        # --html, in Japan's time zone: hour labels are local time
        path = os.path.join(w.root, "report.html")
        tz = {"TZ": "JST-9"}
        st2 = stats_json(w, iid, "--html", path, env=tz)
        st2["bounces"].pop("reasons", None)
        check(st2 == st, "--json with --html differs")
        doc = open(path, encoding="utf-8").read()
        check(doc.startswith("<!DOCTYPE html>\n<html lang=\"en\">"), "doctype/lang: %r",
              doc[:60])
        check("<results>" not in doc and "&lt;results&gt; &amp; &quot;more&quot;" in doc,
              "subject not escaped")
        pg = Page()
        pg.feed(doc)
        pg.close()
        check(pg.title == "Issue %d: %s - herald report" % (I, SUBJECT), "title %r", pg.title)
        check(not pg.external, "external assets: %s", pg.external)
        check(not re.search(r"""(?i)(src|href)\s*=\s*["']?\s*(https?:)?//""", doc),
              "an external src/href in the page")
        check(pg.svg == 1, "inline svg elements: %d", pg.svg)

        # the chart: one bar per hour with opens (and with clicks), each with
        # a <title> giving its count
        hours_o, hours_c = {}, {}
        for kind, i, s, at, _ in events:
            if i == I and kind in ("open", "click") and 0 <= at - start < 72 * 3600:
                d = hours_o if kind == "open" else hours_c
                d[(at - start) // 3600] = d.get((at - start) // 3600, 0) + 1
        check(sorted(hours_o) == [0, 1, 2] and sorted(hours_c) == [0, 1, 2, 5],
              "test data hours %s %s", hours_o, hours_c)
        bars_o = [t for c, t in pg.rects if c == "opens"]
        bars_c = [t for c, t in pg.rects if c == "clicks"]
        check(len(bars_o) == len(hours_o), "open bars %d, hours with opens %d", len(bars_o),
              len(hours_o))
        check(len(bars_c) == len(hours_c), "click bars %d, hours with clicks %d",
              len(bars_c), len(hours_c))
        check(all(t for t in bars_o + bars_c), "a bar without <title>: %s", pg.rects)
        got_o = sorted(int(re.search(r": (\d+) opens?$", t).group(1)) for t in bars_o)
        got_c = sorted(int(re.search(r": (\d+) clicks?$", t).group(1)) for t in bars_c)
        check(got_o == sorted(hours_o.values()), "open bar titles %s vs %s", bars_o, hours_o)
        check(got_c == sorted(hours_c.values()), "click bar titles %s vs %s", bars_c, hours_c)
        first = time.strftime("%H:%M", time.gmtime(start + 9 * 3600))
        check(pg.hour_labels and pg.hour_labels[0] == first,
              "first hour label %s, wanted %s (JST)", pg.hour_labels[:2], first)
        check("JST" in doc, "time zone not named")

        # the tables: every figure of the JSON, and the links
        # (the audience is a definition, not figures: one line of text)
        check("Audience: list newsletter</p>" in doc, "the page lacks the audience")
        # the tracking mode is a fact of the send, on the meta line
        check(" · tracking on · " in doc, "the page lacks the tracking mode")
        for k1, v1 in want.items():
            if k1 in ("issue", "clicks", "audience", "tracking") or \
                    not isinstance(v1, (dict, int)):
                continue
            items = v1.items() if isinstance(v1, dict) else [(None, v1)]
            for k2, v in items:
                key = k1 if k2 is None else "%s.%s" % (k1, k2)
                if k1 == "bounces" and k2 == "complaints":
                    key = "bounces.complaints"
                check(key in pg.figures, "the page lacks %s", key)
                shown, value = pg.figures[key]
                if k1 == "rates":
                    check(abs(float(value) - v) < 1e-9 and shown == "%.1f%%" % (v * 100),
                          "%s: %s / %s, wanted %s", key, shown, value, v)
                else:
                    check(shown == str(v), "%s: page says %s, wanted %s", key, shown, v)
        for k in ("total", "unique"):
            check(pg.figures["clicks.%s" % k][0] == str(want["clicks"][k]), "clicks.%s" % k)
        check(pg.links == {l["n"]: {"url": l["url"], "total": str(l["total"]),
                                    "unique": str(l["unique"])}
                           for l in want["clicks"]["links"]}, "links table %s", pg.links)

        # an unwritable --html path is an error naming it
        bad = os.path.join(w.root, "no-such-dir", "r.html")
        p = w.run("stats", iid, "--html", bad)
        check(p.returncode == EX_CANTCREAT and bad in p.stderr_text,
              "unwritable --html: %d %s", p.returncode, p.stderr_text)


def test_stats_usage():
    with World() as w:
        w.init()
        p = w.run("stats", "1", "--bogus")
        check(p.returncode == 64 and "unknown option '--bogus'" in p.stderr_text,
              "unknown option: %d %s", p.returncode, p.stderr_text)
        p = w.run("stats", "1", "--html")
        check(p.returncode == 64 and "--html needs a FILE" in p.stderr_text,
              "--html without FILE: %d %s", p.returncode, p.stderr_text)
        p = w.ok("stats", "--help")
        check(p.stdout_text.startswith("usage: herald stats ID [--json] [--html FILE]\n"),
              "usage %r", p.stdout_text[:80])


run_tests([
    ("stats_report", test_stats_report),
    ("stats_usage", test_stats_usage),
])
