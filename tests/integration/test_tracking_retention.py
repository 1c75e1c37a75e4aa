"""test_tracking_retention.py - [tracking] mode and [retention], end to end.

Tracking (tracking.h): each mode checked on the mails the SMTP capture
server received (parsed with email.policy.default: the pixel, the links of
the HTML part and the tokens in them) and on the events table after
hitting the URLs with curl against `herald serve`.  Retention
(retention.h): with --now far in the future `herald run` removes old rows
in batches, `herald stats ID --json` is the same before and after, and
`herald db stats` counts what is left.
"""
import base64
import json
import os
import re
import shutil
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, iso, need_module, run_tests, wait_until, SKIP  # noqa: E402

if not shutil.which("curl"):
    print("SKIP: curl is missing (apt-get install curl)")
    sys.exit(SKIP)
need_module("aiosmtpd")
from webclient import curl, expect  # noqa: E402

BASE = "https://news.example.org"
TOK = r"[A-Za-z0-9_-]+"
PLAIN = "https://example.org/report"
MERGED = "https://example.org/data?who={{email}}"
BODY = "Hello {{name}}.\n\nThe [report](%s) and [your data](%s).\n" % (PLAIN, MERGED)
# a: agreed; b: said no; c: never asked; d: agreed, but tracking = no
CSV = ("email,name,tracking_consent,tracking\n"
       "a@example.org,A,yes,\n"
       "b@example.org,B,no,\n"
       "c@example.org,C,,\n"
       "d@example.org,D,yes,no\n")
T0 = 1767261600  # 2026-01-01T10:00Z


def token_fields(tok):
    """(kind, subscriber, list, issue) of a token (token.h layout)."""
    raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    out, pos = [raw[0] & 0x0f], 1
    for _ in range(3):
        v, shift = 0, 0
        while True:
            b = raw[pos]
            pos += 1
            v |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append(v)
    return tuple(out)


class Mail:
    def __init__(self, msg):
        self.to = msg["To"].addresses[0].addr_spec
        self.html = msg.get_body(("html",)).get_content()
        self.text = msg.get_body(("plain",)).get_content()
        b = re.escape(BASE)
        pix = re.findall(r'<img\b[^>]*\bsrc="(%s/o/(%s)\.gif)"' % (b, TOK), self.html)
        self.pixel = pix[0][0] if pix else None
        self.pixel_tok = pix[0][1] if pix else None
        self.clicks = re.findall(r'href="(%s/c/(%s)/(\d+))"' % (b, TOK), self.html)
        self.hrefs = re.findall(r'href="([^"]+)"', self.html)


def world(mode):
    w = World()
    w.init()
    if mode:
        w.set("tracking", mode=mode)
    smtp = w.smtp()
    w.ok("list", "create", "newsletter")
    w.ok("sub", "import", "--list", "newsletter", w.write("subs.csv", CSV))
    path = w.write("issue.md", "---\nsubject: Modes\nlist: newsletter\n---\n\n" + BODY)
    iid = w.ok("issue", "new", path).stdout_text.strip()
    w.ok("--now", iso(T0), "send", iid)
    mails = {m.to: m for m in (Mail(msg) for _, msg, _ in smtp.messages())}
    check(sorted(mails) == ["a@example.org", "b@example.org", "c@example.org",
                            "d@example.org"], "mails to %s", sorted(mails))
    ids = {e: i for i, e in w.sql("SELECT id, email FROM subscribers")}
    return w, iid, mails, ids


def untracked(m):
    check(m.pixel is None, "%s: a pixel in %s mode", m.to, m.pixel)
    check(not m.clicks, "%s: redirects %s", m.to, m.clicks)
    check(PLAIN in m.hrefs, "%s: no direct link to %s: %s", m.to, PLAIN, m.hrefs)
    check("https://example.org/data?who=%s" % m.to.replace("@", "%40") in m.hrefs,
          "%s: the merged link is not direct: %s", m.to, m.hrefs)


def personal(m, sid):
    check(m.pixel, "%s: no pixel", m.to)
    check(token_fields(m.pixel_tok)[:2] == (2, sid), "%s: pixel token %s", m.to,
          token_fields(m.pixel_tok))
    check(len(m.clicks) == 2, "%s: redirects %s", m.to, m.clicks)
    for _, tok, _ in m.clicks:
        check(token_fields(tok)[:2] == (3, sid), "%s: click token %s", m.to, token_fields(tok))


def stats(w, iid, *now):
    return json.loads(w.ok(*(list(now) + ["stats", iid, "--json"])).stdout_text)


def test_mode_on_is_the_default():
    w, iid, mails, ids = world(None)
    try:
        for who in ("a", "b", "c"):
            personal(mails[who + "@example.org"], ids[who + "@example.org"])
        untracked(mails["d@example.org"])   # the person's own no
        st = stats(w, iid)
        check(st["tracking"] == {"mode": "on", "unique": True}, "tracking %s", st["tracking"])
        check(re.search(r"^  tracking +on$", w.ok("stats", iid).stdout_text, re.M),
              "text stats lack the mode")
    finally:
        w.close()


def test_mode_off():
    w, iid, mails, _ = world("off")
    try:
        for m in mails.values():
            untracked(m)
        check(stats(w, iid)["tracking"]["mode"] == "off", "mode not off")
    finally:
        w.close()


def test_mode_consent():
    w, iid, mails, ids = world("consent")
    try:
        personal(mails["a@example.org"], ids["a@example.org"])
        for who in ("b", "c", "d"):
            untracked(mails[who + "@example.org"])
        check(stats(w, iid)["tracking"] == {"mode": "consent", "unique": True}, "mode")
        # the events of the one who agreed name them
        srv = w.serve()
        a = mails["a@example.org"]
        expect(curl(srv.url + a.pixel[len(BASE):]), 200)
        r = curl(srv.url + a.clicks[0][0][len(BASE):])
        expect(r, 302)
        check(r.h("Location") == PLAIN, "Location %s", r.h("Location"))
        wait_until(lambda: len(w.sql("SELECT id FROM events WHERE kind IN ('open', 'click')"))
                   == 2, 10, "two events")
        rows = w.sql("SELECT kind, subscriber_id FROM events WHERE kind IN ('open', 'click') "
                     "ORDER BY id")
        check(rows == [("open", ids["a@example.org"]), ("click", ids["a@example.org"])],
              "events %s", rows)
        srv.stop()
    finally:
        w.close()


def test_mode_anonymous():
    w, iid, mails, _ = world("anonymous")
    try:
        untracked(mails["d@example.org"])
        toks = set()
        for who in ("a", "b", "c"):
            m = mails[who + "@example.org"]
            check(m.pixel, "%s: no pixel", m.to)
            kind, sub, _, issue = token_fields(m.pixel_tok)
            check((kind, sub, issue) == (8, 0, int(iid)), "%s: pixel token %s", m.to,
                  token_fields(m.pixel_tok))
            # the plain link through the redirect, the merged one direct
            check(len(m.clicks) == 1 and m.clicks[0][2] == "1", "%s: redirects %s", m.to,
                  m.clicks)
            kind, sub, _, issue = token_fields(m.clicks[0][1])
            check((kind, sub, issue) == (9, 0, int(iid)), "%s: click token", m.to)
            check("https://example.org/data?who=%s" % m.to.replace("@", "%40") in m.hrefs,
                  "%s: merged link not direct", m.to)
            toks.add((m.pixel_tok, m.clicks[0][1]))
        check(len(toks) == 1, "anonymous tokens differ between readers: %s", toks)
        srv = w.serve()
        a, b = mails["a@example.org"], mails["b@example.org"]
        for m in (a, b):
            expect(curl(srv.url + m.pixel[len(BASE):]), 200)
        r = curl(srv.url + a.clicks[0][0][len(BASE):])
        expect(r, 302)
        check(r.h("Location") == PLAIN, "Location %s", r.h("Location"))
        # link 2 (merge fields) never went through an anonymous redirect
        expect(curl(srv.url + "/c/%s/2" % a.clicks[0][1]), 404)
        wait_until(lambda: len(w.sql("SELECT id FROM events WHERE kind IN ('open', 'click')"))
                   == 3, 10, "three events")
        srv.stop()
        rows = w.sql("SELECT kind, issue_id, subscriber_id FROM events "
                     "WHERE kind IN ('open', 'click') ORDER BY id")
        check(rows == [("open", int(iid), None), ("open", int(iid), None),
                       ("click", int(iid), None)], "events %s", rows)
        st = stats(w, iid)
        check(st["tracking"] == {"mode": "anonymous", "unique": False}, "tracking %s",
              st["tracking"])
        check(st["opens"]["total"] == 2 and st["opens"]["unique"] == 0, "opens %s", st["opens"])
        check(st["clicks"]["total"] == 1 and st["clicks"]["links"][0]["total"] == 1,
              "clicks %s", st["clicks"])
        check("no unique counts" in w.ok("stats", iid).stdout_text, "text stats say nothing")
    finally:
        w.close()


def test_signup_checkbox_and_core_setter():
    """The sign-up form's checkbox writes the attribute consent mode reads."""
    w = World()
    try:
        w.init()
        w.ok("list", "create", "newsletter", "--signup")
        srv = w.serve()
        r = curl(srv.url + "/subscribe", "POST",
                 data="email=new%40example.org&list=newsletter&tracking_consent=on")
        check(r.status in (200, 303), "sign-up: %r", r)
        r = curl(srv.url + "/subscribe", "POST", data="email=other%40example.org&list=newsletter")
        srv.stop()
        rows = dict(w.sql("SELECT email, json_extract(attributes, '$.tracking_consent') "
                          "FROM subscribers"))
        check(rows == {"new@example.org": "yes", "other@example.org": None}, "attrs %s", rows)
    finally:
        w.close()


def test_retention_keeps_stats():
    w, iid, mails, ids = world(None)
    try:
        # 12,000 opens and 4 clicks of the issue, old sign-up events, old inbound mail
        con_rows = [("open", iid, ids[e], T0 + 60 + i) for i, e in
                    enumerate(sorted(ids) * 3000)]
        con = sqlite3.connect(w.db)
        con.executemany("INSERT INTO events (kind, issue_id, subscriber_id, at) "
                        "VALUES (?, ?, ?, ?)", con_rows)
        con.executemany("INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
                        "VALUES ('click', ?, ?, ?, '{\"n\": 1}')",
                        [(iid, ids[e], T0 + 7200) for e in sorted(ids)])
        con.executemany("INSERT INTO inbound (sha256, kind, received_at) VALUES (?, 'bounce', ?)",
                        [("%064d" % i, T0) for i in range(30)])
        con.commit()
        con.close()
        before = w.ok("stats", iid, "--json").stdout_text
        n_events = w.sql("SELECT count(*) FROM events")[0][0]
        check(n_events >= 12004, "events %d", n_events)
        far = iso(T0 + 3 * 365 * 86400)
        # off by default: nothing goes
        out = w.ok("--now", far, "run").stdout_text
        check("retention" not in out and w.sql("SELECT count(*) FROM events")[0][0] == n_events,
              "retention ran while off: %s", out)
        w.set("retention", events="25 months", deliveries="25 months", inbound="90 days")
        out = w.ok("--now", far, "run").stdout_text
        m = re.search(r"retention: removed (\d+) events, (\d+) deliveries, (\d+) inbound "
                      r"messages; kept the figures of (\d+) issues; (\d+) transactions, "
                      r"longest ([\d.]+) ms", out)
        check(m, "run said: %s", out)
        ev, dl, ib, kept, tx, longest = m.groups()
        check(int(ev) == n_events and int(dl) == 4 and int(ib) == 30 and int(kept) == 1,
              "removed %s", m.groups())
        check(int(tx) >= 4, "12,000 events in %s transactions", tx)
        after = w.ok("stats", iid, "--json").stdout_text
        check(after == before, "stats changed:\n%s\n%s", before, after)
        db = json.loads(w.ok("db", "stats", "--json").stdout_text)
        t = {x["name"]: x for x in db["tables"]}
        check(t["events"]["rows"] == 0 and t["deliveries"]["rows"] == 0 and
              t["inbound"]["rows"] == 0 and t["issue_figures"]["rows"] == 1,
              "db stats %s", {k: t[k]["rows"] for k in ("events", "deliveries", "inbound",
                                                        "issue_figures")})
        check(t["subscribers"]["oldest"] is not None and t["events"]["oldest"] is None,
              "oldest rows %s", t["subscribers"])
        text = w.ok("db", "stats").stdout_text
        check(re.search(r"^events +0 ", text, re.M) and "issue_figures" in text,
              "db stats text: %s", text)
    finally:
        w.close()


if __name__ == "__main__":
    run_tests([(f.__name__, f) for f in (
        test_mode_on_is_the_default, test_mode_off, test_mode_consent, test_mode_anonymous,
        test_signup_checkbox_and_core_setter, test_retention_keeps_stats)])
