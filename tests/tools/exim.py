#!/usr/bin/python3
"""exim.py - a private Exim 4 on 127.0.0.1 that makes real DSNs.

How Exim is obtained: Debian's exim4-daemon-light (4.96) conflicts with the
installed Postfix (both provide mail-transport-agent), so it is not
installed: mtaroot.ensure() fetches exim4-daemon-light, exim4-base and the
one library missing here (libidn12) with `apt-get download` and unpacks
them with `dpkg-deb -x` under /var/cache/herald-mta/root (no maintainer
script runs, dpkg knows nothing of it).  The binary runs from there with
LD_LIBRARY_PATH pointing at the unpacked libraries.  It is compiled to run
as the user Debian-exim, and refuses to start when that user does not
exist; ensure_user() creates it as exim4-base's postinst does.

start(tmpdir, routes=...) runs `exim4 -C CONF -bdf -q1s` - a foreground
daemon with a queue runner every second - inside a private mount namespace
(mtaroot.isolated: /etc/hosts only for the system's resolver).  Its
/etc/resolv.conf there names only LoopbackDNS, a tiny name server in a
thread of this process on 127.0.0.153:53 that knows the MX of the domains
routed to host names and nothing else (NXDOMAIN): Exim's dnslookup router
asks it, and no DNS query leaves the host.  CONF, spool, logs, pid file
and Maildirs are all under tmpdir/exim-XXXX; nothing of /etc/exim4 or
/var/spool/exim4 is read or written.

What the instance does with mail:

  RCPT TO                    then
  alice@mx.test (users)      delivered to mail/mx.test/alice/ (Maildir)
  other @mx.test             the last router for mx.test, a redirect with
                             `data = :fail: Unknown user` (as many real
                             configs end their local domains), fails it:
                             the DSN says "Unknown user" (RCPT is not
                             verified, so the sender sees 250 and gets a
                             DSN)
  anything @bounce.test      delivered to mail/bounces/ (the bounce catcher)
  @DOMAIN in routes          relayed by the smtp transport to routes[DOMAIN]
                             = "IP:PORT" (a test server, a closed port;
                             manualroute) or "self:0" (Exim's own port: a
                             loop), or "NAME:PORT": then NAME is DOMAIN's
                             MX in the private DNS and the dnslookup
                             router (Debian's usual one for remote mail)
                             routes it; a NAME that /etc/hosts lacks has no
                             A record there, and Exim fails the address
                             with its own "all relevant MX records point
                             to non-existent hosts"
  any other domain           550 at RCPT (relay not permitted)

Which failures carry a reason in the DSN: Exim prints an address's error
text in a DSN only when it is a "user message" or marked as passable
(deliver.c print_address_error: af_pass_message or addr->user_message);
everything else goes to the log only.  So: an SMTP reply from the remote
host, "Unrouteable address", a :fail: text and dnslookup's MX message are
shown; manualroute's `host_find_failed = fail` ("lookup of host ... failed
in remote router") is not (this instance used that before: its DSN named
the address and nothing else), and neither is the loop - deliver.c fails
a message with more than received_headers_max Received: headers with
"Too many "Received" headers - suspected mail loop" in addr->message only
(no user_message, no af_pass_message), so the DSN names the address and
nothing else, whatever the routers and transports.  (receive.c's SMTP-time 550 for
the same check runs only for cutthrough deliveries; a stock Exim accepts
the message and fails it at delivery.)

Settings that matter:
  - self = send on the manualroute router and allow_localhost on the
    transport: every "remote" host is 127.0.0.1, which Exim otherwise
    treats as a routing loop (self = freeze).  A route to Exim's own port
    is thus a real mail loop: each hop adds a Received: header until the
    copy that arrives with more than received_headers_max (30 by default)
    is failed at delivery ("Too many "Received" headers - suspected mail
    loop" in the log; the DSN gives no reason, see above).
  - retry rule "* * F,LIFETIME,1s" + queue runner -q1s: a deferred address
    is retried every second and fails ("retry timeout exceeded") once it
    has been deferred for LIFETIME; delay_warning (when set) sends a
    "delayed" DSN (Action: delayed) after that time.
  - connection_max_messages = 1: every test server is 127.0.0.1 (on
    different ports), and Exim would otherwise pass a message for one
    test domain down a connection still open to another's server.
  - host_lookup, rfc1413_hosts and tls_advertise_hosts are empty: no
    reverse lookups, no ident, no TLS; the smtp transport never tries TLS.
  - keep_environment = LD_LIBRARY_PATH: Exim re-executes itself (exim_path,
    the unpacked binary) for every delivery and needs the unpacked libidn.
  - Local deliveries run as Debian-exim (never_users holds root).

Processes: the daemon is our child (unshare execs sh which execs exim);
its delivery processes are re-executions of exim with -C CONF on their
command line; stop() signals exactly those, by PID (mtaroot.processes).

API:
    ex = start(tmpdir, routes={"remote.test": "127.0.0.1:2525"},
               users=("alice",), queue_lifetime="10s", delay_warning=None,
               keep=False)
    ex.port, ex.host, ex.bounce_maildir, ex.maildir(user), ex.log (mainlog),
    ex.root, ex.pid
    ex.wait_for_bounces(n, timeout) -> paths of the first n messages in the
        bounce Maildir
    ex.queue() -> `exim -bp` output;  ex.log_tail()
    ex.stop() (idempotent; `with start(...) as ex:` works too)
    available() -> None, or why Exim cannot run here (for a skip)
"""
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mtaroot  # noqa: E402

PACKAGES = ("exim4-daemon-light", "exim4-base", "libidn12")
SUBSCRIBER_DOMAIN = "mx.test"
BOUNCE_DOMAIN = "bounce.test"
EXIM_USER = "Debian-exim"


def binary():
    return os.path.join(mtaroot.ROOT, "usr", "sbin", "exim4")


def available():
    """Why a private Exim cannot run here, or None."""
    why = mtaroot.check_common()
    if why:
        return why
    try:
        mtaroot.ensure(PACKAGES)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return "cannot unpack Exim: %s" % e
    if not os.access(binary(), os.X_OK):
        return "%s is missing after unpacking" % binary()
    # dpkg-deb -x keeps the setuid bit; the dynamic loader ignores
    # LD_LIBRARY_PATH in a setuid program, so the re-executions would not
    # find libidn.so.12.  The private copy does not need it: root starts
    # the daemon and every delivery runs as Debian-exim
    # (deliver_drop_privilege).
    st = os.stat(binary())
    if st.st_mode & 0o6000:
        os.chmod(binary(), st.st_mode & 0o1777)
    return None


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class EximError(RuntimeError):
    pass


def _is_ip(host):
    try:
        socket.inet_aton(host)
        return host.count(".") == 3
    except OSError:
        return False


DNS_ADDRESS = "127.0.0.153"     # any loopback address with port 53 free


class LoopbackDNS:
    """A name server for Exim's dnslookup router, on DNS_ADDRESS:53 (UDP),
    in a thread of this process; Exim's namespace gets a resolv.conf that
    names only it, so no query leaves the host.  It knows one thing: the MX
    of each domain in MX ({domain: host name}).  An A query is answered
    from /etc/hosts (read here, never resolved); every other name is
    NXDOMAIN.  A domain whose MX host is not in /etc/hosts is thus what a
    real MTA meets for a domain whose MX points to a name that does not
    exist."""

    def __init__(self, mx, address=DNS_ADDRESS):
        self.address = address
        self.mx = {d.lower().rstrip("."): h.lower().rstrip(".") for d, h in mx.items()}
        self.hosts = {}
        try:
            with open("/etc/hosts") as f:
                for line in f:
                    cols = line.split("#", 1)[0].split()
                    if len(cols) >= 2 and _is_ip(cols[0]):
                        for name in cols[1:]:
                            self.hosts.setdefault(name.lower().rstrip("."), cols[0])
        except OSError:
            pass
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((address, 53))
        except OSError as e:
            self.sock.close()
            raise EximError("private DNS: cannot bind %s:53: %s" % (address, e))
        self.sock.settimeout(0.2)
        self.queries = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _name(labels):
        return b"".join(bytes([len(x)]) + x for x in labels.split(b".") if x) + b"\0"

    def answer(self, query):
        """The reply to one query (bytes), or None for garbage."""
        if len(query) < 12:
            return None
        qid, flags, qd = struct.unpack("!HHH", query[:6])
        if flags & 0x8000 or qd != 1:
            return None
        i, labels = 12, []
        while i < len(query) and query[i]:
            n = query[i]
            if n & 0xc0:
                return None
            labels.append(query[i + 1:i + 1 + n])
            i += 1 + n
        if i + 5 > len(query):
            return None
        qtype, qclass = struct.unpack("!HH", query[i + 1:i + 5])
        question = query[12:i + 5]
        name = b".".join(labels).decode("ascii", "replace").lower()
        self.queries.append((name, qtype))
        answers = []
        if qclass == 1 and qtype == 15 and name in self.mx:         # MX
            rdata = struct.pack("!H", 10) + self._name(self.mx[name].encode())
            answers.append(rdata)
        elif qclass == 1 and qtype == 1 and name in self.hosts:     # A
            answers.append(socket.inet_aton(self.hosts[name]))
        exists = name in self.mx or name in self.hosts
        rcode = 0 if exists else 3                                  # NXDOMAIN
        out = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x7900) | 0x0080 | rcode,
                          1, len(answers), 0, 0) + question
        for rdata in answers:
            out += struct.pack("!HHHIH", 0xc00c, qtype, 1, 60, len(rdata)) + rdata
        return out

    def _serve(self):
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(query)
            if reply:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


class Exim:
    host = "127.0.0.1"
    subscriber_domain = SUBSCRIBER_DOMAIN
    bounce_domain = BOUNCE_DOMAIN

    def __init__(self, tmpdir, routes=None, users=("alice",), queue_lifetime="10s",
                 delay_warning=None, keep=False):
        why = available()
        if why:
            raise EximError(why)
        mtaroot.ensure_user(EXIM_USER, "/var/spool/exim4")
        tmpdir = os.path.abspath(tmpdir)
        os.chmod(tmpdir, os.stat(tmpdir).st_mode | 0o111)
        self.root = tempfile.mkdtemp(prefix="exim-", dir=tmpdir)
        os.chmod(self.root, 0o755)
        self.routes = dict(routes or {})
        self.users = tuple(users)
        self.queue_lifetime = queue_lifetime
        self.delay_warning = delay_warning
        self.keep = keep or bool(os.environ.get("HERALD_KEEP_MTA"))
        self.conf = os.path.join(self.root, "exim4.conf")
        self.spool = os.path.join(self.root, "spool")
        self.logdir = os.path.join(self.root, "log")
        self.log = os.path.join(self.logdir, "mainlog")
        self.mail = os.path.join(self.root, "mail")
        self.bounce_maildir = os.path.join(self.mail, "bounces") + "/"
        self.port = None
        self.pid = None
        self.proc = None
        self.dns = None
        # a route to an IP address: manualroute; to a host name: that name
        # is the domain's MX in the private DNS (LoopbackDNS), and the
        # domain is routed by dnslookup
        self.mx = {dom: target.rsplit(":", 1)[0] for dom, target in self.routes.items()
                   if target.rsplit(":", 1)[0] != "self" and
                   not _is_ip(target.rsplit(":", 1)[0])}
        self._stopped = False
        pw = pwd.getpwnam(EXIM_USER)
        for d in (self.spool, self.logdir, self.mail):
            os.mkdir(d, 0o750)
            os.chown(d, pw.pw_uid, pw.pw_gid)

    def maildir(self, user):
        return os.path.join(self.mail, SUBSCRIBER_DOMAIN, user) + "/"

    def _config(self):
        routes = {}
        for dom, target in self.routes.items():
            host, port = target.rsplit(":", 1)
            if host == "self":          # Exim's own listener: a mail loop
                host, port = "127.0.0.1", str(self.port)
            routes[dom] = (host, port)
        mxdomains = " : ".join(sorted(self.mx)) or "!*"
        with open(os.path.join(self.root, "hosts"), "w") as f:
            for dom, (host, port) in sorted(routes.items()):
                if dom not in self.mx:
                    f.write("%s: %s\n" % (dom, host))
        with open(os.path.join(self.root, "ports"), "w") as f:
            for dom, (host, port) in sorted(routes.items()):
                f.write("%s: %s\n" % (dom, port))
        relay = " : ".join(sorted(self.routes)) or "!*"
        users = " : ".join(self.users) or "!*"
        # a list: the last interval repeats; one warning, then none for an hour
        warn = "%s:1h" % self.delay_warning if self.delay_warning else "0s"
        return """# written by tests/tools/exim.py: a private test instance
primary_hostname = mta.herald.test
qualify_domain = herald.test
exim_user = {user}
exim_group = {user}
exim_path = {exim}
spool_directory = {spool}
log_file_path = {logdir}/%slog
pid_file_path = {root}/exim.pid
daemon_smtp_ports = {port}
local_interfaces = <; 127.0.0.1
disable_ipv6 = true
keep_environment = LD_LIBRARY_PATH
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
tls_advertise_hosts =
domainlist local_domains = {sub} : {bounce}
domainlist relay_to_domains = {relay}
hostlist relay_from_hosts = <; 127.0.0.0/8
acl_smtp_rcpt = acl_check_rcpt
delay_warning = {warn}
timeout_frozen_after = 1h
log_selector = +all -arguments
message_logs = false
deliver_drop_privilege = true

begin acl

acl_check_rcpt:
  accept  domains = +local_domains
  accept  domains = +relay_to_domains
          hosts   = +relay_from_hosts
  deny    message = relay not permitted

begin routers

bounces:
  driver = accept
  domains = {bounce}
  transport = bounce_maildir

subscribers:
  driver = accept
  domains = {sub}
  local_parts = {users}
  transport = user_maildir

unknown_user:
  driver = redirect
  domains = {sub}
  allow_fail
  data = :fail: Unknown user

remote_mx:
  driver = dnslookup
  domains = {mxdomains}
  self = send
  transport = remote_smtp
  no_more

remote:
  driver = manualroute
  domains = +relay_to_domains
  route_data = ${{lookup{{$domain}}lsearch{{{root}/hosts}}}} byname
  self = send
  host_find_failed = fail
  transport = remote_smtp

begin transports

remote_smtp:
  driver = smtp
  port = ${{lookup{{$domain}}lsearch{{{root}/ports}}}}
  allow_localhost
  hosts_avoid_tls = *
  connection_max_messages = 1
  connect_timeout = 5s

bounce_maildir:
  driver = appendfile
  directory = {mail}/bounces
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add
  user = {user}

user_maildir:
  driver = appendfile
  directory = {mail}/{sub}/$local_part
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add
  user = {user}

begin retry

*  *  F,{lifetime},1s

begin rewrite
""".format(user=EXIM_USER, exim=binary(), spool=self.spool, logdir=self.logdir,
           root=self.root, port=self.port, sub=SUBSCRIBER_DOMAIN, bounce=BOUNCE_DOMAIN,
           relay=relay, users=users, warn=warn, mail=self.mail,
           lifetime=self.queue_lifetime, mxdomains=mxdomains)

    def start(self):
        mtaroot.subreaper()
        self.dns = LoopbackDNS(self.mx)
        resolv = os.path.join(self.root, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("# herald test Exim: the private DNS of exim.py only\n"
                    "nameserver %s\noptions timeout:1 attempts:1\n" % self.dns.address)
        last = ""
        for _ in range(5):
            self.port = _free_port()
            with open(self.conf, "w") as f:
                f.write(self._config())
            argv = mtaroot.isolated([binary(), "-C", self.conf, "-bdf", "-q1s"],
                                    os.path.join(self.root, "etc"),
                                    [(resolv, "/etc/resolv.conf")])
            err = open(os.path.join(self.root, "daemon.stderr"), "wb")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=err, env=mtaroot.env(), cwd=self.root)
            err.close()
            self.pid = self.proc.pid
            try:
                self._wait_listening(30)
                return self
            except EximError as e:
                last = str(e)
                self._stop_processes()
                if "Address already in use" not in last:
                    break
        self.stop()
        raise EximError("exim did not start:\n%s" % last)

    def _wait_listening(self, timeout):
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise EximError("exim exited %s\n%s%s" % (
                    self.proc.returncode, self._stderr(), self.log_tail()))
            try:
                with socket.create_connection((self.host, self.port), 2) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise EximError("no SMTP greeting on %s:%d after %d s\n%s%s" % (
                    self.host, self.port, timeout, self._stderr(), self.log_tail()))
            time.sleep(0.05)

    def _stderr(self):
        try:
            with open(os.path.join(self.root, "daemon.stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def processes(self):
        return mtaroot.processes(self.conf.encode(), [self.pid])

    def _stop_processes(self):
        import signal
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
        try:
            self._stop_processes()
            if self.dns:
                self.dns.stop()
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, n=40):
        return mtaroot.log_tail(self.log, n)

    def wait_for_mail(self, maildir, n, timeout=30):
        return mtaroot.wait_for_files(os.path.join(maildir, "new"), n, timeout,
                                      self.log_tail())

    def wait_for_bounces(self, n, timeout=30):
        return self.wait_for_mail(self.bounce_maildir, n, timeout)

    def queue(self):
        p = subprocess.run([binary(), "-C", self.conf, "-bp"], capture_output=True,
                           env=mtaroot.env(), timeout=60)
        return p.stdout.decode("utf-8", "replace")


def start(tmpdir, **options):
    ex = Exim(tmpdir, **options)
    try:
        return ex.start()
    except BaseException:
        ex.stop()
        raise


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="parent directory (kept)")
    a = ap.parse_args()
    why = available()
    if why:
        print("exim.py: %s" % why, file=sys.stderr)
        return 77
    parent = a.dir or tempfile.mkdtemp(prefix="herald-exim-")
    ex = start(parent, keep=a.dir is not None)
    try:
        print("exim on %s:%d, config %s, log %s, bounces %s; ^C to stop" % (
            ex.host, ex.port, ex.conf, ex.log, ex.bounce_maildir))
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    finally:
        ex.stop()
        if not a.dir:
            shutil.rmtree(parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
