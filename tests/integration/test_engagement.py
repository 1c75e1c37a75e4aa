#!/usr/bin/python3
"""test_engagement.py - engagement and the sunset rule (engagement.h,
audience.h), through the real SMTP test server (tests/tools/smtpd.py) and
`herald serve` fetched with curl, with --now moving the clock.

Issue 1 goes to list 'news' at T1, issue 2 to lists news and research at
T2 = T1 + 200 days (r8 joined between them).  Then the readers' opens and
clicks are recorded as the web server records them (events rows with the
server's ua class): human opens, machine opens (flagged by the server, or a
second after the delivery: a scanner) and a click.  At T3 = T1 + 400 days,
with [audience] sunset_after = 365d, the unengaged are computed here in
Python from what the test did - mailed since before the span, sent
something in it, no human open or click in it - and compared with
`sub ls --unengaged`, `sub show`, who a third issue reaches, and its
`stats` (text, --json, --html: `skipped: unengaged`, the audience as it was
sent).  A re-engagement issue (`where: not engaged 365d`) reaches exactly
those not engaged.  The footer of each mail names the reader's own lists
among the issue's (parsed with the email package, policy.default); the
unsubscribe page of a two-list issue names both lists.
"""
import json
import os
import re
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Skip, World, check, iso, run_tests  # noqa: E402
from webclient import curl  # noqa: E402

DAY = 86400
SPAN = 365 * DAY
T1 = 1893488400                 # 2030-01-01T09:00:00Z
T2 = T1 + 200 * DAY
T3 = T1 + 400 * DAY
BASE = "https://news.example.org"
NEWS = ["r%d@example.org" % i for i in range(8)]
RESEARCH = NEWS[:2]             # r0 and r1 are on both lists
LATE = "r8@example.org"         # joins news after issue 1
HUMAN = {"ua": "human", "agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
MACHINE = {"ua": "machine", "agent": "Mozilla/5.0"}
TITLES = {"news": "The News", "research": "Research Digest"}


def issue(w, name, head):
    path = w.write(name, "---\nsubject: %s\n%s---\n\nDear {{name|reader}}, hello.\n"
                   % (name, head))
    return w.ok("issue", "new", path).stdout_text.strip()


def send(w, iid, now):
    p = w.run("--now", iso(now), "send", iid)
    check(p.returncode == 0, "send %s: %s", iid, p.stderr_text)


def received(server, since):
    """{recipient: message} of the messages accepted after the first `since`."""
    out = {}
    for ev, msg, _ in server.messages()[since:]:
        for r in ev["rcpt_tos"]:
            check(r not in out, "%s got the issue twice", r)
            out[r] = msg
    return out


def footer_lists(msg):
    """The list titles the footer names, from the text and the HTML part."""
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = msg.get_body(("html",)).get_content()
    m = re.search(r"You are receiving this because you subscribed to\s+(.*?)\.\n",
                  text, re.S)
    check(m, "no footer in the text part: %r", text[-400:])
    h = re.search(r"you subscribed to (.*?)\.</p>", html)
    check(h, "no footer in the HTML part")
    return " ".join(m.group(1).split()), h.group(1).replace("&amp;", "&")


class Story:
    """The world above, up to the events (before T3)."""

    def __init__(self, w):
        self.w = w
        w.init()
        w.set("audience", sunset_after="365d")
        self.server = w.smtp()
        w.ok("list", "create", "news", "--title", TITLES["news"])
        w.ok("list", "create", "research", "--title", TITLES["research"])
        w.subscribe(NEWS, "news")
        w.subscribe(RESEARCH, "research")
        self.i1 = issue(w, "one", "list: news\n")
        send(w, self.i1, T1)
        self.n1 = len(self.server.messages())
        w.subscribe([LATE], "news")
        self.i2 = issue(w, "two", "lists: [news, research]\n")
        send(w, self.i2, T2)
        self.mail2 = received(self.server, self.n1)
        self.sub = dict((e, i) for i, e in w.sql("SELECT id, email FROM subscribers"))
        sent = dict(w.sql("SELECT subscriber_id, sent_at FROM deliveries WHERE issue_id = ?",
                          self.i2))
        # what the readers did: (kind, issue, who, at, detail)
        self.did = [
            ("open", self.i2, "r2@example.org", T2 + 3600, HUMAN),
            ("open", self.i2, "r3@example.org", T2 + 3600, MACHINE),
            ("click", self.i2, "r4@example.org", T2 + 7200, {"n": 1}),
            # a human user agent, but a second after the delivery: a scanner
            ("open", self.i2, "r5@example.org", sent[self.sub["r5@example.org"]] + 1, HUMAN),
            ("open", self.i1, "r6@example.org", T1 + 3600, HUMAN),   # before the span
        ]
        con = sqlite3.connect(w.db, timeout=10)
        try:
            with con:
                con.executemany("INSERT INTO events (kind, issue_id, subscriber_id, list_id, "
                                "at, detail) VALUES (?, ?, ?, 1, ?, ?)",
                                [(k, i, self.sub[who], at, json.dumps(d, separators=(",", ":")))
                                 for k, i, who, at, d in self.did])
        finally:
            con.close()

    def first_sent(self, who):
        return T1 if who in NEWS else T2

    def engaged(self, who, now):
        """A click, or an open that is not a machine open, in [now - SPAN, now]."""
        sent = dict(self.w.sql("SELECT issue_id, sent_at FROM deliveries WHERE "
                               "subscriber_id = ?", self.sub[who]))
        for kind, iid, w, at, detail in self.did:
            if w != who or not now - SPAN <= at <= now:
                continue
            if kind == "click":
                return True
            machine = detail.get("ua") == "machine" or at <= sent[int(iid)] + 2
            if not machine:
                return True
        return False

    def unengaged(self, now):
        return sorted(e for e in NEWS + [LATE] if self.first_sent(e) <= now - SPAN and
                      not self.engaged(e, now))


def test_footer_names_the_readers_lists():
    with World() as w:
        s = Story(w)
        check(sorted(s.mail2) == sorted(NEWS + [LATE]), "issue 2 went to %s", sorted(s.mail2))
        for who, msg in s.mail2.items():
            want = ("The News and Research Digest" if who in RESEARCH else "The News")
            text, html = footer_lists(msg)
            check(text == want and html == want, "%s: footer names %r / %r, wanted %r", who,
                  text, html, want)


def test_sunset_leaves_out_exactly_the_unengaged():
    with World() as w:
        s = Story(w)
        want = s.unengaged(T3)
        check(want == ["r0@example.org", "r1@example.org", "r3@example.org",
                       "r5@example.org", "r6@example.org", "r7@example.org"],
              "the case changed: %s", want)

        ls = json.loads(w.ok("--now", iso(T3), "sub", "ls", "--unengaged", "--json").stdout_text)
        check(sorted(r["email"] for r in ls) == want, "sub ls --unengaged: %s", ls)
        text = w.ok("--now", iso(T3), "sub", "ls", "--unengaged").stdout_text
        check("%d unengaged subscribers" % len(want) in text, "text: %s", text)
        # before the span is over nobody is unengaged (mailed for 200 days only)
        check(w.ok("--now", iso(T2 + DAY), "sub", "ls", "--unengaged", "--json").stdout_text
              .strip() == "[]", "unengaged too early")

        # sub show: last human open, last click, last issue
        def show(who):
            return json.loads(w.ok("--now", iso(T3), "sub", "show", who, "--json")
                              .stdout_text)["engagement"]
        e = show("r2@example.org")
        check(e["last_open"] == {"at": T2 + 3600, "issue": int(s.i2)} and
              e["last_click"] is None and e["last_issue"]["issue"] == int(s.i2) and
              e["last_issue"]["subject"] == "two" and e["unengaged"] is False, "r2: %s", e)
        for who in ("r3@example.org", "r5@example.org"):
            e = show(who)
            check(e["last_open"] is None and e["unengaged"] is True,
                  "%s: machine opens counted: %s", who, e)
        e = show("r4@example.org")
        check(e["last_click"] == {"at": T2 + 7200, "issue": int(s.i2)} and
              e["unengaged"] is False, "r4: %s", e)
        text = w.ok("--now", iso(T3), "sub", "show", "r6@example.org").stdout_text
        check(re.search(r"^last open +\S+ \S+ \(issue #%s\)$" % s.i1, text, re.M) and
              re.search(r"^last click +never$", text, re.M) and
              re.search(r"^last issue +.*\(issue #%s\)$" % s.i2, text, re.M) and
              re.search(r"^unengaged +yes", text, re.M), "sub show text: %s", text)

        # issue 3: the audience without them, counted before and in stats
        i3 = issue(w, "three", "list: news\n")
        show3 = w.ok("--now", iso(T3), "issue", "show", i3).stdout_text
        keep = sorted(set(NEWS + [LATE]) - set(want))
        check(re.search(r"would go to %d subscribers? of news" % len(keep), show3),
              "issue show: %s", show3)
        n = len(s.server.messages())
        send(w, i3, T3)
        got = received(s.server, n)
        check(sorted(got) == keep, "issue 3 reached %s, wanted %s", sorted(got), keep)
        js = json.loads(w.ok("stats", i3, "--json").stdout_text)
        check(js["skipped"] == {"unengaged": len(want)} and js["recipients"] == len(keep),
              "stats --json: %s", js)
        check(js["audience"] == {"lists": ["news"], "segment": None, "where": None,
                                 "sunset_after": SPAN, "sunset_skipped": False},
              "audience: %s", js["audience"])
        text = w.ok("stats", i3).stdout_text
        check(re.search(r"^  skipped: unengaged +%d$" % len(want), text, re.M) and
              re.search(r"^  audience +list news; sunset after 365d$", text, re.M),
              "stats text: %s", text)
        page = os.path.join(w.root, "three.html")
        w.ok("stats", i3, "--html", page)
        html = open(page, encoding="utf-8").read()
        check(re.search(r"Skipped: unengaged[^<]*</th>\s*<td[^>]*>%d<" % len(want), html) and
              "Audience: list news; sunset after 365d" in html, "stats --html")

        # a re-engagement issue reaches them: its filter targets engagement
        i4 = issue(w, "four", "list: news\nwhere: not engaged 365d\n")
        n = len(s.server.messages())
        send(w, i4, T3 + 60)
        got = received(s.server, n)
        again = sorted(e for e in NEWS + [LATE] if not s.engaged(e, T3 + 60))
        check(set(want) <= set(again), "case")
        check(sorted(got) == again, "re-engagement reached %s, wanted %s", sorted(got), again)
        js = json.loads(w.ok("stats", i4, "--json").stdout_text)
        check(js["skipped"] == {"unengaged": 0} and
              js["audience"]["where"] == "not engaged 365d" and
              js["audience"]["sunset_after"] == 0 and js["audience"]["sunset_skipped"] is True,
              "re-engagement stats: %s", js)


def test_unsubscribe_page_names_the_lists():
    if not shutil.which("curl"):
        raise Skip("curl is missing (apt-get install curl)")
    with World() as w:
        s = Story(w)
        srv = w.serve()

        def page(who):
            urls = re.findall(r"<(https://[^>]+)>", str(s.mail2[who]["List-Unsubscribe"]))
            check(urls and urls[0].startswith(BASE + "/u/"), "%s: %s", who, urls)
            r = curl(srv.url + urls[0][len(BASE):])
            check(r.status == 200, "%s: %r", who, r)
            return r.text
        text = page("r0@example.org")
        check("Unsubscribe from The News and Research Digest" in text and
              "through several lists" in text and
              "The News and Research Digest." in text, "two lists: %s", text)
        text = page("r3@example.org")
        check("Unsubscribe from The News" in text and "Research" not in text and
              "no more mail from this list" in text, "one list: %s", text)


if __name__ == "__main__":
    run_tests([(fn.__name__, fn) for fn in (test_footer_names_the_readers_lists,
                                            test_sunset_leaves_out_exactly_the_unengaged,
                                            test_unsubscribe_page_names_the_lists)])
