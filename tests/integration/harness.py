"""harness.py - shared fixtures for herald's integration tests.

Each test builds a fresh world in a temporary directory: a config, a
database made with `herald init`, and when it needs one, a real SMTP server
(tests/tools/smtpd.py, Debian's aiosmtpd) on a free 127.0.0.1 port that it
stops by PID.  The herald binary comes from $HERALD_BIN (set by ctest);
$HERALD_WRAPPER, when set, is prefixed to every herald command (for example
"valgrind --error-exitcode=99 --leak-check=full").

Tests run under Debian's /usr/bin/python3 and never pass on what they could
not run.  A file that cannot run at all (a Debian module or tool every case
needs is missing) prints "SKIP: why" and exits 77, ctest's SKIP.  A case
that cannot run here (say, it alone needs Postfix) raises Skip("why"):
run_tests() prints "SKIP name: why", runs the other cases, and exits 77 if
any case was skipped and none failed (1 if any failed, 0 only when every
case it was asked to run ran and passed).  need_module() does the right one of the two: exit 77
at a file's top, Skip inside a case.  Files the repository holds (examples/,
templates/, tests/data/) are never a reason to skip: missing, they fail.

$HERALD_TEST_CASES, when set, names the cases to run (their functions'
names, separated by spaces or commas); the others are not run and the file
says so.  tests/CMakeLists.txt uses it to run a representative part of a
slow file under valgrind; the whole file still runs in its integration.*
test.  A name that matches no case fails the file, so that a renamed case
cannot quietly drop out of the selection.

Helpers for the send-engine tests: World.set(SECTION, key=value) edits the
config (World.smtp(section="smtp.backup") starts a second relay);
World.subscribe() and World.new_issue() make a list and a short issue;
World.spawn() starts herald in the background (a Background: signal(),
wait(), kill(); World.close() kills any still running, by PID);
SMTPServer.accepted() gives (recipient, Message-ID) per delivery and
SMTPServer.count() a cheap count for polling with wait_until(); iso(t)
formats a Unix time for --now and --at.

For the web tests (issue 5): World.serve() starts `herald serve --listen
127.0.0.1:0` in the background, waits for its "listening on http://HOST:PORT"
line and returns the Background with .url and .port; Background.stop()
sends SIGTERM and returns the exit status; World.close() stops a server
still running with SIGTERM (SIGKILL after 10 s).
"""
import email
import email.policy
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

SKIP = 77
SOURCE_DIR = os.environ.get("HERALD_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
HERALD = os.environ.get("HERALD_BIN", os.path.join(SOURCE_DIR, "build", "herald"))
SMTPD = os.path.join(SOURCE_DIR, "tests", "tools", "smtpd.py")


class Skip(Exception):
    """Raised by a test case that cannot run here; the reason is its text."""


_in_case = False    # True while run_tests() runs a case


def skip_file(why):
    """The whole file cannot run here: say why, exit 77 (ctest SKIP)."""
    print("SKIP: %s" % why)
    sys.stdout.flush()
    sys.exit(SKIP)


def need_module(name):
    """Import-check a Debian python3 module: inside a case, Skip that case;
    at a file's top, skip the whole file."""
    try:
        __import__(name)
    except ImportError:
        why = "Debian module %s is missing (apt-get install python3-%s)" % (name, name)
        if _in_case:
            raise Skip(why)
        skip_file(why)


class Failure(AssertionError):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


class SMTPServer:
    """A running tests/tools/smtpd.py; stop() kills it by PID."""

    def __init__(self, root, rules=None, auth=None, pipelining=True, tls=None):
        """tls: None, "starttls" (offered and required) or "implicit"
        (smtps); self.cert is then the server's self-signed certificate
        for 127.0.0.1, to give herald as its ca_file."""
        need_module("aiosmtpd")
        self.root = root
        self.maildir = os.path.join(root, "maildir")
        self.log = os.path.join(root, "smtpd.jsonl")
        port_file = os.path.join(root, "smtpd.port")
        cmd = ["/usr/bin/python3", SMTPD, "--maildir", self.maildir,
               "--port-file", port_file, "--log", self.log]
        if rules is not None:
            rules_file = os.path.join(root, "rules.json")
            with open(rules_file, "w") as f:
                json.dump(rules, f)
            cmd += ["--rules", rules_file]
        if auth:
            cmd += ["--auth", auth]
        if not pipelining:
            cmd.append("--no-pipelining")
        self.cert = None
        if tls:
            self.cert = os.path.join(root, "smtpd-cert.pem")
            key = os.path.join(root, "smtpd-key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", self.cert, "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
            cmd += ["--tls-cert", self.cert, "--tls-key", key]
            if tls == "implicit":
                cmd.append("--implicit-tls")
        self.stderr = open(os.path.join(root, "smtpd.stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.stderr, stderr=self.stderr)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise Failure("smtpd did not start: " + open(self.stderr.name).read())
            time.sleep(0.05)
        self.port = int(open(port_file).read())

    def events(self, kind=None):
        if not os.path.exists(self.log):
            return []
        out = [json.loads(line) for line in open(self.log) if line.strip()]
        return [e for e in out if kind is None or e.get("event") == kind]

    def messages(self):
        """[(envelope event, parsed message)] for every accepted message."""
        result = []
        for ev in self.events("accept"):
            raw = open(ev["file"], "rb").read()
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            result.append((ev, msg, raw))
        return result

    def accepted(self):
        """[(recipient, Message-ID)] for every accepted message, in log order
        (one pair per recipient of each message)."""
        out = []
        for ev in self.events("accept"):
            with open(ev["file"], "rb") as f:
                head = f.read(65536).split(b"\r\n\r\n", 1)[0]
            m = re.search(rb"^Message-ID:[ \t]*(.*?)\r?$", head, re.M | re.I)
            mid = m.group(1).decode("ascii", "replace") if m else None
            out += [(r, mid) for r in ev["rcpt_tos"]]
        return out

    def count(self, kind="accept"):
        """How many `kind` events the log holds so far (cheap, for polling)."""
        if not os.path.exists(self.log):
            return 0
        with open(self.log, "rb") as f:
            return f.read().count(b'"event": "%s"' % kind.encode())

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.stderr.close()


class Background:
    """herald running in the background, its output in files under root."""

    def __init__(self, cmd, root, env, n):
        self.args = cmd
        self.out_path = os.path.join(root, "bg%d.stdout" % n)
        self.err_path = os.path.join(root, "bg%d.stderr" % n)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=root, env=env)
        self.pid = self.proc.pid
        self.started = time.time()

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout):
        """The exit status, or a Failure if it is still running after
        `timeout` seconds (then it is killed)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            args = self.args[self.args.index("--config") + 2:] if "--config" in self.args \
                else self.args
            raise Failure("herald %s still running after %.0f s" % (" ".join(args), timeout))

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=20):
        """SIGTERM, then the exit status (a Failure, and SIGKILL, if it is
        still running after `timeout` seconds)."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    @property
    def stdout_text(self):
        return open(self.out_path, "rb").read().decode("utf-8", "replace")

    @property
    def stderr_text(self):
        return open(self.err_path, "rb").read().decode("utf-8", "replace")


def wait_until(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns something true; Failure after timeout s."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def iso(t):
    """Unix time -> the ISO 8601 UTC form --now and --at take."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class World:
    """A temporary directory with a config and (after init()) a database."""

    def __init__(self, smtp_port=1, extra_config=""):
        self.tmp = tempfile.TemporaryDirectory(prefix="herald-test-")
        self.root = self.tmp.name
        self.config = os.path.join(self.root, "herald.conf")
        self.db = os.path.join(self.root, "herald.db")
        self.write_config(smtp_port, extra_config)
        self.servers = []
        self.procs = []

    def write_config(self, smtp_port, extra=""):
        with open(self.config, "w") as f:
            f.write("""\
# written by tests/integration/harness.py
[database]
path = herald.db

[smtp]
url = smtp://127.0.0.1:%d
starttls = never
timeout = 20

[sender]
from = What Works Centre <news@example.org>
reply_to = wwccsc@example.org
postal_address = What Works Centre, 1 Example Street, London EC1A 1AA

[web]
base_url = https://news.example.org
%s""" % (smtp_port, extra))

    def run(self, *args, input=None, env=None, check_rc=None, wrapper=True, timeout=600):
        cmd = [HERALD, "--config", self.config] + [str(a) for a in args]
        wrap = os.environ.get("HERALD_WRAPPER")
        if wrap and wrapper:
            cmd = shlex.split(wrap) + cmd
        full_env = dict(os.environ)
        full_env.pop("HERALD_CONFIG", None)
        if env:
            full_env.update(env)
        p = subprocess.run(cmd, input=input, capture_output=True, env=full_env,
                           cwd=self.root, timeout=timeout)
        p.stdout_text = p.stdout.decode("utf-8", "replace")
        p.stderr_text = p.stderr.decode("utf-8", "replace")
        if check_rc is not None and p.returncode != check_rc:
            raise Failure("herald %s: exit %d, wanted %d\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, args)), p.returncode, check_rc, p.stdout_text,
                p.stderr_text))
        return p

    def ok(self, *args, **kw):
        return self.run(*args, check_rc=0, **kw)

    def init(self):
        self.ok("init")
        return self

    def smtp(self, rules=None, auth=None, section=None, pipelining=True, tls=None):
        """Start a server and point the config at it: every relay url, or
        only the one in [SECTION] (e.g. "smtp.backup", added when missing,
        with starttls = never) when `section` is given.  pipelining=False:
        its EHLO does not offer PIPELINING."""
        server = SMTPServer(self.root if not self.servers else
                            tempfile.mkdtemp(dir=self.root), rules, auth, pipelining, tls)
        self.servers.append(server)
        if section:
            self.set(section, url="smtp://127.0.0.1:%d" % server.port)
            if section != "smtp" and "starttls" not in self.section(section):
                self.set(section, starttls="never")
            return server
        text = open(self.config).read()
        text = re.sub(r"url = smtp://127\.0\.0\.1:\d+", "url = smtp://127.0.0.1:%d" % server.port,
                      text)
        with open(self.config, "w") as f:
            f.write(text)
        return server

    def _split(self, section):
        text = open(self.config).read()
        m = re.search(r"^\[%s\][ \t]*\n" % re.escape(section), text, re.M)
        if not m:
            return text.rstrip("\n") + "\n\n[%s]\n" % section, "", ""
        rest = text[m.end():]
        end = re.search(r"^\[", rest, re.M)
        body, tail = (rest[:end.start()], rest[end.start():]) if end else (rest, "")
        return text[:m.end()], body, tail

    def section(self, section):
        """{key: value} of [SECTION] in the config ({} when absent)."""
        _, body, _ = self._split(section)
        return dict(re.findall(r"^([A-Za-z_]+)\s*=\s*(.*?)\s*$", body, re.M))

    def set(self, section, **keys):
        """Set keys of [SECTION] in the config (replace or add; the section
        is added at the end when missing)."""
        head, body, tail = self._split(section)
        for k, v in keys.items():
            line = "%s = %s\n" % (k, v)
            body, n = re.subn(r"^%s\s*=.*\n" % re.escape(k), line.replace("\\", "\\\\"), body,
                              flags=re.M)
            if not n:
                body = line + body
        if tail and not body.endswith("\n\n"):
            body += "\n"
        with open(self.config, "w") as f:
            f.write(head + body + tail)

    def spawn(self, *args, env=None):
        """Start herald ARGS in the background (a Background); close() kills
        it by PID if it is still running."""
        cmd = [HERALD, "--config", self.config] + [str(a) for a in args]
        wrap = os.environ.get("HERALD_WRAPPER")
        if wrap:
            cmd = shlex.split(wrap) + cmd
        full_env = dict(os.environ)
        full_env.pop("HERALD_CONFIG", None)
        if env:
            full_env.update(env)
        proc = Background(cmd, self.root, full_env, len(self.procs))
        self.procs.append(proc)
        return proc

    def serve(self, listen="127.0.0.1:0", env=None, timeout=30):
        """Start `herald serve --listen LISTEN` in the background and wait
        until it prints "herald serve: listening on http://HOST:PORT".  Returns
        the Background with .url ("http://127.0.0.1:PORT", no trailing slash)
        and .port; stop() ends it with SIGTERM, close() too if still running."""
        bg = self.spawn("serve", "--listen", listen, env=env)
        bg.serving = True
        deadline = time.time() + timeout
        while True:
            m = re.search(r"listening on (http://(\S+):(\d+))\r?\n", bg.stdout_text)
            if m:
                bg.url, bg.port = m.group(1), int(m.group(3))
                return bg
            if bg.poll() is not None or time.time() > deadline:
                bg.kill()
                raise Failure("herald serve --listen %s did not start (exit %s)\nstdout: %s"
                              "\nstderr: %s" % (listen, bg.poll(), bg.stdout_text,
                                                bg.stderr_text))
            time.sleep(0.02)

    def subscribe(self, emails, list_name="newsletter"):
        """Create the list when missing and import EMAILS (confirmed, in
        order, so subscriber ids follow the order given)."""
        if not self.sql("SELECT 1 FROM lists WHERE name = ?", list_name):
            self.ok("list", "create", list_name)
        path = self.write("import-%d.csv" % len(self.sql("SELECT id FROM subscribers")),
                          "email,name\n" + "".join("%s,Reader %d\n" % (e, i)
                                                   for i, e in enumerate(emails)))
        self.ok("sub", "import", "--list", list_name, path)

    def new_issue(self, subject="Hello", list_name="newsletter",
                  body="Dear {{name|reader}}, hello.\n"):
        """A short issue; returns its id as a string."""
        path = self.write("issue-%d.md" % len(self.sql("SELECT id FROM issues")),
                          "---\nsubject: %s\nlist: %s\n---\n\n%s" % (subject, list_name, body))
        return self.ok("issue", "new", path).stdout_text.strip()

    def sql(self, query, *params):
        con = sqlite3.connect(self.db)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def dump(self):
        """The whole database as SQL text, to prove a failed command changed nothing."""
        con = sqlite3.connect(self.db)
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()

    def write(self, name, data):
        path = os.path.join(self.root, name)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(path, mode) as f:
            f.write(data)
        return path

    def close(self):
        for p in self.procs:
            if getattr(p, "serving", False) and p.poll() is None:
                p.signal(signal.SIGTERM)    # a server flushes its events on SIGTERM
                try:
                    p.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            p.kill()
        for s in self.servers:
            s.stop()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _selected(tests):
    """The cases $HERALD_TEST_CASES names (all when it is unset); exits 1
    when it names a case that does not exist."""
    wanted = os.environ.get("HERALD_TEST_CASES", "").replace(",", " ").split()
    if not wanted:
        return tests
    names = {fn.__name__ for _, fn in tests}
    unknown = [n for n in wanted if n not in names]
    if unknown:
        print("FAIL HERALD_TEST_CASES names no case of this file: %s (cases: %s)" % (
            " ".join(unknown), " ".join(sorted(names))))
        sys.stdout.flush()
        sys.exit(1)
    chosen = [(name, fn) for name, fn in tests if fn.__name__ in wanted]
    print("(HERALD_TEST_CASES: %d of the %d cases; not run here: %s)" % (
        len(chosen), len(tests),
        ", ".join(name for name, fn in tests if fn.__name__ not in wanted) or "none"))
    return chosen


def run_tests(tests):
    """Run (name, fn) pairs; print one line each ("ok", "FAIL" or "SKIP").
    Exits 1 if any failed, else 77 (ctest SKIP) if any was skipped, else 0:
    a file passes only when every case it was asked to run ran and passed."""
    global _in_case
    failed = skipped = 0
    tests = _selected(tests)
    for name, fn in tests:
        t0 = time.time()
        _in_case = True
        try:
            fn()
            print("ok   %s (%.1fs)" % (name, time.time() - t0))
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (name, e))
        except SystemExit as e:
            # a case must raise Skip or fail, not end the file: an exit here
            # would hide the cases before and after it
            failed += 1
            print("FAIL %s: exited (status %s) in the middle of the run" % (name, e.code))
        except Exception as e:  # report and go on with the next test
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        finally:
            _in_case = False
        sys.stdout.flush()
    if skipped and not failed:
        print("%d of %d cases skipped: reported to ctest as skipped (77)" % (skipped, len(tests)))
    sys.stdout.flush()
    sys.exit(1 if failed else SKIP if skipped else 0)
