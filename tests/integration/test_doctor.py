#!/usr/bin/python3
"""test_doctor.py - `herald doctor` (issue 18) against real servers on loopback.

DNS: tests/tools/dnsd.py (Debian's python3-dnspython) on a free 127.0.0.1
port, UDP and TCP, serving one zone per case: good.test has every record
right (an RSA and an Ed25519 key), and each other zone plants one mistake
(no SPF, two SPF records, SPF that does not allow the relay, SPF over 10
look-ups, DKIM key missing, of another key pair, revoked, in testing mode,
DMARC missing, DMARC p=none, DMARC strict alignment against a subdomain
signer, a tracking host without an address).
Each case points From at its zone and runs doctor with --resolver: the
failing check's line must name the record seen, the exit status is 65
(a failure), 0 (only warnings) or 69 (DNS did not answer).

Relay: tests/tools/smtpd.py (aiosmtpd) with AUTH, a wrong password, a
closed port, STARTTLS required of a server that has none.  One-click: a
running `herald serve`, a closed port, a secret serve does not share.
Bounce mailbox: not configured, and a private Dovecot (tests/tools/
dovecot.py) with the right and a wrong password, when Dovecot is there.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (World, Failure, check, run_tests, need_module, Skip,  # noqa: E402
                     SOURCE_DIR)

need_module("dns")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "tools"))
import dovecot  # noqa: E402

DNSD = os.path.join(SOURCE_DIR, "tests", "tools", "dnsd.py")
EX_DATAERR, EX_UNAVAILABLE = 65, 69
DNS_CHECKS = "spf,dkim,dmarc,tracking"


class DNSServer:
    """A running tests/tools/dnsd.py; stop() kills it by PID."""

    def __init__(self, root, zones):
        folder = os.path.join(root, "zones")
        os.makedirs(folder)
        for name, text in zones.items():
            with open(os.path.join(folder, name + ".zone"), "w") as f:
                f.write("$TTL 60\n" + text)
        port_file = os.path.join(root, "dnsd.port")
        self.log = open(os.path.join(root, "dnsd.log"), "w")
        self.proc = subprocess.Popen(["/usr/bin/python3", DNSD, "--zones", folder,
                                      "--port-file", port_file],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise Failure("dnsd did not start: " + open(self.log.name).read())
            time.sleep(0.05)
        self.address = "127.0.0.1:%s" % open(port_file).read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def keygen(w, name, kind="rsa"):
    """A DKIM key made by herald dkim keygen: (path, the TXT value it printed)."""
    path = os.path.join(w.root, name + ".pem")
    p = w.ok("dkim", "keygen", "--domain", "good.test", "--selector", "sel", "--type", kind,
             "--out", path)
    m = re.search(r'IN TXT \((.*?)\)', p.stdout_text, re.S)
    check(m, "no TXT record in keygen output: %s", p.stdout_text)
    return path, "".join(re.findall(r'"([^"]*)"', m.group(1)))


def txt(value):
    """A TXT rdata of strings of at most 255 characters."""
    return " ".join('"%s"' % value[i:i + 250] for i in range(0, len(value), 250))


RELAY = "192.0.2.25"  # the relay's address in the DNS cases (never connected to)


def zone(domain, spf='"v=spf1 ip4:%s -all"' % RELAY, dkim=None,
         dmarc='"v=DMARC1; p=reject; rua=mailto:dmarc@%(d)s"', host="127.0.0.1", extra=""):
    lines = ["@ IN TXT %s" % spf if spf else "@ IN TXT \"site-verification=abc\"",
             "@ IN MX 10 mx.%(d)s.", "mx IN A 192.0.2.50"]
    if dkim:
        lines.append("sel._domainkey IN TXT %s" % dkim)
    if dmarc:
        lines.append("_dmarc IN TXT %s" % dmarc)
    if host:
        lines.append("news IN A %s" % host)
    return ("\n".join(lines) + "\n" + extra) % {"d": domain}


class Setup:
    """One DNS server with every zone, and the two keys, for the DNS cases."""
    ready = None

    def __init__(self):
        self.keys_world = World()
        self.key, self.key_txt = keygen(self.keys_world, "main")
        _, self.other_txt = keygen(self.keys_world, "other")
        self.ed_key, self.ed_txt = keygen(self.keys_world, "ed", "ed25519")
        good = txt(self.key_txt)
        testing = txt(self.key_txt.replace("v=DKIM1; ", "v=DKIM1; t=y; "))
        too_many = " ".join("include:i%d.toomany.test" % i for i in range(11))
        self.zones = {
            "good.test": zone("good.test", dkim=good,
                              extra="ed._domainkey IN TXT %s\n" % txt(self.ed_txt)),
            "revoked.test": zone("revoked.test", dkim='"v=DKIM1; k=rsa; p="'),
            "testing.test": zone("testing.test", dkim=testing),
            "nospf.test": zone("nospf.test", spf=None, dkim=good),
            "twospf.test": zone("twospf.test", dkim=good,
                                extra='@ IN TXT "v=spf1 include:_spf.example.net ~all"\n'),
            "spfdeny.test": zone("spfdeny.test", spf='"v=spf1 ip4:192.0.2.1 mx -all"',
                                 dkim=good),
            "toomany.test": zone("toomany.test", spf=txt("v=spf1 %s ip4:%s -all" % (too_many, RELAY)),
                                 dkim=good, extra="".join('i%d IN TXT "v=spf1 -all"\n' % i
                                                          for i in range(11))),
            "nodkim.test": zone("nodkim.test"),
            "otherdkim.test": zone("otherdkim.test", dkim=txt(self.other_txt)),
            "nodmarc.test": zone("nodmarc.test", dkim=good, dmarc=None),
            "dmarcnone.test": zone("dmarcnone.test", dkim=good,
                                   dmarc='"v=DMARC1; p=none; rua=mailto:d@dmarcnone.test"'),
            "strict.test": zone("strict.test", dmarc='"v=DMARC1; p=reject; adkim=s; aspf=s"',
                                extra="sel._domainkey.mail IN TXT %s\n"
                                      'mail IN TXT "v=spf1 ip4:%s -all"\n' % (good, RELAY)),
            "nohost.test": zone("nohost.test", dkim=good, host=None),
        }
        self.dns = DNSServer(self.keys_world.root, self.zones)

    @classmethod
    def get(cls):
        if cls.ready is None:
            cls.ready = Setup()
        return cls.ready

    def close(self):
        self.dns.stop()
        self.keys_world.close()


def world_for(domain, dkim_domain=None, return_path=None):
    s = Setup.get()
    w = World()
    w.set("sender", **{"from": "News <news@%s>" % domain})
    if return_path:
        w.set("sender", return_path=return_path)
    w.set("web", base_url="https://news.%s" % domain)
    w.set("smtp", url="smtp://%s:587" % RELAY)
    keys = dict(selector="sel", private_key=s.key)
    if dkim_domain:
        keys["domain"] = dkim_domain
    w.set("dkim", **keys)
    return w


def doctor(w, *args, rc=None, only=DNS_CHECKS):
    s = Setup.get()
    cmd = ["doctor", "--resolver", s.dns.address] + list(args)
    if only:
        cmd += ["--only", only]
    p = w.run(*cmd)
    if rc is not None and p.returncode != rc:
        raise Failure("doctor %s: exit %d, wanted %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), p.returncode, rc, p.stdout_text, p.stderr_text))
    return p


def line(p, check_name):
    """The result lines of one check: [(status, saw, fix or None)]."""
    out = []
    lines = p.stdout_text.splitlines()
    for i, text in enumerate(lines):
        m = re.match(r"(pass|warn|fail|skip)  (\S+) +(.*)$", text)
        if m and m.group(2) == check_name:
            fix = None
            if i + 1 < len(lines) and lines[i + 1].startswith("      fix: "):
                fix = lines[i + 1][len("      fix: "):]
            out.append((m.group(1), m.group(3), fix))
    check(out, "no %s line in: %s", check_name, p.stdout_text)
    return out


def only_line(p, check_name):
    lines = line(p, check_name)
    check(len(lines) == 1, "%d %s lines: %s", len(lines), check_name, p.stdout_text)
    return lines[0]


def statuses(p):
    return {m.group(2): m.group(1) for m in
            re.finditer(r"^(pass|warn|fail|skip)  (\S+)", p.stdout_text, re.M)}


# ---- DNS: the good zone and each planted mistake ----

def test_good_zone_passes():
    with world_for("good.test") as w:
        p = doctor(w, rc=0)
        check(statuses(p) == {"spf": "pass", "dkim": "pass", "dmarc": "pass",
                              "tracking": "pass"}, "statuses: %s", p.stdout_text)
        check('good.test TXT "v=spf1 ip4:192.0.2.25 -all" allows 192.0.2.25' in p.stdout_text,
              "spf line: %s", p.stdout_text)
        status, saw, fix = only_line(p, "dkim")
        check(saw.startswith("sel._domainkey.good.test TXT \"%s\" matches " % Setup.get().key_txt),
              "dkim saw: %s", saw)
        check(fix is None and "fix:" not in p.stdout_text, "a fix for a pass: %s", p.stdout_text)
        check("p=reject" in only_line(p, "dmarc")[1], "dmarc: %s", p.stdout_text)
        check("news.good.test resolves to 127.0.0.1" in p.stdout_text, "tracking: %s",
              p.stdout_text)
        # a relay on this machine: the address mail leaves from is not 127.0.0.1,
        # so the record is read but not judged against an address
        w.set("smtp", url="smtp://127.0.0.1:25")
        status, saw, fix = only_line(doctor(w, rc=0, only="spf"), "spf")
        check(status == "pass" and "the relay is on this machine" in saw, "spf: %s", saw)
        w.set("smtp", url="smtp://%s:587" % RELAY)
        # the Ed25519 key, when configured, is a second dkim line
        w.set("dkim", ed25519_selector="ed", ed25519_private_key=Setup.get().ed_key)
        rsa, ed = line(doctor(w, rc=0, only="dkim"), "dkim")
        check(rsa[0] == "pass" and ed[0] == "pass" and
              ed[1].startswith('ed._domainkey.good.test TXT "%s" matches ' % Setup.get().ed_txt),
              "dkim lines: %s %s", rsa, ed)
        js = json.loads(doctor(w, "--json", rc=0).stdout_text)
        check([r["check"] for r in js] == ["spf", "dkim", "dkim", "dmarc", "tracking"] and
              all(r["status"] == "pass" and r["fix"] is None for r in js), "json: %s", js)
        # --quiet (cron): nothing printed when everything passed
        p = w.run("--quiet", "doctor", "--resolver", Setup.get().dns.address, "--only",
                  DNS_CHECKS)
        check(p.returncode == 0 and p.stdout_text == "", "--quiet: %r", p.stdout_text)


def planted(domain, check_name, rc=EX_DATAERR, status="fail", **kw):
    """Run the DNS checks on `domain`'s zone, which plants one mistake:
    the exit status, then (saw, fix) of `check_name`'s one line, which has
    `status`, while every other DNS check passes."""
    with world_for(domain, **kw) as w:
        p = doctor(w, rc=rc)
    got, saw, fix = only_line(p, check_name)
    check(got == status, "%s: %s, wanted %s: %s", check_name, got, status, p.stdout_text)
    others = {k: v for k, v in statuses(p).items() if k != check_name}
    check(sorted(others) == sorted(set(DNS_CHECKS.split(",")) - {check_name}) and
          set(others.values()) == {"pass"}, "only %s is wrong: %s", check_name, p.stdout_text)
    check(fix, "no fix line for %s: %s", check_name, p.stdout_text)
    return saw, fix


def test_no_spf():
    saw, fix = planted("nospf.test", "spf")
    check("nospf.test TXT: no v=spf1 record" in saw and '"site-verification=abc"' in saw,
          "spf: %s", saw)
    check(fix == 'publish nospf.test TXT "v=spf1 ip4:192.0.2.25 -all"', "fix: %s", fix)


def test_two_spf_records():
    saw, fix = planted("twospf.test", "spf")
    check("2 SPF records" in saw and '"v=spf1 include:_spf.example.net ~all"' in saw and
          '"v=spf1 ip4:192.0.2.25 -all"' in saw, "spf: %s", saw)
    check("merge them" in fix, "fix: %s", fix)


def test_spf_does_not_allow_relay():
    saw, fix = planted("spfdeny.test", "spf")
    check('"v=spf1 ip4:192.0.2.1 mx -all"' in saw and
          "fail for relay address 192.0.2.25 (-all at spfdeny.test)" in saw, "spf: %s", saw)
    check(fix == 'add ip4:192.0.2.25 to it: spfdeny.test TXT '
                 '"v=spf1 ip4:192.0.2.25 ip4:192.0.2.1 mx -all"', "fix: %s", fix)


def test_spf_too_many_lookups():
    saw, fix = planted("toomany.test", "spf")
    check("more than 10 DNS look-ups" in saw and "include:i10.toomany.test" in saw,
          "spf: %s", saw)
    check("ip4:/ip6: ranges" in fix, "fix: %s", fix)


def test_dkim_key_missing():
    saw, fix = planted("nodkim.test", "dkim")
    check("sel._domainkey.nodkim.test TXT: no DKIM key" in saw, "dkim: %s", saw)
    check(fix == 'publish sel._domainkey.nodkim.test TXT "%s"' % Setup.get().key_txt,
          "fix: %s", fix)


def test_dkim_key_of_another_pair():
    saw, fix = planted("otherdkim.test", "dkim")
    check(Setup.get().other_txt in saw and "p= is not the public half of" in saw,
          "dkim: %s", saw)
    check(Setup.get().key_txt in fix, "fix: %s", fix)


def test_dkim_key_revoked():
    saw, fix = planted("revoked.test", "dkim")
    check('"v=DKIM1; k=rsa; p=": key revoked' in saw, "dkim: %s", saw)
    check(Setup.get().key_txt in fix, "fix: %s", fix)


def test_dkim_testing_flag_warns():
    saw, fix = planted("testing.test", "dkim", rc=0, status="warn")
    check("v=DKIM1; t=y; k=rsa; p=" in saw and "testing mode (t=y" in saw, "dkim: %s", saw)
    check(fix.startswith("drop t=y") and Setup.get().key_txt in fix, "fix: %s", fix)


def test_dmarc_missing():
    saw, fix = planted("nodmarc.test", "dmarc")
    check("_dmarc.nodmarc.test TXT: no DMARC record" in saw, "dmarc: %s", saw)
    check('publish _dmarc.nodmarc.test TXT "v=DMARC1; p=none;' in fix, "fix: %s", fix)


def test_dmarc_p_none_warns():
    saw, fix = planted("dmarcnone.test", "dmarc", rc=0, status="warn")
    check('"v=DMARC1; p=none; rua=mailto:d@dmarcnone.test"' in saw and "p=none asks" in saw,
          "dmarc: %s", saw)
    check("p=quarantine" in fix, "fix: %s", fix)


def test_dmarc_misaligned():
    saw, fix = planted("strict.test", "dmarc", dkim_domain="mail.strict.test",
                       return_path="bounces@mail.strict.test")
    check('"v=DMARC1; p=reject; adkim=s; aspf=s"' in saw and
          "DKIM d=mail.strict.test not aligned (adkim=s)" in saw and
          "SPF mail.strict.test not aligned (aspf=s)" in saw, "dmarc: %s", saw)
    check("relaxed alignment" in fix, "fix: %s", fix)


def test_tracking_host_unresolvable():
    saw, fix = planted("nohost.test", "tracking")
    check(saw == "news.nohost.test A: none, AAAA: none", "tracking: %s", saw)
    check(fix.startswith("publish news.nohost.test A"), "fix: %s", fix)


def test_dns_unreachable():
    """No answer is not 'no record': exit 69, and the line says why."""
    with world_for("good.test") as w:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now: the query is refused at once
        p = w.run("doctor", "--resolver", "127.0.0.1:%d" % port, "--only", DNS_CHECKS)
        check(p.returncode == EX_UNAVAILABLE, "exit %d: %s", p.returncode, p.stdout_text)
        status, saw, fix = only_line(p, "spf")
        check(status == "fail" and saw.startswith("good.test TXT: no TXT answer from "
                                                  "127.0.0.1:%d" % port), "spf: %s", saw)
        # the other DNS checks do not ask again: each says so
        check(statuses(p) == {"spf": "fail", "dkim": "skip", "dmarc": "skip",
                              "tracking": "skip"}, "statuses: %s", p.stdout_text)
        check("sel._domainkey.good.test TXT: not asked, 127.0.0.1:%d gave no answer" % port
              in only_line(p, "dkim")[1], "dkim: %s", p.stdout_text)


# ---- the web side ----

def test_https_base_url():
    with World() as w:
        for url, want in (("https://news.example.org", "pass"),
                          ("http://news.example.org", "warn"),
                          ("http://127.0.0.1:8080", "warn")):
            w.set("web", base_url=url)
            p = w.run("doctor", "--only", "https")
            check(p.returncode == 0, "exit %d: %s", p.returncode, p.stdout_text)
            status, saw, fix = only_line(p, "https")
            check(status == want and saw.startswith("base_url = %s" % url), "%s: %s", url, saw)
            check((fix is None) == (want == "pass"), "fix %s", fix)


def test_one_click_against_serve():
    with World() as w:
        w.init()
        bg = w.serve()
        w.set("web", base_url=bg.url)
        p = w.run("doctor", "--only", "one-click", "--json")
        check(p.returncode == 0, "exit %d: %s %s", p.returncode, p.stdout_text, p.stderr_text)
        (r,) = json.loads(p.stdout_text)
        check(r["status"] == "pass" and r["fix"] is None and
              re.match(r"POST %s/u/[A-Za-z0-9_-]+ List-Unsubscribe=One-Click -> 200 "
                       r"\"unsubscribed\"$" % re.escape(bg.url), r["saw"]), "one-click: %s", r)
        # a host name: asked of --resolver (news.good.test is 127.0.0.1 there),
        # not of the system's resolver, which has never heard of it
        w.set("web", base_url="http://news.good.test:%d" % bg.port)
        p = w.run("doctor", "--only", "one-click", "--resolver", Setup.get().dns.address)
        check(p.returncode == 0, "exit %d: %s %s", p.returncode, p.stdout_text, p.stderr_text)
        status, saw, fix = only_line(p, "one-click")
        check(status == "pass" and saw.startswith("POST http://news.good.test:%d/u/" % bg.port),
              "one-click by name: %s", saw)
        w.set("web", base_url=bg.url)
        # a secret serve does not share: serve answers its 404 to a stranger's token
        other = w.write("other.secret", "")
        with open(other, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(other, 0o600)
        w.set("web", secret_file=other)
        p = w.run("doctor", "--only", "one-click")
        check(p.returncode == EX_DATAERR, "exit %d: %s", p.returncode, p.stdout_text)
        status, saw, fix = only_line(p, "one-click")
        check(status == "fail" and "-> 404" in saw and "secret_file" in fix, "%s", p.stdout_text)
        bg.stop()
        # nothing listening
        p = w.run("doctor", "--only", "one-click")
        check(p.returncode == EX_DATAERR, "exit %d: %s", p.returncode, p.stdout_text)
        status, saw, fix = only_line(p, "one-click")
        check(status == "fail" and saw.startswith("POST %s/u/" % bg.url) and
              "onnect" in saw and "herald serve" in fix, "%s", p.stdout_text)


# ---- the relay and the bounce mailbox ----

def test_relay():
    with World() as w:
        server = w.smtp(auth="doctor:s3cret")
        w.set("smtp", username="doctor", password_env="DOCTOR_PW")
        p = w.run("doctor", "--only", "relay", env={"DOCTOR_PW": "s3cret"})
        check(p.returncode == 0, "exit %d: %s %s", p.returncode, p.stdout_text, p.stderr_text)
        status, saw, fix = only_line(p, "relay")
        check(status == "pass" and saw.startswith("[smtp] smtp://127.0.0.1:%d: 250" %
                                                  server.port) and
              "AUTH accepted" in saw, "relay: %s", saw)
        check(server.events("auth") and server.events("auth")[-1]["ok"], "auth events: %s",
              server.events())
        check(server.count() == 0, "doctor sent mail")
        p = w.run("doctor", "--only", "relay", env={"DOCTOR_PW": "wrong"})
        check(p.returncode == EX_DATAERR, "exit %d: %s", p.returncode, p.stdout_text)
        status, saw, fix = only_line(p, "relay")
        check(status == "fail" and ": AUTH: 535" in saw and "password" in fix, "relay: %s %s",
              saw, fix)
        # STARTTLS asked of a relay that has none
        w.set("smtp", starttls="required")
        p = w.run("doctor", "--only", "relay", env={"DOCTOR_PW": "s3cret"})
        check(p.returncode == EX_DATAERR, "exit %d: %s", p.returncode, p.stdout_text)
        status, saw, fix = only_line(p, "relay")
        check(status == "fail" and "STARTTLS" in saw and "does not offer STARTTLS" in fix,
              "relay: %s / %s", saw, fix)
        server.stop()
        w.set("smtp", starttls="never")
        p = w.run("doctor", "--only", "relay", env={"DOCTOR_PW": "s3cret"})
        check(p.returncode == EX_DATAERR, "exit %d: %s", p.returncode, p.stdout_text)
        status, saw, fix = only_line(p, "relay")
        check(status == "fail" and ": connect: " in saw and "url" in fix, "relay: %s", saw)


def test_bounce_mailbox_not_configured():
    with World() as w:
        p = w.run("doctor", "--only", "bounce")
        check(p.returncode == 0, "exit %d: %s", p.returncode, p.stdout_text)
        status, saw, fix = only_line(p, "bounce")
        check(status == "warn" and "[bounce] mailbox is not set" in saw and
              "news@example.org" in saw and "herald bounce --fetch" in fix, "%s", p.stdout_text)


def test_bounce_mailbox_dovecot():
    if dovecot.missing():
        raise Skip(dovecot.missing())
    with World() as w:
        d = dovecot.start(os.path.join(w.root, "dovecot"))
        try:
            d.deliver(b"From: a@example.org\r\nSubject: one\r\n\r\nbody\r\n")
            d.deliver(b"From: b@example.org\r\nSubject: two\r\n\r\nbody\r\n")
            pw = w.write("mailbox.password", d.password + "\n")
            os.chmod(pw, 0o600)
            for proto in ("imaps", "pop3s"):
                w.set("bounce", mailbox=d.url(proto), username=d.user, password_file=pw,
                      ca_file=d.ca_file)
                p = w.run("doctor", "--only", "bounce")
                check(p.returncode == 0, "%s: exit %d: %s %s", proto, p.returncode,
                      p.stdout_text, p.stderr_text)
                status, saw, fix = only_line(p, "bounce")
                check(status == "pass" and saw == "%s: logged in as %s, 2 messages waiting" % (
                      d.url(proto), d.user), "%s: %s", proto, saw)
                check(len(d.messages()) == 2, "doctor removed mail: %s", d.messages())
            with open(pw, "w") as f:
                f.write("wrong\n")
            p = w.run("doctor", "--only", "bounce")
            check(p.returncode == EX_DATAERR, "exit %d: %s", p.returncode, p.stdout_text)
            status, saw, fix = only_line(p, "bounce")
            check(status == "fail" and "username and password_file" in fix, "%s / %s", saw, fix)
        finally:
            d.stop()


def test_usage():
    with World() as w:
        p = w.run("doctor", "--only", "spf,bogus")
        check(p.returncode == 64 and "unknown check 'bogus'" in p.stderr_text, "%d %s",
              p.returncode, p.stderr_text)
        p = w.run("doctor", "--resolver", "not-an-address", "--only", "spf")
        check(p.returncode == 64 and "not-an-address" in p.stderr_text, "%d %s",
              p.returncode, p.stderr_text)


TESTS = [(fn.__name__[5:], fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    try:
        run_tests(TESTS)
    finally:
        if Setup.ready:
            Setup.ready.close()
