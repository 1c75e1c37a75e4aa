#!/usr/bin/python3
"""test_privacy.py - a person's data on request (privacy.h): `herald sub
export-data`, `herald sub forget`, and the preference centre's "Download
my data" and "Delete me" (webprivacy.c).

The person is Ada, subscribed with a name, an attribute and (when the
database has consent records) a consent row with an IP address and a user
agent as consent.c writes them.  Issue 1 reaches her through a capture
server; her opens and clicks are inserted as the web server writes them
(test_stats.py does the same); issue 2 is refused for her by a second
capture server with a 550 that names her address, so the sender writes a
bounce, a bounced delivery and a bounce event holding it.

Checked, for the command line: the export holds exactly the documented
keys, her deliveries, opens, clicks and bounce; after `sub forget --by`,
neither the database file nor its -wal holds her address (any case), her
name, her attribute, her IP or her user agent; `stats ID --json` of both
issues is what it was (the one bounce diagnostic that quoted her address
now says [erased] where it did); the erasure log has one row, the --by
text, no address; a re-import of the same CSV skips her with a clear
line; an explicit `sub add` takes her back; --by naming her is refused
and changes nothing.  For the web: export mails the JSON to her own
address and shows none of it; forget only mails a link (the POST alone
erases nothing); the link's GET changes nothing, its POST erases, and it
works once; a POST without the page's nonce is refused.
"""
import json
import os
import re
import shutil
import sqlite3
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, World, check, need_module, run_tests, wait_until  # noqa: E402
from webclient import curl, expect  # noqa: E402

if not shutil.which("curl"):
    print("SKIP: curl is missing (apt-get install curl)")
    sys.exit(SKIP)
need_module("aiosmtpd")

BASE = "https://news.example.org"
ADA = "Ada.Lovelace@example.org"   # stored as given, domain lower-cased
NAME = "Augusta Byronesque"
ROLE = "Countess-of-Engines"
IP = "198.51.100.77"
AGENT = "PrivacyProbe/9.1 (ada)"
OTHERS = ["grace@example.org", "alan@example.org", "edsger@example.org"]
NONCE_RE = r'name="nonce" value="([0-9a-f]{32})"'
PRIVACY_SCHEMA = "herald-personal-data"

# privacy.h: the export's keys, and each section's row keys
DOC_KEYS = {"schema", "schema_version", "exported_at", "address", "subscriber",
            "subscriptions", "consent", "confirmations", "deliveries", "opens", "clicks",
            "events", "bounces", "suppressions", "leave_answers", "mails",
            "sequences"}
ROW_KEYS = {
    "subscriber": {"id", "email", "name", "status", "attributes", "created_at", "updated_at"},
    "subscriptions": {"list", "list_title", "status", "created_at", "confirmed_at",
                      "unsubscribed_at"},
    "confirmations": {"list", "created_at", "used_at"},
    "deliveries": {"issue", "subject", "status", "attempts", "message_id", "smtp_code",
                   "smtp_reply", "relay", "created_at", "sent_at", "updated_at"},
    "opens": {"issue", "at", "ua", "agent"},
    "clicks": {"issue", "at", "link", "url", "ua", "agent"},
    "events": {"kind", "issue", "list", "at", "detail"},
    "bounces": {"issue", "at", "recipient", "source", "class", "reason", "status",
                "reply_code", "diagnostic", "remote_mta", "why"},
    "suppressions": {"pattern", "reason", "note", "created_at"},
    "leave_answers": {"issue", "reason", "note", "answered_at"},
    "mails": {"id", "subject", "status", "smtp_code", "smtp_reply", "relay", "message_id",
              "created_at", "sent_at"},
    "sequences": {"sequence", "start_at", "enrolled_at", "state", "passed", "left_at",
                  "left_reason"},
}


def check_schema(doc):
    check(set(doc) == DOC_KEYS, "export keys %s", sorted(doc))
    check(doc["schema"] == PRIVACY_SCHEMA and doc["schema_version"] == 1,
          "schema %r %r", doc["schema"], doc["schema_version"])
    if doc["subscriber"] is not None:
        check(set(doc["subscriber"]) == ROW_KEYS["subscriber"], "subscriber keys %s",
              sorted(doc["subscriber"]))
    for k, keys in ROW_KEYS.items():
        if k == "subscriber":
            continue
        check(isinstance(doc[k], list), "%s is not a list", k)
        for row in doc[k]:
            check(set(row) == keys, "%s row keys %s, wanted %s", k, sorted(row), sorted(keys))
    for row in doc["consent"]:
        check("subscriber_id" not in row and "list_id" not in row, "consent ids: %s", row)


def sql_write(w, query, *params):
    con = sqlite3.connect(w.db)
    try:
        con.execute(query, params)
        con.commit()
    finally:
        con.close()


def has_table(w, name):
    return bool(w.sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name))


def build_world():
    """Ada and three others on news; issue 1 delivered with opens and
    clicks; issue 2 refused for Ada with a 550 naming her address."""
    w = World()
    w.init()
    w.smtp()
    w.ok("list", "create", "news", "--title", "WWC News")
    csv = w.write("subs.csv", "email,name,role\n%s,%s,%s\n" % (ADA, NAME, ROLE) +
                  "".join("%s,Reader %d,reader\n" % (e, i) for i, e in enumerate(OTHERS)))
    w.ok("sub", "import", "--list", "news", csv)
    ada = w.sql("SELECT id FROM subscribers WHERE email_key = ?", ADA.lower())[0][0]
    news = w.sql("SELECT id FROM lists WHERE name = 'news'")[0][0]
    if has_table(w, "consent_log"):
        # as consent.c writes a web sign-up's record
        sql_write(w, "INSERT INTO consent_log (subscriber_id, list_id, kind, at, recorded_at, "
                    "source, detail, ip, user_agent) VALUES (?, ?, 'subscribe', 1, 1, "
                    "'web form', 'WWC News', ?, ?)", ada, news, IP, AGENT)
    i1 = w.new_issue("First", "news", "Hello {{name|reader}}, [read](https://example.org/r).\n")
    w.ok("send", i1)
    sent = dict(w.sql("SELECT subscriber_id, sent_at FROM deliveries WHERE issue_id = ?", i1))
    others = [r[0] for r in w.sql("SELECT id FROM subscribers WHERE id <> ?", ada)]
    rows = []
    for sid in [ada] + others[:2]:
        at = sent[sid] + 3600
        rows += [("open", sid, at, {"ua": "human", "agent": AGENT if sid == ada else "Other/1"}),
                 ("click", sid, at + 5, {"n": 1, "ua": "human",
                                         "agent": AGENT if sid == ada else "Other/1"})]
    rows.append(("open", ada, sent[ada] + 1, {"ua": "machine", "agent": "Mozilla/5.0"}))
    for kind, sid, at, detail in rows:
        sql_write(w, "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)", kind, i1, sid, news, at, json.dumps(detail))
    w.smtp(rules=[{"stage": "rcpt", "match": "^Ada\\.Lovelace@", "reply":
                   "550 5.1.1 <%s>: Recipient address rejected: User unknown" % ADA.lower()}])
    i2 = w.new_issue("Second", "news", "Hello again.\n")
    w.ok("send", i2)
    return w, csv, ada, i1, i2


def raw_bytes(w):
    out = b""
    for suffix in ("", "-wal", "-journal"):
        p = w.db + suffix
        if os.path.exists(p):
            out += open(p, "rb").read()
    return out


def test_export_then_forget_leaves_no_trace():
    w, csv, ada, i1, i2 = build_world()
    try:
        doc = json.loads(w.ok("sub", "export-data", ADA.upper()).stdout_text)
        check_schema(doc)
        check(doc["subscriber"]["email"] == ADA and doc["subscriber"]["name"] == NAME and
              doc["subscriber"]["attributes"] == {"role": ROLE}, "subscriber %s",
              doc["subscriber"])
        check(sorted((d["issue"], d["status"]) for d in doc["deliveries"]) ==
              [(int(i1), "sent"), (int(i2), "bounced")], "deliveries %s", doc["deliveries"])
        check(len(doc["opens"]) == 2 and {o["agent"] for o in doc["opens"]} ==
              {AGENT, "Mozilla/5.0"}, "opens %s", doc["opens"])
        check(len(doc["clicks"]) == 1 and doc["clicks"][0]["link"] == 1 and
              doc["clicks"][0]["url"] == "https://example.org/r", "clicks %s", doc["clicks"])
        check(len(doc["bounces"]) == 1 and doc["bounces"][0]["issue"] == int(i2) and
              doc["bounces"][0]["class"] == "hard" and ADA.lower() in
              doc["bounces"][0]["diagnostic"].lower(), "bounces %s", doc["bounces"])
        check(any(e["kind"] == "bounce" for e in doc["events"]), "events %s", doc["events"])
        check(doc["subscriptions"][0]["list"] == "news", "subscriptions %s",
              doc["subscriptions"])
        if has_table(w, "consent_log"):
            check(any(c.get("ip") == IP and c.get("user_agent") == AGENT
                      for c in doc["consent"]), "consent %s", doc["consent"])
        # --out writes the same document, to a file of its owner only
        out = os.path.join(w.root, "ada.json")
        w.ok("sub", "export-data", ADA, "--out", out)
        check(oct(os.stat(out).st_mode & 0o777) == "0o600", "mode %o", os.stat(out).st_mode)
        again = json.load(open(out))
        check(again["address"] == ADA and doc["address"] == "ADA.LOVELACE@example.org",
              "addresses asked about: %r %r", again["address"], doc["address"])
        again["exported_at"], again["address"] = doc["exported_at"], doc["address"]
        check(again == doc, "--out differs from stdout")
        os.unlink(out)

        before = {i: w.ok("stats", i, "--json").stdout_text for i in (i1, i2)}
        data = raw_bytes(w)
        check(ADA.lower().encode() in data.lower() and NAME.encode() in data and
              AGENT.encode() in data, "the data to erase is not in the file to begin with")

        # --by naming her: refused, nothing changes
        dump = w.dump()
        p = w.run("sub", "forget", ADA, "--by", "asked by Augusta Byronesque")
        check(p.returncode == 65 and "names the person" in p.stderr_text, "by: %d %s",
              p.returncode, p.stderr_text)
        check(w.dump() == dump, "a refused forget changed the database")

        p = w.ok("sub", "forget", ADA, "--by", "DPO, ticket 42")
        check("erased" in p.stdout_text and "note:" not in p.stdout_text, "forget: %s",
              p.stdout_text)
        wal = w.db + "-wal"
        wal_size = os.path.getsize(wal) if os.path.exists(wal) else 0
        check(wal_size == 0, "the WAL still holds %d bytes", wal_size)
        data = raw_bytes(w).lower()
        for what in (ADA, NAME, ROLE, IP, AGENT, "lovelace"):
            check(what.lower().encode() not in data, "the database still holds %r", what)

        after = {i: w.ok("stats", i, "--json").stdout_text for i in (i1, i2)}
        for i in (i1, i2):
            want = re.sub(re.escape(ADA), "[erased]", before[i], flags=re.I)
            check(json.loads(after[i]) == json.loads(want), "stats %s changed:\n%s\n%s", i,
                  before[i], after[i])
        check(before[i1] == after[i1], "stats of issue 1 changed")

        log = w.sql("SELECT * FROM erasures")
        cols = [r[1] for r in w.sql("PRAGMA table_info(erasures)")]
        check(cols == ["id", "at", "by_whom"] and len(log) == 1 and log[0][2] == "DPO, ticket 42",
              "erasure log %s %s", cols, log)
        check(w.sql("SELECT count(*) FROM erased")[0][0] == 1, "no hash kept")
        check(w.run("sub", "show", ADA).returncode == 66, "she is still shown")
        check(w.run("sub", "export-data", ADA).returncode == 66, "export finds her still")

        # a stale spreadsheet cannot bring her back; others in it are fine
        p = w.ok("sub", "import", "--list", "news", csv)
        check(re.search(r"subs\.csv:2: %s skipped \(erased on request" % re.escape(ADA),
                        p.stderr_text, re.I), "import said: %s", p.stderr_text)
        check("3 unchanged, 1 skipped" in p.stdout_text, "import: %s", p.stdout_text)
        check(not w.sql("SELECT 1 FROM subscribers WHERE email_key = ?", ADA.lower()),
              "the import re-added her")
        # her own new sign-up (an admin's explicit sub add) can
        w.ok("sub", "add", ADA, "--list", "news")
        check(w.sql("SELECT status FROM subscribers WHERE email_key = ?", ADA.lower()) ==
              [("active",)], "sub add after forget")
        check(w.run("sub", "forget", "nobody@example.org", "--by", "x").returncode == 66,
              "forget of someone unknown")
    finally:
        w.close()


# --- the web -------------------------------------------------------------------------------

def post(url, fields):
    return curl(url, "POST", data=urllib.parse.urlencode(fields),
                headers=["Content-Type: application/x-www-form-urlencoded"])


def test_web_export_and_forget_need_the_mail():
    w = World()
    try:
        w.init()
        smtp = w.smtp()
        w.ok("list", "create", "news", "--title", "WWC News")
        w.ok("sub", "add", ADA, "--list", "news", "--name", NAME)
        w.ok("sub", "add", OTHERS[0], "--list", "news")
        iid = w.new_issue("Hello", "news", "Hello {{name|reader}}.\n")
        w.ok("send", iid)
        mail = [m for _, m, _ in smtp.messages() if m["To"].addresses[0].addr_spec == ADA][0]
        html = mail.get_body(("html",)).get_content()
        links = re.findall(r'href="%s(/p/[A-Za-z0-9_-]+)"' % re.escape(BASE), html)
        check(len(set(links)) == 1, "the mail's /p/ links: %s", links)
        srv = w.serve()
        page = srv.url + links[0]
        nonce = re.findall(NONCE_RE, expect(curl(page), 200).text)[0]
        sid = w.sql("SELECT id FROM subscribers WHERE email_key = ?", ADA.lower())[0][0]

        def mails_to_ada():
            return [m for _, m, _ in smtp.messages()
                    if m["To"].addresses[0].addr_spec.lower() == ADA.lower()]

        n0 = len(mails_to_ada())
        # without the page's nonce: refused, no mail
        expect(post(page + "/export", []), 403)
        expect(post(page + "/forget", [("nonce", "0" * 32)]), 403)
        r = expect(post(page + "/export", [("nonce", nonce)]), 200)
        check(NAME not in r.text and PRIVACY_SCHEMA not in r.text,
              "the page shows data: %s", r.text)
        wait_until(lambda: len(mails_to_ada()) == n0 + 1, 20, "the export mail")
        m = mails_to_ada()[-1]
        check(m["Subject"] == "Your data, as you asked" and m["Auto-Submitted"] ==
              "auto-generated", "export mail headers %s", m.items())
        text = m.get_body(("plain",)).get_content()
        doc = json.loads(text[text.index("\n{") + 1:text.rindex("\n}") + 2])
        check_schema(doc)
        check(doc["subscriber"]["name"] == NAME and [d["issue"] for d in doc["deliveries"]] ==
              [int(iid)], "mailed export %s", doc)

        # "Delete me": a mail with a link, and nothing erased yet
        r = expect(post(page + "/forget", [("nonce", nonce)]), 200)
        check("Check your inbox" in r.text, "forget page: %s", r.text)
        wait_until(lambda: len(mails_to_ada()) == n0 + 2, 20, "the erase mail")
        check(w.sql("SELECT id FROM subscribers WHERE id = ?", sid) == [(sid,)],
              "POST /p/TOKEN/forget alone erased her")
        text = mails_to_ada()[-1].get_body(("plain",)).get_content()
        codes = re.findall(r"%s(/erase/[0-9a-f]{32})\b" % re.escape(BASE), text)
        check(len(codes) == 1, "erase mail: %s", text)
        link = srv.url + codes[0]
        dump = w.dump()
        r = expect(curl(link), 200)
        check("Delete my data" in r.text and ADA in r.text, "erase page: %s", r.text)
        check(w.dump() == dump, "GET /erase/CODE changed the database")
        expect_post = post(link, [("action", "erase")])
        check("has been deleted" in expect(expect_post, 200).text, "erase: %s",
              expect_post.text)
        check(not w.sql("SELECT 1 FROM subscribers WHERE id = ? OR email_key = ?", sid,
                        ADA.lower()), "not erased")
        check(w.sql("SELECT by_whom FROM erasures") == [("preference centre",)],
              "log %s", w.sql("SELECT * FROM erasures"))
        # single use, and the old preference link finds nobody
        r = expect(post(link, [("action", "erase")]), 200)
        check("no longer works" in r.text, "second use: %s", r.text)
        check(curl(page).status == 404, "the old /p/ link still opens a page")
        check(srv.stop() == 0, "serve exit status")
        data = raw_bytes(w).lower()
        check(ADA.lower().encode() not in data and NAME.lower().encode() not in data,
              "the database still names her")
    finally:
        w.close()


if __name__ == "__main__":
    run_tests([
        ("export, forget and the raw file", test_export_then_forget_leaves_no_trace),
        ("web: export mailed, forget needs the mail", test_web_export_and_forget_need_the_mail),
    ])
