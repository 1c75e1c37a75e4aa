#!/usr/bin/python3
"""first_row.py - how soon `herald sub ls` and `sub export` give their
first row, and their whole run, on a list of N subscribers (issue 19:
"first row out before the last is read").

    HERALD_BIN=build-rel/herald bench/first_row.py [N]   (default 1,000,000)

The database is written with SQL (N subscribers with two attributes and a
subscription each).  Beside herald's own listing it times, with the same
SQLite, the query the listing ran before (ORDER BY the address key), whose
first row waits for the sort.  Single runs after one warm-up; the load
average is printed.  Not part of ctest.
"""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERALD = os.path.abspath(os.environ.get("HERALD_BIN", os.path.join(ROOT, "build", "herald")))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000


def first_and_total(cmd, cwd):
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdout.readline()          # a header line, when there is one
    p.stdout.readline()
    first = time.time() - t0
    for _ in p.stdout:
        pass
    p.wait()
    return first, time.time() - t0


def main():
    d = tempfile.mkdtemp(prefix="herald-firstrow-")
    try:
        conf = os.path.join(d, "herald.conf")
        open(conf, "w").write("[database]\npath = herald.db\n[smtp]\nurl = smtp://127.0.0.1:1\n"
                              "[sender]\nfrom = n@example.org\npostal_address = x\n"
                              "[web]\nbase_url = https://n.example.org\n")
        subprocess.run([HERALD, "--config", conf, "init"], check=True, capture_output=True)
        con = sqlite3.connect(os.path.join(d, "herald.db"))
        now = int(time.time())
        con.execute("INSERT INTO lists (id, name, created_at) VALUES (1, 'news', ?)", (now,))
        # addresses not in id order, as a real list's are
        con.executemany("INSERT INTO subscribers (id, email, email_key, attributes, created_at, "
                        "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                        ((i, "r%d@example.org" % ((i * 7919) % N), "r%d@example.org" %
                          ((i * 7919) % N), '{"org":"Org %d","role":"r"}' % (i % 97), now, now)
                         for i in range(1, N + 1)))
        con.executemany("INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) "
                        "VALUES (1, ?, 'confirmed', ?)", ((i, now) for i in range(1, N + 1)))
        con.commit()
        con.close()
        rows = []
        for name, cmd in (("herald sub ls --list news", [HERALD, "--config", conf, "sub", "ls",
                                                         "--list", "news"]),
                          ("herald sub ls --list news --json",
                           [HERALD, "--config", conf, "sub", "ls", "--list", "news", "--json"]),
                          ("herald sub export --list news",
                           [HERALD, "--config", conf, "sub", "export", "--list", "news"]),
                          ("sqlite3: the listing's old query (ORDER BY email_key)",
                           ["sqlite3", os.path.join(d, "herald.db"),
                            "SELECT s.email, sub.status FROM subscriptions sub JOIN subscribers s "
                            "ON s.id = sub.subscriber_id WHERE sub.list_id = 1 "
                            "ORDER BY s.email_key"]),
                          ("sqlite3: its query now (ORDER BY subscriber_id)",
                           ["sqlite3", os.path.join(d, "herald.db"),
                            "SELECT s.email, sub.status FROM subscriptions sub JOIN subscribers s "
                            "ON s.id = sub.subscriber_id WHERE sub.list_id = 1 "
                            "ORDER BY sub.subscriber_id"])):
            first_and_total(cmd, d)   # warm
            rows.append((name,) + first_and_total(cmd, d))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("%d subscribers (load average %s)" % (N, " ".join(open("/proc/loadavg").read().split()[:3])))
    for name, first, total in rows:
        print("  %-56s first row %7.3f s   all %6.2f s" % (name, first, total))


if __name__ == "__main__":
    main()
