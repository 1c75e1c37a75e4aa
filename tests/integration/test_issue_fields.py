#!/usr/bin/python3
"""test_issue_fields.py - what an issue's text promises its readers.

Merge fields against the audience (issue_check_fields, audience.c): a
misspelt {{attr.organization}} when the CSV column is "organisation" is a
warning at `issue new` that counts the recipients and names the column they
do have, and a refusal (exit 65, nothing sent, nothing changed) at `issue
schedule`, `send` and `run`, unless the field has a fallback or the front
matter says allow_missing; fields some recipients lack are counted; the
bare-name warning names the field the file uses.  Then the text part:
single line breaks kept (line_breaks: keep, the default) or joined
(line_breaks: commonmark), links listed as their real destinations while the
HTML goes through the click redirect, and the footer wrapped at 72.  Mail is
read back from a real SMTP server on 127.0.0.1 with Python's email package.
"""
import email
import email.policy
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests  # noqa: E402

CSV = ("email,name,organisation,role\n"
       "ada@example.org,Ada Lovelace,Lambeth Council,Social worker\n"
       "grace@example.org,Grace Hopper,Hillingdon Council,Team manager\n"
       "alex@example.org,Alex Jones,,Researcher\n")

MISSPELT = """---
subject: "News for {{first_name|you}}"
list: newsletter
---

Dear {{first_name}}, you work at {{attr.organization}}.
Your team: {{attr.organisation}}.
"""


def world_with_readers():
    w = World().init()
    w.ok("list", "create", "newsletter")
    w.ok("sub", "import", "--list", "newsletter", w.write("people.csv", CSV))
    return w


def test_misspelt_attribute_warned_at_new():
    with world_with_readers() as w:
        p = w.ok("issue", "new", w.write("i.md", MISSPELT))
        err = p.stderr_text
        check(re.search(r"\{\{attr\.organization\}\} has no fallback and none of the 3 "
                        r"recipients of list 'newsletter' has 'organization' \(did you mean "
                        r"\{\{attr\.organisation\}\}\? 2 have it\)", err), "stderr: %s", err)
        check("allow_missing: [organization]" in err, "no allow_missing hint: %s", err)
        check("will not send this issue" in err, "no refusal notice: %s", err)
        # the one without an organisation is counted, not refused
        check(re.search(r"\{\{attr\.organisation\}\} has no fallback: 1 of 3 recipients",
                        err), "partial gap not counted: %s", err)
        # the bare-name warning names the field the file uses
        check("{{first_name}} has no fallback" in err, "first_name not named: %s", err)
        check("{{name}}" not in err, "warning names {{name}}, which the file does not use: %s",
              err)
        check(w.sql("SELECT status FROM issues") == [("draft",)], "issue not a draft")


def test_misspelt_attribute_refused_at_schedule_send_run():
    with world_with_readers() as w:
        server = w.smtp()
        iid = w.ok("issue", "new", w.write("i.md", MISSPELT)).stdout_text.strip()
        before = w.dump()
        p = w.run("issue", "schedule", iid, "--at", "2026-01-01T09:00Z")
        check(p.returncode == 65, "schedule: exit %d: %s", p.returncode, p.stderr_text)
        check("none of the 3 recipients" in p.stderr_text and
              "did you mean {{attr.organisation}}" in p.stderr_text,
              "schedule message: %s", p.stderr_text)
        p = w.run("send", iid)
        check(p.returncode == 65, "send: exit %d: %s", p.returncode, p.stderr_text)
        check("{{attr.organization}}" in p.stderr_text, "send message: %s", p.stderr_text)
        check(w.dump() == before, "a refused schedule or send changed the database")
        check(not server.events(), "the relay was contacted: %s", server.events())


def test_run_refuses_one_issue_sends_the_rest():
    with world_with_readers() as w:
        server = w.smtp()
        good = w.ok("issue", "new", w.write("good.md", MISSPELT.replace(
            "{{attr.organization}}", "{{attr.role}}"))).stdout_text.strip()
        # scheduled while its audience had the field, which then leaves
        w.ok("list", "create", "board")
        w.ok("sub", "add", "chair@example.org", "--list", "board", "--name", "Chair",
             "--attr", "seat=1")
        bad = w.ok("issue", "new", w.write("bad.md", "---\nsubject: Board\nlist: board\n---\n"
                                           "Seat {{attr.seat}}.\n")).stdout_text.strip()
        for iid in (good, bad):
            w.ok("issue", "schedule", iid, "--at", "2026-01-01T09:00Z")
        w.ok("sub", "unsubscribe", "chair@example.org", "--list", "board")
        w.ok("sub", "add", "deputy@example.org", "--list", "board", "--name", "Deputy")
        p = w.run("run")
        check(p.returncode == 65, "run: exit %d: %s", p.returncode, p.stderr_text)
        check(re.search(r"issue %s: .*\{\{attr\.seat\}\} has no fallback and none of the 1 "
                        r"recipients of list 'board'" % bad, p.stderr_text),
              "run stderr: %s", p.stderr_text)
        status = dict(w.sql("SELECT id, status FROM issues"))
        check(status[int(good)] == "sent" and status[int(bad)] == "scheduled",
              "statuses %s", status)
        check(w.sql("SELECT count(*) FROM deliveries WHERE issue_id = ?", bad) == [(0,)],
              "the refused issue has deliveries")
        rcpts = sorted(r for r, _ in server.accepted())
        check(rcpts == ["ada@example.org", "alex@example.org", "grace@example.org"],
              "delivered to %s", rcpts)


def test_fallback_or_allow_missing_lets_it_go():
    with world_with_readers() as w:
        server = w.smtp()
        fb = w.ok("issue", "new", w.write("fb.md", MISSPELT.replace(
            "{{attr.organization}}", "{{attr.organization|your organisation}}")))
        check("organization" not in fb.stderr_text, "warned despite a fallback: %s",
              fb.stderr_text)
        allowed = w.ok("issue", "new", w.write("allowed.md", MISSPELT.replace(
            "list: newsletter\n", "list: newsletter\nallow_missing: [organization]\n")))
        check("{{attr.organization}}" not in allowed.stderr_text,
              "warned despite allow_missing: %s", allowed.stderr_text)
        w.ok("send", fb.stdout_text.strip())
        w.ok("send", allowed.stdout_text.strip())
        texts = [" ".join(m.get_body(("plain",)).get_content().split())
                 for _, m, _ in server.messages()]
        check(len(texts) == 6, "%d messages", len(texts))
        check(sum("you work at your organisation." in t for t in texts) == 3,
              "fallback not merged: %s", texts)
        # a bad allow_missing value is an error at its line
        p = w.run("issue", "new", w.write("badallow.md", "---\nsubject: x\nlist: newsletter\n"
                                          "allow_missing: [\"a b\"]\n---\nHi\n"))
        check(p.returncode == 65 and "badallow.md:4" in p.stderr_text,
              "bad allow_missing: exit %d: %s", p.returncode, p.stderr_text)


SIGNOFF = """---
subject: Sign-off
list: newsletter
%s---

Read [the report](https://example.org/report?id=7) and [more](https://example.org/more).

Thanks for reading,
The What Works team
"""


def text_and_html(server):
    msgs = server.messages()
    check(msgs, "no mail arrived")
    m = msgs[-1][1]
    return (m.get_body(("plain",)).get_content().replace("\r\n", "\n"),
            m.get_body(("html",)).get_content().replace("\r\n", "\n"))


def test_line_breaks_kept_and_links_listed():
    with world_with_readers() as w:
        server = w.smtp()
        iid = w.ok("issue", "new", w.write("s.md", SIGNOFF % "")).stdout_text.strip()
        w.ok("issue", "test", iid, "--to", "ada@example.org")
        w.ok("send", iid)
        text, body = text_and_html(server)
        check("Thanks for reading,\nThe What Works team\n" in text, "text: %s", text)
        check("Thanks for reading,<br />\nThe What Works team" in body, "html: %s", body)
        # the text part lists the destinations; the HTML is tracked
        check("[1] https://example.org/report?id=7\n[2] https://example.org/more\n" in text,
              "text links: %s", text)
        check("/c/" not in text, "a redirect in the text part: %s", text)
        check(re.search(r'href="https://news\.example\.org/c/[A-Za-z0-9_-]+/1"', body),
              "html link not tracked: %s", body)
        # strict CommonMark when asked: the two lines join
        iid2 = w.ok("issue", "new", w.write("s2.md", SIGNOFF % "line_breaks: commonmark\n")
                    ).stdout_text.strip()
        w.ok("issue", "test", iid2, "--to", "ada@example.org")
        text, body = text_and_html(server)
        check("Thanks for reading, The What Works team\n" in text, "commonmark text: %s", text)
        check("<br" not in body.split("Thanks for reading")[1][:40], "commonmark html: %s", body)
        p = w.run("issue", "new", w.write("s3.md", SIGNOFF % "line_breaks: maybe\n"))
        check(p.returncode == 65 and "s3.md:4" in p.stderr_text and "commonmark" in
              p.stderr_text, "bad line_breaks: exit %d: %s", p.returncode, p.stderr_text)


def test_text_footer_wraps_at_72():
    with world_with_readers() as w:
        server = w.smtp()
        w.set("sender", postal_address="What Works Centre for Children's Social Care, "
              "10 South Colonnade, Canary Wharf, London E14 4PU, United Kingdom")
        w.ok("list", "create", "long", "--title",
             "What Works Centre for Children's Social Care: research and practice news")
        w.ok("sub", "add", "ada@example.org", "--list", "long", "--name", "Ada")
        iid = w.ok("issue", "new", w.write("l.md", "---\nsubject: Long\nlist: long\n---\n"
                                           "Short body.\n")).stdout_text.strip()
        w.ok("send", iid)
        text, _ = text_and_html(server)
        check("\n-- \n" in text, "signature separator lost: %r", text)
        check("subscribed to What Works Centre" in text.replace("\n", " "), "footer: %s", text)
        for line in text.split("\n"):
            check(len(line) <= 72 or " " not in line, "line of %d: %r", len(line), line)


if __name__ == "__main__":
    run_tests([
        ("misspelt_attribute_warned_at_new", test_misspelt_attribute_warned_at_new),
        ("misspelt_attribute_refused_at_schedule_send_run",
         test_misspelt_attribute_refused_at_schedule_send_run),
        ("run_refuses_one_issue_sends_the_rest", test_run_refuses_one_issue_sends_the_rest),
        ("fallback_or_allow_missing_lets_it_go", test_fallback_or_allow_missing_lets_it_go),
        ("line_breaks_kept_and_links_listed", test_line_breaks_kept_and_links_listed),
        ("text_footer_wraps_at_72", test_text_footer_wraps_at_72),
    ])
