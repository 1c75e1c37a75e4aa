"""mtadsns.py - shared by test_mta_dsns.py and test_mta_dsns_live.py: the
real-MTA fixtures' expected.tsv, herald's verdicts on DSN files, and the
comparison of the two."""
import json
import os
import shlex
import subprocess

from harness import HERALD, SOURCE_DIR, check

DATA = os.path.join(SOURCE_DIR, "tests", "data", "bounces", "mta")
EXPECTED = os.path.join(DATA, "expected.tsv")


def expected_rows():
    rows = []
    with open(EXPECTED) as f:
        header = f.readline().rstrip("\n").split("\t")
        check(header == ["file", "recipient", "action", "status", "class", "reason"],
              "expected.tsv header %s", header)
        for n, line in enumerate(f, 2):
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            check(len(cols) == 6, "expected.tsv line %d: %d columns", n, len(cols))
            rows.append(dict(zip(header, cols)))
    check(rows, "expected.tsv has no rows")
    return rows


def explain(paths):
    """{(basename, recipient lowercased): JSON line} from one run of
    `herald bounce --explain FILE...` (one JSON line per recipient)."""
    wrap = shlex.split(os.environ.get("HERALD_WRAPPER", ""))
    cmd = wrap + [HERALD, "bounce", "--explain"] + paths
    p = subprocess.run(cmd, capture_output=True, timeout=600)
    check(p.returncode == 0, "herald %s: exit %d\n%s", " ".join(cmd[-3:]), p.returncode,
          p.stderr.decode("utf-8", "replace"))
    out = {}
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        o = json.loads(line)
        out[(os.path.basename(o["file"]), o["recipient"].lower())] = o
    return out


def compare(rows, got, name_of=lambda r: r["file"]):
    """Mismatch lines for ROWS against herald's GOT."""
    bad = []
    for r in rows:
        o = got.get((name_of(r), r["recipient"].lower()))
        if o is None:
            files = sorted({"%s" % x.get("recipient") for (f, _), x in got.items()
                            if f == name_of(r)})
            bad.append("%s %s: herald names no such recipient (it saw %s)" % (
                r["file"], r["recipient"], files))
            continue
        if (o["class"], o["reason"]) != (r["class"], r["reason"]):
            bad.append("%s %s: herald %s/%s, expected %s/%s (status %s; why: %s)" % (
                r["file"], r["recipient"], o["class"], o["reason"], r["class"],
                r["reason"], o.get("status"), o.get("why", "-")))
    return bad
