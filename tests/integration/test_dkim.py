#!/usr/bin/python3
"""test_dkim.py - DKIM, one-click unsubscribe headers and VERP, checked from
the outside.

Keys are made with `herald dkim keygen`; the DNS record it prints is served
to Debian's python3-dkim (an independent verifier) through a stub DNS
function.  Every message of a real send to the loopback SMTP server must
verify - the RSA signature and, with a second key, the Ed25519 one - and a
message changed after signing must not.  The list headers (RFC 2369, RFC
8058, RFC 2919), Feedback-ID and the VERP envelope sender are checked on
the same messages.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests, need_module, SOURCE_DIR  # noqa: E402
from dkimkeys import dns_stub, keygen  # noqa: E402

need_module("dkim")
import dkim  # noqa: E402

ISSUE = os.path.join(SOURCE_DIR, "examples", "newsletter-16.md")


def signatures(raw):
    return re.findall(rb"^DKIM-Signature:.*?(?=^\S)", raw, re.M | re.S)


def world_with_dkim(ed25519=False):
    w = World()
    rsa, records = keygen(w, "herald2026", "rsa")
    extra = "\n[dkim]\nselector = herald2026\nprivate_key = %s\n" % rsa
    if ed25519:
        ed, more = keygen(w, "herald2026e", "ed25519")
        records.update(more)
        extra += "ed25519_selector = herald2026e\ned25519_private_key = %s\n" % ed
    w.write_config(1, extra.replace("[dkim]", "[dkim]", 1))
    with open(w.config) as f:
        text = f.read()
    # bounces go to their own address, so VERP is visible
    text = text.replace("reply_to = wwccsc@example.org",
                        "reply_to = wwccsc@example.org\nreturn_path = bounces@bounces.example.org")
    with open(w.config, "w") as f:
        f.write(text)
    w.init()
    return w, records


def send_to(w, n):
    server = w.smtp()
    w.ok("list", "create", "newsletter", "--title", "What Works Centre e-newsletter")
    for i in range(n):
        w.ok("sub", "add", "reader%02d@example.net" % i, "--list", "newsletter",
             "--name", "Zoë Müller %d" % i)
    iid = w.ok("issue", "new", ISSUE).stdout_text.strip()
    w.ok("send", iid)
    msgs = server.messages()
    check(len(msgs) == n, "%d of %d delivered", len(msgs), n)
    return iid, msgs


def test_rsa_and_ed25519_signatures_verify():
    w, records = world_with_dkim(ed25519=True)
    with w:
        check("dkim       d=example.org s=herald2026, ed25519 s=herald2026e" in
              w.ok("config", "check").stdout_text, "config check does not show the keys")
        iid, msgs = send_to(w, 12)
        lookup = dns_stub(records)
        for ev, msg, raw in msgs:
            sigs = signatures(raw)
            check(len(sigs) == 2, "%d signatures", len(sigs))
            check(b"a=rsa-sha256" in sigs[0] and b"a=ed25519-sha256" in sigs[1],
                  "order/algorithms: %s", sigs)
            d = dkim.DKIM(raw)
            for idx in (0, 1):
                check(d.verify(idx=idx, dnsfunc=lookup), "%s: signature %d does not verify",
                      ev["rcpt_tos"][0], idx)
            tags = dict(t.strip().split("=", 1) for t in
                        re.sub(rb"\s+", b"", sigs[0].split(b":", 1)[1]).decode().split(";") if t)
            check(tags["c"] == "relaxed/relaxed" and tags["d"] == "example.org" and
                  tags["s"] == "herald2026", "tags %s", tags)
            h = tags["h"].lower().split(":")
            for name in ("from", "to", "subject", "date", "message-id", "mime-version",
                         "content-type", "reply-to", "list-id", "list-unsubscribe",
                         "list-unsubscribe-post", "feedback-id"):
                check(h.count(name) == 2, "h= lists %s %d times (over-signing): %s", name,
                      h.count(name), h)
            check(abs(int(tags["t"]) - int(msg["Date"].datetime.timestamp())) < 120, "t=")
            # the list headers
            lu = msg["List-Unsubscribe"]
            m = re.fullmatch(r"<(https://news\.example\.org/u/([A-Za-z0-9_-]+))>, "
                             r"<mailto:unsubscribe\+([A-Za-z0-9_-]+)@bounces\.example\.org>",
                             lu)
            check(m and m.group(2) == m.group(3), "List-Unsubscribe %r", lu)
            check(msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click",
                  "List-Unsubscribe-Post %r", msg["List-Unsubscribe-Post"])
            check(re.fullmatch(r"%s:newsletter:newsletter:herald" % iid, msg["Feedback-ID"]),
                  "Feedback-ID %r", msg["Feedback-ID"])
            check("Precedence" not in msg and "Auto-Submitted" not in msg,
                  "bulk markers on list mail")
            # VERP: the envelope sender carries a token, the same for nobody else
            check(re.fullmatch(r"bounces\+[A-Za-z0-9_-]+@bounces\.example\.org",
                               ev["mail_from"]), "envelope sender %s", ev["mail_from"])
        senders = [ev["mail_from"] for ev, _, _ in msgs]
        check(len(set(senders)) == len(senders), "VERP addresses repeat: %s", senders)


def test_changed_message_fails_verification():
    w, records = world_with_dkim()
    with w:
        _, msgs = send_to(w, 2)
        lookup = dns_stub(records)
        raw = msgs[0][2]
        check(dkim.verify(raw, dnsfunc=lookup), "the original does not verify")
        # one character of the body
        i = raw.index(b"busy month")
        check(not dkim.verify(raw[:i] + b"B" + raw[i + 1:], dnsfunc=lookup),
              "a changed body still verifies")
        # a header added after signing: a second From (over-signed)
        forged = b"From: Mallory <ceo@example.org>\r\n" + raw
        check(not dkim.verify(forged, dnsfunc=lookup), "an added From still verifies")
        # an added List-Unsubscribe-Post... replaced Subject
        changed = re.sub(rb"^Subject: .*$", b"Subject: You won", raw, count=1, flags=re.M)
        check(not dkim.verify(changed, dnsfunc=lookup), "a changed Subject still verifies")
        # a wrong key in DNS
        _, other = keygen(w, "other", "rsa")
        wrong = {list(records)[0]: list(other.values())[0]}
        check(not dkim.verify(raw, dnsfunc=dns_stub(wrong)), "verifies with another key")


def test_test_sends_are_signed_but_not_one_click():
    w, records = world_with_dkim()
    with w:
        server = w.smtp()
        w.ok("list", "create", "newsletter")
        iid = w.ok("issue", "new", ISSUE).stdout_text.strip()
        w.ok("issue", "test", iid, "--to", "editor@example.org")
        (ev, msg, raw), = server.messages()
        check(dkim.verify(raw, dnsfunc=dns_stub(records)), "test send does not verify")
        check("List-Unsubscribe-Post" not in msg, "a test send offers one-click")
        check(msg["Subject"].startswith("[TEST] "), "subject %r", msg["Subject"])
        check(ev["mail_from"] == "bounces@bounces.example.org", "test envelope %s",
              ev["mail_from"])


def test_keygen_and_key_checks():
    with World() as w:
        w.init()
        key, _ = keygen(w, "s1", "rsa")
        p = w.run("dkim", "keygen", "--domain", "example.org", "--selector", "s1",
                  "--out", key)
        check(p.returncode == 73 and "exists" in p.stderr_text, "overwrote a key: %d %s",
              p.returncode, p.stderr_text)
        base = open(w.config).read()

        def check_with(dkim_section):
            with open(w.config, "w") as f:
                f.write(base + dkim_section)
            return w.run("config", "check")

        p = check_with("\n[dkim]\nselector = s1\nprivate_key = %s\n" % key)
        check(p.returncode == 0 and "warning" not in p.stderr_text.replace(
            "password", ""), "good key: %d %s", p.returncode, p.stderr_text)
        os.chmod(key, 0o644)
        p = check_with("\n[dkim]\nselector = s1\nprivate_key = %s\n" % key)
        check(p.returncode == 78 and "readable by others" in p.stderr_text,
              "world-readable key accepted: %d %s", p.returncode, p.stderr_text)
        os.chmod(key, 0o600)
        short = os.path.join(w.root, "short.pem")
        os.system("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out %s "
                  "2>/dev/null" % short)
        os.chmod(short, 0o600)
        p = check_with("\n[dkim]\nselector = s1\nprivate_key = %s\n" % short)
        check(p.returncode == 0 and re.search(r"1024 bits", p.stderr_text),
              "1024-bit key: %d %s", p.returncode, p.stderr_text)
        p = check_with("\n[dkim]\nselector = s1\nprivate_key = %s/missing.pem\n" % w.root)
        check(p.returncode == 78 and "missing.pem" in p.stderr_text, "missing key: %s",
              p.stderr_text)
        p = check_with("\n[dkim]\ndomain = other-org.net\nselector = s1\nprivate_key = %s\n"
                       % key)
        check("does not align" in p.stderr_text, "no alignment warning: %s", p.stderr_text)
        p = check_with("")
        check("unsigned" in p.stderr_text, "no warning without DKIM: %s", p.stderr_text)


run_tests([
    ("rsa_and_ed25519_signatures_verify", test_rsa_and_ed25519_signatures_verify),
    ("changed_message_fails_verification", test_changed_message_fails_verification),
    ("test_sends_are_signed_but_not_one_click", test_test_sends_are_signed_but_not_one_click),
    ("keygen_and_key_checks", test_keygen_and_key_checks),
])
