#!/usr/bin/python3
"""test_subject_test.py - subject-line tests (subjecttest.h) end to end,
against the real SMTP test server (tests/tools/smtpd.py) and `herald
serve`.

Fifty subscribers; an issue with two subject variants and test_share 40 %.
`herald send` mails only the two test groups: 20 people, 10 per variant,
disjoint, each with their variant's subject.  Readers of variant 2 click
more (through the real click redirect of `herald serve`, the mail's own
/c/TOKEN/N URLs fetched with curl).  `herald run` before test_wait is over
sends nothing and says when it will decide; after it (the clock moved
with the global --now) it records "variant 2 won: ..." and sends variant
2's subject to the 30 held back.  Everyone gets exactly one mail, and
`stats --json`, `stats` and `issue show` name the winner with the figures.
Front-matter mistakes fail at `issue new` naming the file and line.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, iso, run_tests  # noqa: E402
from webclient import curl  # noqa: E402

EX_DATAERR = 65
N = 50
SUBJECTS = ["Spring briefing: what works in 47 councils",
            "47 councils tried this - here is what worked"]
TOKEN_RE = r"[A-Za-z0-9_-]+"


def issue_text(head):
    return ("---\nlist: newsletter\n%s---\n\nDear {{name|reader}},\n\n"
            "[Read the report](https://example.org/report) and "
            "[the method](https://example.org/method).\n" % head)


def subject_test_head(share="40%", wait="4h"):
    return ('subject_variants: ["%s", "%s"]\ntest_share: %s\ntest_wait: %s\n'
            % (SUBJECTS[0], SUBJECTS[1], share, wait))


def mails(server):
    """{recipient: [subject, ...]} and {recipient: first click path}."""
    got, clicks = {}, {}
    for ev, msg, raw in server.messages():
        subject = str(msg["Subject"])
        html = msg.get_body(("html",)).get_content()
        m = re.search(r'href="https://news\.example\.org(/c/%s/1)"' % TOKEN_RE, html)
        for r in ev["rcpt_tos"]:
            got.setdefault(r, []).append(subject)
            if m:
                clicks[r] = m.group(1)
    return got, clicks


def test_two_variants_then_the_winner_to_the_rest():
    with World() as w:
        w.init()
        server = w.smtp()
        emails = ["reader%02d@example.org" % i for i in range(N)]
        w.subscribe(emails)
        iid = w.ok("issue", "new", w.write("t.md", issue_text(subject_test_head()))) \
            .stdout_text.strip()
        show = w.ok("issue", "show", iid).stdout_text
        check("variants   1: %s" % SUBJECTS[0] in show and "2: %s" % SUBJECTS[1] in show,
              "issue show lacks the variants: %s", show)
        check("40% of the audience" in show and "not started" in show, "issue show: %s", show)

        t0 = int(time.time())
        out = w.ok("--now", iso(t0), "send", iid).stdout_text
        got, clicks = mails(server)
        # the test groups only: 40 % of 50, 10 per variant, disjoint
        check(len(got) == 20, "%d mailed, wanted the 20 of the test groups: %s", len(got), out)
        check(all(len(v) == 1 for v in got.values()), "someone got two: %s", got)
        groups = [sorted(r for r, s in got.items() if s == [SUBJECTS[k]]) for k in (0, 1)]
        check([len(g) for g in groups] == [10, 10], "group sizes %s",
              [len(g) for g in groups])
        check(not set(groups[0]) & set(groups[1]), "groups overlap")
        check(set(got) <= set(emails), "mail to a stranger")
        check(re.search(r"subject test: 30 held back; the winner is picked at", out),
              "send did not say when the winner is picked: %s", out)
        # the database agrees with what arrived
        rows = w.sql("SELECT s.email, d.variant, d.status FROM deliveries d JOIN subscribers s "
                     "ON s.id = d.subscriber_id WHERE d.issue_id = ?", int(iid))
        by_variant = {k: sorted(e for e, v, st in rows if v == k) for k in (0, 1, 2)}
        check(by_variant[1] == groups[0] and by_variant[2] == groups[1],
              "deliveries.variant does not match the mail")
        check(len(by_variant[0]) == 30 and all(st == "pending" for e, v, st in rows if v == 0),
              "the holdout is not 30 pending rows")

        # variant 2's readers click more: 5 against 2, through herald serve
        srv = w.serve()
        for r in groups[1][:5] + groups[0][:2] + groups[1][:1]:  # one clicks twice
            resp = curl(srv.url + clicks[r])
            check(resp.status in (302, 303), "click %s: %r", r, resp)
        srv.stop()
        check(len(w.sql("SELECT 1 FROM events WHERE issue_id = ? AND kind = 'click'",
                        int(iid))) == 8, "clicks were not recorded")

        # before the wait is over: nothing more is sent, and run says when
        out = w.ok("--now", iso(t0 + 3600), "run").stdout_text
        check(server.count() == 20, "run sent before the wait was over: %d", server.count())
        check(re.search(r"issue %s: subject test: 30 held back; the winner is picked at .* "
                        r"\(in (2h 59m|3h 0m)\)" % iid, out), "run before the wait said: %r", out)

        # after it: the winner, why, and the rest get variant 2
        out = w.ok("--now", iso(t0 + 4 * 3600 + 120), "run").stdout_text
        why = "variant 2 won: 5 of 10 clicked (50.0 %) against 2 of 10 (20.0 %)"
        check("subject test decided: %s; 30 held back get variant 2" % why in out,
              "run after the wait said: %r", out)
        got, _ = mails(server)
        check(sorted(got) == sorted(emails), "not everyone got the issue: %d", len(got))
        check(all(len(v) == 1 for v in got.values()),
              "someone got it twice: %s", [r for r, v in got.items() if len(v) > 1])
        rest = [r for r in emails if r not in groups[0] + groups[1]]
        check(all(got[r] == [SUBJECTS[1]] for r in rest), "the holdout did not get variant 2")
        check(w.sql("SELECT status FROM issues WHERE id = ?", int(iid))[0][0] == "sent",
              "issue not sent")

        # once more: nothing is sent again, nothing is decided again
        out = w.ok("--now", iso(t0 + 5 * 3600), "run").stdout_text
        check(server.count() == N, "a later run sent more: %d", server.count())
        check("decided" not in out, "decided twice: %r", out)

        st = json.loads(w.ok("stats", iid, "--json").stdout_text)
        t = st["subject_test"]
        check(t["state"] == "decided" and t["winner"] == 2 and t["why"] == why, "stats: %s", t)
        check(t["share"] == 40 and t["wait"] == 4 * 3600, "stats share/wait: %s", t)
        check(t["holdout"] == {"recipients": 30, "sent": 30}, "holdout: %s", t["holdout"])
        v1, v2 = t["variants"]
        check((v1["subject"], v1["recipients"], v1["sent"], v1["clicks"], v1["winner"]) ==
              (SUBJECTS[0], 10, 10, 2, False), "variant 1: %s", v1)
        check((v2["subject"], v2["recipients"], v2["sent"], v2["clicks"], v2["winner"]) ==
              (SUBJECTS[1], 10, 10, 5, True), "variant 2: %s", v2)
        check(v2["click_rate"] == 0.5 and v1["click_rate"] == 0.2, "rates: %s %s", v1, v2)
        check(v1["opens_human"] == 0 and v2["opens_human"] == 0, "opens: %s %s", v1, v2)
        text = w.ok("stats", iid).stdout_text
        check("winner: variant 2: %s" % why in text, "stats text: %s", text)
        check(re.search(r"^  2 +10 +10 +0 +5 .*%s  \(won\)$" % re.escape(SUBJECTS[1]), text,
                        re.M), "stats text variant row: %s", text)
        w.ok("stats", iid, "--html", "r.html")
        with open(os.path.join(w.root, "r.html")) as f:
            page = f.read()
        check('<tr data-variant="2">' in page and "Variant 2 won" in page, "html lacks the test")
        show = w.ok("issue", "show", iid).stdout_text
        check("decided" in show and why in show and "(won)" in show, "issue show: %s", show)


def test_front_matter_mistakes():
    with World() as w:
        w.init()
        w.subscribe(["a@example.org"])
        cases = [
            ('subject_variants: ["Only one"]\n', "wants 2 to 5 subjects"),
            ('subject_variants: [a, b, c, d, e, f]\n', "more than 5 subjects"),
            ('subject_variants: ["Same", "Same"]\n', "variants 1 and 2 are the same"),
            ('subject_variants: ["A", "B"]\ntest_share: 60%\n', "from 1% to 50%"),
            ('subject_variants: ["A", "B"]\ntest_wait: soon\n', "test_wait must be a span"),
            ('subject_variants: ["A", "B"]\ntest_wait: 10s\n', "test_wait must be a span"),
            ('subject: X\ntest_share: 20%\n', "belong to a subject test"),
            ('subject_variants: ["A", "B\\nBcc: x@example.org"]\n', "line break"),
            ('subject_variants: ["A", "Hi {{nmae}}"]\n', "nmae"),
        ]
        for head, want in cases:
            p = w.run("issue", "new", w.write("bad.md", issue_text(head)))
            check(p.returncode == EX_DATAERR, "%r: exit %d: %s", head, p.returncode,
                  p.stderr_text)
            check(want in p.stderr_text and "bad.md:" in p.stderr_text,
                  "%r: stderr %r", head, p.stderr_text)
        check(not w.sql("SELECT 1 FROM issues"), "a bad file made an issue")
        # defaults: 20 % and 4 h; no subject: the first variant names it
        iid = w.ok("issue", "new", w.write("ok.md", issue_text(
            'subject_variants: ["First", "Second"]\n'))).stdout_text.strip()
        row = w.sql("SELECT subject, test_share, test_wait, test_state FROM issues "
                    "WHERE id = ?", int(iid))[0]
        check(row == ("First", 20, 4 * 3600, "testing"), "defaults: %s", row)


if __name__ == "__main__":
    run_tests([
        ("test_two_variants_then_the_winner_to_the_rest",
         test_two_variants_then_the_winner_to_the_rest),
        ("test_front_matter_mistakes", test_front_matter_mistakes),
    ])
