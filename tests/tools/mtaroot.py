#!/usr/bin/python3
"""mtaroot.py - run an MTA that Debian will not let us install.

Every Debian MTA package provides (and conflicts on) mail-transport-agent,
and Postfix is installed for herald's tests; so Exim, OpenSMTPD and
Sendmail cannot be installed next to it.  They do not need to be: their
daemons run fine from a private prefix.  ensure(packages) fetches each
package with the ordinary client (`apt-get download`, from Debian's archive)
into $HERALD_MTA_CACHE (default /var/cache/herald-mta)/debs and unpacks it
with `dpkg-deb -x` into .../root - no maintainer script runs, nothing is
registered with dpkg, nothing lands in /usr or /etc.  The libraries the
daemons need that are not installed (libidn12 for Exim, say) are unpacked
the same way and found through LD_LIBRARY_PATH=root/usr/lib/<triplet>.

What the maintainer scripts would have done and the daemons cannot do
without: the system users they run as (Debian-exim; opensmtpd and
opensmtpq) - ensure_user() creates a missing one exactly as the package's
postinst does (adduser --system ...).  Nothing else outside the cache and
the caller's temporary directory is created.

isolated(argv, root): the daemon is started in a private mount namespace
(unshare -m) where /etc/nsswitch.conf says "hosts: files" and
/etc/resolv.conf names no reachable server ("nameserver 127.0.0.1" and
OpenBSD's "lookup file" for OpenSMTPD's libasr): a name that /etc/hosts
lacks fails at once ("host not found") and no DNS query ever leaves the
host.  The daemon and everything it forks stay in that namespace; they are
still ordinary processes of this PID namespace, stopped by PID.  Needs root
(CAP_SYS_ADMIN), which the MTAs need anyway.
"""
import glob
import grp
import os
import pwd
import shutil
import subprocess

CACHE = os.environ.get("HERALD_MTA_CACHE", "/var/cache/herald-mta")
ROOT = os.path.join(CACHE, "root")
DEBS = os.path.join(CACHE, "debs")
UNSHARE = "/usr/bin/unshare"


def libdirs():
    return ":".join(d for d in glob.glob(os.path.join(ROOT, "usr", "lib", "*-linux-gnu")) +
                    glob.glob(os.path.join(ROOT, "lib", "*-linux-gnu")) if os.path.isdir(d))


def env(extra=None):
    """The environment for a binary under ROOT."""
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C",
         "LD_LIBRARY_PATH": libdirs()}
    if extra:
        e.update(extra)
    return e


def _stamp(pkg):
    return os.path.join(CACHE, "stamps", pkg)


def ensure(packages):
    """Download and unpack each package not unpacked yet; return ROOT.
    RuntimeError with apt-get's words when one cannot be had."""
    missing = [p for p in packages if not os.path.exists(_stamp(p))]
    if not missing:
        return ROOT
    if os.geteuid() != 0:
        raise RuntimeError("unpacking %s into %s needs root" % (" ".join(missing), CACHE))
    for d in (DEBS, ROOT, os.path.join(CACHE, "stamps")):
        os.makedirs(d, exist_ok=True)
    os.chmod(CACHE, 0o755)
    for pkg in missing:
        debs = glob.glob(os.path.join(DEBS, "%s_*.deb" % pkg))
        if not debs:
            # apt's sandbox user cannot write to root's directories: the
            # warning about it is harmless, the download still happens
            p = subprocess.run(["apt-get", "download", "-q", pkg], cwd=DEBS,
                               capture_output=True, text=True, timeout=300)
            debs = glob.glob(os.path.join(DEBS, "%s_*.deb" % pkg))
            if p.returncode != 0 or not debs:
                raise RuntimeError("apt-get download %s failed: %s" % (pkg, p.stderr.strip()))
        p = subprocess.run(["dpkg-deb", "-x", sorted(debs)[-1], ROOT],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError("dpkg-deb -x %s: %s" % (debs[-1], p.stderr.strip()))
        with open(_stamp(pkg), "w") as f:
            f.write(os.path.basename(sorted(debs)[-1]) + "\n")
    return ROOT


def ensure_user(name, home, group=None, gecos=None):
    """Create the system user (and its group) the package's postinst would
    create, when missing.  group None: a group of the user's name."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    if group:
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(["addgroup", "--system", "--quiet", group], check=True,
                           capture_output=True)
        cmd = ["adduser", "--system", "--quiet", "--home", home, "--no-create-home",
               "--disabled-password", "--ingroup", group, "--force-badname", name]
    else:
        cmd = ["adduser", "--system", "--group", "--quiet", "--home", home,
               "--no-create-home", "--disabled-login", "--force-badname", name]
    if gecos:
        cmd[2:2] = ["--gecos", gecos]
    subprocess.run(cmd, check=True, capture_output=True)


def check_common():
    """Why isolated() cannot work here, or None."""
    if os.geteuid() != 0:
        return "the MTA must be started as root"
    if not os.access(UNSHARE, os.X_OK):
        return "%s is missing (util-linux)" % UNSHARE
    p = subprocess.run([UNSHARE, "-m", "--propagation", "private", "true"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "no private mount namespace here (unshare -m: %s)" % p.stderr.strip()
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            return "%s is missing" % tool
    return None


def write_name_service(directory):
    """The files isolated() mounts over /etc: no DNS, /etc/hosts only."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "nsswitch.conf"), "w") as f:
        f.write("# herald test MTA: /etc/hosts only, never DNS\n"
                "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
                "networks: files\nservices: files\nprotocols: files\n")
    with open(os.path.join(directory, "resolv.conf"), "w") as f:
        # glibc would ask 127.0.0.1:53 (nothing there; and hosts: files
        # keeps it from asking at all); OpenSMTPD's libasr reads "lookup":
        # file only
        f.write("# herald test MTA: no name server\nnameserver 127.0.0.1\n"
                "lookup file\noptions timeout:1 attempts:1\n")
    return directory


def isolated(argv, directory, extra_mounts=()):
    """argv wrapped to run in a private mount namespace with the name
    service files of write_name_service(directory) over /etc's, plus
    (source, target) bind mounts of extra_mounts."""
    write_name_service(directory)
    mounts = [(os.path.join(directory, "nsswitch.conf"), "/etc/nsswitch.conf"),
              (os.path.join(directory, "resolv.conf"), "/etc/resolv.conf")]
    mounts += list(extra_mounts)
    script = "set -e\n"
    for src, dst in mounts:
        script += "mount --bind '%s' '%s'\n" % (src.replace("'", ""), dst.replace("'", ""))
    script += 'exec "$@"\n'
    return [UNSHARE, "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh"] + list(argv)


# -- processes ------------------------------------------------------------

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def ppid(pid):
    stat = _read("/proc/%d/stat" % pid)
    try:
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (ValueError, IndexError):
        return None


def alive(pid):
    stat = _read("/proc/%d/stat" % pid)
    if not stat:
        return False
    return stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] != b"Z"


def subreaper():
    """Become the reaper of orphaned descendants (daemons that fork and
    exit), so they do not stay zombies under a container's PID 1."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)      # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def processes(marker, roots=()):
    """PIDs of live processes whose command line or environment holds
    MARKER (bytes: an instance's private directory), the PIDs in ROOTS,
    and all their descendants.  Never a bare PID from a file."""
    mine = set(p for p in roots if p and alive(p))
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == os.getpid() or not alive(pid):
            continue
        parents[pid] = ppid(pid)
        if marker in _read("/proc/%d/cmdline" % pid) or \
                marker in _read("/proc/%d/environ" % pid):
            mine.add(pid)
    grew = True
    while grew:
        grew = False
        for pid, pp in parents.items():
            if pp in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return mine


def stop_processes(find, first_signal=None, grace=10):
    """Signal what find() returns until nothing is left: first_signal (or
    nothing) and `grace` seconds, then SIGTERM, then SIGKILL, each by PID;
    reaps the ones that are our children.  RuntimeError if some survive."""
    import signal
    import time
    known = set()
    for sig, wait in ((first_signal, grace), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        pids = find() | {p for p in known if alive(p)}
        known |= pids
        if sig:
            for p in pids:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
        deadline = time.time() + wait
        while pids and time.time() < deadline:
            time.sleep(0.05)
            for p in list(pids):
                try:
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
            pids = {p for p in pids if alive(p)} | find()
            known |= pids
        if not pids:
            return
    raise RuntimeError("processes %s survive SIGKILL" % sorted(pids))


def log_tail(path, n=40):
    """The last n lines of an MTA's log file, for an error message ("" when
    it cannot be read)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "--- %s (last %d lines)\n%s\n" % (path, n, "\n".join(lines[-n:]))


def wait_for_files(directory, n, timeout, what=""):
    """The first n files in DIRECTORY (oldest first by mtime, then name);
    TimeoutError when fewer arrive in time."""
    import time
    deadline = time.time() + timeout
    while True:
        try:
            names = [x for x in os.listdir(directory) if not x.startswith(".")]
        except FileNotFoundError:
            names = []
        if len(names) >= n:
            paths = [os.path.join(directory, x) for x in names]
            paths.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))
            return paths[:n]
        if time.time() > deadline:
            raise TimeoutError("%d of %d messages in %s after %.0f s\n%s" % (
                len(names), n, directory, timeout, what))
        time.sleep(0.1)
