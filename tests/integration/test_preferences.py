#!/usr/bin/python3
"""test_preferences.py - the preference centre (/p/TOKEN) and the leaving
survey through the real server, fetched with curl (issue 15; prefs.h,
webprefs.h, src/webprefs.c).

One world: "news" (public, single opt-in, web sign-up), "board" (double
opt-in, web sign-up, a title with HTML specials), "circle" (no sign-up; some
readers are on it) and "secret" (no sign-up, nobody on it).  An issue is sent
to news; every /p/ URL used comes out of the received mails, parsed with
Python's email package (policy.default).  Checked:
  - the footer of every mail (HTML and text part) carries the reader's own
    /p/TOKEN link beside the unsubscribe link, and it opens their page;
  - GET (and HEAD) shows the address, the name, and the lists: theirs and
    those taking sign-ups, never "secret"; it changes nothing;
  - POST with the page's nonce changes exactly what was ticked (prefs.h
    rule 1: a list not shown is not changed); unticking is an 'unsubscribe'
    event with source "preferences"; ticking a double opt-in list sends
    the confirmation mail and waits unconfirmed;
  - a missing, wrong or other token's nonce is refused (403) and changes
    nothing; a forged token, and other kinds of token, are 404;
  - "Unsubscribe from everything" (rule 2); a name change; a bad name
    changes nothing; a new address gets a confirmation mail and changes
    nothing until its link is followed;
  - the survey after the /u page and after the preference centre: stored
    with a good nonce only, counted by `herald stats --json` and
    `herald list show` (text and --json);
  - every page carries the security headers (webclient.curl checks) and
    loads nothing external.
"""
import email
import email.policy
import json
import os
import re
import shutil
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, World, check, need_module, run_tests, wait_until  # noqa: E402
from webclient import curl, expect, expect_404  # noqa: E402

if not shutil.which("curl"):
    print("SKIP: curl is missing (apt-get install curl)")
    sys.exit(SKIP)
need_module("aiosmtpd")

BASE = "https://news.example.org"
TOKEN_RE = r"[A-Za-z0-9_-]+"
NONCE_RE = r'name="nonce" value="([0-9a-f]{32})"'


class Site:
    pass


S = Site()


def setup():
    if hasattr(S, "w"):
        return S
    w = S.w = World()
    w.init()
    S.smtp = w.smtp()
    w.ok("list", "create", "news", "--title", "WWC News", "--public", "--signup")
    w.ok("list", "create", "board", "--title", "Board & <Staff>", "--double-opt-in", "--signup")
    w.ok("list", "create", "circle", "--title", "Inner Circle")
    w.ok("list", "create", "secret", "--title", "Secret Society")
    S.readers = ["reader%02d@example.org" % i for i in range(10)]
    w.subscribe(S.readers, "news")
    w.subscribe(S.readers[:3], "circle")
    S.list_id = {n: i for i, n in w.sql("SELECT id, name FROM lists")}
    S.iid = w.new_issue("Preferences issue", "news", "Dear {{name|reader}}, hello.\n")
    w.ok("send", S.iid)
    S.mails = {}
    for _, msg, raw in S.smtp.messages():
        S.mails[msg["To"].addresses[0].addr_spec] = msg
    check(len(S.mails) == len(S.readers), "mails: %d", len(S.mails))
    S.srv = w.serve()
    return S


def sub_id(who):
    rows = S.w.sql("SELECT id FROM subscribers WHERE email = ? COLLATE NOCASE", who)
    return rows[0][0] if rows else None


def status(who, name):
    rows = S.w.sql("SELECT status FROM subscriptions WHERE list_id = ? AND subscriber_id = ?",
                   S.list_id[name], sub_id(who))
    return rows[0][0] if rows else None


def dump():
    """What a refused request must not change (the event writer batches only
    opens and clicks, which nothing here makes)."""
    return S.w.dump()


def prefs_url(who):
    """The /p/ link of the reader's mail: the same in the HTML and text parts."""
    msg = S.mails[who]
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    h = re.findall(r'href="(%s/p/%s)"' % (re.escape(BASE), TOKEN_RE), html)
    t = re.findall(r"%s/p/%s" % (re.escape(BASE), TOKEN_RE), text)
    check(len(set(h)) == 1 and set(h) == set(t), "%s: /p/ links html %s text %s", who, h, t)
    return S.srv.url + h[0][len(BASE):]


def unsub_url(who):
    lu = re.findall(r"<(%s/u/[^>]+)>" % re.escape(BASE), str(S.mails[who]["List-Unsubscribe"]))
    return S.srv.url + lu[0][len(BASE):]


def nonce_of(r):
    n = re.findall(NONCE_RE, r.text)
    check(n and len(set(n)) == 1, "%s: nonces %s", r.what, n)
    return n[0]


def post(url, fields):
    """POST `fields`, a list of (name, value) pairs, urlencoded."""
    return curl(url, "POST", data=urllib.parse.urlencode(fields),
                headers=["Content-Type: application/x-www-form-urlencoded"])


def checkboxes(r):
    """{list id: checked} of the page's checkboxes."""
    out = {}
    for m in re.finditer(r'<input type="checkbox" name="list" value="(\d+)"( checked)?>', r.text):
        out[int(m.group(1))] = bool(m.group(2))
    return out


def check_no_external(r):
    check(not re.search(r"<script\b", r.text, re.I), "%s: a <script>", r.what)
    check(not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", r.text, re.I),
          "%s: loads or links something from elsewhere", r.what)


def wait_mails(n, what):
    wait_until(lambda: S.smtp.count() >= n, 20, what)


def mails_to(who):
    return [msg for _, msg, _ in S.smtp.messages()
            if msg["To"].addresses[0].addr_spec.lower() == who.lower()]


# --- the footer and the page ------------------------------------------------------------

def test_every_mail_footer_links_its_own_page():
    setup()
    for who in S.readers:
        url = prefs_url(who)
        r = expect(curl(url), 200)
        check(who in r.text, "%s: the page does not show the address", who)
    # the link sits beside the unsubscribe link in the footer
    html = S.mails[S.readers[0]].get_body(("html",)).get_content()
    check(re.search(r'>Unsubscribe</a>.{0,40}<a href="%s/p/[^"]+"[^>]*>Manage your '
                    r'subscription</a>' % re.escape(BASE), html, re.S),
          "footer: %s", html[-1500:])
    text = S.mails[S.readers[0]].get_body(("plain",)).get_content().replace("\r\n", "\n")
    check("Manage your subscription:\n%s/p/" % BASE in text, "text footer: %s", text[-400:])


def test_get_shows_lists_and_changes_nothing():
    setup()
    who = S.readers[0]
    url = prefs_url(who)
    before = dump()
    r = expect(curl(url), 200)
    check("text/html" in (r.h("Content-Type") or ""), "Content-Type %r", r.h("Content-Type"))
    check("no-store" in (r.h("Cache-Control") or ""), "Cache-Control %r", r.h("Cache-Control"))
    check("Reader 0" in r.text, "the name is not shown")
    check("WWC News" in r.text and "Board &amp; &lt;Staff&gt;" in r.text and
          "Inner Circle" in r.text, "lists missing: %s", r.text[:3000])
    check("<Staff>" not in r.text, "a title not escaped")
    check("Secret Society" not in r.text, "a list without sign-up the reader is not on is shown")
    boxes = checkboxes(r)
    check(boxes == {S.list_id["news"]: True, S.list_id["board"]: False,
                    S.list_id["circle"]: True}, "checkboxes %s", boxes)
    nonce_of(r)
    check(re.search(r'<form class="inline" method="post" action="%s/export">' % TOKEN_RE,
                    r.text) and
          re.search(r'<form class="inline" method="post" action="%s/forget">' % TOKEN_RE,
                    r.text), "no export/forget forms")
    check("Unsubscribe from everything" in r.text, "no leave-all button")
    check_no_external(r)
    # a reader on news only sees news and board
    r2 = expect(curl(prefs_url(S.readers[5])), 200)
    check(set(checkboxes(r2)) == {S.list_id["news"], S.list_id["board"]}, "reader05 lists %s",
          checkboxes(r2))
    h = expect(curl(url, "HEAD"), 200)
    check(h.body == b"", "HEAD with a body")
    check(dump() == before, "GET/HEAD /p/TOKEN changed the database")


# --- saving -----------------------------------------------------------------------------

def test_post_changes_exactly_what_was_ticked():
    setup()
    who = S.readers[1]
    url = prefs_url(who)
    r = expect(curl(url), 200)
    nonce = nonce_of(r)
    sent = S.smtp.count()
    # keep news, tick board (double opt-in), untick circle, try secret (not shown)
    r = expect(post(url, [("nonce", nonce), ("action", "save"), ("name", "Reader 1"),
                          ("email", who), ("list", S.list_id["news"]),
                          ("list", S.list_id["board"]), ("list", S.list_id["secret"])]), 200)
    check("Your choices are saved" in r.text, "page: %s", r.text[:2000])
    check(status(who, "news") == "confirmed", "news %s", status(who, "news"))
    check(status(who, "board") == "unconfirmed", "board %s", status(who, "board"))
    check(status(who, "circle") == "unsubscribed", "circle %s", status(who, "circle"))
    check(status(who, "secret") is None, "secret %s (rule 1)", status(who, "secret"))
    ev = S.w.sql("SELECT kind, list_id, json_extract(detail, '$.source') FROM events WHERE "
                 "subscriber_id = ? AND kind = 'unsubscribe'", sub_id(who))
    check(ev == [("unsubscribe", S.list_id["circle"], "preferences")], "events %s", ev)
    # the board's confirmation mail, to the reader
    wait_mails(sent + 1, "the board's confirmation mail")
    got = [m for m in mails_to(who) if "confirm" in str(m["Subject"]).lower()]
    check(len(got) == 1 and "Board & <Staff>" in str(got[0]["Subject"]), "mails %s",
          [str(m["Subject"]) for m in got])
    # the survey is offered after leaving a list
    check('value="survey"' in r.text, "no survey after unticking")


def test_wrong_or_missing_nonce_changes_nothing():
    setup()
    who = S.readers[2]
    url = prefs_url(who)
    good = nonce_of(expect(curl(url), 200))
    other = nonce_of(expect(curl(prefs_url(S.readers[3])), 200))
    before = dump()
    fields = [("action", "save"), ("name", "Mallory"), ("email", who)]
    for bad in (None, "", "0" * 32, good[:-1], good + "0", good.upper(), other):
        f = fields + ([("nonce", bad)] if bad is not None else [])
        r = expect(post(url, f), 403)
        check("Nothing was changed" in r.text, "refusal page: %s", r.text[:500])
        expect(post(url, [("action", "leave_all")] + ([("nonce", bad)] if bad is not None
                                                      else [])), 403)
    check(dump() == before, "a refused POST changed the database")
    check(status(who, "news") == "confirmed", "status %s", status(who, "news"))


def test_forged_tokens_are_404():
    setup()
    who = S.readers[3]
    url = prefs_url(who)
    tok = url.rsplit("/", 1)[1]
    before = dump()
    bad = [tok[:-1], tok + "A", tok.swapcase(), tok[:5] + ("A" if tok[5] != "A" else "B") +
           tok[6:], unsub_url(who).rsplit("/", 1)[1]]
    for t in bad:
        u = "%s/p/%s" % (S.srv.url, t)
        expect_404(curl(u))
        expect_404(post(u, [("action", "leave_all"), ("nonce", "0" * 32)]))
    expect_404(curl(S.srv.url + "/p/"))
    check(dump() == before, "a forged token changed the database")


def test_unsubscribe_from_everything():
    setup()
    who = S.readers[0]
    url = prefs_url(who)
    nonce = nonce_of(expect(curl(url), 200))
    r = expect(post(url, [("nonce", nonce), ("action", "leave_all")]), 200)
    check("You have been unsubscribed from every list" in r.text, "page: %s", r.text[:1500])
    check(status(who, "news") == "unsubscribed" and status(who, "circle") == "unsubscribed",
          "statuses %s %s", status(who, "news"), status(who, "circle"))
    check(not any(checkboxes(r).values()), "boxes still ticked: %s", checkboxes(r))
    n = S.w.sql("SELECT count(*) FROM events WHERE subscriber_id = ? AND kind = 'unsubscribe' "
                "AND json_extract(detail, '$.source') = 'preferences'", sub_id(who))[0][0]
    check(n == 2, "unsubscribe events %d", n)
    check('value="survey"' in r.text, "no survey after leaving")


def test_name_change():
    setup()
    who = S.readers[4]
    url = prefs_url(who)
    nonce = nonce_of(expect(curl(url), 200))
    keep = [("list", S.list_id["news"])]
    r = expect(post(url, [("nonce", nonce), ("action", "save"), ("name", "Zoë Müller"),
                          ("email", who)] + keep), 200)
    check(S.w.sql("SELECT name FROM subscribers WHERE id = ?", sub_id(who))[0][0] ==
          "Zoë Müller", "name not changed")
    check('value="Zoë Müller"' in r.text, "the page does not show the new name")
    check(status(who, "news") == "confirmed", "news %s", status(who, "news"))
    before = dump()
    r = expect(post(url, [("nonce", nonce), ("action", "save"), ("name", "Evil\r\nBcc: x@y"),
                          ("email", who)]), 400)
    check("Nothing was changed" in r.text, "page %s", r.text[:500])
    check(dump() == before, "a bad name changed something")


def test_address_change_waits_for_confirmation():
    setup()
    who, new = S.readers[6], "new-six@example.org"
    url = prefs_url(who)
    nonce = nonce_of(expect(curl(url), 200))
    sent = S.smtp.count()
    r = expect(post(url, [("nonce", nonce), ("action", "save"), ("name", "Reader 6"),
                          ("email", new), ("list", S.list_id["news"])]), 200)
    check("sent a message to the new address" in r.text, "page %s", r.text[:1500])
    wait_mails(sent + 1, "the confirmation mail to the new address")
    got = mails_to(new)
    check(len(got) == 1, "mails to %s: %d", new, len(got))
    # nothing changes until followed: the new address waits, the old keeps its list
    check(status(new, "news") == "unconfirmed", "new address %s", status(new, "news"))
    check(status(who, "news") == "confirmed", "old address %s", status(who, "news"))
    link = re.findall(r"%s/confirm/%s" % (re.escape(BASE), TOKEN_RE),
                      got[0].get_body(("plain",)).get_content())
    check(link, "no confirmation link")
    c = S.srv.url + link[0][len(BASE):]
    expect(curl(c), 200)
    check(status(new, "news") == "unconfirmed", "GET /confirm confirmed it")
    expect(post(c, [("action", "confirm")]), 200)
    check(status(new, "news") == "confirmed", "after the link: %s", status(new, "news"))


# --- the survey -------------------------------------------------------------------------

def survey_fields(nonce, reason, note=None):
    f = [("nonce", nonce), ("action", "survey"), ("reason", reason)]
    return f + ([("note", note)] if note is not None else [])


def answers(who):
    return S.w.sql("SELECT a.reason, a.note, a.issue_id, l.list_id FROM leave_answers a JOIN "
                   "leave_answer_lists l ON l.answer_id = a.id WHERE a.subscriber_id = ? "
                   "ORDER BY l.list_id", sub_id(who))


def test_survey_after_the_unsubscribe_page():
    setup()
    who = S.readers[7]
    url = unsub_url(who)
    r = expect(post(url, [("action", "unsubscribe")]), 200)
    check("You have been unsubscribed" in r.text, "page %s", r.text[:1000])
    check("Why are you leaving?" in r.text, "no survey on the /u page")
    nonce = nonce_of(r)
    # a wrong nonce: refused, nothing stored, still unsubscribed (and not twice)
    before = dump()
    expect(post(url, survey_fields("f" * 32, "other", "spam")), 403)
    expect(post(url, [("action", "survey"), ("reason", "other")]), 403)
    check(dump() == before, "a refused survey changed the database")
    r = expect(post(url, survey_fields(nonce, "other", "  too\tlong  ")), 200)
    check("Thank you" in r.text, "page %s", r.text[:500])
    check(answers(who) == [("other", "too long", int(S.iid), S.list_id["news"])],
          "answers %s", answers(who))
    # a second answer replaces the first
    expect(post(url, survey_fields(nonce, "too_many")), 200)
    check(answers(who) == [("too_many", "", int(S.iid), S.list_id["news"])],
          "answers %s", answers(who))
    check(status(who, "news") == "unsubscribed", "status %s", status(who, "news"))


def test_survey_needs_a_recent_leaving_and_is_counted():
    setup()
    # reader08 has left nothing: an answer is not stored
    who = S.readers[8]
    url = prefs_url(who)
    nonce = nonce_of(expect(curl(url), 200))
    r = expect(post(url, survey_fields(nonce, "not_relevant")), 200)
    check("nothing was stored" in r.text.lower(), "page %s", r.text[:500])
    check(answers(who) == [], "stored without leaving: %s", answers(who))
    # leaving in the preference centre, then answering there
    expect(post(url, [("nonce", nonce), ("action", "leave_all")]), 200)
    expect(post(url, survey_fields(nonce, "not_relevant")), 200)
    check(answers(who) == [("not_relevant", "", int(S.iid), S.list_id["news"])],
          "answers %s", answers(who))
    # reader09 leaves news on the /u page and never signed up
    who = S.readers[9]
    r = expect(post(unsub_url(who), [("action", "unsubscribe")]), 200)
    expect(post(unsub_url(who), survey_fields(nonce_of(r), "never_signed_up")), 200)
    # counted per issue and per list (test_survey_after_the_unsubscribe_page's
    # reader07 answered too_many)
    st = json.loads(S.w.ok("stats", S.iid, "--json").stdout_text)
    want = {"too_many": 1, "not_relevant": 1, "never_signed_up": 1, "other": 0}
    check(st["leave_reasons"] == want, "stats leave_reasons %s", st["leave_reasons"])
    text = S.w.ok("stats", S.iid).stdout_text
    check(re.search(r"^    leaving: +Too many mails 1, Not relevant to me 1, I never signed "
                    r"up 1, Other 0$", text, re.M), "stats text: %s", text)
    js = json.loads(S.w.ok("list", "show", "news", "--json").stdout_text)
    check(js["leave_reasons"] == want, "list show --json %s", js.get("leave_reasons"))
    out = S.w.ok("list", "show", "news").stdout_text
    check(re.search(r"^leaving +Too many mails 1, Not relevant to me 1, I never signed up 1, "
                    r"Other 0$", out, re.M), "list show: %s", out)
    page = os.path.join(S.w.root, "stats.html")
    S.w.ok("stats", S.iid, "--html", page)
    html = open(page, encoding="utf-8").read()
    check(re.search(r'data-key="leave_reasons.too_many">1<', html), "stats --html")


def test_tracking_consent_checkbox_in_consent_mode():
    """[tracking] mode = consent: the page shows a Tracking checkbox with the
    reader's consent; saving it ticked gives it, unticked withdraws it (the
    attribute tracking.h reads); the first world (mode on) shows none."""
    setup()
    check('name="tracking_consent"' not in expect(curl(prefs_url(S.readers[4])), 200).text,
          "a tracking checkbox in mode on")
    with World(extra_config="[tracking]\nmode = consent\n") as w:
        w.init()
        smtp = w.smtp()
        w.ok("list", "create", "news", "--title", "WWC News", "--signup")
        who = "tc@example.org"
        w.subscribe([who], "news")
        w.ok("send", w.new_issue("Consent issue", "news", "Hello.\n"))
        msg = [m for _, m, _ in smtp.messages()][0]
        html = msg.get_body(("html",)).get_content()
        srv = w.serve()
        try:
            url = srv.url + re.findall(r'href="%s(/p/%s)"' % (re.escape(BASE), TOKEN_RE),
                                       html)[0]

            def consent():
                return w.sql("SELECT json_extract(attributes, '$.tracking_consent') FROM "
                             "subscribers WHERE email = ?", who)[0][0]

            r = expect(curl(url), 200)
            check('name="tracking_consent" value="yes">' in r.text, "unticked box: %s",
                  r.text[:2000])
            news = str(w.sql("SELECT id FROM lists WHERE name = 'news'")[0][0])
            r = expect(post(url, [("nonce", nonce_of(r)), ("action", "save"), ("list", news),
                                  ("tracking_consent", "yes")]), 200)
            check(consent() == "yes", "consent after ticking: %r", consent())
            check('name="tracking_consent" value="yes" checked>' in r.text, "box not ticked")
            r = expect(post(url, [("nonce", nonce_of(r)), ("action", "save"),
                                  ("list", news)]), 200)
            check(consent() == "no", "consent after unticking: %r", consent())
        finally:
            check(srv.stop() == 0, "the consent-mode server")


def teardown():
    if hasattr(S, "w"):
        if getattr(S, "srv", None) is not None and S.srv.poll() is None:
            rc = S.srv.stop()
            check(rc == 0, "the server: exit %d %s", rc, S.srv.stderr_text)
        S.w.close()


def main():
    tests = [(n[5:], f) for n, f in globals().items() if n.startswith("test_")]
    try:
        run_tests(tests + [("server stops cleanly", teardown)])
    finally:
        if hasattr(S, "w"):
            S.w.close()


if __name__ == "__main__":
    main()
