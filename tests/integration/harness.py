"""harness.py - shared fixtures for herald's integration tests.

Each test builds a fresh world in a temporary directory: a config, a
database made with `herald init`, and when it needs one, a real SMTP server
(tests/tools/smtpd.py, Debian's aiosmtpd) on a free 127.0.0.1 port that it
stops by PID.  The herald binary comes from $HERALD_BIN (set by ctest);
$HERALD_WRAPPER, when set, is prefixed to every herald command (for example
"valgrind --error-exitcode=99 --leak-check=full").

Tests run under Debian's /usr/bin/python3 and exit 77 (ctest SKIP) when a
Debian module they need is missing, so they never pass silently.
"""
import email
import email.policy
import json
import os
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


def need_module(name):
    try:
        __import__(name)
    except ImportError:
        print("SKIP: Debian module %s is missing (apt-get install python3-%s)" % (name, name))
        sys.exit(SKIP)


class Failure(AssertionError):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


class SMTPServer:
    """A running tests/tools/smtpd.py; stop() kills it by PID."""

    def __init__(self, root, rules=None, auth=None):
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

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.stderr.close()


class World:
    """A temporary directory with a config and (after init()) a database."""

    def __init__(self, smtp_port=1, extra_config=""):
        self.tmp = tempfile.TemporaryDirectory(prefix="herald-test-")
        self.root = self.tmp.name
        self.config = os.path.join(self.root, "herald.conf")
        self.db = os.path.join(self.root, "herald.db")
        self.write_config(smtp_port, extra_config)
        self.servers = []

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

    def run(self, *args, input=None, env=None, check_rc=None, wrapper=True):
        cmd = [HERALD, "--config", self.config] + [str(a) for a in args]
        wrap = os.environ.get("HERALD_WRAPPER")
        if wrap and wrapper:
            cmd = shlex.split(wrap) + cmd
        full_env = dict(os.environ)
        full_env.pop("HERALD_CONFIG", None)
        if env:
            full_env.update(env)
        p = subprocess.run(cmd, input=input, capture_output=True, env=full_env,
                           cwd=self.root, timeout=600)
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

    def smtp(self, rules=None, auth=None):
        """Start a server and point the config at it."""
        server = SMTPServer(self.root if not self.servers else
                            tempfile.mkdtemp(dir=self.root), rules, auth)
        self.servers.append(server)
        text = open(self.config).read()
        import re
        text = re.sub(r"url = smtp://127\.0\.0\.1:\d+", "url = smtp://127.0.0.1:%d" % server.port,
                      text)
        with open(self.config, "w") as f:
            f.write(text)
        return server

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
        for s in self.servers:
            s.stop()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_tests(tests):
    """Run (name, fn) pairs; print one line each; exit 1 if any failed."""
    failed = 0
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
            print("ok   %s (%.1fs)" % (name, time.time() - t0))
        except SystemExit:
            raise
        except Exception as e:  # report and go on with the next test
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)
