#!/usr/bin/python3
"""test_postfix_fixture.py - the real-MTA fixture (tests/tools/postfix.py)
makes real DSNs, without any of herald's code.

Python's smtplib plays the sender: it sends from a VERP address
(bounces+abc_DEF-123@bounce.test) to an unknown and a known user of the
subscriber domain of a private Postfix on 127.0.0.1.  Both recipients must
be accepted at SMTP time (250), alice's copy must land in her Maildir, and
Postfix's own bounce(8) must deliver exactly one RFC 3464 report to the
bounce Maildir, which Python's email package (policy.default) reads as
multipart/report with a message/delivery-status part naming nobody@mx.test
as failed with a 5.x.x status, and whose Delivered-To / X-Original-To still
carry the whole VERP address.  Also: the soft-failure variant (a "delayed"
then a "failed" DSN with 4.2.2), the pipe(8) variant, loopback-only
listening, refusal of other domains, and two instances at once, each
stopped by PID.  Skips (77) when Postfix is not installed or not root.
"""
import email
import email.policy
import os
import re
import smtplib
import stat
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from harness import SKIP, check, run_tests  # noqa: E402
import postfix  # noqa: E402

why = postfix.available()
if why:
    print("SKIP: %s" % why)
    sys.exit(SKIP)

VERP = "bounces+abc_DEF-123@bounce.test"


def message(path):
    with open(path, "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.default)


def dsn_parts(msg):
    """(per-message block, [per-recipient blocks], returned part) of a DSN."""
    check(msg.get_content_type() == "multipart/report", "DSN type %s",
          msg.get_content_type())
    check(msg.get_param("report-type") == "delivery-status", "report-type %s",
          msg.get_param("report-type"))
    parts = msg.get_payload()
    check(parts[0].get_content_type() == "text/plain", "first part %s",
          parts[0].get_content_type())
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    check(len(status) == 1, "%d delivery-status parts", len(status))
    blocks = status[0].get_payload()
    check(len(blocks) >= 2, "delivery-status has %d blocks", len(blocks))
    returned = [p for p in parts if p.get_content_type() in ("message/rfc822",
                                                              "text/rfc822-headers")]
    return blocks[0], blocks[1:], returned[0] if returned else None


def send(pf, sender, rcpts, subject="fixture test", mid="<fixture.1@herald.test>"):
    """One SMTP transaction; returns {rcpt: (code, text)} for each RCPT."""
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: %s\r\n"
            "\r\nhello from smtplib\r\n" % (sender, rcpts[0], subject, mid)).encode()
    replies = {}
    with smtplib.SMTP(pf.host, pf.port, timeout=30) as s:
        s.ehlo("client.herald.test")
        code, text = s.mail(sender)
        check(code == 250, "MAIL FROM: %d %s", code, text)
        for r in rcpts:
            replies[r] = s.rcpt(r)
        if any(c == 250 for c, _ in replies.values()):
            code, text = s.data(body)
            check(code == 250, "end of DATA: %d %s", code, text)
    return replies


def test_unknown_user_gets_a_real_dsn():
    with tempfile.TemporaryDirectory(prefix="herald-test-") as tmp, \
            postfix.start(tmp) as pf:
        check(pf.subscriber_domain == "mx.test" and pf.bounce_domain == "bounce.test",
              "domains %s %s", pf.subscriber_domain, pf.bounce_domain)
        t0 = time.time()
        replies = send(pf, VERP, ["nobody@mx.test", "alice@mx.test"])
        t1 = time.time()
        for r, (code, text) in replies.items():
            check(code == 250, "RCPT %s refused at SMTP time: %d %s", r, code, text)

        # alice's copy
        mine, = pf.wait_for_mail(pf.user_maildir, 1, 30)
        msg = message(mine)
        check(msg["Delivered-To"] == "alice@mx.test", "alice Delivered-To %s",
              msg["Delivered-To"])
        check(msg["Message-ID"] == "<fixture.1@herald.test>", "alice got %s",
              msg["Message-ID"])
        check(msg["Return-Path"] == "<%s>" % VERP, "alice Return-Path %s",
              msg["Return-Path"])

        # exactly one DSN, for nobody only
        path, = pf.wait_for_bounces(1, 30)
        t2 = time.time()
        pf.wait_idle(30)
        check(len(os.listdir(os.path.join(pf.bounce_maildir, "new"))) == 1,
              "more than one message in the bounce Maildir")
        raw = open(path, "rb").read()
        dsn = message(path)
        check(dsn["Delivered-To"] == VERP, "Delivered-To %s", dsn["Delivered-To"])
        check(dsn["X-Original-To"] == VERP, "X-Original-To %s", dsn["X-Original-To"])
        check(dsn["To"] == VERP, "To %s", dsn["To"])
        check(dsn["Return-Path"] == "<>", "DSN Return-Path %s", dsn["Return-Path"])
        check(dsn["Auto-Submitted"] == "auto-replied", "Auto-Submitted %s",
              dsn["Auto-Submitted"])
        check(dsn["From"].addresses[0].username == "MAILER-DAEMON", "From %s", dsn["From"])
        per_msg, per_rcpt, returned = dsn_parts(dsn)
        check(per_msg["Reporting-MTA"] == "dns; mta.herald.test", "Reporting-MTA %s",
              per_msg["Reporting-MTA"])
        check(len(per_rcpt) == 1, "%d recipient blocks", len(per_rcpt))
        r = per_rcpt[0]
        check(re.fullmatch(r"rfc822;\s*nobody@mx\.test", r["Final-Recipient"]),
              "Final-Recipient %s", r["Final-Recipient"])
        check(r["Action"] == "failed", "Action %s", r["Action"])
        check(re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", r["Status"]), "Status %s", r["Status"])
        check(r["Status"] == "5.1.1", "Status %s (Postfix virtual(8) says 5.1.1)",
              r["Status"])
        check("unknown user" in r["Diagnostic-Code"], "Diagnostic-Code %s",
              r["Diagnostic-Code"])
        check(b"alice@mx.test" not in raw.split(b"Content-Type: message/rfc822")[0],
              "the DSN reports alice too")
        # the returned message is the one sent: herald can match its Message-ID
        check(returned is not None, "no returned message")
        inner = returned.get_payload(0) if returned.is_multipart() else returned
        check(inner["Message-ID"] == "<fixture.1@herald.test>", "returned Message-ID %s",
              inner["Message-ID"])
        print("     DSN delivered %.3f s after the end of DATA (SMTP took %.3f s)" % (
            t2 - t1, t1 - t0))


def test_loopback_only_and_other_domains_refused():
    with tempfile.TemporaryDirectory(prefix="herald-test-") as tmp, \
            postfix.start(tmp) as pf:
        check(pf.listeners() == [("127.0.0.1", pf.port)], "listening on %s",
              pf.listeners())
        master_cf = open(os.path.join(pf.config_directory, "master.cf")).read()
        services = {ln.split()[0] for ln in master_cf.splitlines()
                    if ln and not ln[0].isspace() and not ln.startswith("#")}
        check(not services & {"smtp", "relay", "lmtp"}, "an SMTP/LMTP client service: %s",
              services)
        replies = send(pf, VERP, ["someone@example.com"])
        code, text = replies["someone@example.com"]
        check(code == 554 and b"Relay access denied" in text, "foreign RCPT: %d %s",
              code, text)
        # a test can add its own failure, here a hard one by transport_maps
        check(pf.queue() == [], "queue %s", pf.queue())
        check(os.stat(pf.log).st_size > 0 and "daemon started" in open(pf.log).read(),
              "no log in %s", pf.log)


def test_transport_override_and_soft_failure():
    with tempfile.TemporaryDirectory(prefix="herald-test-") as tmp, \
            postfix.start(tmp, queue_lifetime="4s", delay_warning="1s",
                          transports={"spam@mx.test": "error:5.7.1 rejected as spam"}) as pf:
        send(pf, "bounces+soft@bounce.test", ["full@mx.test"], mid="<soft@herald.test>")
        send(pf, "bounces+spam@bounce.test", ["spam@mx.test"], mid="<spam@herald.test>")
        paths = pf.wait_for_bounces(3, 30)
        pf.wait_idle(30)
        seen = {}
        for p in paths:
            dsn = message(p)
            _, (r,), _ = dsn_parts(dsn)
            seen.setdefault(dsn["Delivered-To"], []).append(
                (r["Action"], r["Status"], r["Diagnostic-Code"]))
        soft = seen.get("bounces+soft@bounce.test", [])
        check([a[:2] for a in soft] == [("delayed", "4.2.2"), ("failed", "4.2.2")],
              "soft failure DSNs %s", soft)
        spam = seen.get("bounces+spam@bounce.test", [])
        check(len(spam) == 1 and spam[0][:2] == ("failed", "5.7.1") and
              "rejected as spam" in spam[0][2], "transport error DSN %s", spam)


def test_pipe_variant_runs_unprivileged():
    with tempfile.TemporaryDirectory(prefix="herald-test-") as tmp:
        out = os.path.join(tmp, "piped")
        os.mkdir(out)
        os.chown(out, 65534, 65534)
        script = os.path.join(tmp, "catch.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n{ id -u; printf '%%s\\n' \"$@\"; } > %s/args\n"
                    "cat > %s/dsn.eml\n" % (out, out))
        os.chmod(script, 0o755)
        with postfix.start(tmp, pipe_command=[script, "${original_recipient}",
                                              "two words"]) as pf:
            send(pf, VERP, ["nobody@mx.test"])
            deadline = time.time() + 30
            while not os.path.exists(os.path.join(out, "args")) or \
                    not os.path.exists(os.path.join(out, "dsn.eml")):
                check(time.time() < deadline, "nothing piped\n%s", pf.log_tail())
                time.sleep(0.05)
            pf.wait_idle(30)
            args = open(os.path.join(out, "args")).read().splitlines()
            check(args == ["65534", VERP, "two words"], "pipe ran with %s", args)
            dsn = message(os.path.join(out, "dsn.eml"))
            check(dsn["Delivered-To"] == VERP and dsn["X-Original-To"] == VERP,
                  "piped Delivered-To %s X-Original-To %s", dsn["Delivered-To"],
                  dsn["X-Original-To"])
            _, (r,), _ = dsn_parts(dsn)
            check(r["Action"] == "failed" and r["Status"].startswith("5."),
                  "piped DSN %s %s", r["Action"], r["Status"])
            check(not os.path.exists(os.path.join(pf.bounce_maildir, "new")) or
                  not os.listdir(os.path.join(pf.bounce_maildir, "new")),
                  "piped DSN also in the Maildir")


def test_two_instances_and_stop_by_pid():
    with tempfile.TemporaryDirectory(prefix="herald-test-") as tmp:
        a = postfix.start(tmp)
        try:
            b = postfix.start(tmp)
        except BaseException:
            a.stop()
            raise
        try:
            check(a.port != b.port and a.name != b.name and a.root != b.root,
                  "instances collide: %s %s", (a.port, a.name), (b.port, b.name))
            pa, pb = a.processes(), b.processes()
            check(a.master_pid in pa and b.master_pid in pb and not pa & pb,
                  "processes %s %s", pa, pb)
            send(a, "bounces+a@bounce.test", ["x@mx.test"])
            long_verp = "bounces+%s@bounce.test" % ("-A_z9" * 8)     # 40 characters
            send(b, long_verp, ["y@mx.test"])
            da, = a.wait_for_bounces(1, 30)
            db, = b.wait_for_bounces(1, 30)
            check(message(da)["Delivered-To"] == "bounces+a@bounce.test", "a got %s",
                  message(da)["Delivered-To"])
            check(message(db)["Delivered-To"] == long_verp, "b got %s",
                  message(db)["Delivered-To"])
            a.stop()
            check(not any(postfix._alive(p) for p in pa), "a left %s", pa)
            check(not os.path.exists(a.root), "a left %s", a.root)
            check(b.master_pid in b.processes(), "stopping a stopped b too")
            with smtplib.SMTP(b.host, b.port, timeout=10) as s:
                check(s.noop()[0] == 250, "b stopped answering")
        finally:
            a.stop()
            b.stop()
        check(not any(postfix._alive(p) for p in pb), "b left %s", pb)
        mode = stat.S_IMODE(os.stat(tmp).st_mode)
        check(mode & 0o111 == 0o111, "tmpdir mode %o", mode)


run_tests([
    ("unknown_user_gets_a_real_dsn", test_unknown_user_gets_a_real_dsn),
    ("loopback_only_and_other_domains_refused", test_loopback_only_and_other_domains_refused),
    ("transport_override_and_soft_failure", test_transport_override_and_soft_failure),
    ("pipe_variant_runs_unprivileged", test_pipe_variant_runs_unprivileged),
    ("two_instances_and_stop_by_pid", test_two_instances_and_stop_by_pid),
])
