#!/usr/bin/python3
"""sequence_share.py - how `herald run` shares a relay between a campaign
and a sequence backlog (sequence.h (6)): prints, per second, how many
messages of each the loopback SMTP server (tests/tools/smtpd.py) took, and
the rates while both had mail.

    bench/sequence_share.py [--backlog N] [--campaign N] [--rate R] [--max-time S]

Defaults: a 20,000-subscriber backlog, a campaign of 2,000, a relay paced
at 200 messages/s, a run of 20 s.  Uses $HERALD_BIN (default build/herald).
It is a benchmark, not a test: tests/integration/test_sequence.py checks
the same thing, smaller, with pass/fail limits.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import test_sequence as T  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=20000)
    ap.add_argument("--campaign", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--max-time", type=int, default=20)
    a = ap.parse_args()
    with T.world(rate=a.rate) as w:
        f = T.rate_share(w, a.backlog, a.campaign, a.max_time)
    print("second  campaign  sequence")
    for s, c, q in f["per_second"]:
        print("%6d  %8d  %8d" % (s, c, q))
    both = f["campaign_rate"] + f["sequence_rate_in_window"]
    print("relay rate %d/s; while both had mail (%.1f s): campaign %.0f/s (%.0f%%), "
          "sequence %.0f/s (%.0f%%); campaign %d sent, sequence %d sent, run %.1f s"
          % (a.rate, f["campaign_s"], f["campaign_rate"], 100 * f["campaign_rate"] / both,
             f["sequence_rate_in_window"], 100 * f["sequence_rate_in_window"] / both,
             f["campaign"], f["sequence_total"], f["run_s"]))


if __name__ == "__main__":
    main()
