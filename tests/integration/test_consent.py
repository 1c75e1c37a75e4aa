#!/usr/bin/python3
"""test_consent.py - consent records end to end (consent.h, sql/013_consent.sql).

Each case builds its own World and reads consent_log straight from the
database, so a record that is missing, misworded or written with the
wrong address fails here:
  - a web sign-up on a double opt-in list and its confirmation record the
    client address and User-Agent (the form: "web form" with the list
    title; the link: "confirmation link"); `sub show` prints both and
    `--json` carries them;
  - [privacy] store_ip = truncated keeps 127.0.0.0/24, = no keeps no
    address but the User-Agent; [web] trusted_proxies: a trusted proxy's
    X-Real-IP is what is recorded, an untrusted peer's header is not;
  - `sub add` records "cli", `sub unsubscribe --reason` "admin" with the
    reason, `sub reactivate` a 'reactivate' by "admin";
  - an import without consent columns records "import FILE" at the import
    time; with consent_at and consent_source that time and those words,
    and neither column becomes an attribute; a bad consent_at is a bad row;
  - unsubscribing through the one-click POST, the page and the mailto
    records "one-click header", "page" and "mailto";
  - `sub export --with-consent` writes consent_at and consent_source, and
    importing that file elsewhere keeps them (a second export is the same);
  - a list's --consent-text: `list show` prints it; `list form` and the
    hosted GET /subscribe/NAME show it (and the tracking checkbox in
    [tracking] mode = consent, never for a list without --signup); a web
    sign-up and a list ticked in the preference centre record it as what
    was shown, with the client; text with a control character or over
    1000 bytes is refused (65) and changes nothing.
"""
import csv
import io
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests, wait_until  # noqa: E402
from webclient import curl, expect, form_post  # noqa: E402

UA = "Mozilla/5.0 (consent test) Gecko/20100101 Firefox/130.0"
BASE = "https://news.example.org"


def records(w, who):
    """[(kind, list name or None, source, detail, ip, user_agent, reason)]
    of a subscriber, oldest first."""
    return w.sql("SELECT c.kind, l.name, c.source, c.detail, c.ip, c.user_agent, c.reason "
                 "FROM consent_log c JOIN subscribers s ON s.id = c.subscriber_id "
                 "LEFT JOIN lists l ON l.id = c.list_id "
                 "WHERE s.email = ? COLLATE NOCASE ORDER BY c.at, c.id", who)


def signup(srv, who, list_name, headers=()):
    r = curl(srv.url + "/subscribe", "POST", headers=list(headers),
             data=urllib.parse.urlencode({"email": who, "list": list_name}), ua=UA)
    return expect(r, 200)


def test_web_signup_and_confirmation_record_client():
    with World() as w:
        w.init()
        smtp = w.smtp()
        w.ok("list", "create", "digest", "--title", "The Digest", "--double-opt-in", "--signup")
        srv = w.serve()
        who = "new.reader@example.net"
        signup(srv, who, "digest")
        check(records(w, who) == [("subscribe", "digest", "web form", "The Digest",
                                   "127.0.0.1", UA, None)], "sign-up records %s",
              records(w, who))
        msgs = wait_until(lambda: smtp.messages(), 15, "the confirmation mail")
        text = msgs[0][1].get_body(("plain",)).get_content()
        m = re.search(r"%s(/confirm/[A-Za-z0-9_-]+)" % re.escape(BASE), text)
        check(m, "no confirm link in %r", text)
        expect(curl(srv.url + m.group(1), "POST", data="confirm=1", ua="Phone Browser/2"), 200)
        got = records(w, who)
        check(len(got) == 2 and got[1] == ("confirm", "digest", "confirmation link",
                                           "The Digest", "127.0.0.1", "Phone Browser/2", None),
              "confirmation records %s", got)
        check(srv.stop() == 0, "serve exit status")
        out = w.ok("sub", "show", who).stdout_text
        sect = out.split("consent:\n", 1)
        check(len(sect) == 2, "no consent section in %s", out)
        check(re.search(r"subscribe\s+digest\s+web form\n\s+shown: The Digest\n"
                        r"\s+from: 127\.0\.0\.1  " + re.escape(UA), sect[1]) and
              re.search(r"confirm\s+digest\s+confirmation link\n.*\n"
                        r"\s+from: 127\.0\.0\.1  Phone Browser/2", sect[1]),
              "sub show consent history:\n%s", sect[1])
        j = json.loads(w.ok("sub", "show", who, "--json").stdout_text)
        check([(c["kind"], c["source"], c["ip"], c["user_agent"]) for c in j["consent"]] ==
              [("subscribe", "web form", "127.0.0.1", UA),
               ("confirm", "confirmation link", "127.0.0.1", "Phone Browser/2")],
              "sub show --json consent %s", j.get("consent"))


def test_store_ip_truncated_no_and_proxies():
    with World() as w:
        w.init()
        w.ok("list", "create", "news", "--title", "News", "--signup")
        w.set("privacy", store_ip="truncated")
        srv = w.serve()
        signup(srv, "cut@example.net", "news")
        check(srv.stop() == 0, "serve exit status")
        check(records(w, "cut@example.net")[0][4:6] == ("127.0.0.0/24", UA),
              "truncated: %s", records(w, "cut@example.net"))
        w.set("privacy", store_ip="no")
        srv = w.serve()
        signup(srv, "none@example.net", "news")
        check(srv.stop() == 0, "serve exit status")
        check(records(w, "none@example.net")[0][4:6] == (None, UA),
              "store_ip = no: %s", records(w, "none@example.net"))
        check(w.sql("SELECT count(*) FROM consent_log WHERE ip LIKE '127.0.0.1%'") == [(0,)],
              "a full address was kept")
        # an untrusted peer's X-Real-IP is not believed; a trusted proxy's is
        w.set("privacy", store_ip="yes")
        srv = w.serve()
        signup(srv, "direct@example.net", "news", headers=["X-Real-IP: 203.0.113.9"])
        check(srv.stop() == 0, "serve exit status")
        check(records(w, "direct@example.net")[0][4] == "127.0.0.1",
              "untrusted X-Real-IP: %s", records(w, "direct@example.net"))
        w.set("web", trusted_proxies="127.0.0.1")
        srv = w.serve()
        signup(srv, "proxied@example.net", "news", headers=["X-Real-IP: 203.0.113.9"])
        check(srv.stop() == 0, "serve exit status")
        check(records(w, "proxied@example.net")[0][4] == "203.0.113.9",
              "trusted proxy's X-Real-IP: %s", records(w, "proxied@example.net"))
        # a bad value is a config problem, named
        w.set("privacy", store_ip="partly")
        p = w.run("config", "check")
        check(p.returncode != 0 and "store_ip" in p.stderr_text + p.stdout_text,
              "store_ip = partly accepted: %s %s", p.stdout_text, p.stderr_text)


def test_cli_add_unsubscribe_reactivate():
    with World() as w:
        w.init()
        w.ok("list", "create", "news")
        who = "ada@example.org"
        w.ok("sub", "add", who, "--list", "news")
        w.ok("sub", "unsubscribe", who, "--list", "news", "--reason", "moved away")
        w.ok("sub", "block", who)
        w.ok("sub", "reactivate", who)
        check(records(w, who) == [("subscribe", "news", "cli", "", None, None, None),
                                  ("unsubscribe", "news", "admin", "", None, None, "moved away"),
                                  ("reactivate", None, "admin", "", None, None, None)],
              "records %s", records(w, who))
        out = w.ok("sub", "show", who).stdout_text
        check(re.search(r"unsubscribe\s+news\s+admin\n\s+reason: moved away", out) and
              re.search(r"reactivate\s+-\s+admin", out), "sub show:\n%s", out)


def test_import_with_and_without_consent_columns():
    with World() as w:
        w.init()
        w.ok("list", "create", "news")
        plain = w.write("plain.csv", "email,name\nplain@example.org,Plain\n")
        t0 = int(time.time())
        w.ok("sub", "import", "--list", "news", plain)
        rows = w.sql("SELECT source, at, recorded_at, detail FROM consent_log")
        check(len(rows) == 1 and rows[0][0] == "import " + plain and
              abs(rows[0][1] - t0) < 30 and rows[0][1] == rows[0][2] and rows[0][3] == "",
              "import without consent columns: %s", rows)
        dated = w.write("dated.csv", "email,consent_at,Consent_Source,city\n"
                        "old@example.org,2019-05-01T10:30:00Z,paper form at the fair,Leeds\n"
                        "half@example.org,,old website,York\n")
        w.ok("sub", "import", "--list", "news", dated)
        got = dict((r[0], r[1:]) for r in w.sql(
            "SELECT s.email, c.source, c.at, c.detail FROM consent_log c "
            "JOIN subscribers s ON s.id = c.subscriber_id"))
        check(got["old@example.org"] == ("paper form at the fair", 1556706600,
                                         "imported from " + dated),
              "dated consent: %s", got["old@example.org"])
        check(got["half@example.org"][0] == "old website" and
              abs(got["half@example.org"][1] - t0) < 30, "source only: %s",
              got["half@example.org"])
        attrs = w.sql("SELECT attributes FROM subscribers WHERE email = 'old@example.org'")
        check(json.loads(attrs[0][0]) == {"city": "Leeds"}, "consent columns became "
              "attributes: %s", attrs)
        bad = w.write("bad.csv", "email,consent_at\nbad@example.org,last tuesday\n"
                      "good@example.org,2020-01-02\n")
        p = w.run("sub", "import", "--list", "news", bad)
        check(p.returncode == 65 and re.search(r"bad\.csv:2: consent_at: invalid time "
                                               r"'last tuesday'", p.stderr_text),
              "bad consent_at: exit %d %s", p.returncode, p.stderr_text)
        check(not w.sql("SELECT 1 FROM subscribers WHERE email = 'bad@example.org'"),
              "the bad row was imported")
        check(w.sql("SELECT c.source FROM consent_log c JOIN subscribers s ON "
                    "s.id = c.subscriber_id WHERE s.email = 'good@example.org'") ==
              [("import " + bad,)], "the good row beside it")


def test_unsubscribe_ways_record_how():
    with World() as w:
        w.init()
        smtp = w.smtp()
        readers = ["one@example.org", "page@example.org", "mail@example.org"]
        w.subscribe(readers)
        iid = w.new_issue()
        w.ok("send", iid)
        heads = {}
        for _, msg, _ in smtp.messages():
            lu = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
            heads[msg["To"].addresses[0].addr_spec] = lu
        check(sorted(heads) == sorted(readers), "mails to %s", sorted(heads))
        url = lambda who: [u for u in heads[who] if u.startswith(BASE + "/u/")][0]  # noqa: E731
        srv = w.serve()
        expect(curl(srv.url + url("one@example.org")[len(BASE):], "POST",
                    data="List-Unsubscribe=One-Click"), 200)
        expect(form_post(srv.url + url("page@example.org")[len(BASE):], action="unsubscribe"),
               200)
        check(srv.stop() == 0, "serve exit status")
        to = [u for u in heads["mail@example.org"] if u.startswith("mailto:")][0][7:]
        to = to.split("?")[0]
        mail = ("From: mail@example.org\r\nTo: %s\r\nSubject: unsubscribe\r\n"
                "Message-ID: <u1@example.org>\r\n\r\nplease\r\n" % to).encode()
        w.ok("bounce", "--envelope-to", to, input=mail)
        for who, how in (("one@example.org", "one-click header"), ("page@example.org", "page"),
                         ("mail@example.org", "mailto")):
            got = records(w, who)
            check(len(got) == 2 and got[1][:3] == ("unsubscribe", "newsletter", how),
                  "%s: %s", who, got)


def test_export_with_consent_round_trip():
    with World() as w:
        w.init()
        w.ok("list", "create", "news")
        src = w.write("in.csv", "email,name,consent_at,consent_source,team\n"
                      "a@example.org,A,2018-03-04T05:06:07Z,signup sheet,red\n"
                      "b@example.org,B,,,blue\n")
        w.ok("sub", "import", "--list", "news", src)
        w.ok("sub", "add", "c@example.org", "--list", "news")
        plain = w.ok("sub", "export", "--list", "news").stdout_text
        check("consent" not in plain.splitlines()[0], "consent columns without the option: %s",
              plain)
        out = w.ok("sub", "export", "--list", "news", "--with-consent").stdout_text
        rows = list(csv.DictReader(io.StringIO(out)))
        check(list(rows[0].keys()) == ["email", "name", "team", "consent_at", "consent_source"],
              "header %s", list(rows[0].keys()))
        by = {r["email"]: r for r in rows}
        check(by["a@example.org"]["consent_at"] == "2018-03-04T05:06:07Z" and
              by["a@example.org"]["consent_source"] == "signup sheet", "a: %s",
              by["a@example.org"])
        check(by["b@example.org"]["consent_source"] == "import " + src and
              re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", by["b@example.org"]["consent_at"]),
              "b: %s", by["b@example.org"])
        check(by["c@example.org"]["consent_source"] == "cli", "c: %s", by["c@example.org"])
        # into a fresh database: the same consent, recorded as brought in
        path = w.write("export.csv", out)
        with World() as w2:
            w2.init()
            w2.ok("list", "create", "news")
            w2.ok("sub", "import", "--list", "news", path)
            again = w2.ok("sub", "export", "--list", "news", "--with-consent").stdout_text
            check(again == out, "round trip changed the export:\n%s\n---\n%s", out, again)
            details = w2.sql("SELECT DISTINCT detail FROM consent_log")
            check(details == [("imported from " + path,)], "details %s", details)


CONSENT = "I agree to receive the monthly e-newsletter & can leave at any time."


def test_consent_text_shown_and_recorded():
    with World(extra_config="[tracking]\nmode = consent\n") as w:
        w.init()
        smtp = w.smtp()
        w.ok("list", "create", "news", "--title", "WWC News", "--signup",
             "--consent-text", CONSENT)
        w.ok("list", "create", "digest", "--title", "The Digest", "--signup")
        w.ok("list", "create", "staff", "--title", "Staff only")
        check("consent text  " + CONSENT in w.ok("list", "show", "news").stdout_text,
              "list show")
        check(json.loads(w.ok("list", "show", "digest", "--json").stdout_text)
              ["consent_text"] == "", "list show --json of a list without one")
        # refused: a control character, too long; nothing changes
        for bad in ("line one\nline two", "x" * 1001):
            r = w.run("list", "set", "news", "--consent-text", bad)
            check(r.returncode == 65 and "consent text" in r.stderr_text, "rc %d %s",
                  r.returncode, r.stderr_text)
        check(w.sql("SELECT consent_text FROM lists WHERE name = 'news'") == [(CONSENT,)],
              "a refused text changed the list")
        form = w.ok("list", "form", "news").stdout_text
        check('action="%s/subscribe"' % BASE in form and
              'name="list" value="news"' in form and
              CONSENT.replace("&", "&amp;") in form and 'name="tracking_consent"' in form,
              "list form:\n%s", form)
        r = w.run("list", "form", "staff")
        check(r.returncode == 0 and "takes no web sign-ups" in r.stderr_text,
              "list form of a list without --signup: %d %s", r.returncode, r.stderr_text)
        srv = w.serve()
        page = expect(curl(srv.url + "/subscribe/news"), 200).text
        check("Subscribe to WWC News" in page and CONSENT.replace("&", "&amp;") in page and
              'action="../subscribe"' in page and 'name="tracking_consent"' in page,
              "hosted form: %s", page)
        for name in ("staff", "nosuchlist", "NEWS"):
            expect(curl(srv.url + "/subscribe/" + name), 404)
        expect(curl(srv.url + "/subscribe/news", "POST", data="email=a%40b.org"), 405)
        who = "reader@example.net"
        r = curl(srv.url + "/subscribe", "POST", ua=UA, data=urllib.parse.urlencode(
            {"email": who, "list": "news", "tracking_consent": "on"}))
        expect(r, 200)
        check(records(w, who) == [("subscribe", "news", "web form", CONSENT, "127.0.0.1", UA,
                                   None)], "sign-up records %s", records(w, who))
        # the preference centre: digest has no text, so its title is recorded
        iid = w.new_issue("Hello", "news", "Hello.\n")
        w.ok("send", iid)
        msg = wait_until(lambda: [m for _, m, _ in smtp.messages()], 15, "the issue")[0]
        link = re.findall(r'href="%s(/p/[A-Za-z0-9_-]+)"' % re.escape(BASE),
                          msg.get_body(("html",)).get_content())[0]
        text = expect(curl(srv.url + link), 200).text
        nonce = re.findall(r'name="nonce" value="([^"]+)"', text)[0]
        check(CONSENT.replace("&", "&amp;") in text, "preference centre lacks the text")
        ids = dict(w.sql("SELECT name, id FROM lists"))
        expect(curl(srv.url + link, "POST", ua="Prefs Browser/1", data=urllib.parse.urlencode(
            [("nonce", nonce), ("action", "save"), ("list", ids["news"]),
             ("list", ids["digest"]), ("tracking_consent", "yes")])), 200)
        got = records(w, who)
        check(got[-1] == ("subscribe", "digest", "preferences", "The Digest", "127.0.0.1",
                          "Prefs Browser/1", None), "preference centre record %s", got)
        check(srv.stop() == 0, "serve exit status")


if __name__ == "__main__":
    run_tests([
        ("web_signup_and_confirmation_record_client",
         test_web_signup_and_confirmation_record_client),
        ("store_ip_truncated_no_and_proxies", test_store_ip_truncated_no_and_proxies),
        ("cli_add_unsubscribe_reactivate", test_cli_add_unsubscribe_reactivate),
        ("import_with_and_without_consent_columns",
         test_import_with_and_without_consent_columns),
        ("unsubscribe_ways_record_how", test_unsubscribe_ways_record_how),
        ("export_with_consent_round_trip", test_export_with_consent_round_trip),
        ("consent_text_shown_and_recorded", test_consent_text_shown_and_recorded),
    ])
