#!/usr/bin/python3
"""test_package.py - the Debian package `cpack -G DEB` makes (CMakeLists.txt,
contrib/): built from the build directory of the binary under test, its
control file names the shared libraries' packages (dpkg-shlibdeps) and
adduser, it holds the binary, the man page, the bash completion, the
example config, the migrations and the three systemd units, its postinst
is valid sh and makes the herald user; unpacked into an empty root
(dpkg-deb -x), the binary runs and says its version.  Skips when cpack,
dpkg-shlibdeps or file(1) (which CPack's shlibdeps step runs) is missing;
scripts/deps.sh test installs them.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, SKIP, check, run_tests  # noqa: E402

BUILD = os.path.dirname(os.path.abspath(HERALD))
for tool, pkg in (("cpack", "cmake"), ("dpkg-shlibdeps", "dpkg-dev"), ("dpkg-deb", "dpkg"),
                  ("file", "file")):
    if not shutil.which(tool):
        print("SKIP: %s is missing (apt-get install %s)" % (tool, pkg))
        sys.exit(SKIP)
if not os.path.exists(os.path.join(BUILD, "CPackConfig.cmake")):
    print("SKIP: %s has no CPackConfig.cmake" % BUILD)
    sys.exit(SKIP)


def run(*cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    check(p.returncode == 0, "%s: exit %d\n%s%s", " ".join(cmd), p.returncode, p.stdout[-2000:],
          p.stderr[-2000:])
    return p.stdout


def test_deb_installs_and_runs():
    with tempfile.TemporaryDirectory(prefix="herald-deb-") as tmp:
        run("cpack", "-G", "DEB", "-B", tmp, "--config",
            os.path.join(BUILD, "CPackConfig.cmake"))
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        check(len(debs) == 1, "packages: %s", debs)
        deb = os.path.join(tmp, debs[0])
        info = run("dpkg-deb", "-f", deb, "Package", "Version", "Depends")
        check("Package: herald" in info, "control: %s", info)
        depends = re.search(r"^Depends: (.*)$", info, re.M).group(1)
        for lib in ("adduser", "tzdata", "libc6", "libcurl4", "libsqlite3-0", "libcmark", "libssl3",
                    "libmicrohttpd12", "libjansson4"):
            check(lib in depends, "Depends lacks %s: %s", lib, depends)
        files = run("dpkg-deb", "-c", deb)
        for path in ("./usr/bin/herald", "./usr/share/man/man1/herald.1",
                     "./usr/share/bash-completion/completions/herald",
                     "./usr/share/herald/herald.conf.example",
                     "./usr/share/herald/sql/001_init.sql",
                     "./usr/lib/systemd/system/herald-serve.service",
                     "./usr/lib/systemd/system/herald-run.service",
                     "./usr/lib/systemd/system/herald-run.timer"):
            check(re.search(r" %s$" % re.escape(path), files, re.M), "the .deb lacks %s", path)
        ctl = os.path.join(tmp, "control")
        run("dpkg-deb", "-e", deb, ctl)
        postinst = open(os.path.join(ctl, "postinst")).read()
        run("sh", "-n", os.path.join(ctl, "postinst"))
        check("adduser --system" in postinst and "herald" in postinst and
              "db migrate" in postinst, "postinst: %s",
              postinst)
        root = os.path.join(tmp, "root")
        run("dpkg-deb", "-x", deb, root)
        out = run(os.path.join(root, "usr", "bin", "herald"), "--version")
        check(re.fullmatch(r"herald \d+\.\d+\.\d+\n", out), "--version: %r", out)


if __name__ == "__main__":
    run_tests([("deb_installs_and_runs", test_deb_installs_and_runs)])
