#!/usr/bin/python3
"""opensmtpd.py - a private OpenSMTPD on 127.0.0.1 that makes real DSNs.

How OpenSMTPD is obtained: Debian's opensmtpd (6.8.0p2) conflicts with the
installed Postfix (both provide mail-transport-agent), so it is not
installed: mtaroot.ensure() fetches it with `apt-get download` and unpacks
it with `dpkg-deb -x` under /var/cache/herald-mta/root (no maintainer
script runs; every library it links is installed already).  Its privilege
separation needs the users opensmtpd and opensmtpq, which
mtaroot.ensure_user() creates as the package's postinst does.

The one real difficulty: smtpd has its paths compiled in - the queue
/var/spool/smtpd, the control socket /var/run/smtpd.sock, the chroot
/var/lib/opensmtpd/empty, the name from /etc/mailname or the host name -
and has no option to move them.  So start() runs it in private mount and
UTS namespaces (unshare -m -u): a directory of the instance is bound over
/var/spool, /run and /var/lib there (so the queue, socket and chroot are the
instance's, invisible to and untouched on the host), the host name is
mta.herald.test (nothing of the machine's leaks into a DSN), and, as for
every MTA here (mtaroot.isolated), /etc/nsswitch.conf says "hosts: files"
and /etc/resolv.conf says "lookup file" (OpenSMTPD's libasr reads it): a
name /etc/hosts lacks is not found, and no DNS query leaves the host.
smtpd runs in the foreground (-d), as our child, stopped by PID.

What the instance does with mail:
  - every domain in routes={DOMAIN: "HOST:PORT"} is relayed to that host
    (smtp+notls://, no TLS), HOST "self" meaning OpenSMTPD's own port (a
    real mail loop, ended by its hop limit: 100 Received: headers); a HOST
    that /etc/hosts lacks is "host not found".  The bounce domain must be
    routed too (to a capture server): OpenSMTPD's DSNs go out the same way.
  - any other recipient: 550 at RCPT.
  - Local users are not offered: OpenSMTPD expands local recipients at
    RCPT time, so an unknown local user is refused with 550 at SMTP time
    and never becomes a DSN (a limitation of OpenSMTPD, not of the tool).

Settings that matter:
  - queue ttl LIFETIME: an envelope still deferred after LIFETIME expires
    and bounces; bounce warn-interval DELAY (when delay_warning is set)
    sends one "delayed" DSN after DELAY.
  - The scheduler's own backoff between retries is minutes; retry() (run
    by the wait loop) asks it to retry everything now (`smtpctl schedule
    all`, inside the namespace), so deferred mail is retried every second.

API:
    sm = start(tmpdir, routes={...}, queue_lifetime="10s", delay_warning=None,
               keep=False)
    sm.port, sm.host, sm.root, sm.log (smtpd's stderr, -v), sm.pid
    sm.retry()  (smtpctl schedule all)
    sm.log_tail();  sm.stop() (idempotent; `with start(...)` works too)
    available() -> None, or why OpenSMTPD cannot run here
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mtaroot  # noqa: E402

PACKAGES = ("opensmtpd",)
HOSTNAME = "mta.herald.test"


def binary(name="smtpd"):
    return os.path.join(mtaroot.ROOT, "usr", "sbin", name)


def available():
    why = mtaroot.check_common()
    if why:
        return why
    p = subprocess.run([mtaroot.UNSHARE, "-u", "true"], capture_output=True, text=True)
    if p.returncode != 0:
        return "no private UTS namespace (unshare -u: %s)" % p.stderr.strip()
    try:
        mtaroot.ensure(PACKAGES)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return "cannot unpack OpenSMTPD: %s" % e
    if not os.access(binary(), os.X_OK):
        return "%s is missing after unpacking" % binary()
    return None


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class OpenSMTPDError(RuntimeError):
    pass


class OpenSMTPD:
    host = "127.0.0.1"

    def __init__(self, tmpdir, routes=None, queue_lifetime="10s", delay_warning=None,
                 keep=False):
        why = available()
        if why:
            raise OpenSMTPDError(why)
        for user in ("opensmtpd", "opensmtpq"):
            mtaroot.ensure_user(user, "/var/lib/opensmtpd/empty", group=user,
                                gecos="OpenSMTPD")
        tmpdir = os.path.abspath(tmpdir)
        os.chmod(tmpdir, os.stat(tmpdir).st_mode | 0o111)
        self.root = tempfile.mkdtemp(prefix="opensmtpd-", dir=tmpdir)
        os.chmod(self.root, 0o755)
        self.routes = dict(routes or {})
        self.queue_lifetime = queue_lifetime
        self.delay_warning = delay_warning
        self.keep = keep or bool(os.environ.get("HERALD_KEEP_MTA"))
        self.conf = os.path.join(self.root, "smtpd.conf")
        self.log = os.path.join(self.root, "smtpd.log")
        # what is bound over /var/spool, /run and /var/lib in the namespace
        self.var_spool = os.path.join(self.root, "var-spool")
        self.run_dir = os.path.join(self.root, "run")
        self.var_lib = os.path.join(self.root, "var-lib")
        for d in (self.var_spool, self.run_dir, self.var_lib,
                  os.path.join(self.var_lib, "opensmtpd"),
                  os.path.join(self.var_lib, "opensmtpd", "empty")):
            os.mkdir(d, 0o755)
        self.port = None
        self.pid = None
        self.proc = None
        self._stopped = False

    def _config(self):
        lines = ["# written by tests/tools/opensmtpd.py: a private test instance",
                 "queue ttl %s" % self.queue_lifetime]
        if self.delay_warning:
            lines.append("bounce warn-interval %s" % self.delay_warning)
        lines.append("listen on 127.0.0.1 port %d hostname %s" % (self.port, HOSTNAME))
        for i, (dom, target) in enumerate(sorted(self.routes.items())):
            host, port = target.rsplit(":", 1)
            if host == "self":
                host, port = "127.0.0.1", str(self.port)
            lines.append('action "route%d" relay host smtp+notls://%s:%s helo %s' % (
                i, host, port, HOSTNAME))
            lines.append('match from any for domain "%s" action "route%d"' % (dom, i))
            lines.append('match from local for domain "%s" action "route%d"' % (dom, i))
        return "\n".join(lines) + "\n"

    def _argv(self):
        inner = [binary(), "-d", "-v", "-f", self.conf]
        script_mounts = [(self.var_spool, "/var/spool"), (self.run_dir, "/run"),
                         (self.var_lib, "/var/lib")]
        argv = mtaroot.isolated(["/bin/sh", "-c", 'hostname "$0" && exec "$@"', HOSTNAME]
                                + inner, os.path.join(self.root, "etc"), script_mounts)
        # isolated() gives unshare -m ...; add -u (a private host name)
        argv.insert(1, "-u")
        return argv

    def start(self):
        mtaroot.subreaper()
        last = ""
        for _ in range(5):
            self.port = _free_port()
            with open(self.conf, "w") as f:
                f.write(self._config())
            os.chmod(self.conf, 0o644)
            p = subprocess.run([binary(), "-n", "-f", self.conf], capture_output=True,
                               env=mtaroot.env(), text=True)
            if p.returncode != 0:
                raise OpenSMTPDError("smtpd -n: %s\n%s" % (p.stderr, self._config()))
            logf = open(self.log, "ab")
            self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, env=mtaroot.env(), cwd=self.root)
            logf.close()
            self.pid = self.proc.pid
            try:
                self._wait_listening(30)
                self._start_retrier()
                return self
            except OpenSMTPDError as e:
                last = str(e)
                self._stop_processes()
                if "Address already in use" not in last:
                    break
        self.stop()
        raise OpenSMTPDError("smtpd did not start:\n%s" % last)

    def _wait_listening(self, timeout):
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise OpenSMTPDError("smtpd exited %s\n%s" % (self.proc.returncode,
                                                              self.log_tail()))
            try:
                with socket.create_connection((self.host, self.port), 2) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise OpenSMTPDError("no SMTP greeting on %s:%d after %d s\n%s" % (
                    self.host, self.port, timeout, self.log_tail()))
            time.sleep(0.05)

    def retry(self):
        """smtpctl schedule all, in smtpd's namespace (its control socket
        is the instance's /run/smtpd.sock)."""
        if not self.pid or self.proc.poll() is not None:
            return
        # the namespace's processes: unshare's child chain ends in smtpd
        target = self._smtpd_pid()
        if not target:
            return
        subprocess.run(["nsenter", "-t", str(target), "-m", "-u", binary("smtpctl"),
                        "schedule", "all"], capture_output=True, env=mtaroot.env(),
                       timeout=30)

    def _smtpd_pid(self):
        # unshare execs sh, sh execs sh -c 'hostname; exec smtpd': same PID
        return self.pid

    def _start_retrier(self):
        self._retry_stop = threading.Event()

        def loop():
            while not self._retry_stop.wait(1.0):
                try:
                    self.retry()
                except (OSError, subprocess.SubprocessError):
                    pass
        self._retrier = threading.Thread(target=loop, daemon=True)
        self._retrier.start()

    def processes(self):
        return mtaroot.processes(self.conf.encode(), [self.pid])

    def _stop_processes(self):
        mtaroot.stop_processes(self.processes, signal.SIGTERM, 10)
        if self.proc:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        if getattr(self, "_retry_stop", None):
            self._retry_stop.set()
            self._retrier.join(10)
        try:
            self._stop_processes()
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n=40):
        return mtaroot.log_tail(self.log, n)


def start(tmpdir, **options):
    sm = OpenSMTPD(tmpdir, **options)
    try:
        return sm.start()
    except BaseException:
        sm.stop()
        raise


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="parent directory (kept)")
    ap.add_argument("--route", action="append", default=[], metavar="DOMAIN=HOST:PORT")
    a = ap.parse_args()
    why = available()
    if why:
        print("opensmtpd.py: %s" % why, file=sys.stderr)
        return 77
    parent = a.dir or tempfile.mkdtemp(prefix="herald-opensmtpd-")
    routes = dict(r.split("=", 1) for r in a.route)
    sm = start(parent, routes=routes, keep=a.dir is not None)
    try:
        print("opensmtpd on %s:%d, config %s, log %s; ^C to stop" % (
            sm.host, sm.port, sm.conf, sm.log))
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    finally:
        sm.stop()
        if not a.dir:
            shutil.rmtree(parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
