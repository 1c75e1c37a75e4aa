"""webclient.py - fetching from `herald serve` in the integration tests.

curl (Debian's, -s -i) for whole requests, parse_http() for its output,
and the checks every herald response must pass: the security headers
(Content-Security-Policy, X-Content-Type-Options: nosniff,
Referrer-Policy: no-referrer).  raw() speaks HTTP over a plain socket for
what curl will not send (slow headers, conflicting framing), from a chosen
loopback source address so that tests can be different clients.
"""
import re
import socket
import subprocess
import time
import urllib.parse

from harness import check

UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")


class Resp:
    def __init__(self, status, headers, body, what):
        self.status, self.headers, self.body, self.what = status, headers, body, what

    def h(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "%s -> %d %s %r" % (self.what, self.status, self.headers, self.body[:300])


def parse_http(out, what):
    """The last response of curl -i output (100 Continue blocks skipped)."""
    while True:
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/[\d.]+ (\d{3})", lines[0])
        check(m, "%s: not an HTTP response: %r", what, out[:200])
        status = int(m.group(1))
        if 100 <= status < 200 and rest.startswith(b"HTTP/"):
            out = rest
            continue
        headers = []
        for line in lines[1:]:
            k, sep, v = line.decode("latin-1").partition(":")
            if sep:
                headers.append((k.strip(), v.strip()))
        return Resp(status, headers, rest, what)


def check_security(r):
    """Every response herald makes, errors included, carries the three headers."""
    check(r.h("Content-Security-Policy"), "%s: no Content-Security-Policy", r)
    check((r.h("X-Content-Type-Options") or "").lower() == "nosniff",
          "%s: X-Content-Type-Options %r", r.what, r.h("X-Content-Type-Options"))
    check((r.h("Referrer-Policy") or "").lower() == "no-referrer",
          "%s: Referrer-Policy %r", r.what, r.h("Referrer-Policy"))


def curl(url, method="GET", data=None, form=None, headers=(), ua=UA, source=None):
    """Fetch with curl; returns a Resp; checks the security headers.  `source`
    is the local address to send from (127.0.0.2: another client)."""
    cmd = ["curl", "-s", "-i", "--max-time", "30", "-g", "--path-as-is"]
    if source:
        cmd += ["--interface", source]
    if ua is not None:
        cmd += ["-A", ua]
    for h in headers:
        cmd += ["-H", h]
    inp = None
    if method == "HEAD":
        cmd.append("-I")
    elif data is not None:
        cmd += ["--data-binary", "@-"]
        inp = data if isinstance(data, bytes) else data.encode()
        if method != "POST":
            cmd += ["-X", method]
    elif form is not None:
        for k, v in form:
            cmd += ["--form-string", "%s=%s" % (k, v)]
        if method != "POST":
            cmd += ["-X", method]
    elif method != "GET":
        cmd += ["-X", method]
    cmd.append(url)
    p = subprocess.run(cmd, input=inp, capture_output=True, timeout=60)
    what = "%s %s" % (method, url)
    check(p.stdout.startswith(b"HTTP/"), "%s: curl exit %d, no response: %r", what,
          p.returncode, p.stderr)
    r = parse_http(p.stdout, what)
    check_security(r)
    return r


def form_post(url, source=None, headers=(), **fields):
    return curl(url, "POST", data=urllib.parse.urlencode(fields), source=source,
                headers=headers)


def expect(r, status):
    check(r.status == status, "%s: status %d, wanted %d: %r", r.what, r.status, status,
          r.body[:300])
    return r


def expect_404(r):
    expect(r, 404)
    check(r.h("Location") is None, "%s: a 404 with a Location", r.what)
    return r


def connect(port, source="127.0.0.1", timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def raw(port, request, source="127.0.0.1", timeout=10):
    """Send `request` (bytes) on a fresh connection; return (response bytes,
    closed): what came back until the server closed or went quiet for a
    second, and whether it closed the connection."""
    s = connect(port, source, timeout)
    try:
        s.sendall(request)
        out, closed = b"", False
        s.settimeout(1.0)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
        return out, closed
    finally:
        s.close()
