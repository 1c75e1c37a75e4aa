#!/usr/bin/python3
"""test_cli_errors.py - every kind of bad input to the herald CLI.

Each case runs one command that must fail and checks three things:
  (a) stderr says what is wrong and where (FILE:LINE[:COL], the address,
      the key, the list), matched by a regular expression;
  (b) the exit status is the specific sysexits(3) value (64 usage, 65 data,
      66 no input, 69 relay unavailable, 75 temporary failure, 78 configuration);
  (c) the database is unchanged (World.dump() before and after), or, for
      the cases that must partly succeed (a CSV with some bad rows, a send
      that stops), exactly what may have changed did.
The SMTP cases use tests/tools/smtpd.py with AUTH required, and check that
the password never appears in anything herald prints.
"""
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, SOURCE_DIR, World, check, run_tests  # noqa: E402

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_CONFIG = 64, 65, 66, 75, 78
EX_UNAVAILABLE = 69  # the relay is unreachable or refuses herald itself (issue 3)
SAMPLE_CSV = os.path.join(SOURCE_DIR, "examples", "subscribers.csv")
PW_VAR = "HERALD_TEST_PW"
os.environ.pop(PW_VAR, None)  # each run passes it explicitly, or not at all


# --- helpers ---------------------------------------------------------------

def world(lists=("newsletter",)):
    w = World()
    w.init()
    for name in lists:
        w.ok("list", "create", name)
    return w


def fails(w, args, code, *patterns, env=None, unchanged=True):
    """Run herald ARGS, which must exit `code` with every regex of `patterns`
    found in stderr and, when `unchanged`, leave the database as it was."""
    before = w.dump() if unchanged else None
    p = w.run(*args, env=env)
    where = "herald %s" % " ".join(shlex.quote(str(a)) for a in args)
    check(p.returncode == code, "%s: exit %d, wanted %d\nstderr: %s", where, p.returncode,
          code, p.stderr_text)
    for pat in patterns:
        check(re.search(pat, p.stderr_text), "%s: stderr does not match %r:\n%s", where, pat,
              p.stderr_text)
    if unchanged:
        check(w.dump() == before, "%s changed the database", where)
    return p


def one_line(p):
    """The error is one line: no raw CR or LF from the input leaks into it."""
    lines = [l for l in p.stderr_text.split("\n") if l and not l.startswith(("usage:", " "))]
    check("\r" not in p.stderr_text, "raw CR on stderr: %r", p.stderr_text)
    return lines


def issue_file(w, name, text):
    return w.write(name, text.encode("utf-8") if isinstance(text, str) else text)


def subscribers(w):
    return sorted(r[0] for r in w.sql("SELECT email FROM subscribers"))


def set_smtp(w, **keys):
    """Set keys in the [smtp] section of w's config (replace or add)."""
    text = open(w.config).read()
    head, sep, rest = text.partition("[smtp]\n")
    check(sep, "no [smtp] section in the harness config")
    end = re.search(r"^\[", rest, re.M)
    section, tail = (rest[:end.start()], rest[end.start():]) if end else (rest, "")
    for k, v in keys.items():
        line = "%s = %s\n" % (k, v)
        section, n = re.subn(r"^%s\s*=.*\n" % re.escape(k), line, section, flags=re.M)
        if not n:
            section = line + section
    with open(w.config, "w") as f:
        f.write(head + sep + section + tail)


def auth_world(n_subscribers=2):
    """A world whose [smtp] logs in as 'user' with the password in $HERALD_TEST_PW,
    short timeouts so a hanging relay fails fast, and one draft issue."""
    w = world()
    set_smtp(w, username="user", password_env=PW_VAR, timeout=5, connect_timeout=3)
    for i in range(n_subscribers):
        w.ok("sub", "add", "reader%d@example.org" % i, "--list", "newsletter",
             "--name", "Reader %d" % i)
    issue_file(w, "issue.md", "---\nsubject: Hello\nlist: newsletter\n---\n\n"
               "Dear {{name|reader}}, hello.\n")
    w.issue_id = w.ok("issue", "new", "issue.md").stdout_text.strip()
    return w


def deliveries(w):
    return w.sql("SELECT status, attempts FROM deliveries ORDER BY subscriber_id")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_raw(args, cwd, env_extra=None):
    """herald without the harness's --config (for the config-lookup cases)."""
    cmd = [HERALD] + list(args)
    wrap = os.environ.get("HERALD_WRAPPER")
    if wrap:
        cmd = shlex.split(wrap) + cmd
    env = dict(os.environ)
    env.pop("HERALD_CONFIG", None)
    env.update(env_extra or {})
    p = subprocess.run(cmd, capture_output=True, cwd=cwd, env=env, timeout=600)
    p.stderr_text = p.stderr.decode("utf-8", "replace")
    p.stdout_text = p.stdout.decode("utf-8", "replace")
    return p


# --- sub add ---------------------------------------------------------------

def test_sub_add_missing_at():
    with world() as w:
        fails(w, ["sub", "add", "not-an-email", "--list", "newsletter"], EX_DATAERR,
              r"invalid address 'not-an-email': missing '@'")


def test_sub_add_quoted_local_part():
    with world() as w:
        fails(w, ["sub", "add", '"a b"@example.org', "--list", "newsletter"], EX_DATAERR,
              r"invalid address '\"a b\"@example\.org': .*quoted")


def test_sub_add_non_ascii_local_part():
    with world() as w:
        fails(w, ["sub", "add", "zoë@example.org", "--list", "newsletter"], EX_DATAERR,
              r"invalid address 'zoë@example\.org': .*non-ASCII local part.*SMTPUTF8")


def test_sub_add_crlf_injection():
    with world() as w:
        p = fails(w, ["sub", "add", "a@example.org\r\nBcc: x@example.org", "--list",
                      "newsletter"], EX_DATAERR,
                  r"invalid address 'a@example\.org\\r\\nBcc: x@example\.org': .*control")
        lines = one_line(p)
        check(not any(l.startswith("Bcc:") for l in lines), "raw LF echoed: %r", p.stderr_text)


def test_sub_add_too_long():
    with world() as w:
        local = "a" * 65
        fails(w, ["sub", "add", local + "@example.org", "--list", "newsletter"], EX_DATAERR,
              r"invalid address '%s@example\.org': local part is longer than 64" % local)
        # 64 + 1 + 195 = 260 octets: each part within its limit, the whole over 254
        addr = "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".org"
        fails(w, ["sub", "add", addr, "--list", "newsletter"], EX_DATAERR,
              r"invalid address 'a{64}@b+.*': address is longer than 254 octets")


def test_sub_add_missing_list():
    with world() as w:
        fails(w, ["sub", "add", "a@example.org", "--list", "nolist"], EX_NOINPUT,
              r"no list named 'nolist'")


def test_sub_add_usage_errors():
    with world() as w:
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--attr", "role"],
              EX_USAGE, r"--attr wants KEY=VALUE, not 'role'")
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--attr", "=v"],
              EX_USAGE, r"--attr wants KEY=VALUE, not '=v'")
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--attr", "email=x"],
              EX_USAGE, r"'email' is not an attribute")
        fails(w, ["sub", "add", "a@example.org"], EX_USAGE, r"needs --list NAME")
        fails(w, ["sub", "add", "--list", "newsletter"], EX_USAGE, r"needs exactly one ADDR")


def test_sub_add_name_with_line_break():
    with world() as w:
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--name",
                  "Eve\r\nBcc: victim@example.com"], EX_DATAERR,
              r"a@example\.org: name contains a line break")
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--name",
                  "Eve\x01"], EX_DATAERR,
              r"a@example\.org: name contains a control character \(0x01\)")
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--name",
                  "Eve\u0085"], EX_DATAERR,
              r"a@example\.org: name contains a control character \(U\+0085\)")
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--name", "n" * 300],
              EX_DATAERR, r"a@example\.org: name is longer than 256 bytes")


def test_sub_add_attr_with_line_break():
    with world() as w:
        fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--attr",
                  "org=Acme\r\nBcc: x@example.org"], EX_DATAERR,
              r"a@example\.org: attribute 'org' contains a line break")
        # The key is echoed in the message: it must not carry the raw LF.
        p = fails(w, ["sub", "add", "a@example.org", "--list", "newsletter", "--attr",
                      "ro\nle=x"], EX_DATAERR,
                  r"(?s)a@example\.org: attribute name .*contains a line break")
        lines = one_line(p)
        check(len(lines) == 1, "message split over lines by the key's LF: %r", p.stderr_text)


# --- sub import ------------------------------------------------------------

def test_import_missing_file():
    with world() as w:
        fails(w, ["sub", "import", "--list", "newsletter", "missing.csv"], EX_NOINPUT,
              r"missing\.csv: cannot open: No such file")


def test_import_missing_list():
    with world() as w:
        path = w.write("s.csv", "email\na@example.org\n")
        fails(w, ["sub", "import", "--list", "nolist", path], EX_NOINPUT,
              r"no list named 'nolist'")


def test_import_no_email_column():
    with world() as w:
        w.write("noemail.csv", "mail,name\na@example.org,A\n")
        fails(w, ["sub", "import", "--list", "newsletter", "noemail.csv"], EX_DATAERR,
              r"noemail\.csv:1: .*no 'email' column")


def test_import_empty_file():
    with world() as w:
        w.write("empty.csv", "")
        fails(w, ["sub", "import", "--list", "newsletter", "empty.csv"], EX_DATAERR,
              r"empty\.csv: .*no header row")


def test_import_unterminated_quote():
    # Good rows come before the quote that never closes: the whole file is
    # refused, so none of them may be imported.
    with world() as w:
        w.write("unterm.csv", 'email,name\na@example.org,A\nb@example.org,"B\n'
                              'c@example.org,C\nd@example.org,D\n')
        p = fails(w, ["sub", "import", "--list", "newsletter", "unterm.csv"], EX_DATAERR,
                  r"unterm\.csv:3: .*quoted field opened here is never closed",
                  r"nothing imported")
        check(subscribers(w) == [], "rows imported from a broken file: %s", subscribers(w))
        check(not re.search(r"\d+ added", p.stdout_text + p.stderr_text),
              "a summary claims rows were added: %s", p.stderr_text)


def test_import_broken_file_tells_bad_rows_first():
    # The import tells what it found at the end (src/subimport.c); a file
    # that fails later still gets its bad rows told, before the error.
    with world() as w:
        w.write("late.csv", 'email,name\nnot-an-email,X\na@example.org,A\n'
                            'b@example.org,"B\nc@example.org,C\n')
        p = fails(w, ["sub", "import", "--list", "newsletter", "late.csv"], EX_DATAERR,
                  r"late\.csv:4: .*quoted field opened here is never closed")
        check(re.search(r"^late\.csv:2: invalid address 'not-an-email': missing '@'$",
                        p.stderr_text, re.M), "bad row not told: %s", p.stderr_text)
        check(p.stderr_text.index("late.csv:2:") < p.stderr_text.index("never closed"),
              "the bad row after the error: %s", p.stderr_text)
        check(subscribers(w) == [], "rows imported from a broken file: %s", subscribers(w))


def bad_row_lines(stderr, path):
    """{line number: message} for every 'PATH:LINE: ...' line."""
    out = {}
    for l in stderr.splitlines():
        m = re.match(re.escape(path) + r":(\d+): (.*)$", l)
        if m:
            n = int(m.group(1))
            check(n not in out, "line %d reported twice:\n%s", n, stderr)
            out[n] = m.group(2)
    return out


SAMPLE_REPORT = {
    5: r"^invalid address 'zoë\.müller@example\.de': .*non-ASCII local part",
    7: r"^invalid address 'not-an-email': missing '@'$",
    8: r"^missing address$",
    9: r"^duplicate of line 3$",
    10: r"^line break in field 'name'$",
    12: r"^note: .*whitespace.*'trailing\.space@example\.org'",
    13: r"^line break in field 'name'$",
}
SAMPLE_GOOD = ["ada.lovelace@example.org", "grace@example.net", "jones@example.org",
               "o'brien@example.com", "trailing.space@example.org"]


def check_sample_report(p):
    got = bad_row_lines(p.stderr_text, SAMPLE_CSV)
    check(sorted(got) == sorted(SAMPLE_REPORT), "reported lines %s, wanted %s\n%s",
          sorted(got), sorted(SAMPLE_REPORT), p.stderr_text)
    for n, pat in SAMPLE_REPORT.items():
        check(re.search(pat, got[n]), "line %d: %r does not match %r", n, got[n], pat)


def test_import_sample_csv():
    with world() as w:
        p = fails(w, ["sub", "import", "--list", "newsletter", SAMPLE_CSV], EX_DATAERR,
                  unchanged=False)
        check_sample_report(p)
        check(re.search(r"5 added, 0 updated, 0 unchanged, 0 skipped, 6 bad rows",
                        p.stderr_text), "summary: %s", p.stderr_text)
        check(subscribers(w) == SAMPLE_GOOD, "imported %s", subscribers(w))
        # one transaction: all five subscriptions, the first Grace kept
        check(w.sql("SELECT count(*) FROM subscriptions WHERE status = 'confirmed'") == [(5,)],
              "subscriptions: %s", w.sql("SELECT * FROM subscriptions"))
        check(w.sql("SELECT name FROM subscribers WHERE email_key = 'grace@example.net'") ==
              [("Grace Hopper",)], "duplicate row overwrote the first")
        check(w.sql("SELECT count(*) FROM subscribers WHERE name LIKE '%Bcc%' "
                    "OR email LIKE '%victim%'") == [(0,)], "injection row imported")


def test_import_dry_run_writes_nothing():
    with world() as w:
        p = fails(w, ["sub", "import", "--list", "newsletter", SAMPLE_CSV, "--dry-run"],
                  EX_DATAERR)
        check_sample_report(p)
        check("nothing written" in p.stderr_text, "dry run not announced: %s", p.stderr_text)
        # The summary must not claim the good rows were imported.
        check(not re.search(r"good rows imported", p.stderr_text),
              "--dry-run summary says 'good rows imported':\n%s", p.stderr_text)
        # a clean file: exit 0, still nothing written
        w.write("ok.csv", "email,name\nx@example.org,X\ny@example.org,Y\n")
        before = w.dump()
        p = w.run("sub", "import", "--list", "newsletter", "ok.csv", "--dry-run")
        check(p.returncode == 0, "clean dry run: exit %d %s", p.returncode, p.stderr_text)
        check("2 added" in p.stdout_text and "nothing written" in p.stdout_text,
              "dry run summary: %s", p.stdout_text)
        check(w.dump() == before, "--dry-run wrote to the database")


def test_import_invalid_utf8_row():
    with world() as w:
        w.write("badutf.csv", b"email,name\nu1@example.org,Good\n"
                              b"u2@example.org,Bad\xff\xfe\nu3@example.org,Also good\n")
        p = fails(w, ["sub", "import", "--list", "newsletter", "badutf.csv"], EX_DATAERR,
                  r"(?m)^badutf\.csv:3: not valid UTF-8$", unchanged=False)
        check(bad_row_lines(p.stderr_text, "badutf.csv").keys() == {3}, "%s", p.stderr_text)
        check(subscribers(w) == ["u1@example.org", "u3@example.org"], "imported %s",
              subscribers(w))


def test_import_bom_crlf_works():
    with world() as w:
        w.write("bom.csv", "\ufeffEmail,Name,Town\r\nbom1@example.org,Bom One,Leeds\r\n"
                           "bom2@example.org,\"Bom, Two\",York\r\n".encode("utf-8"))
        p = w.run("sub", "import", "--list", "newsletter", "bom.csv")
        check(p.returncode == 0, "exit %d: %s", p.returncode, p.stderr_text)
        rows = w.sql("SELECT email, name, attributes FROM subscribers ORDER BY email")
        check(rows == [("bom1@example.org", "Bom One", '{"Town":"Leeds"}'),
                       ("bom2@example.org", "Bom, Two", '{"Town":"York"}')],
              "BOM/CRLF leaked into the data: %r", rows)


# --- issue new -------------------------------------------------------------

FM = "---\nsubject: Hi\nlist: newsletter\n---\n\n"


def test_issue_front_matter_never_closed():
    with world() as w:
        issue_file(w, "unclosed.md", "---\nsubject: Hi\nlist: newsletter\n\nBody\n")
        fails(w, ["issue", "new", "unclosed.md"], EX_DATAERR,
              r"unclosed\.md:1: front matter .*never closed")


def test_issue_unknown_key():
    with world() as w:
        issue_file(w, "unkkey.md", "---\nsubject: Hi\nlist: newsletter\ncolour: red\n---\n"
                                   "Body\n")
        fails(w, ["issue", "new", "unkkey.md"], EX_DATAERR,
              r"unkkey\.md:4: .*unknown key 'colour'")
        issue_file(w, "rep.md", "---\nsubject: Hi\nsubject: Again\nlist: newsletter\n---\n"
                                "Body\n")
        fails(w, ["issue", "new", "rep.md"], EX_DATAERR,
              r"rep\.md:3: .*'subject' is given twice")


def test_issue_subject_injection():
    with world() as w:
        issue_file(w, "subjnl.md", '---\nsubject: "a\\nBcc: x@y"\nlist: newsletter\n---\n'
                                   'Body\n')
        p = fails(w, ["issue", "new", "subjnl.md"], EX_DATAERR,
                  r"subjnl\.md:2: 'subject' contains a line break")
        check("\nBcc" not in p.stderr_text, "raw LF echoed: %r", p.stderr_text)
        issue_file(w, "from.md", '---\nsubject: Hi\nlist: newsletter\n'
                                 'from: "Evil <a@example.org>\\r\\nBcc: x@y"\n---\nBody\n')
        fails(w, ["issue", "new", "from.md"], EX_DATAERR,
              r"from\.md:4: 'from' contains a line break")
        issue_file(w, "tab.md", '---\nsubject: "tab\\there"\nlist: newsletter\n---\nBody\n')
        fails(w, ["issue", "new", "tab.md"], EX_DATAERR,
              r"tab\.md:2: 'subject' contains a control character")
        issue_file(w, "ok.md", FM + "Body\n")
        fails(w, ["issue", "new", "ok.md", "--subject", "a\nBcc: x@y"], EX_DATAERR,
              r"subject contains a line break")


def test_issue_unknown_merge_field():
    with world() as w:
        issue_file(w, "nmae.md", FM + "Hello there {{nmae}}, welcome\n")
        fails(w, ["issue", "new", "nmae.md"], EX_DATAERR,
              r"nmae\.md:6:13: unknown merge field 'nmae'")
        # the column counts characters, not bytes: "Zoë " is 4
        issue_file(w, "col.md", FM + "Zoë {{nmae}}\n")
        fails(w, ["issue", "new", "col.md"], EX_DATAERR,
              r"col\.md:6:5: unknown merge field 'nmae'")


def test_issue_unterminated_merge_field():
    with world() as w:
        issue_file(w, "unterm.md", FM + "Hello {{name there\n")
        fails(w, ["issue", "new", "unterm.md"], EX_DATAERR,
              r"unterm\.md:6:7: unterminated merge field")


def test_issue_invalid_utf8():
    with world() as w:
        issue_file(w, "badutf.md", FM.encode() + b"line one\nab\xffcd\n")
        fails(w, ["issue", "new", "badutf.md"], EX_DATAERR,
              r"badutf\.md:7:3: invalid UTF-8")


def test_issue_missing_list_subject_file():
    with world() as w:
        issue_file(w, "nolist.md", "---\nsubject: Hi\nlist: nolist\n---\n\nBody\n")
        fails(w, ["issue", "new", "nolist.md"], EX_NOINPUT, r"no list named 'nolist'")
        issue_file(w, "ok.md", FM + "Body\n")
        fails(w, ["issue", "new", "ok.md", "--list", "other"], EX_NOINPUT,
              r"no list named 'other'")
        issue_file(w, "nosubj.md", "---\nlist: newsletter\n---\n\nBody\n")
        fails(w, ["issue", "new", "nosubj.md"], EX_DATAERR, r"nosubj\.md: no subject")
        fails(w, ["issue", "new", "missing.md"], EX_NOINPUT,
              r"missing\.md: cannot open: No such file")


# --- ids, times, lists -----------------------------------------------------

def test_issue_schedule_bad_time():
    with world() as w:
        issue_file(w, "ok.md", FM + "Body\n")
        iid = w.ok("issue", "new", "ok.md").stdout_text.strip()
        for bad in ("tomorrow", "2026-12-01T25:00", "2026-12-01T09:00+25:00",
                    "2026-12-01T09:00Zjunk", "2026-02-30T09:00"):
            fails(w, ["issue", "schedule", iid, "--at", bad], EX_USAGE,
                  r"invalid time '%s'" % re.escape(bad))
        fails(w, ["issue", "schedule", iid], EX_USAGE, r"needs ID and --at TIME")


def test_missing_and_bad_ids():
    with world() as w:
        for args in (["send"], ["stats"], ["issue", "show"], ["issue", "rm"],
                     ["issue", "cancel"], ["issue", "preview"]):
            fails(w, args + ["99"], EX_NOINPUT, r"no issue with id 99")
            for bad in ("abc", "0", "-1", "12x"):
                # "-1" may be taken for an option by commands with options
                fails(w, args + [bad], EX_USAGE,
                      r"'%s' is not an issue id|invalid option -- '1'" % re.escape(bad))
        fails(w, ["issue", "schedule", "99", "--at", "2030-01-01T00:00Z"], EX_NOINPUT,
              r"no issue with id 99")


def test_list_errors():
    with world() as w:
        fails(w, ["list", "create", "Bad Name"], EX_DATAERR, r"invalid list name 'Bad Name'")
        fails(w, ["list", "create", "x" * 65], EX_DATAERR, r"invalid list name")
        fails(w, ["list", "create", "newsletter"], EX_DATAERR,
              r"a list named 'newsletter' already exists")
        fails(w, ["list", "show", "nolist"], EX_NOINPUT, r"no list named 'nolist'")
        fails(w, ["list", "rm", "nolist"], EX_NOINPUT, r"no list named 'nolist'")
        fails(w, ["list", "frob"], EX_USAGE, r"unknown verb 'list frob'")


def test_sub_lookup_errors():
    with world() as w:
        fails(w, ["sub", "show", "nobody@example.org"], EX_NOINPUT,
              r"no subscriber 'nobody@example\.org'")
        fails(w, ["sub", "rm", "nobody@example.org"], EX_NOINPUT, r"nobody@example\.org")
        fails(w, ["sub", "ls", "--list", "newsletter", "--status", "gone"], EX_USAGE,
              r"unknown status 'gone'")


# --- configuration ---------------------------------------------------------

BAD_CONFIG = """\
[database]
path = herald.db
colour = blue

[smtp]
url = http://127.0.0.1:25
starttls = sometimes

[sender]
reply_to = wwccsc@example.org
postal_address = 1 Example Street

[web]
base_url = https://news.example.org
"""


def test_config_check_reports_every_problem():
    with world() as w:
        path = w.write("bad.conf", BAD_CONFIG)
        p = run_raw(["--config", path, "config", "check"], w.root)
        check(p.returncode == EX_CONFIG, "exit %d: %s", p.returncode, p.stderr_text)
        errors = [l for l in p.stderr_text.splitlines() if l.startswith("error: ")]
        for pat in (r"bad\.conf:3: unknown key 'colour' in \[database\]",
                    r"bad\.conf:6: 'url' must start with smtp:// or smtps://",
                    r"bad\.conf:7: 'starttls' must be required, optional or never, "
                    r"not 'sometimes'",
                    r"bad\.conf(:\d+)?: \[sender\] from is required"):
            check(sum(bool(re.search(pat, l)) for l in errors) == 1,
                  "no single error line matching %r:\n%s", pat, p.stderr_text)
        check(len(errors) == 4, "expected exactly 4 problems:\n%s", p.stderr_text)
        check(p.stdout_text == "", "config check printed OK output: %s", p.stdout_text)
        # every command refuses to run on it, with the same exit status
        p = run_raw(["--config", path, "list", "ls"], w.root)
        check(p.returncode == EX_CONFIG and "bad.conf:" in p.stderr_text,
              "list ls on a bad config: exit %d %s", p.returncode, p.stderr_text)


def test_config_missing_file():
    with world() as w:
        p = run_raw(["--config", "nothere.conf", "config", "check"], w.root)
        check(p.returncode == EX_NOINPUT, "exit %d", p.returncode)
        check(re.search(r"nothere\.conf: cannot read config", p.stderr_text), p.stderr_text)
        p = run_raw(["list", "ls"], w.root, {"HERALD_CONFIG": "nothere2.conf"})
        check(p.returncode == EX_NOINPUT, "exit %d", p.returncode)
        check(re.search(r"nothere2\.conf: cannot read config", p.stderr_text), p.stderr_text)
        with tempfile.TemporaryDirectory() as empty:
            p = run_raw(["list", "ls"], empty)
            check(p.returncode == EX_CONFIG, "no config at all: exit %d", p.returncode)
            check(re.search(r"no configuration: .*--config FILE.*HERALD_CONFIG.*herald\.conf",
                            p.stderr_text), p.stderr_text)


def test_no_command_and_unknown_command():
    with world() as w:
        p = fails(w, [], EX_USAGE, r"usage: herald ")
        check(p.stdout_text == "", "usage error printed to stdout")
        fails(w, ["bogus"], EX_USAGE, r"'bogus' is not a command")
        fails(w, ["help", "bogus"], EX_USAGE, r"'bogus' is not a command")
        fails(w, ["list"], EX_USAGE, r"list needs a verb")
        fails(w, ["--no-such-option", "list", "ls"], EX_USAGE, r"usage: herald ")
        fails(w, ["--now", "garbage", "list", "ls"], EX_USAGE, r"invalid time 'garbage'")


# --- SMTP: passwords, refusals, a relay that is down -------------------------

def test_password_env_unset():
    # $HERALD_TEST_PW is removed from this process's environment at the top
    # of the file, so herald runs without it.
    with auth_world() as w:
        p = w.run("config", "check")
        check(re.search(r"herald\.conf:\d+: .*'%s'.*not set" % PW_VAR, p.stderr_text),
              "config check does not warn: %s", p.stderr_text)
        fails(w, ["send", w.issue_id], EX_CONFIG, r"'%s' \(password_env\) is not set" % PW_VAR)
        check(deliveries(w) == [], "a send without a password snapshotted the list")


def test_secret_never_printed():
    secret = "s3cr3t-Hunter2-%d" % os.getpid()
    with auth_world(3) as w:
        server = w.smtp(auth="user:" + secret)
        env = {PW_VAR: secret}
        outputs = []
        p = w.run("config", "check", env=env)
        check(p.returncode == 0, "config check: %d %s", p.returncode, p.stderr_text)
        check(re.search(r"relay +smtp://127\.0\.0\.1:%d .*user user" % server.port,
                        p.stdout_text), "config check: %s", p.stdout_text)
        outputs.append(p)
        p = w.run("send", w.issue_id, env=env)
        check(p.returncode == 0, "send: %d %s", p.returncode, p.stderr_text)
        outputs.append(p)
        outputs.append(w.run("stats", w.issue_id, "--json", env=env))
        outputs.append(w.run("issue", "show", w.issue_id, env=env))
        check(len(server.messages()) == 3, "delivered %d of 3", len(server.messages()))
        auths = [e["ok"] for e in server.events("auth")]
        check(auths and all(auths) and len(auths) <= 3, "auth events: %s",
              server.events("auth"))
        for q in outputs:
            check(secret.encode() not in q.stdout + q.stderr, "the password was printed: %s",
                  q.args)
        check(secret not in w.dump(), "the password is in the database")
        for _, _, raw in server.messages():
            check(secret.encode() not in raw, "the password is in a sent message")


def test_wrong_password():
    wrong = "wrong-Pa55-%d" % os.getpid()
    with auth_world(3) as w:
        server = w.smtp(auth="user:right-pass")
        p = w.run("send", w.issue_id, env={PW_VAR: wrong})
        # If every row ends up deferred with "334", the server never answered
        # the failed AUTH: tests/tools/smtpd.py must return
        # AuthResult(success=False, handled=False) so aiosmtpd sends 535.
        check(p.returncode == EX_CONFIG, "wrong password: exit %d, wanted 78\n%s%s\n"
              "rows: %s", p.returncode, p.stdout_text, p.stderr_text,
              w.sql("SELECT status, smtp_reply FROM deliveries"))
        check(re.search(r"AUTH", p.stderr_text), "message does not say AUTH: %s",
              p.stderr_text)
        check(wrong.encode() not in p.stdout + p.stderr, "the wrong password was printed")
        check(deliveries(w) == [("pending", 0)] * 3,
              "rows after a refused login: %s", deliveries(w))
        check(server.messages() == [], "a message was delivered without login")
        p = w.run("send", w.issue_id, env={PW_VAR: "right-pass"})
        check(p.returncode == 0, "send with the right password: %s", p.stderr_text)
        check(deliveries(w) == [("sent", 1)] * 3, "after the retry: %s", deliveries(w))


class FakeRelay:
    """A relay that greets and offers AUTH, then answers AUTH with
    `auth_reply`, or never answers it when that is None (a stuck relay)."""

    def __init__(self, auth_reply=None):
        self.auth_reply = auth_reply
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.talk, args=(c,), daemon=True).start()

    def talk(self, c):
        try:
            f = c.makefile("rb")
            c.sendall(b"220 fake.localhost ESMTP\r\n")
            for line in f:
                verb = line.split(b" ")[0].strip().upper()
                if verb in (b"EHLO", b"HELO"):
                    c.sendall(b"250-fake.localhost\r\n250 AUTH PLAIN LOGIN\r\n")
                elif verb == b"AUTH":
                    if self.auth_reply:
                        c.sendall(self.auth_reply.encode() + b"\r\n")
                elif verb == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"503 5.5.1 log in first\r\n")
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def send_via(auth_reply):
    with auth_world(3) as w:
        relay = FakeRelay(auth_reply)
        try:
            set_smtp(w, url="smtp://127.0.0.1:%d" % relay.port, connect_timeout=2, timeout=2)
            p = w.run("send", w.issue_id, env={PW_VAR: "pass"})
        finally:
            relay.close()
        return p, deliveries(w)


def test_relay_hangs_at_auth():
    # A relay that stops answering before MAIL FROM is a relay problem, not
    # a recipient's: the run stops (69) and nobody's attempt is counted.
    p, rows = send_via(None)
    check(p.returncode == EX_UNAVAILABLE, "stuck relay: exit %d, wanted 69\n%s%s",
          p.returncode, p.stdout_text, p.stderr_text)
    check(rows == [("pending", 0)] * 3, "rows after a relay that hung in AUTH: %s", rows)


def test_relay_auth_tempfail():
    # 454 to AUTH (RFC 4954 §6: temporary authentication failure): try later.
    p, rows = send_via("454 4.7.0 Temporary authentication failure")
    check(p.returncode == EX_UNAVAILABLE, "454 at AUTH: exit %d, wanted 69\n%s%s",
          p.returncode, p.stdout_text, p.stderr_text)
    check(re.search(r"454", p.stderr_text), "the relay's reply is not shown: %s",
          p.stderr_text)
    check(rows == [("pending", 0)] * 3, "rows after 454 at AUTH: %s", rows)


def test_relay_auth_refused():
    # 535 from a relay that is not aiosmtpd: the same EX_CONFIG stop.
    p, rows = send_via("535 5.7.8 Authentication credentials invalid")
    check(p.returncode == EX_CONFIG, "535 at AUTH: exit %d, wanted 78\n%s", p.returncode,
          p.stderr_text)
    check(re.search(r"AUTH: 535 5\.7\.8", p.stderr_text), "message: %s", p.stderr_text)
    check(rows == [("pending", 0)] * 3, "rows after 535 at AUTH: %s", rows)


def test_relay_down_then_up():
    with auth_world(3) as w:
        port = free_port()
        set_smtp(w, url="smtp://127.0.0.1:%d" % port)
        env = {PW_VAR: "pass"}
        p = w.run("send", w.issue_id, env=env)
        check(p.returncode == EX_UNAVAILABLE, "relay down: exit %d, wanted 69\n%s",
              p.returncode, p.stderr_text)
        check(re.search(r"127\.0\.0\.1:%d.*unreachable" % port, p.stderr_text),
              "message does not name the relay: %s", p.stderr_text)
        check(deliveries(w) == [("pending", 0)] * 3, "rows after relay down: %s",
              deliveries(w))
        check(w.sql("SELECT status FROM issues") == [("sending",)], "issue: %s",
              w.sql("SELECT status FROM issues"))
        server = w.smtp(auth="user:pass")
        p = w.run("send", w.issue_id, env=env)
        check(p.returncode == 0, "second send: %d %s", p.returncode, p.stderr_text)
        check(deliveries(w) == [("sent", 1)] * 3, "after the relay came back: %s",
              deliveries(w))
        got = sorted(ev["rcpt_tos"][0] for ev, _, _ in server.messages())
        check(got == ["reader%d@example.org" % i for i in range(3)], "delivered to %s", got)
        check(w.sql("SELECT status FROM issues") == [("sent",)], "issue not sent")


def test_send_cancelled_issue():
    with world() as w:
        issue_file(w, "ok.md", FM + "Body\n")
        iid = w.ok("issue", "new", "ok.md").stdout_text.strip()
        w.ok("issue", "cancel", iid)
        fails(w, ["send", iid], EX_DATAERR, r"cancelled")


run_tests([
    ("sub_add_missing_at", test_sub_add_missing_at),
    ("sub_add_quoted_local_part", test_sub_add_quoted_local_part),
    ("sub_add_non_ascii_local_part", test_sub_add_non_ascii_local_part),
    ("sub_add_crlf_injection", test_sub_add_crlf_injection),
    ("sub_add_too_long", test_sub_add_too_long),
    ("sub_add_missing_list", test_sub_add_missing_list),
    ("sub_add_usage_errors", test_sub_add_usage_errors),
    ("sub_add_name_with_line_break", test_sub_add_name_with_line_break),
    ("sub_add_attr_with_line_break", test_sub_add_attr_with_line_break),
    ("import_missing_file", test_import_missing_file),
    ("import_missing_list", test_import_missing_list),
    ("import_no_email_column", test_import_no_email_column),
    ("import_empty_file", test_import_empty_file),
    ("import_unterminated_quote", test_import_unterminated_quote),
    ("import_broken_file_tells_bad_rows_first", test_import_broken_file_tells_bad_rows_first),
    ("import_sample_csv", test_import_sample_csv),
    ("import_dry_run_writes_nothing", test_import_dry_run_writes_nothing),
    ("import_invalid_utf8_row", test_import_invalid_utf8_row),
    ("import_bom_crlf_works", test_import_bom_crlf_works),
    ("issue_front_matter_never_closed", test_issue_front_matter_never_closed),
    ("issue_unknown_key", test_issue_unknown_key),
    ("issue_subject_injection", test_issue_subject_injection),
    ("issue_unknown_merge_field", test_issue_unknown_merge_field),
    ("issue_unterminated_merge_field", test_issue_unterminated_merge_field),
    ("issue_invalid_utf8", test_issue_invalid_utf8),
    ("issue_missing_list_subject_file", test_issue_missing_list_subject_file),
    ("issue_schedule_bad_time", test_issue_schedule_bad_time),
    ("missing_and_bad_ids", test_missing_and_bad_ids),
    ("list_errors", test_list_errors),
    ("sub_lookup_errors", test_sub_lookup_errors),
    ("config_check_reports_every_problem", test_config_check_reports_every_problem),
    ("config_missing_file", test_config_missing_file),
    ("no_command_and_unknown_command", test_no_command_and_unknown_command),
    ("password_env_unset", test_password_env_unset),
    ("secret_never_printed", test_secret_never_printed),
    ("wrong_password", test_wrong_password),
    ("relay_hangs_at_auth", test_relay_hangs_at_auth),
    ("relay_auth_tempfail", test_relay_auth_tempfail),
    ("relay_auth_refused", test_relay_auth_refused),
    ("relay_down_then_up", test_relay_down_then_up),
    ("send_cancelled_issue", test_send_cancelled_issue),
])
