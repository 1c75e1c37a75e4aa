#!/usr/bin/python3
"""test_segment.py - segments from the command line: `herald segment
create|ls|show|rm|count` and `herald sub ls --where`.

A CSV with attributes is imported; for each expression, `sub ls --where
EXPR --json` (with and without --list) and `segment count` must equal the
set computed here in Python from the CSV rows - an evaluator of segment.h's
rules written independently of the SQL.  Also: saved segments round-trip,
a saved segment follows the data, errors name the column on stderr and exit
65 (64 for a wrong command line), and a value that looks like SQL is only a
value.
"""
import csv
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests  # noqa: E402

EX_USAGE, EX_DATAERR, EX_NOINPUT = 64, 65, 66

ROLES = ["Social worker", "social WORKER", "Senior social worker", "Team manager", "",
         "Researcher"]
REGIONS = ["London", "Wales", "london", "North East", ""]
AGES = ["42", "7", "-3.5", "007", "", "unknown", "18", "1e3"]
JOINED = ["2024-03-01", "2023-12-31", "2024-03-01T10:00", "", "2025-1-1", "2022-06-30"]
DOMAINS = ["example.org", "council.example.gov.uk", "uni.example.ac.uk"]
NAMES = ["Ada Lovelace", "", "Zoë Brown", "Seán O'Brien", "bo"]


def rows():
    out = []
    for i in range(60):
        out.append({"email": "p%d@%s" % (i, DOMAINS[i % 3]), "name": NAMES[i % 5],
                    "role": ROLES[i % 6], "region": REGIONS[i % 5], "age": AGES[i % 8],
                    "joined": JOINED[i % 6]})
    return out


def to_csv(rs):
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["email", "name", "role", "region", "age", "joined"],
                       lineterminator="\r\n")
    w.writeheader()
    w.writerows(rs)
    return buf.getvalue()


# --- the independent evaluator -------------------------------------------

def value(r, k):
    """An attribute's value: None when missing or blank (import stores none)."""
    v = r.get(k, "")
    return v if v else None


def teq(v, t):
    return v is not None and v.lower() == t.lower()


def number(v):
    """segment.h: optional sign, digits, at most one dot, at least one digit."""
    if v is None:
        return None
    s = v[1:] if v[:1] in "+-" else v
    if not s or any(c not in "0123456789." for c in s) or s.count(".") > 1 or \
            not any(c.isdigit() for c in s):
        return None
    return float(v)


def date(v):
    if v is None or len(v) < 10 or (len(v) > 10 and v[10] not in "T "):
        return None
    d = v[:10]
    ok = all(c.isdigit() for i, c in enumerate(d) if i not in (4, 7)) and d[4] == d[7] == "-"
    return d if ok else None


def n_cmp(v, op, x):
    n = number(v)
    return n is not None and op(n, x)


CASES = [
    ('attr.role = "social worker"', lambda r: teq(value(r, "role"), "social worker")),
    ('attr.role != "Social Worker"', lambda r: not teq(value(r, "role"), "social worker")),
    ('not (attr.role = "Social Worker")', lambda r: not teq(value(r, "role"), "social worker")),
    ('attr.age >= 18', lambda r: n_cmp(value(r, "age"), float.__ge__, 18)),
    ('attr.age < 10 and attr.role starts_with "SOC"',
     lambda r: n_cmp(value(r, "age"), float.__lt__, 10) and
     (value(r, "role") or "").lower().startswith("soc")),
    ('attr.joined >= 2024-01-01 or name = ""',
     lambda r: (date(value(r, "joined")) or "") >= "2024-01-01" or r["name"] == ""),
    ('not attr.region in ("London", "wales") and exists attr.age',
     lambda r: not (teq(value(r, "region"), "london") or teq(value(r, "region"), "wales"))
     and value(r, "age") is not None),
    ('email ends_with "@COUNCIL.example.gov.uk" or attr.age = 7',
     lambda r: r["email"].endswith("@council.example.gov.uk") or
     n_cmp(value(r, "age"), float.__eq__, 7)),
    ('name starts_with "zo" or name = "seán o\'brien"',
     lambda r: r["name"].lower().startswith("zo") or r["name"] == "Seán O'Brien"),
    ('not exists attr.region', lambda r: value(r, "region") is None),
]


def world():
    w = World()
    w.init()
    w.ok("list", "create", "newsletter")
    w.ok("list", "create", "events")
    rs = rows()
    w.ok("sub", "import", "--list", "newsletter", w.write("subs.csv", to_csv(rs)))
    return w, rs


def emails(w, *args):
    p = w.ok("sub", "ls", *args, "--json")
    out = json.loads(p.stdout_text)
    check(all(m["status"] == "active" for m in out), "sub ls --where: %s", out[:2])
    ids = [m["id"] for m in out]
    check(ids == sorted(ids), "sub ls --where is not in id order")
    return {m["email"] for m in out}


def count(w, *args):
    out = w.ok("segment", "count", *args).stdout_text
    check(out.strip().isdigit(), "segment count printed %r", out)
    return int(out)


def test_counts_and_listing_match_the_csv():
    """Every subscriber is active and on the newsletter, except: p3 is
    blocked, p4's address is suppressed, and p1, p2 were added to `events`
    only, unconfirmed there (so active, but on no audience)."""
    w, rs = world()
    with w:
        w.ok("sub", "block", "p3@example.org")
        w.ok("suppress", "add", "p4@uni.example.ac.uk")
        for i in (1, 2):
            w.ok("sub", "unsubscribe", rs[i]["email"], "--list", "newsletter")
            w.ok("sub", "add", rs[i]["email"], "--list", "events", "--unconfirmed")
        active = [r for r in rs if r["email"] not in ("p3@example.org", "p4@uni.example.ac.uk")]
        audience = [r for r in active if r["email"] not in (rs[1]["email"], rs[2]["email"])]
        for expr, pred in CASES:
            want = {r["email"] for r in active if pred(r)}
            want_news = {r["email"] for r in audience if pred(r)}
            check(want and want != {r["email"] for r in active},
                  "%s: a weak case (matches %d)", expr, len(want))
            got = emails(w, "--where", expr)
            check(got == want, "%s: sub ls --where: extra %s, missing %s", expr,
                  sorted(got - want), sorted(want - got))
            got = emails(w, "--where", expr, "--list", "newsletter")
            check(got == want_news, "%s --list newsletter: extra %s, missing %s", expr,
                  sorted(got - want_news), sorted(want_news - got))
            check(count(w, "--where", expr) == len(want), "%s: segment count", expr)
            check(count(w, "--where", expr, "--list", "newsletter") == len(want_news),
                  "%s: segment count --list", expr)
        # the list term: events has only unconfirmed members
        check(count(w, "--where", "list newsletter") == len(audience), "list newsletter")
        check(count(w, "--where", "list events") == 0, "list events (unconfirmed)")
        # text output: the table and a count line
        out = w.ok("sub", "ls", "--where", 'attr.role = "team manager"').stdout_text
        n = sum(1 for r in active if teq(value(r, "role"), "team manager"))
        check(out.splitlines()[0].startswith("EMAIL") and out.endswith("%d subscribers\n" % n),
              "sub ls --where text: %r", out[-200:])


def test_saved_segments():
    w, rs = world()
    with w:
        expr = 'attr.role in ("social worker", "team manager") and attr.age >= 18'
        p = w.ok("segment", "create", "sw-adults", "--where", expr, "--description",
                 "grown-up practitioners")
        check(p.stdout_text == "created segment 'sw-adults'\n", "create: %r", p.stdout_text)
        w.ok("segment", "create", "gov", "--where", 'email ends_with ".gov.uk"')
        ls = json.loads(w.ok("segment", "ls", "--json").stdout_text)
        check([s["name"] for s in ls] == ["gov", "sw-adults"], "ls: %s", ls)
        show = json.loads(w.ok("segment", "show", "sw-adults", "--json").stdout_text)
        check(show["expr"] == expr and show["description"] == "grown-up practitioners",
              "show: %s", show)
        check("grown-up practitioners" in w.ok("segment", "ls").stdout_text, "ls text")
        check("expression   " + expr in w.ok("segment", "show", "sw-adults").stdout_text,
              "show text")

        def want():
            return sum(1 for r in rs if (teq(value(r, "role"), "social worker") or
                                         teq(value(r, "role"), "team manager")) and
                       n_cmp(value(r, "age"), float.__ge__, 18))
        n = count(w, "sw-adults")
        check(n == want() and n > 0, "count sw-adults: %d, wanted %d", n, want())
        check(count(w, "sw-adults", "--list", "newsletter") == n, "count --list")
        check(count(w, "sw-adults", "--list", "events") == 0, "count --list events")

        # a saved segment is evaluated again: change the data, the count follows
        w.ok("sub", "import", "--list", "newsletter",
             w.write("more.csv", "email,role,age\r\nnew@example.org,Team Manager,30\r\n"))
        check(count(w, "sw-adults") == n + 1, "the saved segment did not follow the data")

        # a second create of the name: refused, then replaced with --force
        p = w.run("segment", "create", "gov", "--where", "list events")
        check(p.returncode == EX_DATAERR and "a segment named 'gov' already exists" in
              p.stderr_text, "duplicate create: %d %s", p.returncode, p.stderr_text)
        p = w.ok("segment", "create", "gov", "--where", "list events", "--force")
        check(p.stdout_text == "replaced segment 'gov'\n", "--force: %r", p.stdout_text)
        check(json.loads(w.ok("segment", "show", "gov", "--json").stdout_text)["expr"] ==
              "list events", "not replaced")

        # a list the segment names is removed: the segment no longer compiles
        w.ok("segment", "create", "ev", "--where", "list events or attr.age = 7")
        w.ok("list", "rm", "events")
        p = w.run("segment", "count", "ev")
        check(p.returncode == EX_DATAERR and
              "herald segment: segment ev:1:6: no list named 'events'" in p.stderr_text,
              "count of a broken segment: %d %s", p.returncode, p.stderr_text)

        w.ok("segment", "rm", "gov")
        p = w.run("segment", "rm", "gov")
        check(p.returncode == EX_NOINPUT and "no segment named 'gov'" in p.stderr_text,
              "rm twice: %d %s", p.returncode, p.stderr_text)
        p = w.run("segment", "show", "sw-adult")
        check(p.returncode == EX_NOINPUT and "did you mean 'sw-adults'?" in p.stderr_text,
              "show a typo: %d %s", p.returncode, p.stderr_text)
        p = w.run("segment", "create", "bad", "--where", 'attr.role = "x" and engagd 30d')
        check(p.returncode == EX_DATAERR and "herald segment: segment bad:1:21: unknown term "
              "'engagd'; did you mean 'engaged'?" in p.stderr_text, "bad create: %s",
              p.stderr_text)
        check(not w.sql("SELECT 1 FROM segments WHERE name = 'bad'"), "bad one saved")
        p = w.run("segment", "create", "Bad Name", "--where", "list newsletter")
        check(p.returncode == EX_DATAERR and "invalid segment name" in p.stderr_text,
              "bad name: %s", p.stderr_text)


def test_errors_name_the_column():
    w, rs = world()
    with w:
        for args, rc, msg in [
            (["segment", "count", "--where", 'attr.role contains "x"'], EX_DATAERR,
             "herald segment: --where:1:11: unknown attribute function 'contains'"),
            (["segment", "count", "--where", 'attr.role = "x'], EX_DATAERR,
             "herald segment: --where:1:13: unterminated string"),
            (["segment", "count", "--where", "attr.age >="], EX_DATAERR,
             "--where:1:12: expected a value after '>='"),
            (["sub", "ls", "--where", "list newsleter"], EX_DATAERR,
             "herald sub: --where:1:6: no list named 'newsleter'; did you mean 'newsletter'?"),
            (["sub", "ls", "--where", 'attr.x = "a") or'], EX_DATAERR,
             "--where:1:13: unmatched ')'"),
            (["segment", "count", "--where", ""], EX_DATAERR, "--where:1:1: empty expression"),
            (["segment", "count"], EX_USAGE, "segment count needs a NAME or --where EXPR"),
            (["segment", "count", "x", "--where", "list newsletter"], EX_USAGE, "not both"),
            (["segment", "create", "x"], EX_USAGE, "segment create needs --where EXPR"),
            (["segment", "frobnicate"], EX_USAGE, "unknown verb 'segment frobnicate'"),
            (["sub", "ls", "--where", "list newsletter", "--status", "unconfirmed"], EX_USAGE,
             "takes no --status"),
            (["sub", "ls"], EX_USAGE, "sub ls needs --list NAME or --where EXPR"),
            (["segment", "count", "--where", "list newsletter", "--list", "nope"], EX_NOINPUT,
             "no list named 'nope'"),
        ]:
            p = w.run(*args)
            check(p.returncode == rc and msg in p.stderr_text,
                  "herald %s: exit %d, wanted %d; stderr %r", " ".join(args), p.returncode, rc,
                  p.stderr_text)
            check(p.stdout_text == "", "herald %s printed %r", " ".join(args), p.stdout_text)
        # the old sub ls still works as it did
        check(len(json.loads(w.ok("sub", "ls", "--list", "newsletter", "--json")
                             .stdout_text)) == len(rs), "sub ls --list")


def test_values_are_never_sql_and_junk_is_refused():
    w, rs = world()
    with w:
        evil = "'; DROP TABLE subscribers; --"
        w.ok("sub", "add", "evil@example.org", "--list", "newsletter", "--attr", "org=" + evil)
        w.ok("sub", "add", "quote@example.org", "--list", "newsletter", "--attr",
             'org=say "hi" \\ bye')
        before = w.sql("SELECT count(*) FROM subscribers")[0][0]
        check(emails(w, "--where", 'attr.org = "%s"' % evil) == {"evil@example.org"},
              "the value was not matched literally")
        check(emails(w, "--where", 'attr.org = "say \\"hi\\" \\\\ bye"') ==
              {"quote@example.org"}, "escapes")
        check(w.sql("SELECT count(*) FROM subscribers")[0][0] == before, "table changed")
        p = w.run("segment", "count", "--where", 'attr.org = "x" or 1 = 1')
        check(p.returncode == EX_DATAERR and "--where:1:19: unknown term '1'" in p.stderr_text,
              "or 1 = 1: %d %s", p.returncode, p.stderr_text)
        p = w.run("segment", "count", "--where", 'attr.org = "x"; DELETE FROM subscribers')
        check(p.returncode == EX_DATAERR and "--where:1:15: unexpected character ';'" in
              p.stderr_text, "semicolon: %s", p.stderr_text)


def test_subscribed_within_follows_now():
    w, rs = world()
    with w:
        n = len(rs)
        check(count(w, "--where", "subscribed_within 1d") == n, "just imported")
        p = w.ok("--now", "2100-01-01T00:00Z", "segment", "count", "--where",
                 "subscribed_within 30d")
        check(p.stdout_text == "0\n", "--now in 2100: %r", p.stdout_text)
        p = w.ok("--now", "2100-01-01T00:00Z", "segment", "count", "--where",
                 "subscribed_before 2099-01-01")
        check(p.stdout_text == "%d\n" % n, "subscribed_before: %r", p.stdout_text)


run_tests([
    ("counts_and_listing_match_the_csv", test_counts_and_listing_match_the_csv),
    ("saved_segments", test_saved_segments),
    ("errors_name_the_column", test_errors_name_the_column),
    ("values_are_never_sql_and_junk_is_refused", test_values_are_never_sql_and_junk_is_refused),
    ("subscribed_within_follows_now", test_subscribed_within_follows_now),
])
