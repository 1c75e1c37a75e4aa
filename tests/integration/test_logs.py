#!/usr/bin/python3
"""test_logs.py - --log-format text|json and [log] target (issue 18).

  (a) JSON: a send to a real SMTP server (one address refused at RCPT)
      logs one JSON object a line on stderr, each with time, level,
      command, event and msg; its send.summary says what the server
      independently received (sent = messages it accepted, bounced = the
      refused one), and stdout keeps the text summary.  A failing command
      logs an "error" event whose code is the exit status.  The SMTP
      password and the token secret appear in no line.
  (b) [log] format = json does the same; --log-format text overrides it
      and gives back the text line, byte for byte the one of a run
      without any [log].
  (c) [log] target = syslog: the lines arrive on /dev/log (a socket the
      test binds, in a private mount namespace when the machine has a
      syslog of its own) with facility mail, tag herald[PID], and none on
      stderr.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, Skip, World, check, run_tests  # noqa: E402

PASSWORD = "s3cret-Pa55-word-for-the-relay"


def json_lines(text):
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            check(False, "not a JSON line: %r", line)
        for k in ("time", "level", "command", "event", "msg"):
            check(k in obj, "%r lacks %s", line, k)
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"]), obj["time"])
        check(obj["level"] in ("error", "warning", "info"), obj["level"])
        out.append(obj)
    return out


def world_with_auth():
    w = World()
    w.init()
    srv = w.smtp(rules=[{"stage": "rcpt", "match": "^gone@", "reply": "550 5.1.1 no such user"}],
                 auth="herald:" + PASSWORD)
    w.set("smtp", username="herald", password_file="relay.pass")
    w.write("relay.pass", PASSWORD + "\n")
    os.chmod(os.path.join(w.root, "relay.pass"), 0o600)
    w.subscribe(["ann@example.org", "bob@example.org", "gone@example.org"])
    return w, srv


def secret_of(w):
    with open(os.path.join(w.root, "herald.db.secret"), "rb") as f:
        return f.read()


def check_no_secrets(w, text):
    check(PASSWORD not in text, "the SMTP password is in the log")
    sec = secret_of(w)
    check(sec.hex() not in text and sec.decode("latin-1") not in text,
          "the token secret is in the log")


def test_json_lines_tell_what_happened():
    w, srv = world_with_auth()
    with w:
        iid = w.new_issue()
        p = w.ok("--log-format", "json", "send", iid)
        lines = json_lines(p.stderr_text)
        summaries = [l for l in lines if l["event"] == "send.summary"]
        check(len(summaries) == 1, "send.summary events: %s", lines)
        s = summaries[0]
        accepted = len(srv.messages())
        check(accepted == 2, "the server accepted %d", accepted)
        check(s["command"] == "send" and s["issue"] == int(iid) and s["sent"] == accepted and
              s["bounced"] == 1 and s["recipients"] == 3 and s["finished"] == 1,
              "summary %s", s)
        check(s["msg"].startswith("issue %s: 3 recipients: 2 sent" % iid), s["msg"])
        check(("issue %s: 3 recipients: 2 sent" % iid) in p.stdout_text,
              "stdout lost its summary: %r", p.stdout_text)
        check_no_secrets(w, p.stderr_text + p.stdout_text)
        # an error: its code is the exit status
        p = w.run("--log-format", "json", "list", "show", "nosuch")
        errs = [l for l in json_lines(p.stderr_text) if l["event"] == "error"]
        check(p.returncode != 0 and len(errs) == 1 and errs[0]["code"] == p.returncode and
              errs[0]["level"] == "error" and "nosuch" in errs[0]["msg"],
              "error event %s for exit %d", errs, p.returncode)
        check(w.run("--log-format", "xml", "list", "ls").returncode == 64, "--log-format xml")


def test_config_format_and_override():
    w, srv = world_with_auth()
    with w:
        plain = w.run("list", "show", "nosuch")
        check(plain.stderr_text.startswith("herald list: "), plain.stderr_text)
        w.set("log", format="json")
        p = w.run("list", "show", "nosuch")
        errs = json_lines(p.stderr_text)
        check(len(errs) == 1 and errs[0]["msg"] == plain.stderr_text.rstrip("\n"),
              "[log] format = json: %r", p.stderr_text)
        p = w.run("--log-format", "text", "list", "show", "nosuch")
        check(p.stderr_text == plain.stderr_text, "--log-format text: %r", p.stderr_text)
        w.set("log", format="yaml")
        p = w.run("config", "check")
        check(p.returncode == 78 and "'format' is text or json" in p.stderr_text,
              "bad format: %r", p.stderr_text)


class DevLog:
    """A datagram socket to stand in for syslog's /dev/log."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)

    def read(self):
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except socket.timeout:
                return out

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def run_with_devlog(w, args):
    """Run herald ARGS with its syslog going to a socket we read: at
    /dev/log itself when there is none, else bound over it in a private
    mount namespace.  Returns (process, datagrams)."""
    cmd = [HERALD, "--config", w.config] + list(args)
    if not os.path.exists("/dev/log"):
        if os.geteuid() != 0:
            raise Skip("no /dev/log and not root to make one")
        log = DevLog("/dev/log")
        try:
            p = subprocess.run(cmd, capture_output=True, cwd=w.root, timeout=60)
            return p, log.read()
        finally:
            log.close()
    d = tempfile.mkdtemp(dir=w.root)
    log = DevLog(os.path.join(d, "log"))
    try:
        p = subprocess.run(["unshare", "--mount", "sh", "-c",
                            'mount --bind "$0" /dev/log && exec "$@"', log.path] + cmd,
                           capture_output=True, cwd=w.root, timeout=60)
        if p.returncode != 0 and b"mount" in p.stderr:
            raise Skip("cannot bind a socket over /dev/log here: %s" % p.stderr.decode())
        return p, log.read()
    finally:
        log.close()


def test_syslog_target():
    w, srv = world_with_auth()
    with w:
        iid = w.new_issue()
        w.set("log", target="syslog", format="json")
        p, grams = run_with_devlog(w, ["send", iid])
        check(p.returncode == 0, "send: %d %r", p.returncode, p.stderr)
        check(p.stderr == b"", "stderr with target syslog: %r", p.stderr)
        # <PRI>: facility mail (2) * 8 + level; tag herald[PID]
        parsed = []
        for g in grams:
            m = re.match(r"<(\d+)>.*?herald\[(\d+)\]: (\{.*\})$", g, re.S)
            check(m, "not a syslog datagram from herald: %r", g)
            pri = int(m.group(1))
            check(pri // 8 == 2, "facility %d, wanted mail (2)", pri // 8)
            obj = json.loads(m.group(3))
            check({"info": 6, "warning": 4, "error": 3}[obj["level"]] == pri % 8,
                  "level %s with severity %d", obj["level"], pri % 8)
            parsed.append(obj)
        sums = [o for o in parsed if o["event"] == "send.summary"]
        check(len(sums) == 1 and sums[0]["sent"] == len(srv.messages()) == 2,
              "syslog summary: %s", parsed)
        check_no_secrets(w, "".join(grams))
        # text to syslog: the text line as the message
        w.set("log", format="text")
        p, grams = run_with_devlog(w, ["list", "show", "nosuch"])
        check(p.returncode != 0 and len(grams) == 1 and
              re.search(r"herald\[\d+\]: herald list: .*nosuch", grams[0]) and
              int(re.match(r"<(\d+)>", grams[0]).group(1)) == 2 * 8 + 3,
              "text error to syslog: %r", grams)


if __name__ == "__main__":
    run_tests([
        ("JSON lines tell what happened, no secrets", test_json_lines_tell_what_happened),
        ("[log] format, --log-format overrides", test_config_format_and_override),
        ("[log] target = syslog", test_syslog_target),
    ])
