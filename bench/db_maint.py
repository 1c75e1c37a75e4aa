#!/usr/bin/python3
"""db_maint.py - what the operator's commands cost on a large database
(issue 18): `db backup`, `db check --quick`, `db check`, `db vacuum`, an
upgrade (`db migrate` from schema 20, backup included), and one scrape of
serve's /metrics while an issue of N deliveries is being sent.

    HERALD_BIN=build/herald bench/db_maint.py [N]     (default 1,000,000)

The database is written straight with SQL (N subscribers with a
subscription each, an issue in state 'sending' with N deliveries, half of
them sent), as bench/scale.sh does for its issue rows; the upgrade case
builds it at schema 20 from sql/001..020 first.  Wall times of single
runs; the load average is printed with them.  Only 127.0.0.1 is used.
Not part of ctest.
"""
import glob
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERALD = os.path.abspath(os.environ.get("HERALD_BIN", os.path.join(ROOT, "build", "herald")))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
CONFIG = """[database]
path = herald.db
[smtp]
url = smtp://127.0.0.1:1
starttls = never
[sender]
from = News <news@example.org>
postal_address = 1 Example Street
[web]
base_url = https://news.example.org
[metrics]
listen = 127.0.0.1:0
"""


def fill(db, upto=None):
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    if upto is not None:
        for f in sorted(glob.glob(os.path.join(ROOT, "sql", "[0-9][0-9][0-9]_*.sql"))):
            if int(os.path.basename(f)[:3]) <= upto:
                con.executescript("BEGIN;" + open(f).read() + ";COMMIT;")
        con.execute("PRAGMA user_version = %d" % upto)
    now = int(time.time())
    con.execute("BEGIN")
    con.execute("INSERT INTO lists (id, name, created_at) VALUES (1, 'news', ?)", (now,))
    con.executemany("INSERT INTO subscribers (id, email, email_key, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    ((i, "r%d@example.org" % i, "r%d@example.org" % i, now, now)
                     for i in range(1, N + 1)))
    con.executemany("INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) "
                    "VALUES (1, ?, 'confirmed', ?)", ((i, now) for i in range(1, N + 1)))
    if upto is None:
        con.execute("INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, "
                    "status, created_at) VALUES (1, 1, 'Hello', 'news@example.org', "
                    "'Hi', '<p>Hi</p>', 'Hi', 'sending', ?)", (now,))
        con.executemany("INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, "
                        "updated_at) VALUES (1, ?, ?, ?, ?)",
                        ((i, "sent" if i % 2 else "pending", now, now)
                         for i in range(1, N + 1)))
    con.execute("COMMIT")
    con.close()


def timed(root, *args):
    t0 = time.time()
    p = subprocess.run([HERALD, "--config", os.path.join(root, "herald.conf")] + list(args),
                       capture_output=True, text=True, cwd=root)
    dt = time.time() - t0
    if p.returncode not in (0,):
        sys.exit("herald %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return dt, p.stdout


def size(path):
    return os.path.getsize(path) / 1e6


def main():
    rows = []
    d = tempfile.mkdtemp(prefix="herald-dbmaint-")
    try:
        open(os.path.join(d, "herald.conf"), "w").write(CONFIG)
        subprocess.run([HERALD, "--config", os.path.join(d, "herald.conf"), "init"],
                       check=True, capture_output=True)
        print("filling %d subscribers and deliveries ..." % N, file=sys.stderr)
        fill(os.path.join(d, "herald.db"))
        db = os.path.join(d, "herald.db")
        timed(d, "db", "check", "--quick")   # warm the page cache once
        dt, _ = timed(d, "db", "backup", "copy.db")
        rows.append(("db backup", dt, "%.0f MB copy" % size(os.path.join(d, "copy.db"))))
        os.unlink(os.path.join(d, "copy.db"))
        for args in (("db", "check", "--quick"), ("db", "check"), ("db", "vacuum")):
            dt, _ = timed(d, *args)
            rows.append((" ".join(args), dt, "%.0f MB database" % size(db)))
        # one scrape during the send (the issue is 'sending', half sent)
        serve = subprocess.Popen([HERALD, "--config", os.path.join(d, "herald.conf"), "serve",
                                  "--listen", "127.0.0.1:0"], cwd=d, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        try:
            url = None
            while url is None:
                line = serve.stdout.readline()
                if not line:
                    sys.exit("serve did not start")
                m = re.search(r"metrics on (\S+)", line)
                url = m.group(1) if m else None
            times = []
            for _ in range(5):
                t0 = time.time()
                out = subprocess.run(["curl", "-sf", url], capture_output=True, text=True).stdout
                times.append(time.time() - t0)
            if 'herald_issue_deliveries{issue="1",status="sent"} %d' % ((N + 1) // 2) not in out:
                sys.exit("the scrape does not show the send: %s" % out[-800:])
            times.sort()
            rows.append(("GET /metrics (median of 5)", times[2],
                         "issue of %d deliveries sending" % N))
        finally:
            serve.terminate()
            serve.wait()
        shutil.rmtree(d)
        # the upgrade: schema 20 with N subscribers, db migrate (backup first)
        d = tempfile.mkdtemp(prefix="herald-dbmaint-")
        open(os.path.join(d, "herald.conf"), "w").write(CONFIG)
        fill(os.path.join(d, "herald.db"), upto=20)
        open(os.path.join(d, "herald.db.secret"), "wb").write(os.urandom(32))
        dt, out = timed(d, "db", "migrate")
        rows.append(("db migrate 20 -> latest", dt, "backup included: " + out.splitlines()[0]
                     .split(": ", 1)[1]))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    load = open("/proc/loadavg").read().split()[:3]
    print("\n%d subscribers (load average %s)" % (N, " ".join(load)))
    for name, dt, note in rows:
        print("  %-28s %7.2f s   %s" % (name, dt, note))


if __name__ == "__main__":
    main()
