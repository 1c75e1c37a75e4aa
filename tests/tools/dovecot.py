#!/usr/bin/python3
"""dovecot.py - a private Dovecot (IMAP and POP3) on 127.0.0.1 for herald's tests.

Runs Debian's /usr/sbin/dovecot in the foreground (-F) with a config of its
own: every piece of state (base_dir, state_dir, log, index, the Maildir, a
self-signed certificate made by `openssl req`, a passwd-file with one user)
lives in one directory, so several can run at once and nothing in /etc is
read or touched.  It listens on four free loopback ports: imap, imaps, pop3
and pop3s (the plain ones also offer STARTTLS).  Failed logins are not
slowed down (no auth penalty, no failure delay): tests make them on purpose.

Users: not root, every Dovecot process runs as the user who started it.
As root (CI, a container), Dovecot refuses mail access as UID 0 and login
processes running as root, so the mail belongs to Debian's "dovecot" user
(the Maildir and index are chowned to it, deliver() chowns each message,
and directories above the state directory under the system temp dir get
o+x so it can reach them) and login processes run as "dovenull".  The test
itself can always read and write the Maildir directly.

Use as a module:

    import dovecot
    if dovecot.missing(): skip
    d = dovecot.start(tmpdir)      # a Dovecot; d.stop() ends it by PID
    d.deliver(b"From: ...")          # a message into the Maildir's new/
    d.url("imaps")                   # "imaps://127.0.0.1:PORT/INBOX"
    d.messages()                     # paths of the messages still there
    d.imaps_port, d.pop3s_port, d.imap_port, d.pop3_port,
    d.ca_file, d.user, d.password, d.maildir, d.log_path
    d.rawlogs()                      # with start(tmpdir, rawlog=True): what
                                     # each session sent after login

or by hand, to try herald against it:

    /usr/bin/python3 tests/tools/dovecot.py [--dir DIR] [MESSAGE-FILE...]

which prints the ports, user, password and CA file, delivers the files
given, and runs until Ctrl-C or SIGTERM.

Ports are found by binding 127.0.0.1:0 and closing again; should Dovecot
lose the race for one of them it fails to start and start() tries again
with new ones (three times).
"""
import argparse
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"
OPENSSL = "/usr/bin/openssl"
DH_FILE = "/usr/share/dovecot/dh.pem"
PROTOCOLS = ("imap", "imaps", "pop3", "pop3s")

_seq = 0


def missing():
    """None when a Dovecot can be started here, else why not (for a skip)."""
    if not os.access(DOVECOT, os.X_OK):
        return "%s is missing (apt-get install dovecot-imapd dovecot-pop3d)" % DOVECOT
    for binary in ("imap", "pop3", "imap-login", "pop3-login"):
        if not os.access("/usr/lib/dovecot/" + binary, os.X_OK):
            return "/usr/lib/dovecot/%s is missing (apt-get install dovecot-imapd " \
                   "dovecot-pop3d)" % binary
    if not os.access(OPENSSL, os.X_OK):
        return "%s is missing (apt-get install openssl)" % OPENSSL
    return None


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together, then freed)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_cert(root):
    """A self-signed EC certificate for 127.0.0.1 and localhost; it is its
    own CA, so the cert file is also the CA file clients verify with."""
    cert = os.path.join(root, "cert.pem")
    key = os.path.join(root, "key.pem")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


CONFIG = """\
# written by tests/tools/dovecot.py: a private test instance, all state below
# {root}
instance_name = herald-test-{instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
shutdown_clients = yes

default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_uid = 0
last_valid_gid = 0

ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
{dh}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
auth_verbose_passwords = no

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
# passwd-file rejects UID 0 in its own fields, so the owner (whoever runs
# the tests, root in CI) comes from override_fields instead.
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
  override_fields = uid={uid} gid={gid} home={root}/home
}}

# Dovecot's own files (dovecot-uidlist, indexes) stay out of the Maildir.
mail_location = maildir:{maildir}:INDEX={root}/index:CONTROL={root}/control
pop3_uidl_format = %08Xu%08Xv
{rawlog}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
# No auth penalty (anvil delays each failed login from an IP, up to 15 s):
# the tests fail logins on purpose.  Dovecot's documented switch.
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
# auth reads the passwd-file, which belongs to the user running the tests
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
"""


class Dovecot:
    """A running Dovecot; stop() ends it by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, root, user="bounces", password="s3cret-Pa55", rawlog=False,
                 max_tries=3):
        self.root = os.path.abspath(root)
        self.user = user
        self.password = password
        self.maildir = os.path.join(self.root, "Maildir")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.config = os.path.join(self.root, "dovecot.conf")
        self.proc = None
        self.rawlog_dir = os.path.join(self.root, "rawlog") if rawlog else None
        for sub in ("run", "state", "index", "control", "home", "rawlog"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.maildir, sub), exist_ok=True)
        self.ca_file, self.key_file = make_cert(self.root)
        with open(os.path.join(self.root, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (user, password))
        os.chmod(os.path.join(self.root, "passwd"), 0o600)
        me = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:
            # Dovecot will not give mail access as UID 0 ("userdb returned 0
            # as uid") and its login processes refuse to run as root, so as
            # root the mail belongs to Debian's "dovecot" user and the login
            # processes run as "dovenull"; master and auth stay root.
            mail = pwd.getpwnam("dovecot")
            self.mail_uid, self.mail_gid = mail.pw_uid, mail.pw_gid
            users = dict(user=me, internal_user="dovecot",
                         internal_group=grp.getgrgid(mail.pw_gid).gr_name,
                         login_user="dovenull")
            self._give_to_mail_user()
        else:
            # Not root: every process runs as the user who started it.
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
            users = dict(user=me, internal_user=me,
                         internal_group=grp.getgrgid(os.getgid()).gr_name, login_user=me)
        error = None
        for _ in range(max_tries):
            error = self._try_start(users)
            if error is None:
                return
        raise RuntimeError("dovecot did not start: %s" % error)

    def _give_to_mail_user(self):
        """The mail user must reach and own the Maildir and Dovecot's index:
        chown them, and let it traverse every directory above (mkdtemp makes
        them 0700; only directories under the system temp dir are opened,
        with o+x alone, anything else is an error)."""
        for sub in ("Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur", "index",
                    "control", "home", "rawlog"):
            os.chown(os.path.join(self.root, sub), self.mail_uid, self.mail_gid)
        tmp = os.path.realpath(tempfile.gettempdir())
        d = os.path.realpath(self.root)
        while d != "/":
            st = os.stat(d)
            if not st.st_mode & 0o001 and st.st_uid != self.mail_uid:
                if d != tmp and not d.startswith(tmp + os.sep):
                    raise RuntimeError("dovecot.py: user 'dovecot' cannot enter %s "
                                       "(run from a directory under %s)" % (d, tmp))
                os.chmod(d, (st.st_mode & 0o7777) | 0o001)
            d = os.path.dirname(d)

    def _try_start(self, users):
        global _seq
        _seq += 1
        self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = free_ports(4)
        with open(self.config, "w") as f:
            f.write(CONFIG.format(
                root=self.root, instance="%d-%d" % (os.getpid(), _seq),
                uid=self.mail_uid, gid=self.mail_gid, maildir=self.maildir,
                dh="ssl_dh = <%s" % DH_FILE if os.path.exists(DH_FILE) else "",
                rawlog="rawlog_dir = %s" % self.rawlog_dir if self.rawlog_dir else "",
                imap=self.imap_port, imaps=self.imaps_port,
                pop3=self.pop3_port, pop3s=self.pop3s_port, **users))
        self.stderr = open(os.path.join(self.root, "dovecot.stderr"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.config],
                                     stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.stderr.close()
                return "exit %d: %s%s" % (self.proc.returncode, self._text("dovecot.stderr"),
                                          self._text("dovecot.log")[-2000:])
            if self._ready():
                return None
            if "Fatal:" in self._text("dovecot.log"):
                self.stop()
                return self._text("dovecot.log")[-2000:]
            time.sleep(0.05)
        self.stop()
        return "no greeting within 20 s: " + self._text("dovecot.log")[-2000:]

    def _text(self, name):
        try:
            with open(os.path.join(self.root, name), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _greeting(self, port, tls):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            if tls:
                ctx = ssl.create_default_context(cafile=self.ca_file)
                with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                    return t.recv(512)
            return s.recv(512)

    def _ready(self):
        """Every listener answers with its greeting (TLS ones verified)."""
        try:
            return (self._greeting(self.imap_port, False).startswith(b"* OK")
                    and self._greeting(self.imaps_port, True).startswith(b"* OK")
                    and self._greeting(self.pop3_port, False).startswith(b"+OK")
                    and self._greeting(self.pop3s_port, True).startswith(b"+OK"))
        except (OSError, ssl.SSLError):
            return False

    def port(self, proto):
        return {"imap": self.imap_port, "imaps": self.imaps_port,
                "pop3": self.pop3_port, "pop3s": self.pop3s_port}[proto]

    def url(self, proto, mailbox="INBOX"):
        """The URL herald's [bounce] mailbox takes for PROTO."""
        if proto.startswith("imap"):
            return "%s://127.0.0.1:%d/%s" % (proto, self.port(proto), mailbox)
        return "%s://127.0.0.1:%d" % (proto, self.port(proto))

    def deliver(self, data, name=None):
        """Put one message (bytes) into the Maildir as an MTA would: write in
        tmp/, then rename into new/.  Returns the path in new/."""
        global _seq
        _seq += 1
        if isinstance(data, str):
            data = data.encode("utf-8")
        name = name or "%d.M%dP%dQ%d.herald-test" % (time.time(), time.time_ns() % 1000000,
                                                   os.getpid(), _seq)
        tmp = os.path.join(self.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        if os.getuid() != self.mail_uid:
            os.chown(tmp, self.mail_uid, self.mail_gid)
        final = os.path.join(self.maildir, "new", name)
        os.rename(tmp, final)
        return final

    def messages(self):
        """Paths of the messages in the mailbox (new/ and cur/), sorted; a
        message Dovecot marked \\Deleted but did not expunge yet still counts
        (its name in cur/ carries a T flag: see deleted())."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            out += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
        return sorted(out)

    def deleted(self):
        """Paths of messages flagged \\Deleted but still present (flag T)."""
        return [p for p in self.messages()
                if ":2," in p and "T" in p.rsplit(":2,", 1)[1]]

    def rawlogs(self):
        """With rawlog=True: what the clients sent after login, one string
        per session (Dovecot's *.in files, in session order)."""
        if not self.rawlog_dir:
            return []
        names = sorted(n for n in os.listdir(self.rawlog_dir) if n.endswith(".in"))
        out = []
        for n in names:
            with open(os.path.join(self.rawlog_dir, n), "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
        return out

    def log(self):
        return self._text("dovecot.log")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(tmpdir, **kw):
    """Start a Dovecot with all its state in TMPDIR (created if needed)."""
    os.makedirs(tmpdir, exist_ok=True)
    return Dovecot(tmpdir, **kw)


def main():
    ap = argparse.ArgumentParser(description="Run a private Dovecot on 127.0.0.1.")
    ap.add_argument("--dir", help="state directory (default: a new temporary one, "
                                  "removed at exit)")
    ap.add_argument("--user", default="bounces")
    ap.add_argument("--password", default="s3cret-Pa55")
    ap.add_argument("messages", nargs="*", help="message files to deliver to new/")
    args = ap.parse_args()
    why = missing()
    if why:
        print("dovecot.py: " + why, file=sys.stderr)
        return 69
    root = args.dir or tempfile.mkdtemp(prefix="herald-dovecot-")
    d = start(root, user=args.user, password=args.password)
    try:
        for path in args.messages:
            with open(path, "rb") as f:
                d.deliver(f.read())
        print("dir       %s" % d.root)
        print("maildir   %s" % d.maildir)
        print("user      %s" % d.user)
        print("password  %s" % d.password)
        print("ca_file   %s" % d.ca_file)
        for proto in PROTOCOLS:
            print("%-9s %s" % (proto, d.url(proto)))
        print("log       %s" % d.log_path)
        print("pid       %d  (Ctrl-C or SIGTERM to stop)" % d.proc.pid)
        sys.stdout.flush()
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        try:
            while not stop and d.proc.poll() is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    finally:
        d.stop()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
