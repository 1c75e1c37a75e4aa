#!/usr/bin/python3
"""test_issue_audience.py - an issue's audience: several lists and a filter
(`lists:`, `where:`, `segment:` in the front matter, repeated --list),
counted by `issue show` and `issue schedule`, listed by `issue audience`,
and sent through the real SMTP test server (tests/tools/smtpd.py).

One CSV of people with attributes is imported into two overlapping lists;
some then leave one list, one is blocked, one matching address is
suppressed.  The set the issue must reach is computed here in Python from
the CSV rows and those changes - independently of herald's SQL - and
compared with what `issue show` counts, what `issue audience --json` and
`--csv` list (with the lists each person is reached through), and what
arrived at the server: nobody twice, nobody suppressed, blocked or gone.
A wrong `where:` fails at `issue new` naming FILE:LINE:COL and changes
nothing; a saved segment is evaluated when the send starts.
"""
import csv
import io
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests  # noqa: E402

EX_DATAERR, EX_NOINPUT = 65, 66

ROLES = ["social worker", "Social Worker", "team manager", "", "researcher",
         "Senior social worker"]
REGIONS = ["Leeds", "Bristol", "london", "LEEDS", "", "Wales", "bristol"]
WHERE = 'attr.role = "social worker" and attr.region in ("Leeds", "Bristol")'


def people():
    out = []
    for i in range(96):
        out.append({"email": "p%02d@example.%s" % (i, ["org", "net"][i % 2]),
                    "name": "Person %d" % i, "role": ROLES[i % 6],
                    "region": REGIONS[i % 7]})
    return out


def to_csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["email", "name", "role", "region"], lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def matches(r):
    """WHERE, as segment.h defines it: text compares case-insensitively, an
    empty cell is no value (and matches nothing)."""
    return r["role"].lower() == "social worker" and r["region"].lower() in ("leeds", "bristol")


class Setup:
    """Lists a (rows 0-63) and b (rows 32-95), then, among those who match
    WHERE: one on both lists is suppressed, one leaves a (still on b), one
    is blocked, and one on b only leaves b (gone)."""

    def __init__(self, w):
        self.rows = people()
        w.ok("list", "create", "a")
        w.ok("list", "create", "b")
        w.ok("sub", "import", "--list", "a", w.write("a.csv", to_csv(self.rows[:64])))
        w.ok("sub", "import", "--list", "b", w.write("b.csv", to_csv(self.rows[32:])))
        self.on = {r["email"]: set() for r in self.rows}
        for r in self.rows[:64]:
            self.on[r["email"]].add("a")
        for r in self.rows[32:]:
            self.on[r["email"]].add("b")
        # each change made to someone who matches, so a mistake would show
        both = [r["email"] for r in self.rows if self.on[r["email"]] == {"a", "b"} and
                matches(r)]
        only_b = [r["email"] for r in self.rows if self.on[r["email"]] == {"b"} and matches(r)]
        self.suppressed, self.left_a, self.blocked = both[:3]
        self.gone = only_b[0]
        w.ok("sub", "unsubscribe", self.left_a, "--list", "a")
        self.on[self.left_a].discard("a")
        w.ok("sub", "unsubscribe", self.gone, "--list", "b")
        self.on[self.gone].discard("b")
        w.ok("sub", "block", self.blocked)
        w.ok("suppress", "add", self.suppressed)

    def audience(self, pred=matches):
        """{email: [lists in the issue's order]} of who must get the issue."""
        out = {}
        for r in self.rows:
            e = r["email"]
            if e in (self.suppressed, self.blocked) or not self.on[e] or not pred(r):
                continue
            out[e] = [n for n in ("a", "b") if n in self.on[e]]
        return out


def issue_file(w, name, head, body="Dear {{name|reader}}, hello.\n"):
    return w.write(name, "---\nsubject: Briefing\n%s---\n\n%s" % (head, body))


def would_go(text):
    m = re.search(r"would go to ([\d,]+) subscribers? of (.*)$", text, re.M)
    check(m, "no 'would go to' line in %r", text)
    return int(m.group(1).replace(",", "")), m.group(2)


def test_two_lists_and_where_send_exactly_the_set():
    with World() as w:
        w.init()
        server = w.smtp()
        s = Setup(w)
        want = s.audience()
        check(len(want) >= 5, "a weak case: %d", len(want))
        check(s.left_a in want and want[s.left_a] == ["b"], "p17 should come through b")
        check(any(v == ["a", "b"] for v in want.values()), "nobody on both lists")
        check(any(v == ["a"] for v in want.values()), "nobody on a only")
        check(s.suppressed not in want and s.gone not in want, "case set-up")

        iid = w.ok("issue", "new", issue_file(w, "i.md", "lists: [a, b]\nwhere: %s\n" % WHERE)
                   ).stdout_text.strip()
        show = w.ok("issue", "show", iid).stdout_text
        n, what = would_go(show)
        check(n == len(want), "issue show counts %d, the CSV says %d", n, len(want))
        check(what == "a, b; where " + WHERE, "issue show: %r", what)
        check(re.search(r"^lists +a, b$", show, re.M), "lists line: %s", show)
        js = json.loads(w.ok("issue", "show", iid, "--json").stdout_text)
        check(js["audience"] == len(want) and js["lists"] == ["a", "b"] and
              js["where"] == WHERE and js["segment"] is None and js["list"] == "a",
              "show --json: %s", js)

        listed = json.loads(w.ok("issue", "audience", iid, "--json").stdout_text)
        emails = [m["email"] for m in listed]
        check(len(emails) == len(set(emails)), "issue audience lists someone twice")
        check({m["email"]: m["lists"] for m in listed} == want,
              "issue audience --json differs: extra %s, missing %s, lists %s",
              sorted(set(emails) - set(want)), sorted(set(want) - set(emails)),
              [(m["email"], m["lists"], want.get(m["email"])) for m in listed
               if want.get(m["email"]) != m["lists"]])
        ids = [m["id"] for m in listed]
        check(ids == sorted(ids), "not in send (id) order")
        rows = list(csv.DictReader(io.StringIO(
            w.ok("issue", "audience", iid, "--csv").stdout_text)))
        check({r["email"]: r["lists"].split(",") for r in rows} == want, "--csv: %s", rows)
        check(all(r["name"] == "Person %d" % int(r["email"][1:3]) for r in rows), "csv names")
        text = w.ok("issue", "audience", iid).stdout_text
        check(text.startswith("EMAIL") and len(text.splitlines()) == len(want) + 1,
              "text listing: %r", text)

        p = w.ok("issue", "schedule", iid, "--at", "2030-12-01T09:00Z")
        check(would_go(p.stdout_text)[0] == len(want), "schedule: %r", p.stdout_text)

        p = w.run("send", iid)
        check(p.returncode == 0, "send: %s", p.stderr_text)
        got = [r for r, _ in server.accepted()]
        check(len(got) == len(set(got)), "someone got it twice: %s", got)
        check(set(got) == set(want), "recipients differ: missing %s, extra %s",
              sorted(set(want) - set(got)), sorted(set(got) - set(want)))
        check(w.sql("SELECT count(*) FROM deliveries WHERE issue_id = ? AND status = 'sent'",
                    iid)[0][0] == len(want), "ledger")
        show = w.ok("issue", "show", iid).stdout_text
        check("as it was when the send started" in show and
              re.search(r"^recipients +%d$" % len(want), show, re.M), "after: %s", show)


def test_wrong_where_creates_nothing():
    with World() as w:
        w.init()
        Setup(w)
        dump = w.dump()
        bad = 'attr.role = "social worker" and attr.region contains "Leeds"'
        path = issue_file(w, "bad.md", "lists: [a, b]\nwhere: %s\n" % bad)
        p = w.run("issue", "new", path)
        col = len("where: ") + bad.index("contains") + 1
        check(p.returncode == EX_DATAERR, "exit %d: %s", p.returncode, p.stderr_text)
        check("bad.md:4:%d: unknown attribute function 'contains'" % col in p.stderr_text,
              "no FILE:LINE:COL: %s", p.stderr_text)
        # quoted, the column still points into the file
        path = issue_file(w, "bad2.md", "list: a\nwhere: '%s'\n" % bad)
        p = w.run("issue", "new", path)
        check(p.returncode == EX_DATAERR and "bad2.md:4:%d:" % (col + 1) in p.stderr_text,
              "quoted: %s", p.stderr_text)
        for name, head, code, msg in [
                ("both.md", "lists: [a]\nsegment: x\nwhere: %s\n" % WHERE, EX_DATAERR,
                 r"both\.md:5: front matter: give 'segment' or 'where', not both"),
                ("lists.md", "list: a\nlists: [b]\n", EX_DATAERR,
                 r"lists\.md:4: front matter: give 'list' or 'lists', not both"),
                ("twice.md", "lists: [a, b, a]\n", EX_DATAERR, r"list 'a' is given twice"),
                ("nolist.md", "lists: [a, c]\nwhere: %s\n" % WHERE, EX_NOINPUT,
                 r"nolist\.md:3: no list named 'c'"),
                ("noseg.md", "lists: [a]\nsegment: nope\n", EX_NOINPUT,
                 r"noseg\.md:4: no segment named 'nope'"),
                ("listterm.md", "lists: [a]\nwhere: list newsleter\n", EX_DATAERR,
                 r"listterm\.md:4:13: no list named 'newsleter'"),
                ("unterminated.md", 'lists: [a]\nwhere: attr.role = "social\n', EX_DATAERR,
                 r"unterminated\.md:4:20: unterminated string")]:
            p = w.run("issue", "new", issue_file(w, name, head))
            check(p.returncode == code and re.search(msg, p.stderr_text),
                  "%s: exit %d: %s", name, p.returncode, p.stderr_text)
        check(w.dump() == dump, "a refused issue changed the database")


def test_saved_segment_is_taken_when_the_send_starts():
    with World() as w:
        w.init()
        server = w.smtp()
        s = Setup(w)
        w.ok("segment", "create", "practice-leads", "--where", WHERE)
        # --list, repeated, replaces the front matter's list
        iid = w.ok("issue", "new", "--list", "a", "--list", "b",
                   issue_file(w, "seg.md", "list: b\nsegment: practice-leads\n")
                   ).stdout_text.strip()
        n, what = would_go(w.ok("issue", "show", iid).stdout_text)
        check(what == "a, b; segment practice-leads" and n == len(s.audience()),
              "show: %d %r", n, what)
        p = w.run("segment", "rm", "practice-leads")
        check(p.returncode == EX_DATAERR and "issue %s" % iid in p.stderr_text,
              "segment rm under an unsent issue: %d %s", p.returncode, p.stderr_text)
        # after the issue was made: a new match on b, and one stops matching
        w.ok("sub", "import", "--list", "b", w.write("late.csv", to_csv([
            {"email": "late@example.org", "name": "Late", "role": "Social worker",
             "region": "Bristol"}])))
        changed = next(e for e, v in s.audience().items() if v == ["a"])
        w.ok("sub", "import", "--list", "a", w.write("moved.csv", to_csv([
            dict(next(r for r in s.rows if r["email"] == changed), region="Wales")])))
        want = set(s.audience()) - {changed} | {"late@example.org"}
        p = w.run("send", iid)
        check(p.returncode == 0, "send: %s", p.stderr_text)
        got = [r for r, _ in server.accepted()]
        check(len(got) == len(set(got)) and set(got) == want,
              "segment at send: missing %s, extra %s", sorted(want - set(got)),
              sorted(set(got) - want))
        # sent: the segment may go now; and a list an issue goes to stays
        w.ok("segment", "rm", "practice-leads")
        p = w.run("list", "rm", "b")
        check(p.returncode == EX_DATAERR and "issue" in p.stderr_text,
              "list rm of an issue's second list: %d %s", p.returncode, p.stderr_text)


run_tests([
    ("two_lists_and_where_send_exactly_the_set",
     test_two_lists_and_where_send_exactly_the_set),
    ("wrong_where_creates_nothing", test_wrong_where_creates_nothing),
    ("saved_segment_is_taken_when_the_send_starts",
     test_saved_segment_is_taken_when_the_send_starts),
])
