#!/usr/bin/python3
"""bounce_split.py - which part of the bounce corpus a file belongs to.

The classifier's rules are tuned on one part of ../shared/bounces and
measured on another that nobody looks at while writing rules.  The rule,
kept here and nowhere else:

    a file is HELD OUT when the first byte of
        sha256("herald-split-1:" + base name, without any "dos/" prefix)
    is < 86 (86/256, about one third); otherwise it is in the TUNE part.

Only the base name counts, so a dos/ CRLF twin falls in the same part as
its LF original.  The rule depends on nothing but the name: adding or
removing files never moves another file between parts.

As a module:   import bounce_split; bounce_split.part_of("lhost-exim-01.eml")
               -> "tune" or "heldout"; bounce_split.in_part(name, "tune"|"heldout"|"all")
As a command:  bench/bounce_split.py CORPUS
                   prints the files (*.eml, dos/*.eml) and expected.tsv rows per part
               bench/bounce_split.py --list PART CORPUS [--null]
                   prints that part's file names relative to CORPUS, one a line
                   (NUL-terminated with --null), sorted, for scripts
"""
import argparse
import hashlib
import os
import signal
import sys

SALT = "herald-split-1:"
HELDOUT_BELOW = 86          # first sha256 byte < 86 -> held out (86/256 = 33.6 %)
PARTS = ("tune", "heldout", "all")


def base_name(name):
    """'dos/x.eml' -> 'x.eml' (any number of leading dos/ prefixes)."""
    while name.startswith("dos/"):
        name = name[4:]
    return name


def part_of(name):
    """'heldout' or 'tune' for a corpus file name (as in expected.tsv)."""
    digest = hashlib.sha256((SALT + base_name(name)).encode("utf-8")).digest()
    return "heldout" if digest[0] < HELDOUT_BELOW else "tune"


def in_part(name, part):
    if part == "all":
        return True
    if part not in ("tune", "heldout"):
        raise ValueError("part must be tune, heldout or all, not %r" % part)
    return part_of(name) == part


def corpus_files(corpus):
    """*.eml and dos/*.eml of the corpus, relative names, sorted."""
    out = []
    for sub in ("", "dos/"):
        d = os.path.join(corpus, sub)
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            if n.endswith(".eml") and os.path.isfile(os.path.join(d, n)):
                out.append(sub + n)
    return out


def expected_rows(corpus):
    """[(file, row...)] of CORPUS/expected.tsv, header skipped."""
    rows = []
    path = os.path.join(corpus, "expected.tsv")
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            line = line.rstrip("\n")
            if not line or (i == 0 and line.startswith("file\t")):
                continue
            rows.append(line.split("\t"))
    return rows


def main():
    ap = argparse.ArgumentParser(description="the tune / held-out split of the bounce corpus")
    ap.add_argument("--list", choices=PARTS, help="print this part's file names")
    ap.add_argument("--null", action="store_true", help="with --list: NUL-terminate names")
    ap.add_argument("corpus")
    a = ap.parse_args()

    files = corpus_files(a.corpus)
    if a.list:
        end = "\0" if a.null else "\n"
        for n in files:
            if in_part(n, a.list):
                sys.stdout.write(n + end)
        return 0

    rows = expected_rows(a.corpus)
    print("split: sha256(%r + base name)[0] < %d -> heldout" % (SALT, HELDOUT_BELOW))
    print("%-8s %6s %6s %6s %14s %6s" % ("part", "files", "LF", "dos/", "files w/ rows", "rows"))
    for part in PARTS:
        fs = [n for n in files if in_part(n, part)]
        dos = sum(1 for n in fs if n.startswith("dos/"))
        rs = [r for r in rows if in_part(r[0], part)]
        print("%-8s %6d %6d %6d %14d %6d" % (part, len(fs), len(fs) - dos, dos,
                                             len(set(r[0] for r in rs)), len(rs)))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
