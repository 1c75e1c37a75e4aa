#!/usr/bin/python3
"""test_cli_manage.py - the happy path of every admin command, and its --json.

init (twice), config check, list create/ls/show/rm, sub add/ls/show/
unsubscribe/block/rm/import/export, issue new/ls/show/preview/schedule/
cancel/rm, send and stats.  Each test reads the result back through another
command (mostly a --json one) or the database, so a command that printed
success without doing its job fails.  The last test walks `herald --help`:
every command answers --help with its usage, and every synopsis line appears
verbatim in docs/commands.md and in the man page's source docs/herald.1.scd
(both part of the repository: missing, the test fails).

Also run under valgrind (tests/CMakeLists.txt), so it keeps the number of
herald runs modest.
"""
import csv
import email
import email.policy
import io
import json
import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, SOURCE_DIR, World, check, run_tests  # noqa: E402

EX_DATAERR, EX_NOINPUT, EX_IOERR = 65, 66, 74


def world(*lists):
    w = World()
    w.init()
    for name in lists:
        w.ok("list", "create", name)
    return w


def js(w, *args):
    p = w.ok(*args)
    try:
        return json.loads(p.stdout_text)
    except ValueError as e:
        raise AssertionError("herald %s: not JSON (%s): %r" % (" ".join(args), e,
                                                                p.stdout_text))


def new_issue(w, text, *args, name="issue.md"):
    w.write(name, text.encode("utf-8"))
    out = w.ok("issue", "new", name, *args).stdout_text
    check(re.fullmatch(r"\d+\n", out), "issue new printed %r, not an id", out)
    return out.strip()


def members(w, lst, status=None):
    args = ["sub", "ls", "--list", lst, "--json"] + (["--status", status] if status else [])
    return js(w, *args)


def emails(w, lst, status=None):
    return sorted(m["email"] for m in members(w, lst, status))


ISSUE = """\
---
subject: "Hello {{name|friend}}"
preheader: "The preheader"
list: newsletter
---

# Issue one

Dear {{name|reader}},

See [the report](https://example.org/report) and [the blog](https://example.org/blog).
"""


# --- init and config -------------------------------------------------------

def test_init_twice():
    with World() as w:
        p = w.ok("init")
        check(re.search(r"^created database %s \(schema version (\d+)\)$" % re.escape(w.db),
                        p.stdout_text, re.M), "first init: %s", p.stdout_text)
        version = re.search(r"schema version (\d+)", p.stdout_text).group(1)
        check("created token secret" in p.stdout_text, "no secret created: %s", p.stdout_text)
        secret = [f for f in os.listdir(w.root) if f.endswith(".secret")]
        check(len(secret) == 1, "secret files: %s", os.listdir(w.root))
        spath = os.path.join(w.root, secret[0])
        key = open(spath, "rb").read()
        check(len(key) >= 32, "token secret is %d bytes", len(key))
        check(stat.S_IMODE(os.stat(spath).st_mode) == 0o600, "secret mode %o",
              stat.S_IMODE(os.stat(spath).st_mode))
        check(w.sql("PRAGMA user_version") == [(int(version),)], "user_version")
        dump = w.dump()
        p = w.ok("init")
        check(p.stdout_text == "checked database %s (schema version %s)\n" % (w.db, version),
              "second init: %r", p.stdout_text)
        check(w.dump() == dump, "a second init changed the database")
        check(open(spath, "rb").read() == key, "a second init replaced the token secret")


def test_config_check_ok():
    with world() as w:
        p = w.ok("config", "check")
        lines = p.stdout_text.splitlines()
        check(lines[0] == "%s: OK" % w.config, "first line %r", lines[0])
        for pat in (r"^  database +%s \(schema version \d+\)$" % re.escape(w.db),
                    r"^  relay +smtp://127\.0\.0\.1:1 \(starttls never, user none, 8 connections\)$",
                    r"^  from +What Works Centre <news@example\.org>$",
                    r"^  return +news@example\.org$",
                    r"^  links +https://news\.example\.org$"):
            check(any(re.search(pat, l) for l in lines), "no line %r in:\n%s", pat,
                  p.stdout_text)
        # a config without [dkim] is usable, with one warning saying so
        others = [l for l in p.stderr_text.splitlines()
                  if not l.startswith("warning: no [dkim] private_key")]
        check(others == [] and "unsigned" in p.stderr_text,
              "warnings on a good config: %s", p.stderr_text)
        check(w.ok("--quiet", "config", "check").stdout_text == "", "--quiet printed")


# --- lists -----------------------------------------------------------------

def test_list_create_ls_show_rm():
    with world() as w:
        p = w.ok("list", "create", "newsletter", "--title", "The News", "--double-opt-in",
                 "--public")
        check(re.fullmatch(r"created list 'newsletter' \(id \d+\)\n", p.stdout_text),
              "create: %r", p.stdout_text)
        w.ok("list", "create", "alerts")
        ls = js(w, "list", "ls", "--json")
        check([l["name"] for l in ls] == ["alerts", "newsletter"], "ls order: %s", ls)
        news = ls[1]
        check(news["title"] == "The News" and news["double_opt_in"] is True and
              news["public"] is True, "newsletter: %s", news)
        check(ls[0]["title"] == "" and ls[0]["double_opt_in"] is False and
              ls[0]["public"] is False, "alerts: %s", ls[0])
        w.ok("sub", "add", "a@example.org", "--list", "newsletter")
        w.ok("sub", "add", "b@example.org", "--list", "newsletter", "--unconfirmed")
        w.ok("sub", "add", "a@example.org", "--list", "alerts")
        new_issue(w, ISSUE)
        show = js(w, "list", "show", "newsletter", "--json")
        check(show["subscribers"] == {"confirmed": 1, "unconfirmed": 1, "unsubscribed": 0}
              and show["issues"] == 1 and show["id"] == news["id"], "show: %s", show)
        text = w.ok("list", "show", "newsletter").stdout_text
        check(re.search(r"subscribers +1 confirmed, 1 unconfirmed, 0 unsubscribed", text),
              "show text: %s", text)
        table = w.ok("list", "ls").stdout_text
        check(re.search(r"^newsletter +1 +1 +0 +1 +The News \[double opt-in\] \[public\]$",
                        table, re.M), "ls table: %s", table)

        # rm refuses a list with issues, and changes nothing
        dump = w.dump()
        p = w.run("list", "rm", "newsletter")
        check(p.returncode == EX_DATAERR and "has 1 issue" in p.stderr_text and
              "--force" in p.stderr_text, "rm with issues: %d %s", p.returncode,
              p.stderr_text)
        check(w.dump() == dump, "refused rm changed the database")
        w.ok("list", "rm", "newsletter", "--force")
        check([l["name"] for l in js(w, "list", "ls", "--json")] == ["alerts"], "after rm")
        check(js(w, "issue", "ls", "--json") == [], "the list's issue survived rm --force")
        a = js(w, "sub", "show", "a@example.org", "--json")
        check([s["list"] for s in a["subscriptions"]] == ["alerts"],
              "subscriptions after rm: %s", a["subscriptions"])
        check(w.sql("SELECT count(*) FROM subscribers") == [(2,)],
              "rm removed subscribers, not just subscriptions")
        w.ok("list", "rm", "alerts")
        check(js(w, "list", "ls", "--json") == [], "lists left")
        check("no lists yet" in w.ok("list", "ls").stdout_text, "empty ls text")


# --- subscribers -----------------------------------------------------------

def test_sub_add_options():
    with world("newsletter") as w:
        p = w.ok("sub", "add", "ada@example.org", "--list", "newsletter", "--name",
                 "Ada Lovelace", "--attr", "role=Social worker", "--attr", "org=Lambeth",
                 "--unconfirmed")
        check(p.stdout_text == "ada@example.org: added to 'newsletter' (unconfirmed)\n",
              "add: %r", p.stdout_text)
        s = js(w, "sub", "show", "ada@example.org", "--json")
        check(s["name"] == "Ada Lovelace" and s["status"] == "active", "show: %s", s)
        check(s["attributes"] == {"role": "Social worker", "org": "Lambeth"},
              "attributes: %s", s["attributes"])
        check(len(s["subscriptions"]) == 1, "subscriptions: %s", s["subscriptions"])
        sub = s["subscriptions"][0]
        check(sub["list"] == "newsletter" and sub["status"] == "unconfirmed" and
              sub["confirmed_at"] == 0 and sub["created_at"] > 0, "subscription: %s", sub)
        # adding again merges attributes and keeps the name when none is given
        w.ok("sub", "add", "ada@example.org", "--list", "newsletter", "--attr", "town=Leeds")
        s = js(w, "sub", "show", "ada@example.org", "--json")
        check(s["name"] == "Ada Lovelace" and s["attributes"] ==
              {"role": "Social worker", "org": "Lambeth", "town": "Leeds"}, "merged: %s", s)
        check(s["subscriptions"][0]["status"] == "confirmed" and
              s["subscriptions"][0]["confirmed_at"] > 0, "not confirmed by an admin add: %s",
              s["subscriptions"])


def test_identity_is_case_insensitive():
    with world("newsletter") as w:
        w.ok("sub", "add", "Grace@Example.net", "--list", "newsletter", "--name", "Grace")
        p = w.ok("sub", "add", "grace@example.net", "--list", "newsletter")
        check("unchanged" in p.stdout_text, "second add: %s", p.stdout_text)
        w.ok("sub", "add", "GRACE@EXAMPLE.NET", "--list", "newsletter", "--name", "Grace H")
        check(w.sql("SELECT count(*) FROM subscribers") == [(1,)], "more than one subscriber")
        check(w.sql("SELECT count(*) FROM subscriptions") == [(1,)], "more than one subscription")
        s = js(w, "sub", "show", "gRACE@example.NET", "--json")
        check(s["email"] == "Grace@example.net", "spelling kept: %r", s["email"])
        check(s["name"] == "Grace H", "name not updated: %r", s["name"])
        check(emails(w, "newsletter") == ["Grace@example.net"], "ls")


def test_sub_ls_status_and_show_subscriptions():
    with world("newsletter", "alerts") as w:
        w.ok("sub", "add", "c@example.org", "--list", "newsletter")
        w.ok("sub", "add", "u@example.org", "--list", "newsletter", "--unconfirmed")
        w.ok("sub", "add", "x@example.org", "--list", "newsletter")
        w.ok("sub", "add", "c@example.org", "--list", "alerts", "--unconfirmed")
        w.ok("sub", "unsubscribe", "x@example.org", "--list", "newsletter")
        check(emails(w, "newsletter", "confirmed") == ["c@example.org"], "confirmed")
        check(emails(w, "newsletter", "unconfirmed") == ["u@example.org"], "unconfirmed")
        check(emails(w, "newsletter", "unsubscribed") == ["x@example.org"], "unsubscribed")
        all_ = members(w, "newsletter")
        check({m["email"]: m["subscription"] for m in all_} ==
              {"c@example.org": "confirmed", "u@example.org": "unconfirmed",
               "x@example.org": "unsubscribed"}, "ls without --status: %s", all_)
        check(emails(w, "alerts") == ["c@example.org"], "alerts")
        text = w.ok("sub", "ls", "--list", "newsletter", "--status", "confirmed").stdout_text
        check(text.rstrip().endswith("1 subscriber") and "c@example.org" in text and
              "u@example.org" not in text, "text ls: %s", text)
        s = js(w, "sub", "show", "c@example.org", "--json")
        check(sorted((x["list"], x["status"]) for x in s["subscriptions"]) ==
              [("alerts", "unconfirmed"), ("newsletter", "confirmed")],
              "subscriptions: %s", s["subscriptions"])
        check(s["deliveries"] == [], "deliveries: %s", s["deliveries"])


def test_sub_unsubscribe_block_rm():
    with world("newsletter") as w:
        w.ok("sub", "add", "a@example.org", "--list", "newsletter")
        w.ok("sub", "add", "b@example.org", "--list", "newsletter")
        w.ok("sub", "add", "c@example.org", "--list", "newsletter")
        p = w.ok("sub", "unsubscribe", "A@example.org", "--list", "newsletter")
        check(p.stdout_text == "unsubscribed a@example.org from 'newsletter'\n", "%r",
              p.stdout_text)
        s = js(w, "sub", "show", "a@example.org", "--json")
        check(s["subscriptions"][0]["status"] == "unsubscribed" and
              s["subscriptions"][0]["unsubscribed_at"] > 0, "after unsubscribe: %s", s)
        ev = w.sql("SELECT kind, subscriber_id, list_id, detail FROM events")
        lid = js(w, "list", "show", "newsletter", "--json")["id"]
        check(len(ev) == 1 and ev[0][:3] == ("unsubscribe", s["id"], lid),
              "events: %s", ev)
        check(json.loads(ev[0][3]).get("source") == "cli", "event detail: %s", ev[0][3])
        check(js(w, "list", "show", "newsletter", "--json")["subscribers"]["unsubscribed"] == 1,
              "list counts")

        p = w.ok("sub", "block", "b@example.org")
        check("blocked b@example.org" in p.stdout_text, "block: %s", p.stdout_text)
        check(js(w, "sub", "show", "b@example.org", "--json")["status"] == "blocklisted",
              "not blocklisted")
        p = w.run("sub", "add", "b@example.org", "--list", "newsletter")
        check(p.returncode == EX_DATAERR and "blocked" in p.stderr_text,
              "a blocked address was subscribed again: %d %s", p.returncode, p.stderr_text)

        p = w.ok("sub", "rm", "c@example.org")
        check("removed c@example.org" in p.stdout_text, "rm: %s", p.stdout_text)
        p = w.run("sub", "show", "c@example.org")
        check(p.returncode == EX_NOINPUT, "removed subscriber still shown")
        check(w.sql("SELECT count(*) FROM subscriptions s JOIN subscribers u ON "
                    "u.id = s.subscriber_id WHERE u.email_key = 'c@example.org'") == [(0,)],
              "subscriptions left behind")
        check(emails(w, "newsletter") == ["a@example.org", "b@example.org"], "ls after rm")


# --- CSV import and export -------------------------------------------------

PEOPLE = [
    # email, name, Organisation, Role, Town
    ("jones@example.org", "Jones, Alex", "Weston-Super-Mare, North Somerset",
     "Principal social worker", "Weston"),
    ("rock@example.org", 'Dwayne "The Rock" Johnson', 'The "Rock" Co', "Actor", ""),
    ("zoe@example.de", "Zoë Müller", "Ørsted Ærø", "Researcher", "Köln"),
    ("sean@example.ie", "Seán O'Brien", "", "", "Dún Laoghaire"),
    ("plain@example.com", "", "Plain Org", "", ""),
]


def people_csv():
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\r\n")
    wr.writerow(["Email", " Name ", "Organisation", "Role", "Town"])
    for row in PEOPLE:
        wr.writerow(row)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def expected_attrs(row):
    return {k: v for k, v in zip(("Organisation", "Role", "Town"), row[2:]) if v}


def test_import_generated_csv():
    with world("newsletter") as w:
        path = w.write("people.csv", people_csv())
        p = w.run("sub", "import", "--list", "newsletter", path)
        check(p.returncode == 0, "import: %d %s", p.returncode, p.stderr_text)
        check("5 added, 0 updated, 0 unchanged, 0 skipped, 0 bad rows" in p.stdout_text,
              "summary: %s", p.stdout_text)
        check(p.stderr_text == "", "stderr: %s", p.stderr_text)
        for row in PEOPLE:
            s = js(w, "sub", "show", row[0], "--json")
            check(s["name"] == row[1], "%s: name %r, wanted %r", row[0], s["name"], row[1])
            check(s["attributes"] == expected_attrs(row), "%s: attributes %s, wanted %s",
                  row[0], s["attributes"], expected_attrs(row))
            check([(x["list"], x["status"]) for x in s["subscriptions"]] ==
                  [("newsletter", "confirmed")], "%s: %s", row[0], s["subscriptions"])
        # importing the same file again changes nothing
        dump = w.dump()
        p = w.ok("sub", "import", "--list", "newsletter", path)
        check("0 added, 0 updated, 5 unchanged" in p.stdout_text, "re-import: %s",
              p.stdout_text)
        check(w.dump() == dump, "re-importing the same file changed the database")
        # --unconfirmed
        w.write("more.csv", "email\nlate@example.org\n")
        w.ok("sub", "import", "--list", "newsletter", "more.csv", "--unconfirmed")
        check(emails(w, "newsletter", "unconfirmed") == ["late@example.org"], "--unconfirmed")


def test_listings_stream_one_document():
    """sub ls --json writes its rows as they come (cmd.h: cmd_json_rows):
    the bytes are still one JSON document laid out as jansson's JSON_INDENT(2)
    lays out the whole array (Python's indent=2 is the same layout), "[]"
    when empty, and a write error fails the command instead of a silent
    truncation."""
    with world("newsletter", "empty") as w:
        w.ok("sub", "import", "--list", "newsletter", w.write("people.csv", people_csv()))
        for args in (("sub", "ls", "--list", "newsletter", "--json"),
                     ("sub", "ls", "--where", "exists attr.Organisation", "--json"),
                     ("list", "ls", "--json"), ("sub", "ls", "--list", "empty", "--json")):
            out = w.ok(*args).stdout_text
            check(out == json.dumps(json.loads(out), indent=2, ensure_ascii=False) + "\n",
                  "herald %s: not laid out as one document:\n%s", " ".join(args), out)
        check(w.ok("sub", "ls", "--list", "empty", "--json").stdout_text == "[]\n",
              "an empty listing")
        with open("/dev/full", "wb") as full:
            p = subprocess.run([HERALD, "--config", w.config, "sub", "ls", "--list",
                                "newsletter", "--json"], stdout=full, stderr=subprocess.PIPE,
                               cwd=w.root, timeout=60)
        check(p.returncode == EX_IOERR and b"write error" in p.stderr,
              "sub ls --json > /dev/full: exit %d, %r", p.returncode, p.stderr)


def strip_ids(ms):
    return sorted(({k: v for k, v in m.items() if k != "id"} for m in ms),
                  key=lambda m: m["email"])


def test_export_reimport_roundtrip():
    with world("newsletter") as a, world("newsletter") as b:
        a.ok("sub", "import", "--list", "newsletter", a.write("people.csv", people_csv()))
        a.ok("sub", "add", "extra@example.org", "--list", "newsletter", "--name",
             "Line, \"Quoted\" Ünïcode", "--attr", "only here=yes, really")
        a.ok("sub", "add", "pending@example.org", "--list", "newsletter", "--unconfirmed")
        a.ok("sub", "add", "gone@example.org", "--list", "newsletter")
        a.ok("sub", "unsubscribe", "gone@example.org", "--list", "newsletter")
        exported = a.ok("sub", "export", "--list", "newsletter").stdout
        rows = list(csv.reader(io.StringIO(exported.decode("utf-8"), newline="")))
        check(rows[0][:2] == ["email", "name"], "export header %s", rows[0])
        got = sorted(r[0] for r in rows[1:])
        check(got == sorted([p[0] for p in PEOPLE] + ["extra@example.org"]),
              "export holds %s (default: confirmed only)", got)
        b.ok("sub", "import", "--list", "newsletter", b.write("export.csv", exported))
        want = strip_ids(members(a, "newsletter", "confirmed"))
        have = strip_ids(members(b, "newsletter"))
        check(have == want, "round trip differs:\nwant %s\nhave %s", want, have)
        unconf = a.ok("sub", "export", "--list", "newsletter", "--status",
                      "unconfirmed").stdout_text
        check([r[0] for r in csv.reader(io.StringIO(unconf))][1:] == ["pending@example.org"],
              "export --status unconfirmed: %s", unconf)


def test_import_does_not_resubscribe():
    with world("newsletter") as w:
        w.ok("sub", "add", "left@example.org", "--list", "newsletter", "--name", "Left")
        w.ok("sub", "unsubscribe", "left@example.org", "--list", "newsletter")
        w.write("back.csv", "email,name\nLEFT@example.org,Left Again\nnew@example.org,New\n")
        p = w.run("sub", "import", "--list", "newsletter", "back.csv")
        check(p.returncode == 0, "a skipped row is not a bad row: %d %s", p.returncode,
              p.stderr_text)
        check(re.search(r"^back\.csv:2: LEFT@example\.org skipped \(unsubscribed earlier\)$",
                        p.stderr_text, re.M), "skip not reported: %s", p.stderr_text)
        check("1 added, 0 updated, 0 unchanged, 1 skipped, 0 bad rows" in p.stdout_text,
              "summary: %s", p.stdout_text)
        check(emails(w, "newsletter", "unsubscribed") == ["left@example.org"],
              "the import resubscribed someone who left")
        check(js(w, "sub", "show", "left@example.org", "--json")["name"] == "Left",
              "the skipped row still updated the subscriber")
        w.ok("sub", "add", "left@example.org", "--list", "newsletter")
        check(emails(w, "newsletter", "confirmed") == ["left@example.org", "new@example.org"],
              "sub add did not resubscribe")


def test_import_reports_in_line_order():
    # The import writes its rows in address order (src/subimport.c), but
    # what it says about them comes in the file's line order, whichever
    # pass found it: a skip (zed sorts last), a bad row, a note, duplicates.
    with world("newsletter") as w:
        w.ok("sub", "add", "zed@example.org", "--list", "newsletter")
        w.ok("sub", "unsubscribe", "zed@example.org", "--list", "newsletter")
        w.write("mixed.csv", "email,name\n"
                "zed@example.org,Zed\n"            # 2: skipped (unsubscribed)
                "not-an-email,X\n"                 # 3: bad
                " amy@example.org ,Amy\n"          # 4: note, added
                "ZED@example.org,Zed Again\n"      # 5: duplicate of 2
                "amy@example.org  ,Amy Again\n"    # 6: duplicate of 4, no note
                "al@example.org,Al\n")             # 7: added
        p = w.run("sub", "import", "--list", "newsletter", "mixed.csv")
        check(p.returncode == EX_DATAERR, "bad rows: %d %s", p.returncode, p.stderr_text)
        said = [l for l in p.stderr_text.splitlines() if re.match(r"mixed\.csv:\d+:", l)]
        want = [r"^mixed\.csv:2: zed@example\.org skipped \(unsubscribed earlier\)$",
                r"^mixed\.csv:3: invalid address 'not-an-email': missing '@'$",
                r"^mixed\.csv:4: note: surrounding whitespace removed from address "
                r"'amy@example\.org'$",
                r"^mixed\.csv:5: duplicate of line 2$",
                r"^mixed\.csv:6: duplicate of line 4$"]
        check(len(said) == len(want) and all(re.search(pat, l) for pat, l in zip(want, said)),
              "messages out of line order or wrong:\n%s", "\n".join(said))
        check("2 added, 0 updated, 0 unchanged, 1 skipped, 3 bad rows" in p.stderr_text,
              "summary: %s", p.stderr_text)
        check(js(w, "sub", "show", "amy@example.org", "--json")["name"] == "Amy",
              "a duplicate overwrote the first row")
        # ids, and so `sub ls`, in address order within one import
        listed = [m["email"] for m in members(w, "newsletter", "confirmed")]
        check(listed == ["al@example.org", "amy@example.org"], "members: %s", listed)


# --- issues ----------------------------------------------------------------

def test_issue_new_ls_show():
    with world("newsletter", "other") as w:
        i1 = new_issue(w, ISSUE)
        i2 = new_issue(w, ISSUE, "--subject", "Override", "--list", "other", name="two.md")
        check(int(i2) == int(i1) + 1, "ids %s %s", i1, i2)
        ls = js(w, "issue", "ls", "--json")
        check([(x["id"], x["subject"], x["list"], x["status"]) for x in ls] ==
              [(int(i1), "Hello {{name|friend}}", "newsletter", "draft"),
               (int(i2), "Override", "other", "draft")], "ls: %s", ls)
        s = js(w, "issue", "show", i1, "--json")
        check(s["subject"] == "Hello {{name|friend}}" and s["preheader"] == "The preheader"
              and s["from"] == "news@example.org" and s["from_name"] == "What Works Centre"
              and s["send_at"] == 0 and s["recipients"] == 0 and s["created_at"] > 0,
              "show: %s", s)
        check(s["links"] == ["https://example.org/report", "https://example.org/blog"],
              "links: %s", s["links"])
        text = w.ok("issue", "show", i1).stdout_text
        check(re.search(r"^issue +%s \(draft\)$" % i1, text, re.M) and
              re.search(r"^subject +Hello \{\{name\|friend\}\}$", text, re.M),
              "show text: %s", text)


def test_issue_preview():
    with world("newsletter") as w:
        name = "Grace <Hopper> & Co"
        w.ok("sub", "add", "grace@example.net", "--list", "newsletter", "--name", name)
        iid = new_issue(w, ISSUE)
        dump = w.dump()
        text = w.ok("issue", "preview", iid, "--format", "text", "--subscriber",
                    "grace@example.net").stdout_text
        check("Dear %s," % name in text, "text preview: %s", text)
        check("https://example.org/report" in text, "link missing from text")
        html = w.ok("issue", "preview", iid, "--format", "html", "--subscriber",
                    "grace@example.net").stdout_text
        check("Dear Grace &lt;Hopper&gt; &amp; Co," in html, "escaped name missing: %s", html)
        check("<Hopper>" not in html, "unescaped name in HTML")
        check(re.search(r"<html", html, re.I) and 'href="https://example.org/report"' in html,
              "not the HTML part: %s", html[:300])
        default_text = w.ok("issue", "preview", iid, "--format", "text").stdout_text
        check("Dear reader," in default_text, "fallback not used: %s", default_text)
        check(w.ok("issue", "preview", iid).stdout_text.lstrip().lower().startswith(
            ("<!doctype", "<html")), "default format is not html")

        raw = w.ok("issue", "preview", iid, "--format", "eml", "--subscriber",
                   "grace@example.net").stdout
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        defects = [d for part in msg.walk() for d in part.defects]
        check(not defects, "defects: %s", defects)
        check(msg.get_content_type() == "multipart/alternative", "type %s",
              msg.get_content_type())
        check([p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"],
              "parts %s", [p.get_content_type() for p in msg.iter_parts()])
        check(msg["To"].addresses[0].addr_spec == "grace@example.net" and
              msg["To"].addresses[0].display_name == name, "To: %s", msg["To"])
        check(str(msg["Subject"]) == "Hello " + name, "Subject: %s", msg["Subject"])
        plain = msg.get_body(("plain",)).get_content()
        check("Dear %s," % name in plain, "eml text part: %s", plain)
        check(w.dump() == dump, "preview changed the database")


def test_issue_schedule_cancel_rm():
    with world("newsletter") as w:
        iid = new_issue(w, ISSUE)
        w.ok("issue", "schedule", iid, "--at", "2030-12-01T09:00Z")
        s = js(w, "issue", "show", iid, "--json")
        check(s["status"] == "scheduled" and s["send_at"] == 1922346000, "scheduled: %s", s)
        w.ok("issue", "schedule", iid, "--at", "2030-12-01T11:30:00+02:30")
        check(js(w, "issue", "show", iid, "--json")["send_at"] == 1922346000, "with offset")
        # without an offset the time is local
        w.ok("issue", "schedule", iid, "--at", "2030-12-01T18:00", env={"TZ": "JST-9"})
        check(js(w, "issue", "show", iid, "--json")["send_at"] == 1922346000, "local time")
        p = w.ok("issue", "cancel", iid)
        check(p.stdout_text == "cancelled issue %s\n" % iid, "cancel: %r", p.stdout_text)
        check(js(w, "issue", "show", iid, "--json")["status"] == "cancelled", "not cancelled")
        p = w.ok("issue", "rm", iid)
        check(p.stdout_text == "removed issue %s\n" % iid, "rm: %r", p.stdout_text)
        check(w.run("issue", "show", iid).returncode == EX_NOINPUT, "removed issue shown")
        check(js(w, "issue", "ls", "--json") == [], "issue ls after rm")


DELIVERY_KEYS = {"pending", "sending", "sent", "deferred", "bounced", "failed"}


def check_stats_contract(st, iid, subject, status):
    check(isinstance(st, dict) and {"issue", "deliveries"} <= set(st), "top level: %s", st)
    check(st["issue"] == {"id": int(iid), "subject": subject, "status": status},
          "issue: %s", st["issue"])
    d = st["deliveries"]
    check(DELIVERY_KEYS <= set(d), "deliveries keys %s lack %s", sorted(d),
          DELIVERY_KEYS - set(d))
    check(all(type(v) is int for v in d.values()), "non-integer counts: %s", d)
    return d


def test_send_and_stats_json():
    rules = [{"stage": "rcpt", "match": "^bad-", "reply": "550 5.1.1 user unknown"},
             {"stage": "rcpt", "match": "^later-", "reply": "451 4.7.1 try again later"}]
    with world("newsletter") as w:
        server = w.smtp(rules=rules)
        for local in ("ok1", "ok2", "bad-1", "later-1"):
            w.ok("sub", "add", "%s@example.org" % local, "--list", "newsletter")
        iid = new_issue(w, ISSUE)
        d = check_stats_contract(js(w, "stats", iid, "--json"), iid, "Hello {{name|friend}}",
                                 "draft")
        check(all(v == 0 for v in d.values()), "draft counts: %s", d)
        p = w.ok("send", iid)
        check(re.search(r"4 recipients: 2 sent, 1 deferred, 1 bounced, 0 failed",
                        p.stdout_text), "send summary: %s", p.stdout_text)
        st = js(w, "stats", iid, "--json")
        d = check_stats_contract(st, iid, "Hello {{name|friend}}", "sending")
        check({k: d[k] for k in DELIVERY_KEYS} == {"pending": 0, "sending": 0, "sent": 2,
                                                   "deferred": 1, "bounced": 1, "failed": 0},
              "counts: %s", d)
        check(st.get("recipients") == 4, "recipients: %s", st.get("recipients"))
        check(sorted(ev["rcpt_tos"][0] for ev, _, _ in server.messages()) ==
              ["ok1@example.org", "ok2@example.org"], "delivered")
        text = w.ok("stats", iid).stdout_text
        check(re.search(r"^  sent +2$", text, re.M) and re.search(r"^  bounced +1$", text,
                                                                  re.M), "stats: %s", text)
        dels = js(w, "sub", "show", "bad-1@example.org", "--json")["deliveries"]
        check(len(dels) == 1 and dels[0]["status"] == "bounced" and
              dels[0]["smtp_code"] == 550, "sub show deliveries: %s", dels)
        # an issue with a delivery history is kept unless --force
        p = w.run("issue", "rm", iid)
        check(p.returncode == EX_DATAERR and "--force" in p.stderr_text,
              "rm of a sending issue: %d %s", p.returncode, p.stderr_text)
        w.ok("issue", "rm", iid, "--force")
        check(w.sql("SELECT count(*) FROM deliveries") == [(0,)], "ledger left after rm")


# --- help ------------------------------------------------------------------

def synopsis(usage):
    """The synopsis lines of a usage text: 'usage: herald X' and the indented
    'herald ...' lines after it, up to the first blank line."""
    out = []
    for line in usage.splitlines():
        if not line.strip():
            break
        out.append(re.sub(r"^(usage:)?\s*", "", line))
    return out


def test_help_for_every_command():
    with World() as w:
        main = w.ok("--help").stdout_text
        check(main.startswith("usage: herald "), "main help: %s", main)
        block = main.split("\ncommands:\n", 1)
        check(len(block) == 2, "no command list in --help: %s", main)
        commands = []
        for line in block[1].splitlines():
            m = re.match(r"^  (\w+) +\S", line)
            if not m:
                break
            commands.append(m.group(1))
        check({"init", "config", "list", "sub", "issue", "send", "stats"} <= set(commands),
              "commands: %s", commands)
        check(re.fullmatch(r"herald \d+\.\d+\.\d+\S*\n", w.ok("--version").stdout_text),
              "--version")
        # docs/commands.md and the man page's source are part of the
        # repository: missing, the open fails the test.  Each of their lines
        # as a synopsis line would read: indent and "usage:" removed, so a
        # line must match whole, not as a prefix.
        docs = {}
        for doc in ("docs/commands.md", "docs/herald.1.scd"):
            docs[doc] = {re.sub(r"^\s*(usage:)?\s*", "", l).rstrip()
                         for l in open(os.path.join(SOURCE_DIR, doc), encoding="utf-8")}
        for cmd in commands:
            p = w.ok(cmd, "--help")
            check(p.stdout_text.startswith("usage: herald %s" % cmd) and
                  re.match(r"usage: herald %s( |\n)" % cmd, p.stdout_text),
                  "herald %s --help: %r", cmd, p.stdout_text[:200])
            check(p.stderr_text == "", "herald %s --help wrote to stderr", cmd)
            check(w.ok("help", cmd).stdout_text == p.stdout_text,
                  "'herald help %s' differs from '%s --help'", cmd, cmd)
            lines = synopsis(p.stdout_text)
            check(lines and all(l.startswith("herald %s" % cmd) for l in lines),
                  "synopsis of %s: %s", cmd, lines)
            for l in lines:
                for doc, doc_lines in docs.items():
                    check(l in doc_lines, "%s lacks the synopsis line %r", doc, l)
        # a verb's --help is the command's usage too
        check(w.ok("list", "create", "--help").stdout_text.startswith("usage: herald list"),
              "list create --help")


def test_issue_new_content_warnings():
    """Images without alt text and links through URL shorteners are
    reported at issue new (deliverability); the issue is still created."""
    with world("newsletter") as w:
        path = w.write("w.md", "---\nsubject: Hi\nlist: newsletter\n---\n"
                       "![](https://example.org/a.png) and ![chart](https://example.org/b.png)\n"
                       "see [this](https://bit.ly/abc) and [that](https://example.org/x)\n")
        p = w.ok("issue", "new", path)
        check(p.stdout_text.strip().isdigit(), "no id: %s", p.stdout_text)
        check(re.search(r"w\.md: warning: an image has no alt text", p.stderr_text),
              "no alt-text warning: %s", p.stderr_text)
        check(re.search(r"link \d+ goes through the URL shortener bit\.ly", p.stderr_text),
              "no shortener warning: %s", p.stderr_text)
        check(p.stderr_text.count("warning") == 2, "warnings: %s", p.stderr_text)
        clean = w.write("c.md", "---\nsubject: Hi\nlist: newsletter\n---\n"
                        "![chart](https://example.org/b.png) [that](https://example.org/x)\n")
        check(w.ok("issue", "new", clean).stderr_text == "", "warnings on a clean issue")


run_tests([
    ("issue_new_content_warnings", test_issue_new_content_warnings),
    ("init_twice", test_init_twice),
    ("config_check_ok", test_config_check_ok),
    ("list_create_ls_show_rm", test_list_create_ls_show_rm),
    ("sub_add_options", test_sub_add_options),
    ("identity_is_case_insensitive", test_identity_is_case_insensitive),
    ("sub_ls_status_and_show_subscriptions", test_sub_ls_status_and_show_subscriptions),
    ("sub_unsubscribe_block_rm", test_sub_unsubscribe_block_rm),
    ("import_generated_csv", test_import_generated_csv),
    ("listings_stream_one_document", test_listings_stream_one_document),
    ("export_reimport_roundtrip", test_export_reimport_roundtrip),
    ("import_does_not_resubscribe", test_import_does_not_resubscribe),
    ("import_reports_in_line_order", test_import_reports_in_line_order),
    ("issue_new_ls_show", test_issue_new_ls_show),
    ("issue_preview", test_issue_preview),
    ("issue_schedule_cancel_rm", test_issue_schedule_cancel_rm),
    ("send_and_stats_json", test_send_and_stats_json),
    ("help_for_every_command", test_help_for_every_command),
])
