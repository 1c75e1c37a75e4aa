#!/usr/bin/python3
"""test_spamassassin.py - the sample issue scored by an independent filter.

Through the real CLI: a world, a list, one subscriber with a non-ASCII name
and the sample issue (examples/newsletter-16.md).  Two copies of that
subscriber's message are scored with Debian's SpamAssassin, local rules only
(`spamassassin -L -t`), in one run: the copy `issue preview --format eml
--subscriber` builds (the bytes `send` sends) and the copy `send` delivered
to tests/tools/smtpd.py, exactly as stored.  For each copy the rules hit and
their scores are printed (so the ctest log lists them) and the test asserts
a score below 1.0 and that none of MIME_HTML_ONLY, MPART_ALT_DIFF,
MPART_ALT_DIFF_COUNT, MIME_QP_LONG_LINE, MISSING_*, INVALID_DATE or
DKIM_INVALID fired (issue 4, "Independent checks").

Those assertions would pass vacuously if a rule did not exist in this
SpamAssassin or could not run, so the same run scores two control messages
made from herald's own copy (HTML only without Date and Message-ID; a bad
Date, a text part unlike the HTML and an over-long quoted-printable line)
and requires the rules to fire on them.

DKIM.  The world gets a [dkim] section pointing at an RSA-2048 key made by
`openssl genpkey` (mode 0600), which `herald config check` must accept, and
both copies must carry a DKIM-Signature.
Under -L SpamAssassin does not verify DKIM at all: DKIM_SIGNED and
DKIM_VALID are network rules, so they and the meta rule DKIM_INVALID are
disabled ("signature verification disabled, DNS resolving not available"),
and "DKIM_INVALID did not fire" would prove nothing.  So the signed copies
are scored a second time with network rules on but every DNS query answered
by a stub on 127.0.0.1 (dnspython, in this process) that serves the
selector's TXT record from the test key and NXDOMAIN for anything outside
example.org; the other network tests are switched off (skip_rbl_checks,
Razor, Pyzor, Bayes), and its --cf lines are checked with --lint first
(spamassassin silently ignores a line it cannot parse).  That run must show DKIM_VALID and DKIM_VALID_AU and
no DKIM_INVALID, and a copy altered after signing must show DKIM_INVALID.
When herald refuses [dkim], the DKIM test fails (herald signs: a refusal is
a regression, never a reason not to run); without python3-dnspython, for the
stub, it is skipped and the file exits 77.

SpamAssassin gets a private HOME (and -x), so it never writes to the real
one.  Exit 77 (skip) when spamassassin is not installed.
"""
import base64
import email
import email.policy
import os
import re
import shutil
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SKIP, SOURCE_DIR, Failure, World, check, need_module,  # noqa: E402
                     run_tests)

ISSUE = os.path.join(SOURCE_DIR, "examples", "newsletter-16.md")
READER = "zoe@example.net"
READER_NAME = "Zoë Müller"
DKIM_DOMAIN = "example.org"          # the From domain of the sample issue
DKIM_SELECTOR = "herald-test"
MAX_SCORE = 1.0
FORBIDDEN = ("MIME_HTML_ONLY", "MPART_ALT_DIFF", "MPART_ALT_DIFF_COUNT", "MIME_QP_LONG_LINE",
             "INVALID_DATE", "DKIM_INVALID")
FORBIDDEN_PREFIX = "MISSING_"

SPAMASSASSIN = shutil.which("spamassassin")
OPENSSL = shutil.which("openssl")
if not SPAMASSASSIN:
    print("SKIP: spamassassin is not installed (apt-get install spamassassin)")
    sys.exit(SKIP)
if not OPENSSL:
    print("SKIP: openssl is not installed (apt-get install openssl)")
    sys.exit(SKIP)

# Our header with every rule hit and its score ("RULE=0.713,RULE=-0.1" or
# "none"); bayes off so nothing is learnt or read.
SA_COMMON = ["add_header all Herald-Rules _TESTSSCORES(,)_", "use_bayes 0"]
# Network rules on, but DNS only from the stub; edns >= 1024 makes the DKIM
# plugin hand SpamAssassin's resolver (hence dns_server) to Mail::DKIM,
# which would otherwise use /etc/resolv.conf.
SA_DNS_STUB = ["dns_available yes", "dns_options edns=4096", "skip_rbl_checks 1",
               "use_razor2 0", "use_pyzor 0"]


# --- SpamAssassin --------------------------------------------------------------

class Score:
    def __init__(self, label, rules, report):
        self.label = label
        self.rules = rules            # {rule: score}
        self.report = report          # SpamAssassin's own table, for the log
        self.total = sum(rules.values())

    def hit(self, rule):
        return rule in self.rules

    def show(self):
        print("--- %s: score %.3f (%s)" % (self.label, self.total, ", ".join(
            "%s=%g" % kv for kv in sorted(self.rules.items())) or "no rules"))
        for line in self.report:
            print("    " + line)


def spamassassin(root, paths, labels, local=True, cf=()):
    """Score the messages at `paths` in one run; a Score per message."""
    home = os.path.join(root, "sa-home")
    os.makedirs(home, exist_ok=True)
    cmd = [SPAMASSASSIN, "-t", "-x"] + (["-L"] if local else [])
    for line in SA_COMMON + list(cf):
        cmd += ["--cf", line]
    env = dict(os.environ, HOME=home)
    p = subprocess.run(cmd + list(paths), capture_output=True, env=env, timeout=240)
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode == 0, "spamassassin exit %d: %s", p.returncode, err)
    if err.strip():
        print("spamassassin stderr: " + err.strip())
    out = p.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    heads = re.findall(r"^X-Spam-Herald-Rules:(.*(?:\n[ \t].*)*)", out, re.M)
    check(len(heads) == len(paths), "spamassassin scored %d of %d messages:\n%s",
          len(heads), len(paths), out[:2000])
    reports = re.findall(r"^(Content analysis details:.*\n\n pts rule name.*\n-+ -+.*\n"
                         r"(?:.+\n)*)", out, re.M)
    scores = []
    for i, head in enumerate(heads):
        value = re.sub(r"\s+", "", head)
        rules = {}
        if value != "none":
            for item in value.split(","):
                name, _, pts = item.partition("=")
                rules[name] = float(pts)
        report = reports[i].rstrip("\n").split("\n") if i < len(reports) else []
        scores.append(Score(labels[i], rules, report))
    return scores


def lint(root, cf):
    """spamassassin ignores a --cf line it cannot parse, silently, except
    under --lint: check the lines of the DKIM run there (about 1 s)."""
    cmd = [SPAMASSASSIN, "--lint", "-x"]
    for line in SA_COMMON + list(cf):
        cmd += ["--cf", line]
    p = subprocess.run(cmd, capture_output=True, env=dict(os.environ, HOME=os.path.join(
        root, "sa-home")), timeout=240)
    check(p.returncode == 0, "spamassassin --lint: %s", p.stderr.decode("utf-8", "replace"))


def forbidden_hits(score):
    return sorted(r for r in score.rules if r in FORBIDDEN or r.startswith(FORBIDDEN_PREFIX))


# --- a DNS stub for the DKIM run ---------------------------------------------

class DNSStub:
    """UDP DNS on 127.0.0.1: TXT for SELECTOR._domainkey.DOMAIN, an MX for
    DOMAIN (the domain exists, so no "domain not in DNS" rules), NOERROR
    with no answer for other names in DOMAIN, NXDOMAIN for the rest."""

    def __init__(self, domain, selector, txt):
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset
        self.dns = dns
        self.domain = domain.lower() + "."
        self.key_name = "%s._domainkey.%s" % (selector.lower(), self.domain)
        self.txt = txt
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _answer(self, data):
        dns = self.dns
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        question = q.question[0]
        name = question.name.to_text().lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rtype))
        if name == self.key_name and rtype == "TXT":
            # one TXT string is at most 255 octets (RFC 1035 §3.3.14)
            chunks = " ".join('"%s"' % self.txt[i:i + 255] for i in range(0, len(self.txt), 255))
            r.answer.append(dns.rrset.from_text(question.name, 300, "IN", "TXT", chunks))
        elif name == self.domain and rtype == "MX":
            r.answer.append(dns.rrset.from_text(question.name, 300, "IN", "MX",
                                                "10 mail." + self.domain))
        elif not (name == self.domain or name.endswith("." + self.domain)):
            r.set_rcode(dns.rcode.NXDOMAIN)
        return r.to_wire()

    def _serve(self):
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(data), addr)
            except Exception:  # a malformed query: ignore it, as a server would
                continue

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


# --- the world -----------------------------------------------------------------

def make_key(w):
    """An RSA-2048 key (mode 0600) and its DNS TXT value."""
    pem = subprocess.run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          "rsa_keygen_bits:2048"], capture_output=True, check=True).stdout
    path = os.path.join(w.root, "dkim-rsa.pem")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    der = subprocess.run([OPENSSL, "pkey", "-in", path, "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return path, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def configure_dkim(w):
    """Add [dkim] when herald accepts it; returns (TXT value, None) or
    (None, why not)."""
    before = open(w.config).read()
    key, txt = make_key(w)
    w.set("dkim", domain=DKIM_DOMAIN, selector=DKIM_SELECTOR, private_key=key)
    p = w.run("config", "check")
    if p.returncode == 0:
        return txt, None
    with open(w.config, "w") as f:
        f.write(before)
    return None, "herald config check refuses [dkim] (exit %d): %s" % (
        p.returncode, " / ".join(p.stderr_text.strip().splitlines()))


def head_of(raw):
    return raw.split(b"\r\n\r\n", 1)[0]


def strip_fields(head, names):
    """Header block without the fields in `names` (with their folded lines)."""
    out, skip = [], False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not skip:
                out.append(line)
            continue
        skip = line.split(b":", 1)[0].strip().lower() in names
        if not skip:
            out.append(line)
    return b"\r\n".join(out)


def controls(raw):
    """Two messages made from herald's copy that must trip the forbidden
    rules, proving they exist and run in this SpamAssassin."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    html_qp = msg.get_payload()[1].get_payload().encode("ascii")
    head = strip_fields(head_of(raw), {b"date", b"message-id", b"content-type",
                                       b"mime-version", b"dkim-signature"})
    # (a) HTML only, no Date, no Message-ID
    a = (head + b"\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + html_qp)
    # (b) an invalid Date, a text part that has nothing in common with the
    # HTML part, written as one quoted-printable line far over 76 characters
    head = strip_fields(head, {b"date"})
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
             "incididunt labore dolore magna aliqua enim minim veniam quis nostrud ").split()
    text = " ".join(words[i % len(words)] + str(i) for i in range(120)).encode("ascii")
    b = (head + b"\r\nDate: Thursday 31st of Foo, 2019 at noon\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
         b"--b\r\nContent-Type: text/plain; charset=UTF-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text + b"\r\n"
         b"--b\r\nContent-Type: text/html; charset=UTF-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + html_qp + b"\r\n--b--\r\n")
    return a, b


def build_world():
    """The world, both copies, and the scores; built once for all tests."""
    w = World()
    try:
        w.init()
        server = w.smtp()
        txt, why_no_dkim = configure_dkim(w)
        w.ok("list", "create", "newsletter", "--title", "What Works Centre e-newsletter")
        w.ok("sub", "add", READER, "--list", "newsletter", "--name", READER_NAME)
        iid = w.ok("issue", "new", ISSUE).stdout_text.strip()
        check(iid.isdigit(), "issue new printed %r", iid)
        preview = w.ok("issue", "preview", iid, "--format", "eml", "--subscriber",
                       READER).stdout
        w.ok("send", iid)
        got = server.messages()
        check(len(got) == 1 and got[0][0]["rcpt_tos"] == [READER], "send delivered %s",
              [ev["rcpt_tos"] for ev, _, _ in got])
        received = got[0][2]
        # the preview is what send sends: same fields but Date (and t=/b=)
        check(re.search(rb"^Message-ID:(.*)", head_of(preview), re.M | re.I).group(1) ==
              re.search(rb"^Message-ID:(.*)", head_of(received), re.M | re.I).group(1),
              "preview and sent copy differ in Message-ID")

        copies = {"preview": preview, "received": received}
        ctl_a, ctl_b = controls(preview)
        paths = []
        for name, data in list(copies.items()) + [("control-a", ctl_a), ("control-b", ctl_b)]:
            paths.append(w.write(name + ".eml", data))
        labels = ["issue preview --format eml", "copy received by the SMTP server",
                  "control (a)", "control (b)"]
        local = spamassassin(w.root, paths, labels)
        return {"world": w, "copies": copies, "local": local, "txt": txt,
                "why_no_dkim": why_no_dkim}
    except BaseException:
        w.close()
        raise


STATE = {}


def state():
    if not STATE:
        STATE.update(build_world())
    return STATE


# --- tests ---------------------------------------------------------------------

def test_local_rules_score():
    s = state()
    problems = []
    for score in s["local"][:2]:
        score.show()
        if score.total >= MAX_SCORE:
            problems.append("%s: score %.3f >= %.1f" % (score.label, score.total, MAX_SCORE))
        bad = forbidden_hits(score)
        if bad:
            problems.append("%s: forbidden rules %s" % (score.label, ", ".join(bad)))
    check(not problems, "; ".join(problems))


def test_forbidden_rules_can_fire():
    s = state()
    a, b = s["local"][2:]
    for score in (a, b):
        score.show()
    want_a = {"MIME_HTML_ONLY", "MISSING_DATE", "MISSING_MID"}
    want_b = {"INVALID_DATE", "MIME_QP_LONG_LINE", "MPART_ALT_DIFF"}
    check(want_a <= set(a.rules), "control (a) lacks %s", sorted(want_a - set(a.rules)))
    check(want_b <= set(b.rules), "control (b) lacks %s", sorted(want_b - set(b.rules)))


def test_dkim_verifies_against_local_key():
    need_module("dns")      # python3-dnspython, for the DNS stub
    s = state()
    check(s["txt"], "%s", s["why_no_dkim"])
    w, copies = s["world"], s["copies"]
    for name, raw in copies.items():
        check(re.search(rb"^DKIM-Signature:", head_of(raw), re.M | re.I),
              "%s: herald accepts [dkim] but the message carries no DKIM-Signature", name)
    for name, raw in copies.items():
        sig = re.search(rb"^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head_of(raw),
                        re.M | re.I)
        tags = re.sub(rb"\s+", b"", sig.group(1))
        check(b"d=%s;" % DKIM_DOMAIN.encode() in tags + b";" and
              b"s=%s;" % DKIM_SELECTOR.encode() in tags + b";",
              "%s: signature not d=%s s=%s: %r", name, DKIM_DOMAIN, DKIM_SELECTOR, sig.group(0))
    # a copy altered after signing: one word of the body
    tampered = copies["received"].replace(b"busy month", b"busy mouth", 1)
    check(tampered != copies["received"], "could not alter the body")
    paths = [w.write("dkim-%s.eml" % n, d) for n, d in copies.items()]
    paths.append(w.write("dkim-tampered.eml", tampered))
    stub = DNSStub(DKIM_DOMAIN, DKIM_SELECTOR, s["txt"])
    try:
        cf = SA_DNS_STUB + ["dns_server 127.0.0.1:%d" % stub.port]
        lint(w.root, cf)
        scores = spamassassin(w.root, paths, ["preview, DKIM checked", "received, DKIM checked",
                                              "altered after signing"], local=False, cf=cf)
    finally:
        stub.stop()
    for score in scores:
        score.show()
    check(("%s._domainkey.%s." % (DKIM_SELECTOR, DKIM_DOMAIN), "TXT") in stub.queries,
          "SpamAssassin never asked the stub for the key: %s", stub.queries)
    for score in scores[:2]:
        check(score.hit("DKIM_VALID") and score.hit("DKIM_VALID_AU"),
              "%s: DKIM_VALID / DKIM_VALID_AU missing: %s", score.label, sorted(score.rules))
        bad = forbidden_hits(score)
        check(not bad, "%s: forbidden rules %s", score.label, bad)
    check(scores[2].hit("DKIM_INVALID") and not scores[2].hit("DKIM_VALID"),
          "altered copy not caught: %s", sorted(scores[2].rules))


def main():
    tests = [("local_rules_score", test_local_rules_score),
             ("forbidden_rules_can_fire", test_forbidden_rules_can_fire),
             ("dkim_verifies_against_local_key", test_dkim_verifies_against_local_key)]
    try:
        s = state()
    except Failure as e:
        print("FAIL setup: %s" % e)
        sys.exit(1)
    try:
        run_tests(tests)
    finally:
        s["world"].close()


main()
