#!/usr/bin/python3
"""test_manpage.py - the man page herald(1) and `--help` say the same.

docs/herald.1.scd (scdoc's source, turned into troff at build time):
  - every command `herald --help` lists has its section ("## CMD"), and
    every usage line of `herald CMD --help` is in it word for word;
  - every "herald ..." line of its COMMANDS section is a usage line of some
    command's --help (nothing documented that the binary does not take);
  - the troff page was built next to the binary (build/herald.1), has the
    title line and the sections; when man(1) is installed it renders it.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, SOURCE_DIR, check, run_tests  # noqa: E402

SCD = os.path.join(SOURCE_DIR, "docs", "herald.1.scd")


def helps():
    out = subprocess.run([HERALD, "--help"], capture_output=True, text=True).stdout
    cmds = re.findall(r"^  ([a-z]+) ", out.split("commands:", 1)[1], re.M)
    check(len(cmds) >= 10, "commands in --help: %s", cmds)
    usage = {}
    for c in cmds:
        text = subprocess.run([HERALD, c, "--help"], capture_output=True, text=True).stdout
        lines = []
        for line in text.splitlines():
            if line.startswith("usage: "):
                lines.append(line[len("usage: "):].strip())
            elif line.startswith("       herald "):
                lines.append(line.strip())
        check(lines, "%s --help has no usage line", c)
        usage[c] = lines
    return usage


def test_every_usage_line_is_in_the_page():
    usage = helps()
    scd = open(SCD).read()
    page_lines = {l.strip() for l in scd.splitlines()}
    for c, lines in usage.items():
        check("\n## %s\n" % c in scd, "the man page has no section for %s", c)
        for l in lines:
            check(l in page_lines, "the man page lacks '%s'", l)
    commands = scd.split("# COMMANDS", 1)[1].split("# EXIT STATUS", 1)[0]
    known = {l for ls in usage.values() for l in ls}
    for l in commands.splitlines():
        if l.startswith("herald "):
            check(l.strip() in known, "the man page documents '%s', which no --help says", l)


def test_troff_built_and_renders():
    page = os.path.join(os.path.dirname(os.path.abspath(HERALD)), "herald.1")
    check(os.path.exists(page), "%s was not built (scdoc)", page)
    troff = open(page).read()
    check(re.search(r'^\.TH "herald" "1"', troff, re.M), "no .TH line: %r", troff[:200])
    for sect in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS"):
        check('.SH %s' % sect in troff, "no section %s", sect)
    if shutil.which("man"):
        out = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                             env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0"))
        check(out.returncode == 0 and "herald webhook add URL" in out.stdout,
              "man -l: %d %s", out.returncode, out.stderr[:300])


if __name__ == "__main__":
    run_tests([
        ("every_usage_line_is_in_the_page", test_every_usage_line_is_in_the_page),
        ("troff_built_and_renders", test_troff_built_and_renders),
    ])
