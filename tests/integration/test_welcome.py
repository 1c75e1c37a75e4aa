#!/usr/bin/python3
"""test_welcome.py - a list's welcome mail (include/herald/welcome.h), end to
end against the real SMTP server (tests/tools/smtpd.py).

Each case reads what the server received, and the ledger:
  - single opt-in: `sub add` -> one welcome after `herald run`; subscribers
    from before `list set --welcome` get none; a second `sub add`, an
    unsubscribe and re-add, a confirmation of a confirmed subscription ->
    no second welcome; a new welcome file greets only those still to come;
    `--no-welcome` stops it;
  - double opt-in web sign-up through `herald serve`: nothing (but the
    confirmation) until the link is followed, then one welcome, sent by
    serve itself; the link followed again and a new sign-up -> no second;
  - import -> none; import --welcome -> one each; re-importing the same
    people with --welcome -> none again;
  - SIGKILL in the middle of a run sending welcomes, new sign-ups while it
    is down, then `herald run`: every one has exactly one deliveries row,
    sent; the server has every address, any second copy is the same
    message (same Message-ID: ledger.h (5)) and at most one per connection
    per kill, as test_run_crash.py allows campaigns;
  - the welcome mail is DKIM-signed (python3-dkim verifies it) and carries
    the list's List-Unsubscribe (https and mailto) and one-click headers;
  - `list show` (text and --json) gives its subject and how many got it,
    `herald stats ID` reports it, `issue schedule ID` refuses it.
"""
import base64
import collections
import json
import os
import re
import signal
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, need_module, run_tests, wait_until  # noqa: E402

EX_DATAERR = 65
BASE = "https://news.example.org"
WELCOME = "---\nsubject: Welcome to WWC News, {{name|reader}}\n---\n\n" \
          "Thank you for joining. [Our archive](https://example.org/archive).\n"


def world(dkim_records=None):
    w = World()
    w.init()
    w.server = w.smtp()
    return w


def welcome_set(w, lst, text=WELCOME, name="welcome.md"):
    w.write(name, text)
    out = w.ok("list", "set", lst, "--welcome", name).stdout_text
    m = re.search(r"welcome mail is issue (\d+)", out)
    check(m, "list set --welcome printed %r", out)
    return int(m.group(1))


def welcomes(w, subject="Welcome to WWC News"):
    """{recipient: [Message-ID, ...]} of the welcome mails the server got."""
    out = collections.defaultdict(list)
    for ev, msg, raw in w.server.messages():
        if str(msg["Subject"]).startswith(subject):
            for r in ev["rcpt_tos"]:
                out[r].append(msg["Message-ID"])
    return out


def rows(w, wid):
    return collections.Counter(s for s, in w.sql(
        "SELECT status FROM deliveries WHERE issue_id = ?", wid))


def signatures(raw):
    return re.findall(rb"^DKIM-Signature:.*?(?=^\S)", raw, re.M | re.S)


def run(w):
    p = w.run("run", timeout=300)
    check(p.returncode == 0, "herald run: exit %d\n%s%s", p.returncode, p.stdout_text,
          p.stderr_text)
    return p


def test_single_opt_in_add_gets_one_after_run():
    with world() as w:
        w.ok("list", "create", "news", "--title", "WWC News")
        w.ok("sub", "add", "before@example.org", "--list", "news")
        wid = welcome_set(w, "news")
        w.ok("sub", "add", "ada@example.org", "--list", "news", "--name", "Ada")
        check(not w.server.messages(), "mail before herald run")
        run(w)
        got = welcomes(w)
        check(set(got) == {"ada@example.org"}, "welcomes went to %s", dict(got))
        check(len(got["ada@example.org"]) == 1, "ada got %d", len(got["ada@example.org"]))
        subj = [str(m["Subject"]) for _, m, _ in w.server.messages()]
        check(subj == ["Welcome to WWC News, Ada"], "subjects %s", subj)
        check(rows(w, wid) == {"sent": 1}, "ledger %s", rows(w, wid))
        check(w.sql("SELECT status FROM issues WHERE id = ?", wid)[0][0] == "sent",
              "the welcome issue is not sent after its one row went")
        # nothing more to do: run prints nothing and sends nothing
        p = run(w)
        check(p.stdout_text == "" and p.stderr_text == "", "run printed %r %r",
              p.stdout_text, p.stderr_text)
        # again: the same add, unsubscribe and re-add by an admin
        w.ok("sub", "add", "ada@example.org", "--list", "news")
        w.ok("sub", "unsubscribe", "ada@example.org", "--list", "news")
        w.ok("sub", "add", "ada@example.org", "--list", "news")
        run(w)
        check(len(welcomes(w)["ada@example.org"]) == 1, "ada welcomed again")
        # a new file: for those still to come only
        wid2 = welcome_set(w, "news", WELCOME.replace("Welcome to", "Welcome (2) to"),
                           "welcome2.md")
        check(wid2 != wid, "the same issue id for a new welcome file")
        w.ok("sub", "unsubscribe", "ada@example.org", "--list", "news")
        w.ok("sub", "add", "ada@example.org", "--list", "news")
        w.ok("sub", "add", "bob@example.org", "--list", "news")
        run(w)
        check(set(welcomes(w, "Welcome (2)")) == {"bob@example.org"}, "second welcome to %s",
              dict(welcomes(w, "Welcome (2)")))
        check(len(welcomes(w)["ada@example.org"]) == 1, "ada welcomed again")
        # --no-welcome stops it
        out = w.ok("list", "set", "news", "--no-welcome").stdout_text
        check("no welcome" in out, "list set --no-welcome printed %r", out)
        w.ok("sub", "add", "cat@example.org", "--list", "news")
        run(w)
        check(not welcomes(w).get("cat@example.org") and
              not welcomes(w, "Welcome (2)").get("cat@example.org"), "welcomed after --no-welcome")
        check(len(w.server.messages()) == 2, "%d mails in all", len(w.server.messages()))


def test_double_opt_in_web_sign_up_after_confirmation():
    need_module("aiosmtpd")
    import shutil
    from harness import Skip
    if not shutil.which("curl"):
        raise Skip("curl is missing (apt-get install curl)")
    from webclient import curl, expect, form_post
    with world() as w:
        w.ok("list", "create", "club", "--title", "WWC Club", "--double-opt-in", "--signup")
        wid = welcome_set(w, "club")
        srv = w.serve()
        who = "new.person@example.net"
        expect(form_post(srv.url + "/subscribe", email=who, name="New Person", list="club"), 200)
        wait_until(lambda: w.server.messages(), 15, "the confirmation mail")
        time.sleep(3)   # more than serve's welcome tick (2 s)
        msgs = w.server.messages()
        check(len(msgs) == 1, "%d mails before confirmation: %s", len(msgs),
              [str(m["Subject"]) for _, m, _ in msgs])
        check(not welcomes(w), "a welcome before confirmation")
        check(not w.sql("SELECT 1 FROM deliveries WHERE issue_id = ?", wid),
              "a welcome row before confirmation")
        text = msgs[0][1].get_body(("plain",)).get_content()
        m = re.search(r"%s(/confirm/[A-Za-z0-9_-]+)" % re.escape(BASE), text)
        check(m, "no confirm link in %r", text)
        url = srv.url + m.group(1)
        expect(curl(url, "POST", data="confirm=1"), 200)
        wait_until(lambda: welcomes(w), 15, "the welcome mail, sent by herald serve")
        check(set(welcomes(w)) == {who}, "welcomes %s", dict(welcomes(w)))
        # the link again, and a new sign-up of the same address
        expect(curl(url, "POST", data="confirm=1"), 200)
        expect(form_post(srv.url + "/subscribe", email=who, list="club"), 200)
        time.sleep(3)
        check(srv.stop() == 0, "serve exit status: %s", srv.stderr_text)
        check("welcome mail: 1 sent" in srv.stderr_text, "serve's log: %s", srv.stderr_text)
        run(w)
        check(len(welcomes(w)[who]) == 1, "%d welcomes to %s", len(welcomes(w)[who]), who)
        check(rows(w, wid) == {"sent": 1}, "ledger %s", rows(w, wid))


def test_import_only_with_welcome():
    with world() as w:
        w.ok("list", "create", "news", "--title", "WWC News")
        welcome_set(w, "news")
        w.write("a.csv", "email,name\na1@example.org,A1\na2@example.org,A2\na3@example.org,A3\n")
        w.write("b.csv", "email,name\nb1@example.org,B1\nb2@example.org,B2\n")
        w.ok("sub", "import", "--list", "news", "a.csv")
        run(w)
        check(not w.server.messages(), "an import without --welcome was welcomed")
        w.ok("sub", "import", "--list", "news", "--welcome", "b.csv")
        # the same people again, with --welcome: already confirmed, not new
        w.ok("sub", "import", "--list", "news", "--welcome", "a.csv")
        # a dry run queues nothing
        w.write("c.csv", "email\nc1@example.org\n")
        w.ok("sub", "import", "--list", "news", "--welcome", "--dry-run", "c.csv")
        run(w)
        got = welcomes(w)
        check(set(got) == {"b1@example.org", "b2@example.org"}, "welcomed %s", dict(got))
        check(all(len(v) == 1 for v in got.values()), "welcomed twice: %s", dict(got))


def test_sigkill_while_sending_welcomes():
    n = 1500
    with world() as w:
        w.set("smtp", connections=4)
        w.ok("list", "create", "news", "--title", "WWC News")
        wid = welcome_set(w, "news")
        emails = ["r%05d@example.org" % i for i in range(n)]
        w.write("subs.csv", "email\n" + "".join(e + "\n" for e in emails))
        w.ok("sub", "import", "--list", "news", "--welcome", "subs.csv")
        check(rows(w, wid) == {"pending": n}, "ledger %s", rows(w, wid))
        bg = w.spawn("run")
        wait_until(lambda: w.server.count() >= 200 or bg.poll() is not None, 60,
                   "200 welcomes")
        check(bg.poll() is None, "the run ended before the kill: %s", bg.stderr_text)
        bg.signal(signal.SIGKILL)
        bg.wait(10)
        time.sleep(0.3)
        check(w.server.count() < n, "everything was sent before the kill")
        st = rows(w, wid)
        check(st["pending"] > 0, "nothing left pending after the kill: %s", st)
        # sign-ups while nobody sends: queued like the rest
        late = ["late%d@example.org" % i for i in range(3)]
        for e in late:
            w.ok("sub", "add", e, "--list", "news")
        run(w)
        everyone = emails + late
        check(rows(w, wid) == {"sent": n + 3}, "ledger %s", rows(w, wid))
        per = w.sql("SELECT count(*) FROM deliveries WHERE issue_id = ? "
                    "GROUP BY subscriber_id HAVING count(*) > 1", wid)
        check(not per, "a subscriber with two rows")
        check(w.sql("SELECT count(*) FROM welcomes")[0][0] == n + 3, "welcomes rows")
        got = welcomes(w)
        missing = set(everyone) - set(got)
        check(not missing, "%d never welcomed, e.g. %s", len(missing), sorted(missing)[:5])
        check(set(got) == set(everyone), "welcomed strangers: %s", set(got) - set(everyone))
        twice = {r: m for r, m in got.items() if len(m) > 1}
        check(len(twice) <= 4, "%d welcomed twice after one kill with 4 connections: %s",
              len(twice), twice)
        check(all(len(set(m)) == 1 for m in twice.values()),
              "a second copy with another Message-ID: %s", twice)
        p = run(w)
        check(p.stdout_text == "", "run after the end printed %r", p.stdout_text)
        check(sum(len(m) for m in welcomes(w).values()) == n + 3 + len(twice),
              "more mail after the last run")
        print("     %d re-sent in-flight copies after the kill" % len(twice))


def test_dkim_signed_with_list_unsubscribe():
    need_module("dkim")
    import dkim
    w = World()
    try:
        path = os.path.join(w.root, "wel2026.pem")
        p = w.ok("dkim", "keygen", "--domain", "example.org", "--selector", "wel2026",
                 "--type", "rsa", "--out", path)
        m = re.search(r'^(\S+)\. IN TXT \((.*?)\)', p.stdout_text, re.S | re.M)
        check(m, "no TXT record in %s", p.stdout_text)
        records = {m.group(1) + ".": "".join(re.findall(r'"([^"]*)"', m.group(2))).encode()}
        w.set("dkim", selector="wel2026", private_key=path)
        w.init()
        w.server = w.smtp()
        w.ok("list", "create", "news", "--title", "WWC News")
        welcome_set(w, "news")
        w.ok("sub", "add", "zoe@example.net", "--list", "news", "--name", "Zoë")
        run(w)
        msgs = w.server.messages()
        check(len(msgs) == 1, "%d mails", len(msgs))
        ev, msg, raw = msgs[0]

        def lookup(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            return records.get(name if name.endswith(".") else name + ".")
        check(msg["DKIM-Signature"] is not None, "not signed")
        check(dkim.verify(raw, dnsfunc=lookup), "DKIM does not verify")
        check(str(msg["Subject"]) == "Welcome to WWC News, Zoë", "subject %r", msg["Subject"])
        lu = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
        check(any(u.startswith(BASE + "/u/") for u in lu) and
              any(u.startswith("mailto:") for u in lu), "List-Unsubscribe %r", lu)
        check(str(msg["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click",
              "List-Unsubscribe-Post %r", msg["List-Unsubscribe-Post"])
        signed = dkim.DKIM(raw).verify(dnsfunc=lookup) and re.search(
            rb"\bh=([^;]*)", re.sub(rb"\r\n[ \t]+", b"", signatures(raw)[0])).group(1)
        names = [n.strip().lower() for n in signed.split(b":")]
        check(b"list-unsubscribe" in names and b"list-unsubscribe-post" in names,
              "the unsubscribe headers are not signed: h=%r", signed)
        # the unsubscribe link is this subscriber's (token.h: a version/kind
        # byte, then the subscriber id as an unsigned LEB128 varint)
        unsub = [u for u in lu if u.startswith(BASE + "/u/")][0]
        tok = urllib.parse.urlsplit(unsub).path.split("/")[2]
        raw_tok = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
        sid, shift = 0, 0
        for b in raw_tok[1:]:
            sid |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                break
        want = w.sql("SELECT id FROM subscribers WHERE email = 'zoe@example.net'")[0][0]
        check(sid == want, "the unsubscribe token is for subscriber %d, not %d", sid, want)
    finally:
        w.close()


def test_list_show_stats_and_refusals():
    with world() as w:
        w.ok("list", "create", "news", "--title", "WWC News")
        out = w.ok("list", "show", "news").stdout_text
        check(re.search(r"^welcome\s+-$", out, re.M), "list show without a welcome: %s", out)
        check(json.loads(w.ok("list", "show", "news", "--json").stdout_text)["welcome"] is None,
              "--json welcome without one")
        wid = welcome_set(w, "news")
        for e in ("a@example.org", "b@example.org"):
            w.ok("sub", "add", e, "--list", "news")
        out = w.ok("list", "show", "news").stdout_text
        check(re.search(r'^welcome\s+issue %d "Welcome to WWC News, \{\{name\|reader\}\}" '
                        r'\(sending\): 0 sent, 2 waiting' % wid, out, re.M), "list show: %s", out)
        run(w)
        out = w.ok("list", "show", "news").stdout_text
        check(re.search(r'^welcome\s+issue %d .*\(sent\): 2 sent, 0 waiting' % wid, out, re.M),
              "list show after run: %s", out)
        j = json.loads(w.ok("list", "show", "news", "--json").stdout_text)["welcome"]
        check(j["issue"] == wid and j["sent"] == 2 and j["waiting"] == 0 and j["total"] == 2
              and j["status"] == "sent", "--json welcome %s", j)
        p = w.ok("stats", str(wid))
        check(re.search(r"^\s*sent\s+2$", p.stdout_text, re.M) and
              "Welcome to WWC News" in p.stdout_text, "stats of the welcome: %s", p.stdout_text)
        sj = json.loads(w.ok("stats", str(wid), "--json").stdout_text)
        check(sj["issue"]["id"] == wid and sj["recipients"] == 2 and
              sj["deliveries"]["sent"] == 2 and sj["deliveries"]["pending"] == 0,
              "stats --json %s", sj)
        p = w.run("issue", "schedule", str(wid), "--at", "2030-01-01T09:00Z")
        check(p.returncode == EX_DATAERR and "welcome" in p.stderr_text,
              "issue schedule of a welcome: %d %s", p.returncode, p.stderr_text)
        p = w.run("send", str(wid))
        check(p.returncode == EX_DATAERR, "send of a sent welcome: %d %s", p.returncode,
              p.stderr_text)
        # refusals of list set
        w.write("bad.md", "---\nsubject: W\nwhere: attr.x = \"y\"\n---\n\nHi.\n")
        p = w.run("list", "set", "news", "--welcome", "bad.md")
        check(p.returncode == EX_DATAERR and "bad.md:3" in p.stderr_text,
              "a filtered welcome: %d %s", p.returncode, p.stderr_text)
        p = w.run("list", "create", "x", "--welcome", "welcome.md")
        check(p.returncode != 0, "list create --welcome accepted")
        check(len(w.server.messages()) == 2, "%d mails", len(w.server.messages()))


run_tests([
    ("single_opt_in_add_gets_one_after_run", test_single_opt_in_add_gets_one_after_run),
    ("double_opt_in_web_sign_up_after_confirmation",
     test_double_opt_in_web_sign_up_after_confirmation),
    ("import_only_with_welcome", test_import_only_with_welcome),
    ("sigkill_while_sending_welcomes", test_sigkill_while_sending_welcomes),
    ("dkim_signed_with_list_unsubscribe", test_dkim_signed_with_list_unsubscribe),
    ("list_show_stats_and_refusals", test_list_show_stats_and_refusals),
])
