#!/usr/bin/python3
"""test_newcomer.py - a newcomer's first hour, as README.md's five-minute tour
and docs/configuration.md ("A first real send, to this machine") have it.

  (a) `config check` before `init` checks the configuration only: exit 0,
      a note that the database does not exist yet, nothing created; a
      database directory init could not write is still an error (78);
  (b) a misspelt key or section names the one likely meant ("did you mean
      'starttls'?"), in `config check` and in every other command;
  (c) a CSV whose address column is not called `email` (Mailchimp's "Email
      Address") fails naming the header and suggesting --email-column, and
      imports with --email-column/--name-column: the names are the names,
      the other columns attributes, the two named columns not;
  (d) the tour's first real send (README_CONFIG is its configuration, in
      README.md and docs/configuration.md): a loopback relay with starttls =
      never and no login, then config check, init, list create, sub import,
      issue new, issue test and send, delivered to tests/tools/smtpd.py.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests  # noqa: E402

EX_DATAERR, EX_CONFIG = 65, 78
MAILCHIMP_CSV = ("Email Address,Full Name,Team\r\n"
                 "ada@example.org,Ada Lovelace,Maths\r\n"
                 "grace@example.net,Grace Hopper,Navy\r\n")


def line_of(path, text):
    """The 1-based number of the line of `path` that starts with `text`."""
    for n, line in enumerate(open(path), 1):
        if line.startswith(text):
            return n
    raise AssertionError("no line %r in %s" % (text, path))


def members(w, list_name="newsletter"):
    return json.loads(w.ok("sub", "ls", "--list", list_name, "--json").stdout_text)


def test_config_check_before_init():
    with World() as w:
        p = w.run("config", "check")
        check(p.returncode == 0, "config check before init: exit %d\n%s", p.returncode,
              p.stderr_text)
        note = "note: the database %s does not exist yet; 'herald init' creates it" % w.db
        check(note in p.stderr_text, "no note %r in:\n%s", note, p.stderr_text)
        check("error" not in p.stderr_text and "not usable" not in p.stderr_text,
              "config check before init reports an error:\n%s", p.stderr_text)
        check(p.stdout_text.startswith("%s: OK\n" % w.config), "stdout: %s", p.stdout_text)
        check(re.search(r"^  database +%s \(not created yet" % re.escape(w.db), p.stdout_text,
                        re.M), "stdout: %s", p.stdout_text)
        check(not os.path.exists(w.db) and not os.path.exists(w.db + ".secret"),
              "config check created the database or the secret")
        # --quiet: nothing but errors, and there are none
        p = w.run("--quiet", "config", "check")
        check(p.returncode == 0 and p.stdout_text == "" and "note:" not in p.stderr_text,
              "--quiet config check: exit %d\n%s%s", p.returncode, p.stdout_text,
              p.stderr_text)
        # after init: no note, the schema version instead
        w.init()
        p = w.ok("config", "check")
        check("note:" not in p.stderr_text, "note after init: %s", p.stderr_text)
        check(re.search(r"^  database +%s \(schema version \d+\)$" % re.escape(w.db),
                        p.stdout_text, re.M), "stdout: %s", p.stdout_text)
        # a database without its token secret is broken, not "not yet made"
        os.unlink(w.db + ".secret")
        p = w.run("config", "check")
        check(p.returncode == EX_CONFIG and "cannot read token secret" in p.stderr_text,
              "missing secret beside a database: exit %d\n%s", p.returncode, p.stderr_text)


def test_config_check_before_init_where_init_cannot_create():
    with World() as w:
        w.set("database", path="no-such-dir/herald.db")
        p = w.run("config", "check")
        check(p.returncode == EX_CONFIG, "exit %d, wanted 78\n%s", p.returncode, p.stderr_text)
        check(re.search(r"error: database \S*no-such-dir/herald\.db cannot be created: "
                        r"directory \S*no-such-dir: No such file or directory", p.stderr_text),
              "no error about the directory:\n%s", p.stderr_text)
        check("note:" not in p.stderr_text, "a note beside the error: %s", p.stderr_text)


def test_config_typo_did_you_mean():
    with World() as w:
        text = open(w.config).read().replace("starttls = never", "startls = never")
        with open(w.config, "w") as f:
            f.write(text)
        w.set("web", trackng="no")
        n = line_of(w.config, "startls")
        m = line_of(w.config, "trackng")
        p = w.run("config", "check")
        check(p.returncode == EX_CONFIG, "exit %d, wanted 78\n%s", p.returncode, p.stderr_text)
        want = ("error: %s:%d: unknown key 'startls' in [smtp]; did you mean 'starttls'?"
                % (w.config, n))
        check(want in p.stderr_text.splitlines(), "no line %r in:\n%s", want, p.stderr_text)
        want = ("error: %s:%d: unknown key 'trackng' in [web]; did you mean 'tracking'?"
                % (w.config, m))
        check(want in p.stderr_text.splitlines(), "no line %r in:\n%s", want, p.stderr_text)
        # every other command stops on the same message
        p = w.run("list", "ls")
        check(p.returncode == EX_CONFIG and "did you mean 'starttls'?" in p.stderr_text,
              "list ls: exit %d\n%s", p.returncode, p.stderr_text)
    with World() as w:
        with open(w.config, "a") as f:
            f.write("\n[rendr]\nlang = en\n")
        p = w.run("config", "check")
        check(p.returncode == EX_CONFIG and re.search(
            r"herald\.conf:%d: unknown section \[rendr\]; did you mean \[render\]\?"
            % line_of(w.config, "lang"), p.stderr_text),
            "unknown section: exit %d\n%s", p.returncode, p.stderr_text)


def test_import_other_column_names():
    with World() as w:
        w.init()
        w.ok("list", "create", "newsletter")
        w.write("subs.csv", MAILCHIMP_CSV)
        before = w.dump()
        p = w.run("sub", "import", "--list", "newsletter", "subs.csv")
        check(p.returncode == EX_DATAERR, "exit %d, wanted 65\n%s", p.returncode, p.stderr_text)
        want = ("subs.csv:1: nothing imported: no 'email' column; the header is: "
                "Email Address, Full Name, Team; did you mean --email-column 'Email Address'?")
        check(want in p.stderr_text, "no %r in:\n%s", want, p.stderr_text)
        check(w.dump() == before, "a failed import changed the database")
        # a column that is not there: the header again, and the likely one
        p = w.run("sub", "import", "--list", "newsletter", "subs.csv",
                  "--email-column", "E-mail", "--name-column", "Full Name")
        check(p.returncode == EX_DATAERR and re.search(
            r"subs\.csv:1: .*no column 'E-mail' \(--email-column\) in the header; "
            r"the header is: Email Address, Full Name, Team; did you mean 'Email Address'\?",
            p.stderr_text), "unknown --email-column: exit %d\n%s", p.returncode, p.stderr_text)
        p = w.run("sub", "import", "--list", "newsletter", "subs.csv",
                  "--email-column", "Email Address", "--name-column", "Name")
        check(p.returncode == EX_DATAERR and re.search(
            r"no column 'Name' \(--name-column\) in the header; the header is: "
            r"Email Address, Full Name, Team; did you mean 'Full Name'\?", p.stderr_text),
            "unknown --name-column: exit %d\n%s", p.returncode, p.stderr_text)
        check(w.dump() == before, "a failed import changed the database")
        # the right names: imported, names set, Team an attribute, nothing else
        p = w.ok("sub", "import", "--list", "newsletter", "subs.csv",
                 "--email-column", "Email Address", "--name-column", "Full Name")
        check("2 added" in p.stdout_text, "import: %s", p.stdout_text)
        got = sorted((m["email"], m["name"], m["attributes"]) for m in members(w))
        check(got == [("ada@example.org", "Ada Lovelace", {"Team": "Maths"}),
                      ("grace@example.net", "Grace Hopper", {"Team": "Navy"})],
              "imported: %r", got)
        # matched regardless of case; without --name-column a note says which
        # column likely holds the names (it stays an attribute)
        w.ok("list", "create", "other")
        p = w.ok("sub", "import", "--list", "other", "subs.csv", "--email-column",
                 "email address")
        check("subs.csv:1: note: no 'name' column, so 'Full Name' is kept as an attribute; "
              "use --name-column 'Full Name'" in p.stderr_text, "no note: %s", p.stderr_text)
        got = sorted((m["email"], m["attributes"].get("Full Name")) for m in members(w, "other"))
        check(got == [("ada@example.org", "Ada Lovelace"),
                      ("grace@example.net", "Grace Hopper")], "other: %r", got)
        # an empty column name, or one column for both, is a usage error
        p = w.run("sub", "import", "--list", "newsletter", "subs.csv", "--email-column", " ")
        check(p.returncode == 64 and "need a column name" in p.stderr_text,
              "empty --email-column: exit %d\n%s", p.returncode, p.stderr_text)
        p = w.run("sub", "import", "--list", "newsletter", "subs.csv",
                  "--email-column", "Email Address", "--name-column", "EMAIL ADDRESS")
        check(p.returncode == 64 and "name the same column" in p.stderr_text,
              "same column twice: exit %d\n%s", p.returncode, p.stderr_text)
        # the options are in the usage
        usage = w.ok("sub", "--help").stdout_text
        check("[--email-column COL] [--name-column COL]" in usage, "usage: %s", usage)


README_CONFIG = """\
[database]
path = herald.db                      ; beside the config file

[smtp]
url = smtp://127.0.0.1:%d
starttls = never                      ; loopback only; no username: no login

[sender]
from = What Works Centre <news@example.org>
reply_to = wwccsc@example.org
postal_address = What Works Centre, 1 Example Street, London EC1A 1AA

[web]
base_url = https://news.example.org
"""


def test_first_real_send():
    with World() as w:
        server = w.smtp()
        with open(w.config, "w") as f:
            f.write(README_CONFIG % server.port)
        p = w.ok("config", "check")
        check("does not exist yet" in p.stderr_text, "no note: %s", p.stderr_text)
        w.ok("init")
        w.ok("list", "create", "newsletter")
        w.write("subs.csv", MAILCHIMP_CSV)
        w.ok("sub", "import", "--list", "newsletter", "subs.csv",
             "--email-column", "Email Address", "--name-column", "Full Name")
        w.write("issue.md", "---\nsubject: First\nlist: newsletter\n---\n\n"
                "Dear {{name|reader}} of {{attr.Team}}, hello.\n")
        issue = w.ok("issue", "new", "issue.md").stdout_text.strip()
        w.ok("issue", "test", issue, "--to", "editor@example.org")
        w.ok("send", issue)
        rcpts = sorted(r for r, _ in server.accepted())
        check(rcpts == ["ada@example.org", "editor@example.org", "grace@example.net"],
              "accepted: %r", rcpts)
        bodies = [m.get_body(("plain",)).get_content() for _, m, _ in server.messages()]
        check(any("Dear Ada Lovelace of Maths" in b for b in bodies),
              "no personalised copy for Ada: %r", bodies)


if __name__ == "__main__":
    run_tests([
        ("config_check_before_init", test_config_check_before_init),
        ("config_check_before_init_where_init_cannot_create",
         test_config_check_before_init_where_init_cannot_create),
        ("config_typo_did_you_mean", test_config_typo_did_you_mean),
        ("import_other_column_names", test_import_other_column_names),
        ("first_real_send", test_first_real_send),
    ])
