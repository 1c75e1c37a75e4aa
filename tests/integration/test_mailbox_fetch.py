#!/usr/bin/python3
"""test_mailbox_fetch.py - `herald bounce --fetch` against a real Dovecot.

Drives the CLI (src/cmd/bounce.c), the recording (src/bouncelog.c) and the
parser (src/bounce.c) through src/mailbox.c.  What they promise:
  config [bounce] mailbox = imaps://127.0.0.1:PORT/INBOX (or pop3s://...),
         username, password_file (mode 0600), ca_file;
  `herald bounce --fetch` reads every message, prints one summary line on
  stdout, "fetched N messages: B bounces (H hard, S soft), C complaints,
  ..., I ignored, D duplicates", exits 0;
  table inbound gets one row per distinct message (by SHA-256), table
  bounces one row per failed recipient.

A private Dovecot (tests/tools/dovecot.py: imap, imaps, pop3, pop3s on
127.0.0.1, a self-signed certificate, its own Maildir) holds three messages
for two subscribers: an RFC 3464 DSN (Status 5.1.1, a hard bounce), an
RFC 5965 ARF complaint, and a plain reply (not a bounce).  Over IMAP and over
POP3, each test checks:
  - the summary counts them, the database has them, the subscribers are
    marked (bounced, complained);
  - the mailbox is empty afterwards, and a second run fetches nothing;
  - a second copy of the same DSN bytes is a duplicate, not a second bounce
    (and it is removed too);
  - the order on the wire, from Dovecot's rawlog: a message is deleted only
    after it was fetched (UID FETCH n BODY[] before UID STORE n; RETR n before
    DELE n), then one EXPUNGE, or QUIT;
and once each:
  - a folder that does not exist: exit 78 (EX_CONFIG), "cannot open the
    mailbox" with its URL;
  - a wrong password: exit 77 (EX_NOPERM), a message naming the URL and the
    server's refusal but not the password, mailbox and database untouched;
  - a database that cannot be written (another writer holds it): exit 75
    (EX_TEMPFAIL), a message was read but nothing removed from the mailbox,
    since nothing was committed (invariant (1) of src/mailbox.c);
  - plain imap:// on loopback (no TLS there by design, see src/mailbox.c).

Skips (77) when Dovecot or openssl is missing.
"""
import os
import re
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
from harness import World, check, run_tests, skip_file  # noqa: E402
import dovecot  # noqa: E402

if dovecot.missing():       # every case needs a Dovecot
    skip_file(dovecot.missing())

HARD = "gone@example.com"
COMPLAINER = "annoyed@example.net"
STAYS = "happy@example.org"


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def dsn(rcpt, status="5.1.1", mid="dsn-1@mx.example.net"):
    """An RFC 3464 report as Postfix writes one: text, delivery-status,
    the returned headers."""
    return crlf("""\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: bounces@example.org
Subject: Undelivered Mail Returned to Sender
Date: Tue, 25 Nov 2025 10:00:00 +0000
Message-ID: <%(mid)s>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="DSN-BOUNDARY-1"

This is a MIME-encapsulated message.

--DSN-BOUNDARY-1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<%(rcpt)s>: host mx.example.com[192.0.2.25] said: 550 %(status)s
    <%(rcpt)s>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--DSN-BOUNDARY-1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4ABCD123
Arrival-Date: Tue, 25 Nov 2025 09:59:58 +0000

Final-Recipient: rfc822; %(rcpt)s
Original-Recipient: rfc822;%(rcpt)s
Action: failed
Status: %(status)s
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 %(status)s <%(rcpt)s>: Recipient address rejected:
    User unknown in virtual mailbox table

--DSN-BOUNDARY-1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: What Works Centre <news@example.org>
To: Reader <%(rcpt)s>
Subject: Hello
Date: Tue, 25 Nov 2025 09:59:50 +0000
Message-ID: <issue-1.%(rcpt)s@example.org>

--DSN-BOUNDARY-1--
""" % {"rcpt": rcpt, "status": status, "mid": mid})


def arf(rcpt):
    """An RFC 5965 feedback report (Feedback-Type: abuse) with the original."""
    return crlf("""\
From: Feedback Loop <fbl@isp.example>
To: abuse@example.org
Subject: Abuse report for a message from example.org
Date: Tue, 25 Nov 2025 11:00:00 +0000
Message-ID: <arf-1@isp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
	boundary="ARF-BOUNDARY-1"

--ARF-BOUNDARY-1
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for an email message received from
IP 192.0.2.1 on Tue, 25 Nov 2025 10:59:00 +0000.

--ARF-BOUNDARY-1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <bounces@example.org>
Original-Rcpt-To: <%(rcpt)s>
Arrival-Date: Tue, 25 Nov 2025 10:59:00 +0000
Reported-Domain: example.org
Source-IP: 192.0.2.1

--ARF-BOUNDARY-1
Content-Type: message/rfc822
Content-Disposition: inline

From: What Works Centre <news@example.org>
To: <%(rcpt)s>
Subject: Hello
Date: Tue, 25 Nov 2025 10:58:00 +0000
Message-ID: <issue-1.%(rcpt)s@example.org>

Dear reader, hello.

--ARF-BOUNDARY-1--
""" % {"rcpt": rcpt})


def reply(sender):
    """A person answering the newsletter: not a bounce."""
    return crlf("""\
From: Happy Reader <%s>
To: wwccsc@example.org
Subject: Re: Hello
Date: Tue, 25 Nov 2025 12:00:00 +0000
Message-ID: <reply-1@example.org>
In-Reply-To: <issue-1.%s@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Thanks, a very useful issue!
""" % (sender, sender))


SUMMARY = re.compile(
    r"fetched (\d+) messages?: (\d+) bounces? \((\d+) hard, (\d+) soft\), (\d+) complaints?"
    r".*?(\d+) ignored, (\d+) duplicates?")


def summary(p):
    """(messages, bounces, hard, soft, complaints, ignored, duplicates)."""
    m = SUMMARY.search(p.stdout_text)
    check(m, "no summary line in stdout: %r (stderr %r)", p.stdout_text, p.stderr_text)
    return tuple(int(x) for x in m.groups())


def setup(w, d, proto, password=None):
    """Subscribers, and the [bounce] section pointing at Dovecot."""
    w.init()
    w.subscribe([HARD, COMPLAINER, STAYS])
    pw = w.write("mailbox.password", (password or d.password) + "\n")
    os.chmod(pw, 0o600)
    w.set("bounce", mailbox=d.url(proto), username=d.user, password_file=pw,
          ca_file=d.ca_file)


def status(w, email):
    return w.sql("SELECT status FROM subscribers WHERE email = ?", email)[0][0]


def check_wire_order(d, proto):
    """In every session: a message is deleted only after it was fetched, and
    deletions are committed at the end (EXPUNGE / QUIT)."""
    sessions = d.rawlogs()
    check(sessions, "no Dovecot rawlog")
    for s in sessions:
        lines = [re.sub(r"^\S+ ", "", l) for l in s.splitlines() if l.strip()]
        if proto.startswith("imap"):
            lines = [re.sub(r"^\S+ ", "", l) for l in lines]    # the tag
            fetched, stored = set(), 0
            for l in lines:
                m = re.match(r"UID FETCH (\d+) BODY\[\]", l)
                if m:
                    fetched.add(m.group(1))
                m = re.match(r"UID STORE (\d+) \+FLAGS", l)
                if m:
                    check(m.group(1) in fetched, "UID %s deleted before it was fetched: %s",
                          m.group(1), lines)
                    stored += 1
            if stored:
                check("EXPUNGE" in lines, "no EXPUNGE after %d STOREs: %s", stored, lines)
                check(lines.index("EXPUNGE") > max(i for i, l in enumerate(lines)
                                                   if l.startswith("UID STORE")),
                      "EXPUNGE before the last STORE: %s", lines)
        else:
            retrieved, deleted = set(), 0
            for l in lines:
                m = re.match(r"RETR (\d+)$", l)
                if m:
                    retrieved.add(m.group(1))
                m = re.match(r"DELE (\d+)$", l)
                if m:
                    check(m.group(1) in retrieved, "message %s deleted before RETR: %s",
                          m.group(1), lines)
                    deleted += 1
            if deleted:
                check(lines[-1] == "QUIT", "deletions not ended by QUIT: %s", lines)


def fetch_cycle(proto):
    with World() as w:
        d = dovecot.start(os.path.join(w.root, "dovecot"), rawlog=True)
        try:
            setup(w, d, proto)
            d.deliver(dsn(HARD))
            d.deliver(arf(COMPLAINER))
            d.deliver(reply(STAYS))
            check(len(d.messages()) == 3, "delivered: %s", d.messages())

            p = w.ok("bounce", "--fetch")
            check(summary(p) == (3, 1, 1, 0, 1, 1, 0), "first run: %s", p.stdout_text)
            check(d.messages() == [], "mailbox not emptied: %s", d.messages())
            check(w.sql("SELECT count(*) FROM inbound")[0][0] == 3, "inbound rows: %s",
                  w.sql("SELECT sha256, kind FROM inbound"))
            rows = w.sql("SELECT s.email, b.class, b.status FROM bounces b "
                         "JOIN subscribers s ON s.id = b.subscriber_id ORDER BY b.id")
            check(rows == [(HARD, "hard", "5.1.1"), (COMPLAINER, "complaint", "")]
                  or sorted(rows) == sorted([(HARD, "hard", "5.1.1"),
                                             (COMPLAINER, "complaint", "")]),
                  "bounces rows: %s", rows)
            check(status(w, HARD) == "bounced", "hard-bounced subscriber is %s",
                  status(w, HARD))
            check(status(w, COMPLAINER) == "complained", "complainer is %s",
                  status(w, COMPLAINER))
            check(status(w, STAYS) == "active", "the replier is %s", status(w, STAYS))
            check("s3cret" not in p.stdout_text + p.stderr_text, "password printed")

            before = w.dump()
            p = w.ok("bounce", "--fetch")
            check(summary(p)[0] == 0, "second run fetched something: %s", p.stdout_text)
            check(w.dump() == before, "an empty fetch changed the database")

            # The same DSN bytes again (an MTA that delivered it twice).
            d.deliver(dsn(HARD))
            p = w.ok("bounce", "--fetch")
            check(summary(p) == (1, 0, 0, 0, 0, 0, 1), "duplicate run: %s", p.stdout_text)
            check(w.sql("SELECT count(*) FROM bounces")[0][0] == len(rows),
                  "a duplicate added a bounce")
            check(w.sql("SELECT count(*) FROM inbound")[0][0] == 3,
                  "a duplicate added an inbound row")
            check(d.messages() == [], "duplicate not removed: %s", d.messages())
            check_wire_order(d, proto)
        finally:
            d.stop()


def test_imaps_fetch():
    fetch_cycle("imaps")


def test_pop3s_fetch():
    fetch_cycle("pop3s")


def test_wrong_password():
    with World() as w:
        d = dovecot.start(os.path.join(w.root, "dovecot"))
        try:
            for proto in ("imaps", "pop3s"):
                if proto == "imaps":
                    setup(w, d, proto, password="not-the-password")
                    d.deliver(dsn(HARD))
                else:
                    w.set("bounce", mailbox=d.url(proto))
                held = d.messages()
                before = w.dump()
                p = w.run("bounce", "--fetch")
                # EX_NOPERM (src/mailbox.c), passed through by cli.c
                check(p.returncode == 77, "%s: exit %d, wanted 77 (EX_NOPERM)", proto,
                      p.returncode)
                err = p.stderr_text
                check(d.url(proto) in err, "%s: the URL is not in %r", proto, err)
                check(re.search(r"login|auth", err, re.I), "%s: no login failure in %r",
                      proto, err)
                check(re.search(r"Authentication failed|AUTHENTICATIONFAILED", err),
                      "%s: the server's reply is not in %r", proto, err)
                check("not-the-password" not in p.stdout_text + err, "password printed")
                check(d.messages() == held, "%s: mailbox changed: %s", proto, d.messages())
                check(w.dump() == before, "%s: database changed", proto)

            # The right password but a folder that does not exist: a
            # configuration error (libcurl calls it a refused login).
            pw = w.write("mailbox.password", d.password + "\n")
            os.chmod(pw, 0o600)
            url = d.url("imaps", "NoSuchFolder")
            w.set("bounce", mailbox=url)
            held = d.messages()
            p = w.run("bounce", "--fetch")
            check(p.returncode == 78, "missing folder: exit %d, wanted 78 (EX_CONFIG): %s",
                  p.returncode, p.stderr_text)
            check(url in p.stderr_text and "cannot open the mailbox" in p.stderr_text,
                  "missing folder: %r", p.stderr_text)
            check(d.messages() == held, "missing folder: mailbox changed")
        finally:
            d.stop()


def nothing_removed(proto):
    with World() as w:
        d = dovecot.start(os.path.join(w.root, "dovecot"), rawlog=True)
        try:
            setup(w, d, proto)
            w.set("database", busy_timeout="200")
            d.deliver(dsn(HARD))
            d.deliver(reply(STAYS))
            held = d.messages()
            # Another writer holds the database for the whole run.
            con = sqlite3.connect(w.db, isolation_level=None, timeout=1)
            try:
                con.execute("BEGIN IMMEDIATE")
                p = w.run("bounce", "--fetch")
                con.execute("ROLLBACK")
            finally:
                con.close()
            check(p.returncode == 75, "exit %d with the database locked, wanted 75 "
                  "(EX_TEMPFAIL): %s", p.returncode, p.stderr_text)
            # (Dovecot renames what it has seen into cur/: count, not names)
            check(len(d.messages()) == len(held),
                  "messages removed though nothing was committed: %s", d.messages())
            check(not d.deleted(), "messages flagged \\Deleted: %s", d.deleted())
            # IMAP: what was read but left is unread again (Maildir flag S),
            # as before (POP3 has no flags; Dovecot marks RETR'd mail seen)
            seen = [m for m in d.messages() if ":2," in m and "S" in m.rsplit(":2,", 1)[1]]
            check(not seen or not proto.startswith("imap"), "messages left \\Seen: %s", seen)
            check(w.sql("SELECT count(*) FROM inbound")[0][0] == 0, "inbound rows written")
            # it failed mid-run, in the callback: a message was read, none deleted
            wire = "\n".join(d.rawlogs())
            if proto.startswith("imap"):
                check(re.search(r"UID FETCH \d+ BODY\[\]", wire), "nothing read: %s", wire)
                check("\\Deleted" not in wire and "EXPUNGE" not in wire, "deleted: %s", wire)
                check(re.search(r"UID STORE \d+ -FLAGS\.SILENT \(\\Seen\)", wire),
                      "\\Seen not taken back: %s", wire)
            else:
                check(re.search(r"RETR \d+", wire), "nothing read: %s", wire)
                check("DELE" not in wire, "deleted: %s", wire)
            # and once the database is free, they are all read
            p = w.ok("bounce", "--fetch")
            check(summary(p)[0] == 2, "after the lock: %s", p.stdout_text)
            check(d.messages() == [], "mailbox not emptied: %s", d.messages())
        finally:
            d.stop()


def test_imaps_nothing_removed_when_nothing_committed():
    nothing_removed("imaps")


def test_pop3s_nothing_removed_when_nothing_committed():
    nothing_removed("pop3s")


def test_plain_imap_on_loopback():
    with World() as w:
        d = dovecot.start(os.path.join(w.root, "dovecot"))
        try:
            setup(w, d, "imap")
            d.deliver(dsn(HARD))
            p = w.ok("bounce", "--fetch")
            check(summary(p)[:3] == (1, 1, 1), "imap:// run: %s", p.stdout_text)
            check(d.messages() == [], "mailbox not emptied: %s", d.messages())
        finally:
            d.stop()


if __name__ == "__main__":
    run_tests([
        ("imaps fetch, duplicates, wire order", test_imaps_fetch),
        ("pop3s fetch, duplicates, wire order", test_pop3s_fetch),
        ("wrong password, missing folder: nothing touched", test_wrong_password),
        ("imaps: nothing removed when nothing committed",
         test_imaps_nothing_removed_when_nothing_committed),
        ("pop3s: nothing removed when nothing committed",
         test_pop3s_nothing_removed_when_nothing_committed),
        ("plain imap on loopback", test_plain_imap_on_loopback),
    ])
