#!/usr/bin/python3
"""bounce_agreement.py - compare `herald bounce --explain` with sisimai's verdicts.

Reads expected.tsv (file, recipient, status, reason, hardbounce; one row per
recipient, in sisimai's order: sisimai 5.1's own test tables, kept where
sisimai's run on the file agrees with them) and herald's JSON lines
(one per recipient: file, recipient, status, reason, class, ...), then prints:

  recipient found  the expected recipient appears among herald's lines for
                   that file (addresses compared case-insensitively)
  class            hard / soft / complaint / autoreply agree; expected class:
                   reason feedback -> complaint, vacation -> autoreply,
                   hardbounce yes -> hard, otherwise soft.  herald's
                   "delayed" counts as soft (sisimai gives a delayed notice
                   a soft reason such as expired).
  reason           the reason strings are equal

All three are over every expected row.  When the recipient is not found but
herald has as many lines for the file as expected, class and reason are
compared with herald's line at the same position (an address read slightly
differently should not hide a right reason); otherwise the row is a miss
on all three.  The misses are listed grouped by expected reason, with the
file, the expected and the found values.

Parts (bench/bounce_split.py holds the rule): --part tune|heldout|all
keeps only that part's expected rows and herald lines (default all).  The
held-out part is for measuring, not for reading: its misses are never
printed (neither for --part heldout nor, with --part all, the held-out
files among all misses; only their count) unless --show-heldout-misses is
given.  --part tune prints its misses as before.  With --part all the
summary also has a line per part, and --json the same figures per part.
"""
import argparse
import collections
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bounce_split  # noqa: E402  (the one place the split rule lives)


def expected_class(reason, hard):
    if reason == "feedback":
        return "complaint"
    if reason == "vacation":
        return "autoreply"
    if reason == "delivered":
        return "delivered"
    return "hard" if hard == "yes" else "soft"


def herald_class(c):
    return "soft" if c == "delayed" else c


def compare(exp, got):
    """Figures and misses of herald's lines `got` against the rows `exp`."""
    rows = found = cls_ok = rsn_ok = 0
    misses = []                     # (expected reason, file, line)
    for fn, want in exp.items():
        have = got.get(fn, [])
        for i, w in enumerate(want):
            rows += 1
            match = None
            for h in have:
                if h.get("recipient", "").lower() == w["recipient"].lower():
                    match = h
                    break
            rfound = match is not None
            if match is None and len(have) == len(want):
                match = have[i]
            found += rfound
            ec = expected_class(w["reason"], w["hard"])
            hc = herald_class(match["class"]) if match else "-"
            hr = match["reason"] if match else "-"
            cls_ok += ec == hc
            rsn_ok += w["reason"] == hr
            if not rfound or ec != hc or w["reason"] != hr:
                misses.append((w["reason"], fn,
                    "%-40s %-34s %s/%s -> %s %s/%s%s" % (
                        fn, w["recipient"][:34], w["reason"], ec,
                        (match.get("recipient", "")[:30] + " ") if match and not rfound else
                        ("(not found) " if not match else ""),
                        hr, hc,
                        "  [%s] %s" % (match.get("shape", ""), match.get("diagnostic", "")[:90])
                        if match else "")))
    return {"rows": rows, "files": len(exp), "found": found, "class": cls_ok,
            "reason": rsn_ok, "misses": misses}


def pct(x, n):
    return 100.0 * x / n if n else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expected", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--seconds", type=float, default=0.0)
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--misses-only", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--part", choices=bounce_split.PARTS, default="all",
                    help="compare only this part of the corpus (bench/bounce_split.py)")
    ap.add_argument("--show-heldout-misses", action="store_true",
                    help="also list the misses of held-out files (not while writing rules)")
    a = ap.parse_args()

    exp = collections.OrderedDict()
    with open(a.expected, encoding="utf-8") as f:
        header = f.readline()
        if not header.startswith("file\t"):
            f.seek(0)
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            cols = line.split("\t")
            while len(cols) < 5:
                cols.append("")
            if not bounce_split.in_part(cols[0], a.part):
                continue
            exp.setdefault(cols[0], []).append(
                {"recipient": cols[1], "status": cols[2], "reason": cols[3], "hard": cols[4]})

    got = collections.defaultdict(list)
    with open(a.output, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except ValueError:
                print("bounce_agreement: not JSON: %r" % line[:200], file=sys.stderr)
                return 1
            if not bounce_split.in_part(o.get("file", ""), a.part):
                continue
            if o.get("recipient", "") == "" and o.get("reason") == "undefined" \
                    and o.get("class") == "none":
                got.setdefault(o["file"], [])
                continue
            got[o["file"]].append(o)

    r = compare(exp, got)
    rows = r["rows"]
    per_part = {}
    if a.part == "all":
        for part in ("tune", "heldout"):
            sub = collections.OrderedDict((fn, w) for fn, w in exp.items()
                                          if bounce_split.part_of(fn) == part)
            per_part[part] = compare(sub, got)

    def summary_line(name, x):
        n = x["rows"]
        return ("  %-8s %4d rows in %3d files: recipient %6.2f %%  class %6.2f %%  reason %6.2f %%"
                "  (%d/%d/%d)" % (name, n, x["files"], pct(x["found"], n), pct(x["class"], n),
                                  pct(x["reason"], n), x["found"], x["class"], x["reason"]))

    if not a.misses_only:
        print("part: %s  (bench/bounce_split.py: held out when sha256(%r + name)[0] < %d)"
              % (a.part, bounce_split.SALT, bounce_split.HELDOUT_BELOW))
        print("corpus rows (expected recipients): %d in %d files" % (rows, len(exp)))
        print("recipient found: %6.2f %%  (%d/%d)" % (pct(r["found"], rows), r["found"], rows))
        print("class:           %6.2f %%  (%d/%d)" % (pct(r["class"], rows), r["class"], rows))
        print("reason:          %6.2f %%  (%d/%d)" % (pct(r["reason"], rows), r["reason"], rows))
        if per_part:
            print("per part:")
            for part in ("tune", "heldout"):
                print(summary_line(part, per_part[part]))
        if a.messages and a.seconds > 0:
            print("time:            %.3f s for %d messages (%.2f ms/message, %.0f messages/s, %.1f MB/s)"
                  % (a.seconds, a.messages, 1000.0 * a.seconds / a.messages,
                     a.messages / a.seconds, a.bytes / a.seconds / 1e6))

    shown = [m for m in r["misses"]
             if a.show_heldout_misses or bounce_split.part_of(m[1]) != "heldout"]
    hidden = len(r["misses"]) - len(shown)
    print("misses: %d rows" % len(r["misses"]))
    if hidden:
        print("  %d of them in held-out files, not shown (the held-out part is for measuring;"
              " --show-heldout-misses lists them)" % hidden)
    groups = collections.defaultdict(list)
    for reason, _fn, text in shown:
        groups[reason].append(text)
    for reason in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        print("  %s (%d)" % (reason, len(groups[reason])))
        for m in groups[reason]:
            print("    " + m)

    if a.json:
        def figures(x):
            n = x["rows"]
            return {"rows": n, "files": x["files"],
                    "recipient_pct": round(pct(x["found"], n), 2),
                    "class_pct": round(pct(x["class"], n), 2),
                    "reason_pct": round(pct(x["reason"], n), 2),
                    "misses": len(x["misses"])}
        j = {"part": a.part}
        j.update(figures(r))
        j.update({"messages": a.messages, "seconds": round(a.seconds, 4),
                  "ms_per_message": round(1000.0 * a.seconds / a.messages, 3)
                  if a.messages else None})
        if per_part:
            j["parts"] = {p: figures(x) for p, x in per_part.items()}
        print(json.dumps(j))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` is fine
    sys.exit(main())
