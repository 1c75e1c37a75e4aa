#!/usr/bin/python3
"""postfix.py - a private Postfix instance on 127.0.0.1 that makes real DSNs.

herald's bounce tests need delivery status notifications written by a real
MTA, not by hand.  start(tmpdir) runs Debian's Postfix (3.7) as a second,
private instance: its own config_directory, queue_directory and
data_directory under tmpdir, its own log file (maillog_file through the
postlog service: a container has no syslog), and one SMTP listener on a free
127.0.0.1 port.  /etc/postfix and the system instance are never touched.

What the instance does with mail (all of it stays on this host):

  RCPT TO                    at SMTP time   then
  alice@mx.test (+ext)       250            delivered to .user_maildir
  full@mx.test               250            deferred, 4.2.2 (retry(8));
                                            a failed DSN once the queue
                                            lifetime runs out, and a
                                            "delayed" DSN when delay_warning
                                            is set
  any other @mx.test         250            bounced by virtual(8): Postfix's
                                            bounce(8) sends an RFC 3464 DSN
                                            (5.1.1 unknown user) to the
                                            envelope sender
  anything @bounce.test      250            delivered to .bounce_maildir
                                            (or piped into a command, see
                                            pipe_command)
  any other domain           554 at RCPT    (relay access denied: even
                                            loopback clients may not relay)
  transports={addr: action}  250            whatever the transport_maps
                                            action says, e.g. "error:5.7.1
                                            spam" (a DSN) or "retry:4.4.1 x"

Why these settings (the ones that matter):
  - virtual_mailbox_domains + smtpd_reject_unlisted_recipient = no: smtpd
    accepts every @mx.test recipient, so the sender sees 250 and the refusal
    happens after the fact, in delivery, as a DSN - what a real subscriber
    domain does when its MX is a relay.  With the default (yes) smtpd
    would answer 550 5.1.1 at RCPT and no DSN would exist.
  - virtual_mailbox_maps is texthash: (read directly, no postmap).  Its
    "@bounce.test" catch-all and recipient_delimiter = + deliver every
    bounces+TOKEN@bounce.test to one Maildir; virtual(8) writes
    "Delivered-To: bounces+TOKEN@bounce.test" and "X-Original-To:" with the
    whole address, extension included.
  - No mail leaves: default/relay/local transports are error:, mydestination
    is empty, smtp_dns_support_level = disabled, relayhost is empty,
    inet_protocols = ipv4 and master.cf has one inet listener bound to
    127.0.0.1:PORT (inet_interfaces = 127.0.0.1 as well).  No smtp(8) or
    lmtp(8) client is even defined in master.cf.
  - queue_run_delay, minimal/maximal_backoff_time of 1-2 s: a deferred
    message is retried within seconds.  With a lifetime in seconds the
    bounce daemon logs a harmless warning ("please reduce time unit
    "days" ... in delay template").  A hard failure does not wait for a
    queue run at all: virtual(8) reports it, qmgr asks bounce(8) for the DSN
    at once, and the DSN is delivered in well under a second.
  - notify_classes is empty: no copies of bounces to a postmaster (which
    would hit the error: transport and muddy the logs).
  - smtpd_relay_restrictions = reject_unauth_destination, without
    permit_mynetworks: a recipient in any other domain is refused at RCPT,
    so a test that sends somewhere else fails loudly instead of bouncing.
  - Every master.cf service runs with chroot = n (the chroot would need a
    copy of /etc files under the queue directory).

Privileges: CI runs as root in a container.  Postfix needs that for start
(master) but runs its daemons as mail_owner (postfix).  virtual(8) writes
the Maildirs as `mailbox_user` (default nobody, virtual_uid_maps static:),
and pipe(8) refuses to run a command as root or as the mail owner, so a
pipe_command runs as `pipe_user` (default nobody): whatever that command
opens (database, config, binary) must be readable/writable by that user.
tmpdir gets o+x so the postfix and nobody users can reach their
directories under it; its parents must already be searchable by others
(/tmp is).

Processes: an instance's processes are those with its MAIL_CONFIG in
their environment (the postfix command exports it to the master, which
passes it on) and their descendants; they are only ever signalled by PID.
`postfix start` daemonizes the master, so the caller becomes a child
subreaper (prctl) and reaps the daemons once they exit (a container's PID 1
may reap nothing).  A watchdog process in its own session stops the
instance if the caller dies without stop() (say, killed by a ctest
timeout): the daemonized master has left the caller's process group.

API:
    pf = start(tmpdir, users=("alice",), transports=None,
               queue_lifetime="1h", delay_warning=None,
               pipe_command=None, pipe_user="nobody", pipe_flags="DORq",
               mailbox_user="nobody", keep=False)
      queue_lifetime: maximal_queue_lifetime (and bounce_queue_lifetime):
        how long a deferred message is retried before a failed DSN ("5s")
      delay_warning: delay_warning_time ("2s": a "delayed" DSN, Action:
        delayed, once a message has been deferred that long; None: never)
      pipe_command: argv (pipe(8) macros such as ${original_recipient}
        allowed) that mail for @bounce.test is piped into instead of the
        bounce Maildir; exit 0 delivers, 75 defers, others bounce
      keep: leave the instance directory behind after stop() (also when
        $HERALD_KEEP_POSTFIX is set), for debugging
    pf.port, pf.host ("127.0.0.1"), pf.subscriber_domain ("mx.test"),
    pf.bounce_domain ("bounce.test"), pf.user_maildir (alice's),
    pf.bounce_maildir, pf.log (the instance's maillog file), pf.root,
    pf.name (its syslog_name), pf.config_directory, pf.queue_directory,
    pf.master_pid
    pf.maildir(user) -> path of USER@mx.test's Maildir
    pf.wait_for_bounces(n, timeout=30) -> paths of the first n messages in
        the bounce Maildir (oldest first); TimeoutError with the log tail
    pf.wait_for_mail(maildir, n, timeout=30) -> the same for any Maildir
    pf.wait_for_log(regex, timeout=30) -> the first match in the log
    pf.queue() -> postqueue -j output as a list of dicts
    pf.flush() -> postqueue -f (retry deferred mail now)
    pf.wait_idle(timeout=30) -> wait until the queue is empty (every DSN
        delivered), e.g. before asserting that exactly n bounces came
    pf.listeners() -> [(address, port)] of TCP sockets the instance listens on
    pf.processes() -> set of PIDs of the instance (see Processes)
    pf.stop() -> postfix stop; processes still there after 10 s get
        SIGTERM, then SIGKILL, each by PID; the instance directory is
        removed (unless keep); idempotent
    available() -> None, or why the fixture cannot run (for a skip)
    with start(tmpdir) as pf: ...   (stop() on exit)

Manual use:
    /usr/bin/python3 tests/tools/postfix.py [--dir DIR] [--demo]
starts an instance and waits for ^C (printing where things are); --demo
sends one message to alice@ and one to nobody@ from a VERP address, prints
the DSN Postfix wrote and how long it took, and stops.
"""
import argparse
import json
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"
DAEMON_DIR = "/usr/lib/postfix/sbin"

SUBSCRIBER_DOMAIN = "mx.test"
BOUNCE_DOMAIN = "bounce.test"


def available():
    """Why the fixture cannot run here, or None when it can."""
    for path in (POSTFIX, POSTCONF, os.path.join(DAEMON_DIR, "master")):
        if not os.access(path, os.X_OK):
            return "%s is missing (apt-get install postfix)" % path
    if os.geteuid() != 0:
        return "a Postfix instance must be started as root"
    for user in ("postfix",):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return "user %s is missing" % user
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        return "group postdrop is missing"
    return None


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _arg(word):
    """One pipe(8) argv element; Postfix 3 groups words with { } when an
    element holds white space."""
    if re.search(r"\s", word) or word.startswith("{"):
        if "}" in word:
            raise ValueError("pipe argument with white space and '}': %r" % word)
        return "{ %s }" % word
    return word


def _environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] != b"Z"
    except OSError:
        return False


def _subreaper():
    """Make this process the reaper of its orphaned descendants.  The
    master daemonizes and, once stopped, leaves its children to exit after
    it; they are re-parented to PID 1, and a container's PID 1 often reaps
    nothing, so they would stay zombies.  As a subreaper we get them and
    reap them by PID (Postfix.stop()).  Linux only; best effort."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)      # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


class PostfixError(RuntimeError):
    pass


class Postfix:
    """One private Postfix instance under `tmpdir`/postfix-N."""

    host = "127.0.0.1"
    subscriber_domain = SUBSCRIBER_DOMAIN
    bounce_domain = BOUNCE_DOMAIN

    def __init__(self, tmpdir, users=("alice",), transports=None,
                 queue_lifetime="1h", delay_warning=None, pipe_command=None,
                 pipe_user="nobody", pipe_flags="DORq", mailbox_user="nobody",
                 keep=False):
        why = available()
        if why:
            raise PostfixError(why)
        tmpdir = os.path.abspath(tmpdir)
        up = os.path.dirname(tmpdir)
        while True:
            if not os.stat(up).st_mode & 0o001:
                raise PostfixError("%s is not searchable by others: the postfix and "
                                   "nobody users could not reach %s" % (up, tmpdir))
            if up == "/":
                break
            up = os.path.dirname(up)
        # daemons run as postfix and nobody: they must reach their directories
        os.chmod(tmpdir, os.stat(tmpdir).st_mode | 0o111)
        self.root = tempfile.mkdtemp(prefix="postfix-", dir=tmpdir)
        os.chmod(self.root, 0o755)
        self.name = "postfix-herald-" + os.path.basename(self.root).split("-", 1)[1]
        self.config_directory = os.path.join(self.root, "etc")
        self.queue_directory = os.path.join(self.root, "spool")
        self.data_directory = os.path.join(self.root, "data")
        self.mail_base = os.path.join(self.root, "mail")
        self.log = os.path.join(self.root, "maillog")
        self.users = tuple(users)
        self.pipe_command = list(pipe_command) if pipe_command else None
        self.pipe_user = pipe_user
        self.pipe_flags = pipe_flags
        self.transports = dict(transports or {})
        self.keep = keep or bool(os.environ.get("HERALD_KEEP_POSTFIX"))
        self.queue_lifetime = queue_lifetime
        self.delay_warning = delay_warning
        box = pwd.getpwnam(mailbox_user)
        if box.pw_uid < 100:
            raise PostfixError("mailbox user %s has uid %d < virtual_minimum_uid" %
                               (mailbox_user, box.pw_uid))
        self.mailbox_uid, self.mailbox_gid = box.pw_uid, box.pw_gid
        if pipe_command:
            pu = pwd.getpwnam(pipe_user)    # KeyError: no such user
            if pu.pw_uid == 0 or pu.pw_name == "postfix":
                # pipe(8): "user= command-line attribute specifies root
                # privileges" / "... mail system owner" - fatal
                raise PostfixError("pipe(8) will not run a command as %s" % pipe_user)
        self.user_maildir = self.maildir(self.users[0]) if self.users else None
        self.bounce_maildir = os.path.join(self.mail_base, "bounces") + "/"
        self.port = None
        self.master_pid = None
        self._known = set()
        self._stopped = False
        self._watchdog = None
        for d in (self.config_directory, self.queue_directory):
            os.mkdir(d, 0o755)
        os.mkdir(self.data_directory, 0o700)
        os.chown(self.data_directory, pwd.getpwnam("postfix").pw_uid,
                 grp.getgrnam("postfix").gr_gid)
        # virtual(8) makes the Maildirs (tmp/ new/ cur/) as the mailbox user
        os.mkdir(self.mail_base, 0o755)
        os.chown(self.mail_base, self.mailbox_uid, self.mailbox_gid)

    # -- paths ------------------------------------------------------------

    def maildir(self, user):
        """The Maildir (with a trailing /) of USER@mx.test."""
        return os.path.join(self.mail_base, SUBSCRIBER_DOMAIN, user) + "/"

    # -- configuration ----------------------------------------------------

    def _main_cf(self):
        err = "error:5.7.1 herald test MTA: no delivery off this host"
        lines = [
            "# written by tests/tools/postfix.py: a private test instance",
            "compatibility_level = 3.6",
            "queue_directory = %s" % self.queue_directory,
            "data_directory = %s" % self.data_directory,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "multi_instance_name = %s" % self.name,
            "syslog_name = %s" % self.name,
            "maillog_file = %s" % self.log,
            "maillog_file_prefixes = %s" % self.root,
            "myhostname = mta.herald.test",
            "mydomain = herald.test",
            "myorigin = $myhostname",
            "mydestination =",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "relay_domains =",
            "relayhost =",
            "mynetworks = 127.0.0.0/8",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "smtp_dns_support_level = disabled",
            "lmtp_dns_support_level = disabled",
            "smtpd_peername_lookup = no",
            "default_transport = %s" % err,
            "relay_transport = %s" % err,
            "local_transport = %s" % err,
            "transport_maps = texthash:%s/transport" % self.config_directory,
            "virtual_mailbox_domains = %s %s" % (SUBSCRIBER_DOMAIN, BOUNCE_DOMAIN),
            "virtual_mailbox_base = %s" % self.mail_base,
            "virtual_mailbox_maps = texthash:%s/vmailbox" % self.config_directory,
            "virtual_alias_maps =",
            "virtual_uid_maps = static:%d" % self.mailbox_uid,
            "virtual_gid_maps = static:%d" % self.mailbox_gid,
            "virtual_minimum_uid = 100",
            "recipient_delimiter = +",
            "smtpd_reject_unlisted_recipient = no",
            "smtpd_relay_restrictions = reject_unauth_destination",
            "smtpd_recipient_restrictions =",
            "smtpd_tls_security_level = none",
            "smtp_tls_security_level = none",
            "in_flow_delay = 0",
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
            "maximal_queue_lifetime = %s" % self.queue_lifetime,
            "bounce_queue_lifetime = %s" % self.queue_lifetime,
            "delay_warning_time = %s" % (self.delay_warning or "0h"),
            "notify_classes =",
            "biff = no",
            "",
        ]
        return "\n".join(lines)

    def _master_cf(self):
        rows = [
            ("127.0.0.1:%d" % self.port, "inet", "n", "-", "n", "-", "-", "smtpd"),
            ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
            ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
            ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
            ("error", "unix", "-", "-", "n", "-", "-", "error"),
            ("retry", "unix", "-", "-", "n", "-", "-", "error"),
            ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
            ("virtual", "unix", "-", "n", "n", "-", "-", "virtual"),
            ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
        ]
        text = "# written by tests/tools/postfix.py: no smtp/lmtp client on purpose\n"
        text += "".join("%-22s %-10s %-2s %-2s %-2s %-5s %-2s %s\n" % r for r in rows)
        if self.pipe_command:
            # D: Delivered-To, O: X-Original-To, R: Return-Path (pipe(8)
            # writes the null sender as <MAILER-DAEMON>), q: quote the
            # address macros.  Exit 75 (EX_TEMPFAIL) defers, any other
            # non-zero exit bounces the DSN (to the null sender: dropped).
            # pipe(8) gives the command only PATH, LANG and MAIL_CONFIG:
            # pass the recipient as an argument (${original_recipient}).
            text += ("herald-pipe            unix       -  n  n  -     -  pipe\n"
                     "  %suser=%s argv=%s\n" %
                     ("flags=%s " % self.pipe_flags if self.pipe_flags else "",
                      self.pipe_user, " ".join(_arg(a) for a in self.pipe_command)))
        return text

    def _write_config(self):
        cd = self.config_directory
        with open(os.path.join(cd, "main.cf"), "w") as f:
            f.write(self._main_cf())
        with open(os.path.join(cd, "master.cf"), "w") as f:
            f.write(self._master_cf())
        with open(os.path.join(cd, "vmailbox"), "w") as f:
            for u in self.users:
                f.write("%s@%s %s/%s/\n" % (u, SUBSCRIBER_DOMAIN, SUBSCRIBER_DOMAIN, u))
            # full@ must resolve to a mailbox: transport_maps defers it
            f.write("full@%s %s/full/\n" % (SUBSCRIBER_DOMAIN, SUBSCRIBER_DOMAIN))
            f.write("@%s bounces/\n" % BOUNCE_DOMAIN)
        with open(os.path.join(cd, "transport"), "w") as f:
            f.write("full@%s retry:4.2.2 mailbox full (herald test MTA)\n" % SUBSCRIBER_DOMAIN)
            for addr, action in self.transports.items():
                if re.search(r"\s", addr) or "\n" in action:
                    raise ValueError("transport entry %r %r" % (addr, action))
                f.write("%s %s\n" % (addr, action))
            if self.pipe_command:
                f.write("%s herald-pipe:\n" % BOUNCE_DOMAIN)

    # -- running ----------------------------------------------------------

    def _postfix(self, *args, check=True, timeout=120):
        env = dict(os.environ, MAIL_CONFIG=self.config_directory)
        p = subprocess.run([POSTFIX, "-c", self.config_directory] + list(args),
                           capture_output=True, env=env, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise PostfixError("postfix %s: exit %d\n%s%s" % (
                " ".join(args), p.returncode, out, self.log_tail()))
        return p.returncode, out

    def start(self):
        _subreaper()
        last = ""
        for _ in range(5):   # the free port may be taken before master binds it
            self.port = _free_port()
            self._write_config()
            rc, out = self._postfix("start", check=False)
            if rc == 0:
                try:
                    self._wait_listening(30)
                except PostfixError:
                    self.stop()
                    raise
                self._start_watchdog()
                return self
            last = out
            self._stop_processes()
            if "Address already in use" not in out + self.log_tail():
                break
        raise PostfixError("postfix start failed:\n%s%s" % (last, self.log_tail()))

    def _wait_listening(self, timeout):
        deadline = time.time() + timeout
        while True:
            self._read_master_pid()
            try:
                with socket.create_connection((self.host, self.port), 2) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise PostfixError("no SMTP greeting on %s:%d after %d s\n%s" % (
                    self.host, self.port, timeout, self.log_tail()))
            time.sleep(0.05)

    def _read_master_pid(self):
        try:
            with open(os.path.join(self.queue_directory, "pid", "master.pid")) as f:
                self.master_pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        return self.master_pid

    def processes(self):
        """PIDs of every live process of this instance: whatever carries
        our MAIL_CONFIG in its environment (the postfix command exports it,
        so the master and every daemon have it), and their descendants
        (pipe(8) commands).  Never a bare PID from a file: it may have been
        reused."""
        mine = set()
        conf = b"MAIL_CONFIG=" + self.config_directory.encode()
        parents = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid == os.getpid() or not _alive(pid):
                continue
            parents[pid] = _ppid(pid)
            if conf in _environ(pid):
                mine.add(pid)
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    grew = True
        return mine

    def stop(self):
        """postfix stop, then make sure no process of the instance is left:
        the ones still there after 10 s get SIGTERM, then SIGKILL, each by
        PID.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._read_master_pid()
        self._known |= self.processes()
        if self.master_pid in self._known:
            self._postfix("stop", check=False, timeout=60)
        self._stop_processes()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        if self._watchdog:
            try:
                os.write(self._watch_fd, b"stopped\n")
            except OSError:
                pass
            os.close(self._watch_fd)
            try:
                self._watchdog.wait(10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None

    def _start_watchdog(self):
        """A helper in its own session that stops the instance if this
        process dies without stop() (a test killed by a ctest timeout):
        the master has left our process group, nothing else would end it.
        It waits for EOF on a pipe; "stopped" first means all is done."""
        r, w = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--watchdog", self.root,
                 str(self.master_pid), "keep" if self.keep else "remove"],
                stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        os.set_inheritable(w, False)
        self._watch_fd = w

    @classmethod
    def _attach(cls, root, master_pid, keep):
        """An object for an instance started elsewhere (the watchdog's)."""
        self = cls.__new__(cls)
        self.root = root
        self.name = "postfix-herald-" + os.path.basename(root).split("-", 1)[1]
        self.config_directory = os.path.join(root, "etc")
        self.queue_directory = os.path.join(root, "spool")
        self.log = os.path.join(root, "maillog")
        self.master_pid = master_pid
        self.keep = keep
        self._known = set()
        self._stopped = False
        self._watchdog = None
        return self

    def _stop_processes(self):
        for sig, grace in ((None, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            pids = self._reap(self._known | self.processes())
            if sig and pids:
                for p in pids:
                    try:
                        os.kill(p, sig)
                    except ProcessLookupError:
                        pass
            deadline = time.time() + grace
            while pids and time.time() < deadline:
                time.sleep(0.05)
                pids = self._reap(pids)
            if not pids:
                self._known = set()
                return
        raise PostfixError("processes %s of %s survive SIGKILL" % (sorted(pids), self.name))

    def _reap(self, pids):
        """The PIDs still alive; remembers them, and reaps the dead ones
        that became our children (see _subreaper)."""
        self._known |= pids
        for p in pids:
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        return {p for p in pids if _alive(p)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- looking at results -----------------------------------------------

    def log_tail(self, n=40):
        try:
            with open(self.log, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "--- %s (last %d lines)\n%s\n" % (self.log, n, "\n".join(lines[-n:]))

    def wait_for_mail(self, maildir, n, timeout=30):
        """The paths of the first n messages delivered to MAILDIR (oldest
        first, by Maildir name: its first field is the delivery time);
        TimeoutError with the log tail when fewer arrive in time."""
        new = os.path.join(maildir, "new")
        deadline = time.time() + timeout
        while True:
            try:
                names = [x for x in os.listdir(new) if not x.startswith(".")]
            except FileNotFoundError:
                names = []
            if len(names) >= n:
                def key(name):
                    head = name.split(".")
                    return (int(head[0]) if head[0].isdigit() else 0,
                            os.stat(os.path.join(new, name)).st_mtime_ns, name)
                return [os.path.join(new, x) for x in sorted(names, key=key)[:n]]
            if time.time() > deadline:
                raise TimeoutError("%d of %d messages in %s after %.0f s\n%s" % (
                    len(names), n, maildir, timeout, self.log_tail()))
            time.sleep(0.05)

    def wait_for_bounces(self, n, timeout=30):
        """The first n DSNs (or anything else) delivered to the bounce
        Maildir; TimeoutError when fewer arrive within `timeout` s."""
        return self.wait_for_mail(self.bounce_maildir, n, timeout)

    def wait_for_log(self, regex, timeout=30):
        """The first match of REGEX (multiline) in the instance's log."""
        deadline = time.time() + timeout
        rx = re.compile(regex, re.M)
        while True:
            try:
                with open(self.log, "rb") as f:
                    m = rx.search(f.read().decode("utf-8", "replace"))
                if m:
                    return m
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError("no %r in the log after %.0f s\n%s" % (
                    regex, timeout, self.log_tail()))
            time.sleep(0.05)

    def _postqueue(self, *args):
        env = dict(os.environ, MAIL_CONFIG=self.config_directory)
        p = subprocess.run([POSTQUEUE, "-c", self.config_directory] + list(args),
                           capture_output=True, env=env, timeout=60)
        if p.returncode != 0:
            raise PostfixError("postqueue %s: %s" % (" ".join(args), p.stderr.decode()))
        return p.stdout.decode("utf-8", "replace")

    def queue(self):
        """The queue as postqueue -j shows it: one dict per message."""
        return [json.loads(x) for x in self._postqueue("-j").splitlines() if x.strip()]

    def flush(self):
        """Retry every deferred message now."""
        self._postqueue("-f")

    def wait_idle(self, timeout=30):
        """Wait until the queue is empty: every message (DSNs included)
        delivered or bounced.  TimeoutError with the queue otherwise."""
        deadline = time.time() + timeout
        while True:
            q = self.queue()
            if not q:
                return
            if time.time() > deadline:
                raise TimeoutError("queue not empty after %.0f s: %s\n%s" % (
                    timeout, q, self.log_tail()))
            time.sleep(0.05)

    def listeners(self):
        """[(address, port)] of the TCP sockets the instance's processes
        listen on (from /proc/net/tcp{,6}), to check it stays on loopback."""
        inodes = set()
        for pid in self.processes():
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
            except OSError:
                pass
        out = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = open(table).read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                f = row.split()
                if f[3] != "0A" or f[9] not in inodes:     # 0A: LISTEN
                    continue
                addr, port = f[1].split(":")
                raw = bytes.fromhex(addr)
                if len(raw) == 4:
                    host = socket.inet_ntop(socket.AF_INET, raw[::-1])
                else:
                    host = socket.inet_ntop(socket.AF_INET6, b"".join(
                        raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                out.add((host, int(port, 16)))
        return sorted(out)


def start(tmpdir, **options):
    """Start a private instance under TMPDIR (see the module comment for
    the options); the caller must stop() it (or use it with `with`)."""
    pf = Postfix(tmpdir, **options)
    try:
        return pf.start()
    except BaseException:
        pf.stop()
        raise


def _demo(pf):
    import email
    import email.policy
    import smtplib

    sender = "bounces+abc_DEF-123@%s" % BOUNCE_DOMAIN
    t0 = time.time()
    with smtplib.SMTP(pf.host, pf.port, timeout=30) as s:
        refused = s.sendmail(sender, ["nobody@%s" % SUBSCRIBER_DOMAIN,
                                      "alice@%s" % SUBSCRIBER_DOMAIN],
                             b"From: <%s>\r\nTo: <nobody@%s>\r\nSubject: demo\r\n"
                             b"Message-ID: <demo.1@herald.test>\r\n\r\nhello\r\n" %
                             (sender.encode(), SUBSCRIBER_DOMAIN.encode()))
    t1 = time.time()
    print("SMTP accepted in %.3f s, refused: %s" % (t1 - t0, refused))
    path, = pf.wait_for_bounces(1, 30)
    t2 = time.time()
    print("DSN in %s after %.3f s (from the end of DATA)\n" % (path, t2 - t1))
    raw = open(path, "rb").read()
    print(raw.decode("utf-8", "replace"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    print("content type:", msg.get_content_type(), msg.get_param("report-type"))


def _watch(root, master_pid, mode):
    """--watchdog: wait for the test process to say "stopped" or die."""
    said = b""
    while True:
        chunk = os.read(0, 64)
        if not chunk:
            break
        said += chunk
    if said.startswith(b"stopped"):
        return 0
    pf = Postfix._attach(root, master_pid, mode == "keep")
    if os.path.isdir(pf.config_directory):
        pf.stop()
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--watchdog":
        return _watch(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="parent directory (default: a new temporary one, "
                    "removed at exit)")
    ap.add_argument("--demo", action="store_true", help="send, print the DSN, stop")
    ap.add_argument("--pipe", nargs="+", metavar="ARG",
                    help="pipe mail for @bounce.test into this command (as nobody)")
    a = ap.parse_args()
    why = available()
    if why:
        print("postfix.py: %s" % why, file=sys.stderr)
        return 77
    tmp = None
    parent = a.dir
    if parent is None:
        tmp = tempfile.mkdtemp(prefix="herald-postfix-")
        parent = tmp
    pf = start(parent, pipe_command=a.pipe, keep=a.dir is not None)
    try:
        print("postfix instance %s\n  smtp          %s:%d\n  config        %s\n"
              "  log           %s\n  alice         %s\n  bounces       %s\n"
              "  master pid    %s" % (pf.name, pf.host, pf.port, pf.config_directory,
                                      pf.log, pf.user_maildir, pf.bounce_maildir,
                                      pf.master_pid))
        sys.stdout.flush()
        if a.demo:
            _demo(pf)
        else:
            print("^C to stop")
            try:
                signal.signal(signal.SIGTERM, lambda *x: sys.exit(0))
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        pf.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
