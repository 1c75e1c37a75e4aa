#!/usr/bin/python3
"""make_mta_dsns.py - regenerate tests/data/bounces/mta/: DSNs written by
real MTAs (Postfix, Exim 4, OpenSMTPD) for known, injected failures.

Usage (as root; nothing leaves 127.0.0.1):
    /usr/bin/python3 tests/tools/make_mta_dsns.py [--mta postfix,exim,opensmtpd]
        [--case NAME,...] [--out DIR] [--keep DIR]
  --out   where the fixtures go (default tests/data/bounces/mta); files are
          <mta>-<case>.eml, and <mta>-<case>-delayed.eml /
          <mta>-<case>-expired.eml for the cases that make a "delayed"
          notice and then a final DSN; expected.tsv there is rewritten with
          the rows of every MTA that ran (rows of MTAs not run are kept).
  --mta   only these MTAs (default: every one whose available() is None;
          an unavailable MTA is reported and skipped).
  --case  only these cases (see CASES).
  --keep  leave the MTA instance directories (config, logs) under DIR.
Exit status 0 when every selected MTA made every DSN it was expected to, 1
otherwise (the fixtures that were made are still written), 77 when no MTA
can run here.

How the failures are made (the ground truth of expected.tsv):
  - The MTA under test accepts everything at SMTP time from Python's
    smtplib (the sender is a VERP address, bounces+<mta>_<case>@bounce.test)
    and fails later, so it writes a DSN to that address; the DSN lands in
    a bounce catcher: the MTA's own Maildir for bounce.test (Postfix,
    Exim) or a capture server (OpenSMTPD relays bounce.test to
    tests/tools/smtpd.py).
  - remote.test is relayed to a test MX (tests/tools/smtpd.py, aiosmtpd, on
    a free 127.0.0.1 port) whose rules (REMOTE_RULES) answer per recipient:
    5.1.1 unknown at RCPT, 5.2.2 mailbox full at RCPT, 4.7.1 greylisted at
    RCPT every time, 5.7.26 DMARC and 5.7.1 policy at RCPT, and after the
    final dot 5.3.4 too big, 5.7.1 spam content, and 5.1.1 unknown user
    (the "filtered" case: userunknown's words, but after DATA).
  - busy.test goes to a second test MX (Peer, on 127.0.0.4) answering
    every connection with "421 4.7.0 too many connections"; closed.test to
    a port on 127.0.0.2 with nothing listening (connection refused); nxdomain.test to the host name
    mx.nxdomain.test, which /etc/hosts lacks - the MTAs run with "hosts:
    files" and no name server (mtaroot.isolated), so it is "host not
    found" without any DNS query (Exim, routing remote mail with its
    dnslookup router, gets its own loopback name server instead, which
    gives nxdomain.test that MX and mx.nxdomain.test no address: see
    exim.py); loop.test back to the MTA's own SMTP
    port (a real mail loop, ended by the MTA's hop limit), the message
    starting with LOOP_SEED Received: headers so the loop ends quickly.
  - The retried cases run with a delay warning after a few seconds and a
    queue lifetime of a few seconds more: a "delayed" DSN, then the final
    one.

Only MTAs listed in MTAS are tried (Sendmail is not, yet); an adapter's
`unsupported` says which cases its MTA cannot produce, and why.  The
class/reason columns of expected.tsv come from CASES (the injected truth),
never from herald; README.md in the output folder explains each.
"""
import argparse
import email
import email.policy
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import mtaroot  # noqa: E402

SMTPD = os.path.join(HERE, "smtpd.py")
DEFAULT_OUT = os.path.join(SOURCE_DIR, "tests", "data", "bounces", "mta")
FIXED_HOSTNAME = "host.herald.test"

REMOTE_RULES = [
    {"stage": "rcpt", "match": "^nosuch@",
     "reply": "550 5.1.1 <nosuch@remote.test>: Recipient address rejected: User unknown"},
    {"stage": "rcpt", "match": "^full@",
     "reply": "552 5.2.2 <full@remote.test>: Mailbox full, quota exceeded"},
    {"stage": "rcpt", "match": "^grey@",
     "reply": "451 4.7.1 <grey@remote.test>: Recipient address rejected: "
              "Greylisted, try again later"},
    {"stage": "rcpt", "match": "^dmarc@",
     "reply": "550 5.7.26 Unauthenticated email from bounce.test is not accepted "
              "due to domain's DMARC policy"},
    {"stage": "rcpt", "match": "^policy@",
     "reply": "550 5.7.1 <policy@remote.test>: Recipient address rejected: "
              "not accepted for policy reasons"},
    {"stage": "eod", "match": "^big@",
     "reply": "552 5.3.4 Message size exceeds fixed maximum message size"},
    {"stage": "eod", "match": "^spam@",
     "reply": "550 5.7.1 Message rejected as spam by content filter"},
    {"stage": "eod", "match": "^gone@",
     "reply": "550 <gone@remote.test>: user unknown"},
]
BUSY_GREETING = "421 4.7.0 mx.busy.test Error: too many connections from 127.0.0.1"


class Case:
    """One failure: the recipients of one message, and per recipient the
    (class, reason) of the final DSN - the ground truth, by sisimai's
    definitions (README.md there).  delayed: the reason for the recipient
    in the "delayed" notice, for the cases retried until they expire."""

    def __init__(self, name, rcpts, expect, delayed=None, body_kb=0):
        self.name = name
        self.rcpts = rcpts
        self.expect = expect        # {rcpt: (class, reason)} of the final DSN
        self.delayed = delayed      # {rcpt: reason} of the delayed notice, or None
        self.body_kb = body_kb


CASES = [
    Case("userunknown-local", ["nobody@mx.test"], {"nobody@mx.test": ("hard", "userunknown")}),
    Case("userunknown-remote", ["nosuch@remote.test"],
         {"nosuch@remote.test": ("hard", "userunknown")}),
    Case("filtered", ["gone@remote.test"], {"gone@remote.test": ("soft", "filtered")}),
    Case("mailboxfull", ["full@remote.test"], {"full@remote.test": ("soft", "mailboxfull")}),
    Case("mesgtoobig", ["big@remote.test"], {"big@remote.test": ("soft", "mesgtoobig")},
         body_kb=64),
    Case("hostunknown", ["user@nxdomain.test"], {"user@nxdomain.test": ("hard", "hostunknown")}),
    Case("connrefused", ["user@closed.test"], {"user@closed.test": ("soft", "expired")},
         delayed={"user@closed.test": "networkerror"}),
    Case("greylisted", ["grey@remote.test"], {"grey@remote.test": ("soft", "expired")},
         delayed={"grey@remote.test": "expired"}),
    Case("spamdetected", ["spam@remote.test"], {"spam@remote.test": ("soft", "spamdetected")}),
    Case("dmarc", ["dmarc@remote.test"], {"dmarc@remote.test": ("soft", "authfailure")}),
    Case("policy", ["policy@remote.test"], {"policy@remote.test": ("soft", "policyviolation")}),
    Case("toomanyconn", ["user@busy.test"], {"user@busy.test": ("soft", "expired")},
         delayed={"user@busy.test": "toomanyconn"}),
    Case("loop", ["user@loop.test"], {"user@loop.test": ("soft", "networkerror")}),
    Case("multi", ["nosuch@remote.test", "full@remote.test", "ok@remote.test"],
         {"nosuch@remote.test": ("hard", "userunknown"),
          "full@remote.test": ("soft", "mailboxfull")}),
]
CASE_BY_NAME = {c.name: c for c in CASES}

# Where an MTA's DSN carries no trace of the injected cause, the expectation
# is what the DSN itself supports (README.md there says why for each):
# OpenSMTPD reports the end of a "host not found" retry only as "Envelope
# expired"; its DSN does not say which command a 5.1.1 answered, so the
# after-DATA refusal reads as the RCPT one; Exim 4.96 writes no reason at
# all for a loop it stops (received_headers_max: log only).
EVIDENCE = {
    ("opensmtpd", "hostunknown"): ("soft", "expired"),
    ("opensmtpd", "filtered"): ("hard", "userunknown"),
    ("exim", "loop"): ("soft", "undefined"),
}


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class TestServer:
    """tests/tools/smtpd.py on a free loopback port; stop() by PID."""

    def __init__(self, root, rules=None):
        os.makedirs(root, exist_ok=True)
        self.root = root
        self.maildir = os.path.join(root, "maildir")
        self.log = os.path.join(root, "smtpd.jsonl")
        port_file = os.path.join(root, "smtpd.port")
        cmd = ["/usr/bin/python3", SMTPD, "--maildir", self.maildir,
               "--port-file", port_file, "--log", self.log]
        if rules is not None:
            with open(os.path.join(root, "rules.json"), "w") as f:
                json.dump(rules, f)
            cmd += ["--rules", os.path.join(root, "rules.json")]
        self.stderr = open(os.path.join(root, "smtpd.stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.stderr, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("smtpd.py did not start: " +
                                   open(self.stderr.name).read())
            time.sleep(0.05)
        self.port = int(open(port_file).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


class Peer:
    """A minimal SMTP peer of our own (aiosmtpd) on any loopback address
    (tests/tools/smtpd.py binds 127.0.0.1 only): either a capture server
    (every message into MAILDIR/new) or, with greeting, a server that
    answers every connection with that reply and closes.  OpenSMTPD
    penalizes a whole destination address after errors, so the bounce
    catcher and the "busy" server must not share 127.0.0.1 with the rest."""

    def __init__(self, root, host, greeting=None):
        os.makedirs(root, exist_ok=True)
        self.root = root
        self.host = host
        self.maildir = os.path.join(root, "maildir")
        port_file = os.path.join(root, "peer.port")
        cmd = ["/usr/bin/python3", os.path.abspath(__file__), "--serve", host, port_file,
               self.maildir, greeting or ""]
        self.stderr = open(os.path.join(root, "peer.stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.stderr, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("peer did not start: " + open(self.stderr.name).read())
            time.sleep(0.05)
        self.port = int(open(port_file).read())

    stop = TestServer.stop


def serve(host, port_file, maildir, greeting):
    """--serve: the Peer process."""
    import asyncio
    from aiosmtpd.smtp import SMTP

    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    seq = [0]

    class Capture:
        async def handle_DATA(self, server, session, envelope):
            seq[0] += 1
            name = "%d.%06d.%d.eml" % (time.time_ns() // 1000, seq[0], os.getpid())
            tmp = os.path.join(maildir, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, os.path.join(maildir, "new", name))
            return "250 2.0.0 Ok: stored"

    class Refuse(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write((greeting + "\r\n").encode())
            transport.close()

    def factory():
        if greeting:
            return Refuse()
        return SMTP(Capture(), hostname="peer.herald.test", data_size_limit=64 << 20)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    srv = loop.run_until_complete(loop.create_server(factory, host=host, port=0,
                                                     family=socket.AF_INET))
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.sockets[0].getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    try:
        loop.run_forever()
    finally:
        srv.close()
    return 0


def verp(mta, case):
    return "bounces+%s_%s@bounce.test" % (mta, case.name.replace("-", "_"))


def message_for(mta, case, seed_received=0):
    lines = []
    for i in range(seed_received):
        lines.append("Received: from hop%d.relay.test (hop%d.relay.test [127.0.0.%d])\r\n"
                     "\tby hop%d.relay.test with ESMTP id SEED%03d;\r\n"
                     "\tFri, 04 Dec 2026 10:00:%02d +0000\r\n" % (
                         i + 1, i + 1, (i % 250) + 2, i + 2, i, i % 60))
    lines.append("From: Herald Fixture <%s>\r\n" % verp(mta, case))
    lines.append("To: <%s>\r\n" % case.rcpts[0])
    lines.append("Subject: herald MTA fixture %s %s\r\n" % (mta, case.name))
    lines.append("Message-ID: <%s.%s@herald.test>\r\n" % (case.name, mta))
    lines.append("Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n")
    lines.append("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    lines.append("Hello from herald's MTA fixture generator (case %s).\r\n" % case.name)
    if case.body_kb:
        filler = "0123456789abcdef" * 4 + "\r\n"
        lines.append(filler * (case.body_kb * 1024 // len(filler)))
    return "".join(lines).encode()


def send(port, mta, case, seed_received=0):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.herald.test")
        refused = s.sendmail(verp(mta, case), case.rcpts, message_for(mta, case, seed_received))
    if refused:
        raise RuntimeError("%s %s: refused at SMTP time: %s" % (mta, case.name, refused))


# -- reading DSNs -----------------------------------------------------------

def parse_dsn(raw):
    """(to, [(recipient, action, status)]) of a DSN; recipients from its
    message/delivery-status part (none when it has no such part)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    to = (msg.get("To") or "").strip()
    out = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, str):
            # not parsed into blocks: split the text at blank lines
            blocks = [email.message_from_string(b) for b in
                      re.split(r"\r?\n\r?\n", blocks.strip()) if b.strip()]
        for b in blocks[1:]:
            rcpt = b.get("Final-Recipient") or b.get("Original-Recipient") or ""
            rcpt = rcpt.split(";", 1)[-1].strip().strip("<>")
            out.append((rcpt, (b.get("Action") or "").strip().lower(),
                        (b.get("Status") or "").strip().split()[0]
                        if (b.get("Status") or "").strip() else ""))
    return to, out


def case_of(mta, to):
    m = re.search(r"bounces\+%s_([a-z_]+)@bounce\.test" % re.escape(mta), to)
    if not m:
        return None
    return CASE_BY_NAME.get(m.group(1).replace("_", "-"))


def scrub(raw):
    """The machine's real host name, should an MTA let it leak, replaced
    by a fixed one (nothing else is changed)."""
    name = socket.gethostname()
    if not name or name in ("localhost", "mta.herald.test"):
        return raw
    return re.sub(rb"(?<![A-Za-z0-9.-])" + re.escape(name.encode()) + rb"(?![A-Za-z0-9-])",
                  FIXED_HOSTNAME.encode(), raw)


# -- MTA adapters -----------------------------------------------------------

class Adapter:
    """Starts one MTA with the routes; .port, .bounces(n, timeout), .stop()."""
    name = None
    seed_received = 0
    unsupported = {}        # case name -> why this MTA cannot produce it
    timeout = 60            # seconds to wait for every DSN

    @staticmethod
    def available():
        raise NotImplementedError


class PostfixAdapter(Adapter):
    name = "postfix"
    seed_received = 45      # hopcount_limit is 50

    @staticmethod
    def available():
        import postfix
        why = postfix.available() or mtaroot.check_common()
        return why

    def __init__(self, tmpdir, routes, keep=False):
        import postfix

        class RoutedPostfix(postfix.Postfix):
            """postfix.py's instance plus an smtp(8) client for the test
            routes, started in a namespace without DNS (mtaroot)."""

            def _main_cf(inner):
                relay = " ".join(sorted(routes))
                return super()._main_cf() + "\n".join([
                    "# tests/tools/make_mta_dsns.py: relay the test domains",
                    "relay_domains = %s" % relay,
                    "smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination",
                    "smtp_host_lookup = native",
                    "smtp_connect_timeout = 5s",
                    "smtp_address_preference = ipv4",
                    "smtp_skip_5xx_greeting = no",
                    "smtp_tls_security_level = none",
                    "smtp_destination_concurrency_limit = 2",
                    "smtp_destination_rate_delay = 0s",
                    ""])

            def _master_cf(inner):
                return super()._master_cf() + (
                    "smtp                   unix       -  -  n  -     -  smtp\n")

            def _write_config(inner):
                inner.transports = {}
                for dom, target in routes.items():
                    host, port = target.rsplit(":", 1)
                    if host == "self":
                        host, port = "127.0.0.1", str(inner.port)
                    inner.transports[dom] = "smtp:[%s]:%s" % (host, port)
                super()._write_config()

            def _postfix(inner, *args, check=True, timeout=120):
                if args[:1] != ("start",):
                    return super()._postfix(*args, check=check, timeout=timeout)
                env = dict(os.environ, MAIL_CONFIG=inner.config_directory)
                argv = mtaroot.isolated([postfix.POSTFIX, "-c", inner.config_directory,
                                         "start"], os.path.join(inner.root, "nsetc"))
                p = subprocess.run(argv, capture_output=True, env=env, timeout=timeout,
                                   stdin=subprocess.DEVNULL)
                out = (p.stdout + p.stderr).decode("utf-8", "replace")
                if check and p.returncode != 0:
                    raise postfix.PostfixError("postfix start: %s" % out)
                return p.returncode, out

        self.pf = RoutedPostfix(tmpdir, queue_lifetime="10s", delay_warning="3s", keep=keep)
        try:
            self.pf.start()
        except BaseException:
            self.pf.stop()
            raise
        self.port = self.pf.port

    def bounce_dir(self):
        return os.path.join(self.pf.bounce_maildir, "new")

    def log_tail(self):
        return self.pf.log_tail()

    def stop(self):
        self.pf.stop()


class EximAdapter(Adapter):
    name = "exim"
    seed_received = 25      # received_headers_max is 30

    @staticmethod
    def available():
        import exim
        return exim.available()

    def __init__(self, tmpdir, routes, keep=False):
        import exim
        self.ex = exim.start(tmpdir, routes=routes, queue_lifetime="10s",
                             delay_warning="3s", keep=keep)
        self.port = self.ex.port

    def bounce_dir(self):
        return os.path.join(self.ex.bounce_maildir, "new")

    def log_tail(self):
        return self.ex.log_tail()

    def stop(self):
        self.ex.stop()


class OpenSMTPDAdapter(Adapter):
    name = "opensmtpd"
    seed_received = 95      # MAX_HOPS_COUNT is 100
    timeout = 150
    unsupported = {"userunknown-local": "OpenSMTPD expands local recipients at RCPT "
                   "time: an unknown local user gets 550 at SMTP time, never a DSN"}

    @staticmethod
    def available():
        import opensmtpd
        return opensmtpd.available()

    def __init__(self, tmpdir, routes, keep=False):
        import opensmtpd
        self.catcher = Peer(os.path.join(tmpdir, "catcher"), "127.0.0.3")
        routes = dict(routes)
        routes["bounce.test"] = "127.0.0.3:%d" % self.catcher.port
        try:
            self.sm = opensmtpd.start(tmpdir, routes=routes, queue_lifetime="20s",
                                      delay_warning="3s", keep=keep)
        except BaseException:
            self.catcher.stop()
            raise
        self.port = self.sm.port

    def bounce_dir(self):
        return os.path.join(self.catcher.maildir, "new")

    def log_tail(self):
        return self.sm.log_tail()

    def stop(self):
        try:
            self.sm.stop()
        finally:
            self.catcher.stop()


MTAS = {"postfix": PostfixAdapter, "exim": EximAdapter, "opensmtpd": OpenSMTPDAdapter}


# -- one run ----------------------------------------------------------------

def generate(mta, out_dir, cases=None, keep_dir=None, timeout=None, log=print):
    """Run MTA over CASES (default all); write <mta>-<case>[-delayed|
    -expired].eml into out_dir.  Returns (rows, problems): expected.tsv rows
    for the files written, and what did not come out as expected."""
    adapter_cls = MTAS[mta]
    cases = [c for c in (cases or CASES) if c.name not in adapter_cls.unsupported]
    parent = keep_dir or tempfile.mkdtemp(prefix="herald-mta-dsns-")
    if keep_dir:
        os.makedirs(keep_dir, exist_ok=True)
    os.chmod(parent, 0o755)
    tmp = tempfile.mkdtemp(prefix="%s-" % mta, dir=parent)
    os.chmod(tmp, 0o755)
    servers = []
    adapter = None
    rows, problems = [], []
    try:
        remote = TestServer(os.path.join(tmp, "remote"), REMOTE_RULES)
        servers.append(remote)
        busy = Peer(os.path.join(tmp, "busy"), "127.0.0.4", BUSY_GREETING)
        servers.append(busy)
        routes = {"remote.test": "127.0.0.1:%d" % remote.port,
                  "busy.test": "127.0.0.4:%d" % busy.port,
                  # another loopback address: nothing listens on it at all
                  "closed.test": "127.0.0.2:%d" % free_port(),
                  "nxdomain.test": "mx.nxdomain.test:25",
                  "loop.test": "self:0"}
        adapter = adapter_cls(tmp, routes, keep=bool(keep_dir))
        for c in cases:
            send(adapter.port, mta, c, adapter.seed_received if c.name == "loop" else 0)
        deadline = time.time() + (timeout or adapter.timeout)
        got = {}
        while True:
            try:
                names = sorted(os.listdir(adapter.bounce_dir()))
            except FileNotFoundError:
                names = []
            for n in names:
                if n in got:
                    continue
                with open(os.path.join(adapter.bounce_dir(), n), "rb") as f:
                    got[n] = f.read()
            if _complete(mta, cases, got) or time.time() > deadline:
                break
            time.sleep(0.2)
        time.sleep(1)       # anything more (a duplicate) would show now
        for n in sorted(os.listdir(adapter.bounce_dir())):
            if n not in got:
                with open(os.path.join(adapter.bounce_dir(), n), "rb") as f:
                    got[n] = f.read()
        rows, problems = _write(mta, cases, got, out_dir, log)
        if problems:
            problems.append("%s log tail:\n%s" % (mta, adapter.log_tail()))
    finally:
        if adapter:
            adapter.stop()
        for s in servers:
            s.stop()
        if not keep_dir:
            shutil.rmtree(parent, ignore_errors=True)
    return rows, problems


def dsn_kind(raw, blocks):
    """"final" or "delayed".  OpenSMTPD 6.8, with a warn-interval, reports
    the expiry itself with Action: delayed (Status 4.4.7, "Envelope
    expired") and then drops the message: that report is the final one."""
    if blocks and all(a == "delayed" for _, a, _ in blocks) and \
            b": Envelope expired" not in raw:
        return "delayed"
    return "final"


def _complete(mta, cases, got):
    """Has every case its final DSN (and the delayed one where expected)?"""
    seen = set()
    for raw in got.values():
        to, blocks = parse_dsn(raw)
        c = case_of(mta, to)
        if c is not None:
            seen.add((c.name, dsn_kind(raw, blocks)))
    return all((c.name, "final") in seen and (not c.delayed or (c.name, "delayed") in seen)
               for c in cases)


def _write(mta, cases, got, out_dir, log):
    by_case = {}
    problems = []
    for name, raw in got.items():
        to, blocks = parse_dsn(raw)
        c = case_of(mta, to)
        if c is None or c not in cases:
            problems.append("%s: a message to %r that is no case's DSN" % (mta, to))
            continue
        kind = dsn_kind(raw, blocks)
        by_case.setdefault(c.name, []).append((kind, name, raw, blocks))
    rows = []
    os.makedirs(out_dir, exist_ok=True)
    for c in cases:
        dsns = by_case.get(c.name, [])
        kinds = sorted(set(k for k, *_ in dsns))
        written = set()
        wanted = ["delayed", "final"] if c.delayed else ["final"]
        if kinds == ["delayed", "final"] and not c.delayed:
            # the MTA retried what others fail at once (say, a host not
            # found taken as temporary): a delayed notice for the same cause
            log("  note: %s %s: a delayed notice before the final DSN" % (mta, c.name))
        elif kinds != wanted:
            problems.append("%s %s: DSNs %s, wanted %s" % (mta, c.name, kinds, wanted))
        for kind, name, raw, blocks in sorted(dsns, key=lambda d: (d[0] != "delayed", d[1])):
            if c.delayed:
                fname = "%s-%s-%s.eml" % (mta, c.name, "delayed" if kind == "delayed" else
                                          "expired")
            elif kind == "delayed":
                fname = "%s-%s-delayed.eml" % (mta, c.name)
            else:
                fname = "%s-%s.eml" % (mta, c.name)
            if fname in written:
                # OpenSMTPD repeats its warning every warn-interval
                log("  note: %s %s: another %s DSN; kept the first" % (mta, c.name, kind))
                continue
            written.add(fname)
            with open(os.path.join(out_dir, fname), "wb") as f:
                f.write(scrub(raw))
            status = {r.lower(): (a, s) for r, a, s in blocks}
            for rcpt in c.rcpts:
                if kind == "delayed":
                    # A delay warning is not a failure, whatever its cause
                    # (c.delayed documents the cause): class and reason
                    # "delayed", never counted as a bounce.
                    if rcpt not in (c.delayed or {}) and rcpt not in c.expect:
                        continue
                    cls, reason = "delayed", "delayed"
                else:
                    if rcpt not in c.expect:
                        continue
                    cls, reason = EVIDENCE.get((mta, c.name), c.expect[rcpt])
                action, st = status.get(rcpt.lower(), ("delayed" if kind == "delayed"
                                                       else "failed", ""))
                rows.append((fname, rcpt, action, st or "-", cls, reason))
            log("  %-40s %s" % (fname, ", ".join("%s %s" % (r, status.get(r.lower(), ("?", "?"))[1])
                                                 for r in c.rcpts if r in c.expect)))
    return rows, problems


HEADER = ("file", "recipient", "action", "status", "class", "reason")


def read_expected(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            if tuple(cols) == HEADER:
                continue
            rows.append(tuple(cols))
    return rows


def write_expected(path, rows):
    order = {m: i for i, m in enumerate(MTAS)}
    case_order = {c.name: i for i, c in enumerate(CASES)}

    def key(r):
        mta, rest = r[0].split("-", 1)
        base = rest[:-4]
        suffix = 0
        for s, v in (("-delayed", 1), ("-expired", 2)):
            if base.endswith(s):
                base, suffix = base[:-len(s)], v
        return (order.get(mta, 99), case_order.get(base, 99), suffix, r[1])
    with open(path, "w") as f:
        f.write("\t".join(HEADER) + "\n")
        for r in sorted(set(rows), key=key):
            f.write("\t".join(r) + "\n")


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        return serve(*sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mta", default=",".join(MTAS))
    ap.add_argument("--case", default="")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--keep")
    ap.add_argument("--timeout", type=int, default=None,
                    help="seconds to wait for the DSNs (default: per MTA)")
    a = ap.parse_args()
    cases = [CASE_BY_NAME[x] for x in a.case.split(",") if x] or CASES
    expected_path = os.path.join(a.out, "expected.tsv")
    ran, bad = [], False
    all_rows = read_expected(expected_path)
    for mta in [m for m in a.mta.split(",") if m]:
        why = MTAS[mta].available()
        if why:
            print("%s: not available: %s" % (mta, why))
            continue
        print("%s:" % mta)
        sys.stdout.flush()
        rows, problems = generate(mta, a.out, cases,
                                  keep_dir=os.path.join(a.keep, mta) if a.keep else None,
                                  timeout=a.timeout)
        ran.append(mta)
        names = {"%s-%s" % (mta, c.name) for c in cases}

        def of_run(r):
            base = re.sub(r"(-delayed|-expired)?\.eml$", "", r[0])
            return base in names
        all_rows = [r for r in all_rows if not of_run(r)] + rows
        for p in problems:
            bad = True
            print("PROBLEM: %s" % p)
    if not ran:
        return 77
    write_expected(expected_path, all_rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
