#!/usr/bin/python3
"""segment_attrs.py - widen bench/gen_subscribers.py's CSV to ten attributes
for the segment benchmark (bench/segment.sh).

Reads `email,name,organisation,role` rows on stdin and writes them to
stdout with eight more columns: region, team, sector, county, interest
(text), grade and years (numbers as text, some "unknown") and joined (a
date, some with a time).  About one cell in twenty is left blank (herald
stores no attribute for a blank cell).  Deterministic for a given --seed.

    bench/gen_subscribers.py 1000000 | bench/segment_attrs.py > subs.csv
"""
import argparse
import csv
import random
import sys

REGIONS = ["London", "South East", "South West", "North West", "North East",
           "Yorkshire", "East Midlands", "West Midlands", "East", "Wales",
           "Scotland", "Northern Ireland"]
TEAMS = ["Assessment", "Children in care", "Fostering", "Adoption",
         "Leaving care", "Early help", "Safeguarding", "Disabled children"]
SECTORS = ["Local authority", "Voluntary", "Health", "Education", "Research",
           "Private"]
COUNTIES = ["Kent", "Essex", "Surrey", "Devon", "Cumbria", "Norfolk",
            "Lancashire", "Somerset", "Durham", "Gwynedd"]
INTERESTS = ["practice", "research", "policy", "training", "events"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=16)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    rd = csv.reader(sys.stdin)
    wr = csv.writer(sys.stdout, lineterminator="\r\n")
    head = next(rd)
    wr.writerow(head + ["region", "team", "sector", "county", "interest", "grade",
                        "years", "joined"])

    def blank(v):
        return "" if rng.random() < 0.05 else v

    for row in rd:
        y = rng.randrange(2015, 2026)
        joined = "%04d-%02d-%02d" % (y, rng.randrange(1, 13), rng.randrange(1, 29))
        if rng.random() < 0.1:
            joined += "T09:30"
        grade = str(rng.randrange(1, 10)) if rng.random() < 0.95 else "unknown"
        wr.writerow(row + [blank(rng.choice(REGIONS)), blank(rng.choice(TEAMS)),
                           blank(rng.choice(SECTORS)), blank(rng.choice(COUNTIES)),
                           blank(rng.choice(INTERESTS)), blank(grade),
                           blank(str(rng.randrange(0, 41))), blank(joined)])


if __name__ == "__main__":
    main()
