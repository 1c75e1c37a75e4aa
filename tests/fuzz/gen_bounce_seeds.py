#!/usr/bin/python3
"""gen_bounce_seeds.py - bounce seeds too big to commit, made for each timed run.

    tests/fuzz/gen_bounce_seeds.py DIR

Writes into DIR what no real bounce has and the committed seeds
(tests/fuzz/corpus/bounce/) are too small to hold: the parser's limits and
its likely weak spots - deep MIME nesting, 300 KB headers, 1500 recipients,
broken boundaries, NUL bytes, bad encodings.  tests/fuzz/run.sh bounce
passes DIR to libFuzzer as a second, read-only corpus.  Python standard
library only.
"""
import os
import sys

if len(sys.argv) != 2:
    sys.exit("usage: tests/fuzz/gen_bounce_seeds.py DIR")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def seed(name, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(out, name), "wb") as f:
        f.write(data[:1048576])


head = ("From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+t@example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx.example.net>\r\n"
        "MIME-Version: 1.0\r\n")
dsn = ("Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
       "Final-Recipient: rfc822; reader@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
       "Diagnostic-Code: smtp; 550 5.1.1 <reader@example.com>: user unknown\r\n")


def report(boundary="b", inner=dsn):
    return (head + 'Content-Type: multipart/report; report-type=delivery-status; '
            'boundary="%s"\r\n\r\n--%s\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n'
            "--%s\r\n%s\r\n--%s--\r\n" % (boundary, boundary, boundary, inner, boundary))


seed("dsn", report())
seed("empty", b"")
seed("one-byte", b"F")
seed("no-body", head)
seed("lf-only", report().replace("\r\n", "\n"))
seed("cr-only", report().replace("\r\n", "\r"))
seed("nul-bytes", report().replace("user unknown", "user\0unknown\0"))
seed("latin1", report().replace("It failed.", "Zustellung fehlgeschlagen: \xfc\xe4\xf6"))
seed("bad-encoded-words", head.replace("Undelivered", "=?utf-8?B?////?= =?x-unknown?Q?=FF?=")
     + "\r\nbody\r\n")

# Deep nesting: multipart in multipart, message/rfc822 in message/rfc822.
for depth in (40, 70, 500):
    parts = ""
    for i in range(depth):
        parts += "Content-Type: multipart/mixed; boundary=\"n%d\"\r\n\r\n--n%d\r\n" % (i, i)
    parts += "Content-Type: message/delivery-status\r\n\r\n" + dsn.split("\r\n\r\n", 1)[1]
    for i in reversed(range(depth)):
        parts += "\r\n--n%d--\r\n" % i
    seed("nest-multipart-%d" % depth, head + parts)
    seed("nest-rfc822-%d" % depth,
         head + "Content-Type: message/rfc822\r\n\r\n" * depth + "Subject: x\r\n\r\nend\r\n")
seed("nest-unclosed", head + "".join(
    'Content-Type: multipart/mixed; boundary="u%d"\r\n\r\n--u%d\r\n' % (i, i) for i in range(300)))

# Huge headers: one long line, one long folded field, very many fields.
# Sizes stay near 300 KB (past the parser's 256 KB caps): under ASan GMime's
# header buffer grows by copying, so a 1 MB folded field takes 10 s a run.
seed("huge-subject", head.replace("Subject: ", "Subject: " + "x" * 300000) + "\r\nbody\r\n")
seed("huge-folded", "Subject: a\r\n" + "X-Long: " + "\r\n\tfold" * 40000 + "\r\n\r\nbody\r\n")
seed("many-fields", head + "X-F: v\r\n" * 40000 + "\r\nbody\r\n")
seed("huge-boundary", report(boundary="B" * 70000))
seed("huge-status", report(inner=dsn.replace("5.1.1", "5." + "1" * 100000 + ".1")))
seed("huge-address", report(inner=dsn.replace("reader@", "r" * 200000 + "@")))

# Many recipients, and more than the parser keeps.
per = "".join("Final-Recipient: rfc822; r%d@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
              % i for i in range(1500))
seed("many-recipients", report(inner="Content-Type: message/delivery-status\r\n\r\n"
                               "Reporting-MTA: dns; mx\r\n\r\n" + per))
seed("x-failed-recipients", head + "X-Failed-Recipients: "
     + ", ".join("r%d@example.com" % i for i in range(5000)) + "\r\n\r\nfailed\r\n")

# Broken MIME: no closing boundary, boundary never used, empty boundary.
seed("no-close", report().rsplit("--b--", 1)[0])
seed("unused-boundary", report().replace("--b\r\n", "--c\r\n"))
seed("empty-boundary", report(boundary=""))
seed("base64-junk", head + "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     + "!!!!====" * 1000 + "\r\n")
seed("qp-junk", head + "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
     "\r\n\r\n" + "=\r\n=Z=" * 5000 + "\r\n")

# ARF complaint and an auto-reply.
seed("arf", head.replace("Undelivered Mail Returned to Sender", "complaint") +
     'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
     "--f\r\nContent-Type: text/plain\r\n\r\nabuse report\r\n--f\r\n"
     "Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: x/1\r\n"
     "Version: 1\r\nOriginal-Rcpt-To: reader@example.com\r\n\r\n"
     "--f\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: reader@example.com\r\n"
     "Message-ID: <m1@example.org>\r\n\r\n--f--\r\n")
seed("autoreply", "From: reader@example.com\r\nTo: news@example.org\r\nSubject: Out of office\r\n"
     "Auto-Submitted: auto-replied\r\n\r\nI am away.\r\n")
# Text shapes: qmail and Exim with long, odd lines.
seed("qmail", head + "\r\nHi. This is the qmail-send program at mx.example.net.\r\n"
     "<reader@example.com>:\r\n" + "Sorry, no mailbox here by that name. " * 2000 + "\r\n")
seed("exim", head + "X-Failed-Recipients: reader@example.com\r\n\r\n"
     "  reader@example.com\r\n    " + "host mx said: 550 " * 3000 + "\r\n")
