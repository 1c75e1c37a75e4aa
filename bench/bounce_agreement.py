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
"""
import argparse
import collections
import json
import signal
import sys


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expected", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--seconds", type=float, default=0.0)
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--misses-only", action="store_true")
    ap.add_argument("--json", action="store_true")
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
            if o.get("recipient", "") == "" and o.get("reason") == "undefined" \
                    and o.get("class") == "none":
                got.setdefault(o["file"], [])
                continue
            got[o["file"]].append(o)

    rows = found = cls_ok = rsn_ok = 0
    misses = collections.defaultdict(list)
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
                misses[w["reason"]].append(
                    "%-40s %-34s %s/%s -> %s %s/%s%s" % (
                        fn, w["recipient"][:34], w["reason"], ec,
                        (match.get("recipient", "")[:30] + " ") if match and not rfound else
                        ("(not found) " if not match else ""),
                        hr, hc,
                        "  [%s] %s" % (match.get("shape", ""), match.get("diagnostic", "")[:90])
                        if match else ""))

    def pct(x):
        return 100.0 * x / rows if rows else 0.0

    if not a.misses_only:
        print("corpus rows (expected recipients): %d in %d files" % (rows, len(exp)))
        print("recipient found: %6.2f %%  (%d/%d)" % (pct(found), found, rows))
        print("class:           %6.2f %%  (%d/%d)" % (pct(cls_ok), cls_ok, rows))
        print("reason:          %6.2f %%  (%d/%d)" % (pct(rsn_ok), rsn_ok, rows))
        if a.messages and a.seconds > 0:
            print("time:            %.3f s for %d messages (%.2f ms/message, %.0f messages/s, %.1f MB/s)"
                  % (a.seconds, a.messages, 1000.0 * a.seconds / a.messages,
                     a.messages / a.seconds, a.bytes / a.seconds / 1e6))
    n_miss = sum(len(v) for v in misses.values())
    print("misses: %d rows" % n_miss)
    for reason in sorted(misses, key=lambda r: (-len(misses[r]), r)):
        print("  %s (%d)" % (reason, len(misses[reason])))
        for m in misses[reason]:
            print("    " + m)
    if a.json:
        print(json.dumps({"rows": rows, "recipient_pct": round(pct(found), 2),
                          "class_pct": round(pct(cls_ok), 2), "reason_pct": round(pct(rsn_ok), 2),
                          "messages": a.messages, "seconds": round(a.seconds, 4),
                          "ms_per_message": round(1000.0 * a.seconds / a.messages, 3)
                          if a.messages else None}))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` is fine
    sys.exit(main())
