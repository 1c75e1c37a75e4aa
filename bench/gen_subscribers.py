#!/usr/bin/python3
"""gen_subscribers.py - a subscriber CSV for the send benchmark.

Writes N rows of `email,name,organisation,role` (the columns of
examples/subscribers.csv) to stdout or --out FILE: names from several
languages, many with non-ASCII letters (Zoë, Seán, Łukasz, Nguyễn, ...), some
that need CSV quoting ("Jones, Alex", O'Brien), a few without a name, and
unique ASCII addresses (herald refuses non-ASCII local parts on purpose) on a
mix of domains, a few of them international (sent as xn--).  The output is
deterministic for a given N and --seed, so two runs import the same list.

    bench/gen_subscribers.py 100000 > subs.csv
    bench/gen_subscribers.py 1000000 --out subs.csv --seed 7
"""
import argparse
import random
import sys
import unicodedata

# (display form, ASCII form for the address); mostly plain, many accented.
FIRST = [
    "Ada", "Grace", "Alex", "Sam", "Chloé", "Zoë", "Seán", "Siobhán", "Aoife",
    "Niamh", "Łukasz", "Małgorzata", "Wojciech", "Agnieszka", "José", "María",
    "Inés", "Joaquín", "François", "Hélène", "Émile", "Gaëlle", "Jürgen",
    "Jörg", "Björn", "Søren", "Åsa", "Ólafur", "Þóra", "Dóra", "Zoltán",
    "Ágnes", "Jiří", "Tereza", "Václav", "Ayşe", "Müge", "Oğuz", "Nguyễn Văn",
    "Thảo", "Priya", "Rahul", "Aarav", "Fatima", "Mohammed", "Omar", "Amina",
    "Chinedu", "Ngozi", "Kwame", "Abena", "Mei", "Wei", "Hiroshi", "Yūki",
    "Jae-won", "Min-jun", "Olga", "Dmitri", "Anastasia", "Ioana", "Ștefan",
    "Emma", "Oliver", "Amelia", "Jack", "Isla", "Harry", "Ava", "George",
    "Mia", "Noah", "Sophie", "Thomas", "Hannah", "James", "Lucy", "Daniel",
    "Rebecca", "Michael", "Sarah", "David", "Rachel", "Peter", "Helen", "Mark",
]
LAST = [
    "Lovelace", "Hopper", "O'Brien", "Ní Bhriain", "Müller", "Schröder",
    "Kowalski", "Wiśniewska", "Łukaszewicz", "García", "Muñoz", "Peña",
    "Lefèvre", "Dubois", "Gauthier", "Nørgaard", "Ødegaard", "Åberg",
    "Jónsdóttir", "Guðmundsson", "Szabó", "Kovács", "Dvořáková", "Novák",
    "Yılmaz", "Çelik", "Öztürk", "Trần", "Phạm", "Patel", "Sharma", "Khan",
    "Ahmed", "Okafor", "Adébáyọ̀", "Mensah", "Chen", "Wang", "Satō", "Kim",
    "Park", "Ivanova", "Popescu", "Smith", "Jones", "Williams", "Taylor",
    "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson", "Roberts",
    "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood",
]
ORGS = [
    "Lambeth Council", "Hillingdon Council", "Sussex University",
    "Weston-Super-Mare, North Somerset", "Leeds City Council",
    "Manchester Metropolitan University", "Cafcass", "Barnardo's",
    "Action for Children", "NSPCC", "Department for Education",
    "Gwynedd Council / Cyngor Gwynedd", "Comhairle nan Eilean Siar",
    "Birmingham Children's Trust", "Ofsted", "",
]
ROLES = [
    "Social worker", "Senior social worker", "Team manager",
    "Principal social worker", "Practitioner", "Researcher",
    "Director of children's services", "Independent reviewing officer",
    "Family support worker", "Policy adviser", "Student", "",
]
DOMAINS = [
    ("example.org", 30), ("example.net", 15), ("example.com", 15),
    ("council.example.gov.uk", 12), ("uni.example.ac.uk", 8),
    ("mail.example.de", 5), ("example.fr", 4), ("example.pl", 3),
    ("post.example.no", 2), ("bücherei.example", 2), ("straße.example", 1),
    ("例え.example", 1), ("nhs.example.net", 2),
]


def ascii_fold(s):
    """Lower-case ASCII letters of s for an address local part."""
    s = s.replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace(
        "Ø", "O").replace("ß", "ss").replace("þ", "th").replace(
        "Þ", "Th").replace("ð", "d").replace("ı", "i").replace("đ", "d")
    s = unicodedata.normalize("NFKD", s)
    out = []
    for ch in s:
        if ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch.lower())
    return "".join(out)


def csv_field(s):
    if any(c in s for c in ',"\r\n') or s != s.strip():
        return '"' + s.replace('"', '""') + '"'
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("count", type=int, help="number of subscribers")
    ap.add_argument("--out", help="file to write (default stdout)")
    ap.add_argument("--seed", type=int, default=16)
    a = ap.parse_args()
    if a.count < 1:
        ap.error("count must be at least 1")
    rng = random.Random(a.seed)
    doms = [d for d, w in DOMAINS for _ in range(w)]
    out = open(a.out, "w", encoding="utf-8", newline="") if a.out else sys.stdout
    seen = set()
    out.write("email,name,organisation,role\r\n")
    for i in range(a.count):
        first = rng.choice(FIRST)
        last = rng.choice(LAST)
        f, l = ascii_fold(first), ascii_fold(last)
        shape = rng.random()
        if shape < 0.45:
            local = f"{f}.{l}"
        elif shape < 0.65:
            local = f"{f[0]}{l}"
        elif shape < 0.80:
            local = f"{f}_{l}{rng.randrange(100)}"
        else:
            local = f"{l}.{f[0]}"
        dom = rng.choice(doms)
        addr = f"{local}@{dom}"
        if addr in seen:
            # keep addresses unique: the import would report duplicates
            addr = f"{local}.{i}@{dom}"
        seen.add(addr)
        r = rng.random()
        if r < 0.04:
            name = ""                       # no name given
        elif r < 0.07:
            name = f"{last}, {first}"       # needs quoting
        else:
            name = f"{first} {last}"
        row = (addr, name, rng.choice(ORGS), rng.choice(ROLES))
        out.write(",".join(csv_field(x) for x in row) + "\r\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
