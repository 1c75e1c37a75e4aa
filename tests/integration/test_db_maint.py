#!/usr/bin/python3
"""test_db_maint.py - the database file: upgrades, backups, checks (issue 18).

  (a) an upgrade across schema changes: a database as an older herald left
      it (sql/ applied up to 020, with data) is refused by every command
      with "run `herald db migrate`" and exit 78 (75 on the MTA's bounce
      pipe), unchanged; `db migrate` backs it up first (the backup is the
      old database, row for row, schema 20, mode 0600) and then migrates;
      the data survive; a second migrate does nothing and makes no backup;
  (b) a migration that fails half-way leaves schema and data as they were:
      the pending steps are one transaction (a step that had already run,
      sql/021's rewritten CHECKs, is undone too);
  (c) a newer schema than the binary's is refused, backup or not;
  (d) `db backup` while another process commits pairs of rows as fast as it
      can: every backup passes an independent PRAGMA integrity_check and
      holds whole transactions only (never one row of a pair), its count is
      between the counts before and after; an existing file is never
      replaced (73);
  (e) `db check` finds a corrupted page and a dangling foreign key (65);
      `db vacuum` gives freed space back; `db stats` shows WAL and schema.
"""
import glob
import json
import os
import re
import sqlite3
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, World, check, run_tests  # noqa: E402

OLD = 20   # the schema an older herald left


def latest_schema():
    return max(int(os.path.basename(f)[:3])
               for f in glob.glob(os.path.join(SOURCE_DIR, "sql", "[0-9][0-9][0-9]_*.sql")))


def make_old_database(w, upto=OLD):
    """The database as herald with schema `upto` made it, with a list, two
    subscribers and a subscription."""
    con = sqlite3.connect(w.db)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA foreign_keys = ON")
    for f in sorted(glob.glob(os.path.join(SOURCE_DIR, "sql", "[0-9][0-9][0-9]_*.sql"))):
        if int(os.path.basename(f)[:3]) <= upto:
            with open(f) as fp:
                con.executescript("BEGIN;" + fp.read() + ";COMMIT;")
    con.execute("PRAGMA user_version = %d" % upto)
    now = int(time.time())
    con.execute("INSERT INTO lists (id, name, created_at) VALUES (1, 'newsletter', ?)", (now,))
    for i, e in ((5, "Grace@example.org"), (6, "ada@example.org")):
        con.execute("INSERT INTO subscribers (id, email, email_key, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)", (i, e, e.lower(), now, now))
    con.execute("INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) "
                "VALUES (1, 5, 'confirmed', ?)", (now,))
    con.commit()
    con.close()
    # the token secret that older herald's init made beside it
    w.write("herald.db.secret", os.urandom(32))
    os.chmod(os.path.join(w.root, "herald.db.secret"), 0o600)


def dump_of(path):
    con = sqlite3.connect(path)
    try:
        return [l for l in con.iterdump()]
    finally:
        con.close()


def backups(w):
    return sorted(glob.glob(os.path.join(w.root, "herald.db.schema*.bak")))


def test_upgrade_needs_one_command_and_keeps_a_backup():
    with World() as w:
        make_old_database(w)
        before = dump_of(w.db)
        msg = "database schema %d is older than this herald (%d): run `herald db migrate`" % (
            OLD, latest_schema())
        for args in (("list", "ls"), ("sub", "ls"), ("run",), ("init",), ("stats", "1"),
                     ("db", "stats")):
            p = w.run(*args)
            check(p.returncode == 78, "%s: exit %d, wanted 78: %s", args, p.returncode,
                  p.stderr_text)
            check(msg in p.stderr_text, "%s: %r", args, p.stderr_text)
        # the MTA's pipe: 75, so that the bounce waits in the queue
        p = w.run("bounce", input=b"From: MAILER-DAEMON@example.net\r\n\r\nhello\r\n")
        check(p.returncode == 75, "bounce on stdin: exit %d: %s", p.returncode, p.stderr_text)
        p = w.run("config", "check")
        check(p.returncode != 0 and msg in p.stderr_text, "config check: %d %r",
              p.returncode, p.stderr_text)
        check(dump_of(w.db) == before, "a refusing command changed the database")
        check(backups(w) == [], "a backup before migrate: %s", backups(w))

        p = w.ok("db", "migrate")
        made = backups(w)
        check(len(made) == 1, "backups: %s", made)
        check(re.match(r".*/herald\.db\.schema%d-\d{8}-\d{6}\.bak$" % OLD, made[0]), made[0])
        check("backup %s: " % made[0] in p.stdout_text and
              "migrated %s: schema %d -> %d" % (w.db, OLD, latest_schema()) in p.stdout_text,
              "migrate said %r", p.stdout_text)
        check(stat.S_IMODE(os.stat(made[0]).st_mode) == 0o600, "backup mode %o",
              stat.S_IMODE(os.stat(made[0]).st_mode))
        check(dump_of(made[0]) == before, "the backup is not the old database")
        con = sqlite3.connect(made[0])
        check(con.execute("PRAGMA user_version").fetchone()[0] == OLD, "backup's schema")
        check(con.execute("PRAGMA journal_mode").fetchone()[0] == "delete",
              "the backup should be one file, not WAL")
        con.close()
        check(w.sql("PRAGMA user_version") == [(latest_schema(),)], "not migrated")
        check(w.sql("SELECT email FROM subscribers ORDER BY id") ==
              [("Grace@example.org",), ("ada@example.org",)], "subscribers lost")
        # the migrated database works: the list and its subscriber
        check("newsletter" in w.ok("list", "ls").stdout_text, "list ls after migrate")
        check("Grace@example.org" in w.ok("sub", "ls", "--list", "newsletter").stdout_text, "sub ls after migrate")
        # a second migrate: nothing to do, no second backup
        p = w.ok("db", "migrate")
        check(p.stdout_text == "schema %d is current; nothing to do\n" % latest_schema(),
              "second migrate: %r", p.stdout_text)
        check(backups(w) == made, "a second backup: %s", backups(w))


def test_failed_migration_changes_nothing():
    with World() as w:
        make_old_database(w)
        # a table in the way of sql/023, which comes after 021 and 022
        con = sqlite3.connect(w.db)
        con.execute("CREATE TABLE api_mails (x)")
        con.commit()
        con.close()
        before = dump_of(w.db)
        check(any("status IN ('active'" in l for l in before), "021 not pending?")
        p = w.run("db", "migrate", "--backup", "before.db")
        check(p.returncode not in (0, 64), "migrate over a conflicting table: exit %d",
              p.returncode)
        check("023_api_mail.sql" in p.stderr_text and "api_mails" in p.stderr_text,
              "migrate error: %r", p.stderr_text)
        check(dump_of(w.db) == before, "a failed migration left changes (021's CHECKs?)")
        check(w.sql("PRAGMA user_version") == [(OLD,)], "schema moved")
        check(dump_of(os.path.join(w.root, "before.db")) == before, "--backup FILE")
        # --no-backup makes none; usage errors are 64
        check(w.run("db", "migrate", "--no-backup", "--backup", "x.db").returncode == 64,
              "--no-backup with --backup")
        w.run("db", "migrate", "--no-backup")
        check(backups(w) == [] and not os.path.exists(os.path.join(w.root, "x.db")),
              "--no-backup made a backup")


def test_newer_schema_is_refused():
    with World() as w:
        w.init()
        w.ok("list", "create", "newsletter")
        con = sqlite3.connect(w.db)
        con.execute("PRAGMA user_version = %d" % (latest_schema() + 1))
        con.close()
        before = dump_of(w.db)
        for args in (("list", "ls"), ("db", "migrate"), ("init",)):
            p = w.run(*args)
            check(p.returncode == 78 and "newer than this herald" in p.stderr_text,
                  "%s: %d %r", args, p.returncode, p.stderr_text)
        check(backups(w) == [], "migrate backed up a newer database")
        check(dump_of(w.db) == before, "changed")
        # a backup of it is still possible (an older herald can save it)
        w.ok("db", "backup", "newer.db")


def test_backup_is_consistent_while_another_process_writes():
    with World() as w:
        w.init()
        w.ok("list", "create", "newsletter")
        con = sqlite3.connect(w.db)
        # big enough that a backup takes a while: 150,000 subscribers
        now = int(time.time())
        con.executemany("INSERT INTO subscribers (email, email_key, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?)",
                        (("bulk%d@example.org" % i, "bulk%d@example.org" % i, now, now)
                         for i in range(150000)))
        con.commit()
        con.close()
        stop = threading.Event()
        written = [0]

        def writer():
            # pairs: a subscriber and its subscription in one transaction
            c = sqlite3.connect(w.db, timeout=30, isolation_level=None)
            c.execute("PRAGMA foreign_keys = ON")
            i = 0
            while not stop.is_set():
                c.execute("BEGIN IMMEDIATE")
                e = "pair%d@example.org" % i
                sid = c.execute("INSERT INTO subscribers (email, email_key, created_at, "
                                "updated_at) VALUES (?, ?, 0, 0)", (e, e)).lastrowid
                c.execute("INSERT INTO subscriptions (list_id, subscriber_id, status, "
                          "created_at) VALUES (1, ?, 'confirmed', 0)", (sid,))
                c.execute("COMMIT")
                i += 1
                written[0] = i
            c.close()

        t = threading.Thread(target=writer)
        t.start()
        try:
            wait = time.time() + 10
            while written[0] < 50 and time.time() < wait:
                time.sleep(0.01)
            results = []
            for n in range(3):
                lo = written[0]
                p = w.ok("db", "backup", "copy%d.db" % n)
                hi = written[0]
                results.append((lo, hi, p.stdout_text))
        finally:
            stop.set()
            t.join()
        check(written[0] > 100, "the writer wrote only %d pairs", written[0])
        for n, (lo, hi, out) in enumerate(results):
            path = os.path.join(w.root, "copy%d.db" % n)
            check(re.match(r"backup copy%d\.db: \d+ bytes, schema %d, integrity ok" %
                           (n, latest_schema()), out), "said %r", out)
            check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, "mode")
            check(not os.path.exists(path + ".partial") and not os.path.exists(path + "-wal"),
                  "leftovers beside %s", path)
            con = sqlite3.connect(path)
            check(con.execute("PRAGMA integrity_check").fetchall() == [("ok",)],
                  "copy %d fails integrity_check", n)
            subs = con.execute("SELECT count(*) FROM subscribers WHERE email LIKE 'pair%'"
                               ).fetchone()[0]
            pairs = con.execute("SELECT count(*) FROM subscriptions").fetchone()[0]
            con.close()
            check(subs == pairs, "copy %d holds half a transaction: %d subscribers, %d "
                  "subscriptions", n, subs, pairs)
            check(lo <= subs <= hi, "copy %d: %d pairs, written %d..%d during it",
                  n, subs, lo, hi)
        check(len({r for r in (sqlite3.connect(os.path.join(w.root, "copy%d.db" % n)).execute(
            "SELECT count(*) FROM subscriptions").fetchone()[0] for n in range(3))}) > 1,
            "three backups of a database being written are all the same")
        # never over an existing file
        size = os.path.getsize(os.path.join(w.root, "copy0.db"))
        with open(os.path.join(w.root, "copy0.db"), "rb") as f:
            head = f.read(4096)
        p = w.run("db", "backup", "copy0.db")
        check(p.returncode == 73 and "exists already" in p.stderr_text, "over a file: %d %r",
              p.returncode, p.stderr_text)
        with open(os.path.join(w.root, "copy0.db"), "rb") as f:
            check(os.path.getsize(os.path.join(w.root, "copy0.db")) == size and
                  f.read(4096) == head, "the existing file was touched")
        check(w.run("db", "backup").returncode == 64, "backup without FILE")
        p = w.run("db", "backup", os.path.join(w.root, "no", "such", "dir.db"))
        check(p.returncode == 73, "into a missing directory: %d %r", p.returncode,
              p.stderr_text)


def test_check_vacuum_stats():
    with World() as w:
        w.init()
        w.subscribe(["a%d@example.org" % i for i in range(3000)])
        p = w.ok("db", "check")
        check(p.stdout_text.endswith("integrity_check and foreign keys ok\n"), p.stdout_text)
        check(w.ok("db", "check", "--quick").stdout_text.endswith(
            "quick_check and foreign keys ok\n"), "--quick")
        st = json.loads(w.ok("db", "stats", "--json").stdout_text)
        check(st["schema_version"] == latest_schema(), "schema_version %s",
              st.get("schema_version"))
        check(isinstance(st["wal_bytes"], int) and st["wal_bytes"] >= 0, "wal_bytes")
        text = w.ok("db", "stats").stdout_text
        check(re.search(r"^wal: \d+ bytes$", text, re.M) and
              "\nschema: %d\n" % latest_schema() in text, "db stats: %r", text[-200:])

        # vacuum gives back the pages of deleted rows
        con = sqlite3.connect(w.db)
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("DELETE FROM consent_log")
        con.execute("DELETE FROM subscriptions")
        con.execute("DELETE FROM subscribers")
        con.commit()
        con.close()
        pages = w.sql("PRAGMA page_count")[0][0]
        p = w.ok("db", "vacuum")
        m = re.match(r"vacuum: (\d+) bytes \(WAL \d+\) -> (\d+) bytes \(WAL (\d+)\)\n$",
                     p.stdout_text)
        check(m and int(m.group(2)) < int(m.group(1)) and m.group(3) == "0",
              "vacuum said %r", p.stdout_text)
        check(w.sql("PRAGMA page_count")[0][0] < pages, "vacuum freed nothing")

        # a dangling foreign key
        con = sqlite3.connect(w.db)
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute("INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) "
                    "VALUES (1, 999999, 'confirmed', 0)")
        con.commit()
        con.close()
        p = w.run("db", "check")
        check(p.returncode == 65 and "problem: subscriptions row" in p.stdout_text and
              "foreign key to subscribers points at nothing" in p.stdout_text,
              "dangling key: %d %r", p.returncode, p.stdout_text)


def test_check_finds_a_corrupted_page():
    with World() as w:
        w.init()
        w.subscribe(["c%d@example.org" % i for i in range(5000)])
        con = sqlite3.connect(w.db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # an index's root page: overwrite its header (page type, cell count)
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND "
                           "tbl_name = 'subscribers' ORDER BY name LIMIT 1").fetchone()[0]
        psize = con.execute("PRAGMA page_size").fetchone()[0]
        con.close()
        with open(w.db, "r+b") as f:
            f.seek((root - 1) * psize)
            f.write(b"\x0a\x00\x00\xff\xff\x00\x00\x00")
        p = w.run("db", "check")
        check(p.returncode == 65 and "problem: " in p.stdout_text and
              re.search(r"\d+ problems?", p.stdout_text),
              "corrupted page: %d %r %r", p.returncode, p.stdout_text, p.stderr_text)
        # and a backup of it is refused by its own integrity check, no file left
        p = w.run("db", "backup", "bad.db")
        check(p.returncode == 70 and "integrity check" in p.stderr_text,
              "backup of a corrupt db: %d %r", p.returncode, p.stderr_text)
        check(not os.path.exists(os.path.join(w.root, "bad.db")) and
              not os.path.exists(os.path.join(w.root, "bad.db.partial")), "file left")


if __name__ == "__main__":
    run_tests([
        ("an upgrade: refused until db migrate, which keeps a backup",
         test_upgrade_needs_one_command_and_keeps_a_backup),
        ("a failed migration changes nothing", test_failed_migration_changes_nothing),
        ("a newer schema is refused", test_newer_schema_is_refused),
        ("backups while another process writes", test_backup_is_consistent_while_another_process_writes),
        ("db check, vacuum, stats", test_check_vacuum_stats),
        ("db check finds a corrupted page", test_check_finds_a_corrupted_page),
    ])
