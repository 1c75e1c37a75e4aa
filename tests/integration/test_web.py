#!/usr/bin/python3
"""test_web.py - `herald serve` through the real server, fetched with curl.

What `herald serve` promises (docs/web.md, "herald serve"; the invariants
in src/web.c's head comment), each point below checked.  One world holds two
lists: "newsletter" (public, single opt-in) and "board" (private, double
opt-in, a title with HTML specials), readers on both, and [dkim]
configured.  The sample issue and a few short ones are sent to the test SMTP
server (tests/tools/smtpd.py); every URL the tests use comes out of those
real mails: the open pixel, the click links (HTML and text part), the
List-Unsubscribe URL and mailto, the "view in your browser" link, and the
/confirm/ link of a double opt-in mail.  `herald serve --listen 127.0.0.1:0`
serves them (base_url https://news.example.org maps onto its root) and
`curl -s -i` fetches them.  Covered:
  - pixel: 200 image/gif, 43 bytes, no-cache headers, an "open" event (ids,
    ua class, agent cut at 120); bad tokens still get the GIF, record nothing;
  - click: 302 to the issue's exact link (merge fields merged for the
    subscriber), a "click" event with n; a token acts for its own subscriber
    only; every tampered case (wrong HMAC, truncated, extended, case-changed,
    other kinds, other issue's link number, N = 0 / out of range / not a
    number, extra path) is 404 and records nothing; no open redirect;
  - unsubscribe: GET (and HEAD) shows list and address and changes nothing;
    one-click POST (urlencoded and multipart) -> 200 "unsubscribed", source
    one-click, idempotent; the form POST and "Subscribe again"; the token acts
    on its own list only; tampered tokens 404; a web unsubscribe during a
    running send makes that recipient skipped, while the server keeps
    answering pixels beside the sender;
  - subscribe: double opt-in round trip (confirmation mail: Auto-Submitted,
    no List-Unsubscribe-Post, DKIM verified by python3-dkim; GET /confirm
    changes nothing, POST confirms); single opt-in; blocked address looks
    like success but nothing happens; unsubscribed person back through
    confirmation; 400 invalid address; 404 unknown list; 429 per address
    (3 mails) and per IP (5 requests);
  - archive: lists sent issues of public lists, newest first, not private
    ones nor drafts; /archive/ID has no subscriber data or tokens; a private
    issue only with its view token, which is bound to its issue;
  - every response carries CSP, nosniff, no-referrer (404/405/413 too);
    pages load nothing external; 405 (with Allow) for PUT/DELETE/PATCH/
    OPTIONS; 413 for a 10 KB body and nothing changes; a stalled request is
    dropped while others are served; IPv6 listen; a busy port is an error;
  - SIGTERM under load: exit 0 and every answered hit is in the database.
"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SKIP, SOURCE_DIR, Skip, World, check, iso, need_module, run_tests,  # noqa: E402
                     wait_until)
from webclient import UA, curl, expect, expect_404, form_post  # noqa: E402

if not shutil.which("curl"):
    print("SKIP: curl is missing (apt-get install curl)")
    sys.exit(SKIP)
need_module("aiosmtpd")
try:
    import dkim  # python3-dkim: an independent DKIM verifier (optional)
except ImportError:
    dkim = None

ISSUE = os.path.join(SOURCE_DIR, "examples", "newsletter-16.md")
BASE = "https://news.example.org"
LONG_UA = UA + " extension/" + "x" * 150           # 250 characters: cut at 120
TOKEN_RE = r"[A-Za-z0-9_-]+"


# --- HTTP through curl (helpers shared with the hardening tests) -----------------------

def check_no_external(r):
    """A page herald makes loads nothing from elsewhere: no scripts, no
    remote images, styles or fonts."""
    body = r.text
    check(not re.search(r"<script\b", body, re.I), "%s: a <script>", r.what)
    check(not re.search(r"""\bsrc\s*=\s*["']?\s*(https?:)?//""", body, re.I),
          "%s: loads something from elsewhere", r.what)
    check(not re.search(r"""<link\b[^>]*href\s*=\s*["']?\s*(https?:)?//""", body, re.I),
          "%s: links a remote stylesheet", r.what)
    check(not re.search(r"""(@import|url\(\s*["']?\s*(https?:)?//)""", body, re.I),
          "%s: CSS loads something from elsewhere", r.what)


# --- the shared world ---------------------------------------------------------------------

class Mail:
    """The URLs a received mail carries (BASE-relative paths kept whole)."""

    def __init__(self, msg, raw):
        self.msg, self.raw = msg, raw
        self.to = msg["To"].addresses[0].addr_spec
        self.html = msg.get_body(("html",)).get_content()
        self.text = msg.get_body(("plain",)).get_content()
        b = re.escape(BASE)
        pix = re.findall(r'<img\b[^>]*\bsrc="(%s/o/%s\.gif)"' % (b, TOKEN_RE), self.html)
        self.pixel = pix[0] if pix else None
        self.clicks = list(dict.fromkeys(re.findall(r'href="(%s/c/%s/\d+)"' % (b, TOKEN_RE),
                                                    self.html)))
        self.text_clicks = list(dict.fromkeys(re.findall(r"%s/c/%s/\d+" % (b, TOKEN_RE),
                                                         self.text)))
        lu = re.findall(r"<([^>]+)>", str(msg.get("List-Unsubscribe", "")))
        self.unsub = [u for u in lu if u.startswith(BASE + "/u/")]
        self.mailto = [u for u in lu if u.startswith("mailto:")]
        self.unsub = self.unsub[0] if self.unsub else None
        self.mailto = self.mailto[0] if self.mailto else None
        views = re.findall(r'href="(%s/archive/[^"]+)"' % b, self.html)
        self.view = views[0] if views else None

    def tokens(self):
        out = set()
        for u in [self.pixel, self.unsub, self.view] + self.clicks:
            if u:
                m = re.match(r"%s/\w+/(?:\d+/)?(%s)" % (re.escape(BASE), TOKEN_RE), u)
                if m and len(m.group(1)) > 8:
                    out.add(m.group(1))
        return out


def token_of(url):
    """The token in BASE/o/T.gif, BASE/c/T/N, BASE/u/T, BASE/archive/ID/T,
    BASE/confirm/T."""
    path = urllib.parse.urlsplit(url).path
    parts = path.strip("/").split("/")
    if parts[0] == "o":
        return parts[1][:-len(".gif")]
    if parts[0] == "archive":
        return parts[2]
    return parts[1]


def token_subscriber(tok):
    """The subscriber id in a token (token.h: a version/kind byte, then the
    subscriber id as an unsigned LEB128 varint)."""
    raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    v, shift = 0, 0
    for b in raw[1:]:
        v |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            break
    return v


def flip(tok, i):
    """tok with character i replaced by another base64url character: i not
    the last character, so all six bits are data and the bytes change."""
    c = tok[i]
    return tok[:i] + ("B" if c != "B" else "C") + tok[i + 1:]


class Site:
    pass


S = Site()
MARKS = [0]


def keygen(w, selector):
    """`herald dkim keygen`: (key path, {dns name: TXT bytes}) as in test_dkim.py."""
    path = os.path.join(w.root, "%s.pem" % selector)
    p = w.ok("dkim", "keygen", "--domain", "example.org", "--selector", selector,
             "--type", "rsa", "--out", path)
    m = re.search(r'^(\S+)\. IN TXT \((.*?)\)', p.stdout_text, re.S | re.M)
    check(m, "no TXT record in keygen output: %s", p.stdout_text)
    return path, {m.group(1) + ".": "".join(re.findall(r'"([^"]*)"', m.group(2))).encode()}


def send(w, iid, *global_opts):
    before = len(S.smtp.messages())
    w.ok(*(list(global_opts) + ["send", iid]))
    got = S.smtp.messages()[before:]
    S.mails.update({(iid, m.to): m for m in (Mail(msg, raw) for _, msg, raw in got)})
    return got


def setup():
    if hasattr(S, "w"):
        return S
    w = World()
    S.w = w
    S.key, S.dns = keygen(w, "web2026")
    w.set("dkim", selector="web2026", private_key=S.key)
    w.init()
    S.smtp = w.smtp()
    S.mails = {}
    w.ok("list", "create", "newsletter", "--title", "WWC News", "--public", "--signup")
    w.ok("list", "create", "board", "--title", "Board & <Staff>", "--double-opt-in", "--signup")
    S.readers = ["reader%02d@example.org" % i for i in range(12)]
    w.subscribe(S.readers + ["sentinel@example.org"], "newsletter")
    w.subscribe(S.readers[:6], "board")
    S.list_id = {n: i for i, n in w.sql("SELECT id, name FROM lists")}
    S.sub_id = {e: i for i, e in w.sql("SELECT id, email FROM subscribers")}
    # i1, the sample issue, sent a day ago; i4 sent now (newest first in the archive)
    S.i1 = w.ok("issue", "new", ISSUE).stdout_text.strip()
    S.i2 = w.new_issue("Board minutes (private)", "board",
                       "# Board minutes\n\nDear {{name}}, the [agenda]"
                       "(https://example.org/board/agenda?who={{email}}&name={{name}}) and the "
                       "[minutes](https://example.org/board/minutes).\n")
    S.i3 = w.new_issue("Board follow-up (private)", "board",
                       "# Board follow-up\n\n[Follow-up](https://example.org/board/follow-up)\n")
    S.i4 = w.new_issue("Second public issue", "newsletter",
                       "# Second public issue\n\nHello {{name}}: [more](https://example.org/more)\n")
    S.i5 = w.new_issue("Draft not for the archive", "newsletter", "# Draft\n\nNot yet.\n")
    send(w, S.i1, "--now", iso(time.time() - 86400))
    for iid in (S.i2, S.i3, S.i4):
        send(w, iid)
    check(len(S.mails) == 13 + 6 + 6 + 13, "mails received: %d", len(S.mails))
    S.links = {iid: json.loads(w.sql("SELECT links FROM issues WHERE id = ?", iid)[0][0])
               for iid in (S.i1, S.i2, S.i3, S.i4)}
    S.srv = w.serve()
    return S


def mail(iid, who):
    return S.mails[(iid, who)]


def local(url, srv=None):
    check(url and url.startswith(BASE), "not a %s URL: %r", BASE, url)
    return (srv or S.srv).url + url[len(BASE):]


def flush(srv=None):
    """Wait until every event the server has queued so far is written: one
    more open (the sentinel's pixel, with a unique User-Agent) goes through the
    same queue, so once it is in the database so is everything before it."""
    MARKS[0] += 1
    ua = "herald-test-flush-%d" % MARKS[0]
    expect(curl(local(mail(S.i1, "sentinel@example.org").pixel, srv), ua=ua), 200)
    wait_until(lambda: S.w.sql("SELECT id FROM events WHERE json_extract(detail, '$.agent') "
                               "= ?", ua), 5, "the event of a pixel hit (flush marker)")


NOT_MARK = "coalesce(json_extract(detail, '$.agent'), '') NOT LIKE 'herald-test-flush-%'"


def last_event():
    """The last event id, once everything queued before is written."""
    flush()
    return S.w.sql("SELECT coalesce(max(id), 0) FROM events")[0][0]


def events_after(before, kind=None):
    rows = S.w.sql("SELECT id, kind, issue_id, subscriber_id, list_id, detail FROM events "
                   "WHERE id > ? AND " + NOT_MARK + " ORDER BY id", before)
    return [dict(id=r[0], kind=r[1], issue=r[2], sub=r[3], list=r[4], detail=json.loads(r[5]))
            for r in rows if kind is None or r[1] == kind]


def state():
    """What a request must not change: subscribers, subscriptions, and
    every event but the flush markers (after a flush of the queue)."""
    flush()
    return (S.w.sql("SELECT * FROM subscribers ORDER BY id"),
            S.w.sql("SELECT * FROM subscriptions ORDER BY list_id, subscriber_id"),
            S.w.sql("SELECT * FROM events WHERE " + NOT_MARK + " ORDER BY id"))


def status_of(who, list_name):
    rows = S.w.sql("SELECT status FROM subscriptions WHERE list_id = ? AND subscriber_id = ?",
                   S.list_id[list_name], S.sub_id.get(who) or sub_id(who))
    return rows[0][0] if rows else None


def sub_id(who):
    rows = S.w.sql("SELECT id FROM subscribers WHERE email = ? COLLATE NOCASE", who)
    return rows[0][0] if rows else None


# --- the mails themselves -----------------------------------------------------------------

def test_mails_carry_the_urls():
    setup()
    for (iid, who), m in S.mails.items():
        check(m.pixel, "%s/%s: no open pixel", iid, who)
        check(m.unsub and m.mailto, "%s/%s: List-Unsubscribe %r", iid, who,
              m.msg["List-Unsubscribe"])
        check(m.mailto == "mailto:unsubscribe+%s@example.org" % token_of(m.unsub),
              "%s/%s: the mailto does not carry the URL's token: %s %s", iid, who, m.mailto,
              m.unsub)
        for u in [m.pixel, m.unsub] + m.clicks:
            check(token_subscriber(token_of(u)) == S.sub_id[who], "%s/%s: %s is not for "
                  "subscriber %d", iid, who, u, S.sub_id[who])
        nweb = sum(1 for u in S.links[iid] if u.startswith("http"))
        check(len(m.clicks) == nweb, "%s/%s: click links html %s, %d web links", iid, who,
              m.clicks, nweb)
        # the text part lists each link's real destination, never the redirect
        check(not m.text_clicks, "%s/%s: redirects in the text part: %s", iid, who,
              m.text_clicks)
        listed = [line.split(" ", 1)[1] for line in m.text.splitlines()
                  if re.match(r"\[\d+\] ", line)]
        for u in S.links[iid]:
            # a link with merge fields is listed merged for this reader
            check(u in listed or ("{{" in u and any(
                urllib.parse.unquote(x).startswith(u.split("{{")[0]) and "{{" not in x
                and who in urllib.parse.unquote(x) for x in listed)),
                  "%s/%s: the text part does not list %s: %s", iid, who, u, listed)
    # public list: /archive/ID; private: /archive/ID/TOKEN, the same for everyone
    check(mail(S.i1, "reader00@example.org").view == "%s/archive/%s" % (BASE, S.i1),
          "view link %s", mail(S.i1, "reader00@example.org").view)
    views = {mail(S.i2, r).view for r in S.readers[:6]}
    check(len(views) == 1 and re.fullmatch(r"%s/archive/%s/%s" % (re.escape(BASE), S.i2,
                                                                  TOKEN_RE), views.pop()),
          "private view links %s", {mail(S.i2, r).view for r in S.readers[:6]})


# --- open pixel ---------------------------------------------------------------------------

def check_gif(r):
    expect(r, 200)
    check(r.h("Content-Type") == "image/gif", "%s: Content-Type %r", r.what, r.h("Content-Type"))
    check(len(r.body) == 43 and r.body.startswith(b"GIF89a"), "%s: %d bytes %r", r.what,
          len(r.body), r.body[:10])
    cc = [x.strip() for x in (r.h("Cache-Control") or "").lower().split(",")]
    for want in ("no-store", "no-cache", "must-revalidate", "max-age=0"):
        check(want in cc, "%s: Cache-Control %r lacks %s", r.what, r.h("Cache-Control"), want)
    check((r.h("Pragma") or "").lower() == "no-cache", "%s: Pragma %r", r.what, r.h("Pragma"))
    check(r.h("Expires") == "0", "%s: Expires %r", r.what, r.h("Expires"))


def test_pixel_records_an_open():
    setup()
    who = "reader00@example.org"
    before = last_event()
    check_gif(curl(local(mail(S.i1, who).pixel), ua=LONG_UA))
    check_gif(curl(local(mail(S.i4, who).pixel), ua=UA))
    flush()
    ev = events_after(before)
    check(len(ev) == 2 and all(e["kind"] == "open" for e in ev), "events %s", ev)
    for e, iid, ua in ((ev[0], S.i1, LONG_UA), (ev[1], S.i4, UA)):
        check((e["issue"], e["sub"], e["list"]) == (int(iid), S.sub_id[who],
                                                   S.list_id["newsletter"]),
              "open recorded for %s, wanted issue %s subscriber %s", e, iid, S.sub_id[who])
        check(e["detail"].get("ua") == "human", "a browser's open classed %s", e["detail"])
        check(e["detail"].get("agent") == ua[:120], "agent %r", e["detail"].get("agent"))


def test_pixel_bad_tokens_get_a_gif_and_record_nothing():
    setup()
    m = mail(S.i1, "reader01@example.org")
    tok = token_of(m.pixel)
    srv = S.srv.url
    bad = [flip(tok, len(tok) - 5), flip(tok, 2), tok[:-1], tok[:10], tok + "A",
           tok.swapcase(), token_of(m.clicks[0]), token_of(m.unsub), "not-a-token",
           "A" * 200]
    before = last_event()
    for t in bad:
        check_gif(curl("%s/o/%s.gif" % (srv, t)))
    flush()
    check(events_after(before) == [], "bad pixel tokens recorded %s", events_after(before))


# --- clicks -------------------------------------------------------------------------------

def test_click_redirects_and_records():
    setup()
    who = "reader01@example.org"
    m = mail(S.i1, who)
    before = last_event()
    for n, url in enumerate(m.clicks, 1):
        check(url.endswith("/%d" % n), "click links out of order: %s", m.clicks)
        r = expect(curl(local(url)), 302)
        check(r.h("Location") == S.links[S.i1][n - 1], "link %d: Location %r, wanted %r", n,
              r.h("Location"), S.links[S.i1][n - 1])
    flush()
    ev = events_after(before)
    check([e["kind"] for e in ev] == ["click"] * len(m.clicks), "events %s", ev)
    check([e["detail"].get("n") for e in ev] == list(range(1, len(m.clicks) + 1)),
          "click n %s", [e["detail"] for e in ev])
    for e in ev:
        check((e["issue"], e["sub"], e["list"]) == (int(S.i1), S.sub_id[who],
                                                   S.list_id["newsletter"]), "click %s", e)
        check(e["detail"].get("ua") in ("human", "machine"), "click detail %s", e["detail"])


def test_click_merges_the_link_for_its_subscriber():
    setup()
    for i in (2, 3):
        who = S.readers[i]
        r = expect(curl(local(mail(S.i2, who).clicks[0])), 302)
        loc = r.h("Location") or ""
        # the merged values may be percent-encoded, but the header is a URI:
        # printable ASCII, no space
        check(re.fullmatch(r"[!-~]+", loc), "Location %r is not a URI", loc)
        want = "https://example.org/board/agenda?who=%s&name=Reader %d" % (who, i)
        check(urllib.parse.unquote(loc) == want, "Location %r, wanted %r", loc, want)


def test_click_token_acts_for_its_own_subscriber():
    setup()
    a, b = "reader02@example.org", "reader03@example.org"
    before = last_event()
    # B's token, whoever follows it: B's click, never A's
    r = expect(curl(local(mail(S.i1, b).clicks[2])), 302)
    check(r.h("Location") == S.links[S.i1][2], "Location %r", r.h("Location"))
    # A's token with B's... nothing: mixing their tokens is a tamper
    ta, tb = token_of(mail(S.i1, a).clicks[0]), token_of(mail(S.i1, b).clicks[0])
    mixed = ta[:len(ta) // 2] + tb[len(tb) // 2:]
    if mixed not in (ta, tb):
        expect_404(curl("%s/c/%s/1" % (S.srv.url, mixed)))
    flush()
    ev = events_after(before)
    check(len(ev) == 1 and ev[0]["kind"] == "click" and ev[0]["sub"] == S.sub_id[b]
          and ev[0]["detail"].get("n") == 3,
          "wanted one click of %s (id %d) on link 3: %s", b, S.sub_id[b], ev)


def test_click_tampered_is_404_and_records_nothing():
    setup()
    who = "reader01@example.org"
    m = mail(S.i1, who)
    tok = token_of(m.clicks[0])
    n_links = len(S.links[S.i1])
    srv = S.srv.url
    cases = {
        "wrong HMAC": "/c/%s/1" % flip(tok, len(tok) - 5),
        "changed ids": "/c/%s/1" % flip(tok, 2),
        "changed kind byte": "/c/%s/1" % flip(tok, 0),
        "truncated by one": "/c/%s/1" % tok[:-1],
        "truncated by half": "/c/%s/1" % tok[:len(tok) // 2],
        "extended": "/c/%s/1" % (tok + "AA"),
        "case changed": "/c/%s/1" % tok.swapcase(),
        "no token": "/c//1",
        "an open token": "/c/%s/1" % token_of(m.pixel),
        "an unsubscribe token": "/c/%s/1" % token_of(m.unsub),
        "a view token": "/c/%s/1" % token_of(mail(S.i2, who).view),
        "N = 0": "/c/%s/0" % tok,
        "N = links + 1": "/c/%s/%d" % (tok, n_links + 1),
        "N = 1000": "/c/%s/1000" % tok,
        "N huge": "/c/%s/%s" % (tok, "9" * 30),
        "N = 2^64 + 1": "/c/%s/%d" % (tok, 2 ** 64 + 1),
        "N negative": "/c/%s/-1" % tok,
        "N not a number": "/c/%s/abc" % tok,
        "N with trailing junk": "/c/%s/1a" % tok,
        "N decimal": "/c/%s/1.0" % tok,
        "N empty": "/c/%s/" % tok,
        "N missing": "/c/%s" % tok,
        "extra path": "/c/%s/1/x" % tok,
        "another issue's link number": "/c/%s/%d" % (token_of(mail(S.i2, who).clicks[0]),
                                                    len(S.links[S.i2]) + 1),
        "another issue's link number (5)": "/c/%s/5" % token_of(mail(S.i3, who).clicks[0]),
    }
    before = last_event()
    for name, path in cases.items():
        r = curl(srv + path)
        check(r.status == 404, "%s (%s): %d %r, wanted 404", name, path, r.status,
              r.h("Location"))
        check(r.h("Location") is None, "%s: Location %r", name, r.h("Location"))
        check_no_external(r)
    flush()
    check(events_after(before) == [], "tampered clicks recorded %s", events_after(before))


def test_click_other_issue_token_goes_to_that_issue():
    setup()
    who = "reader04@example.org"
    r = expect(curl(local(mail(S.i3, who).clicks[0])), 302)
    check(r.h("Location") == "https://example.org/board/follow-up",
          "issue %s link 1 redirected to %r", S.i3, r.h("Location"))


def test_click_is_no_open_redirect():
    setup()
    url = local(mail(S.i1, "reader04@example.org").clicks[0])
    for q in ("?url=https://evil.example.net/", "?next=//evil.example.net",
              "?redirect=https%3A%2F%2Fevil.example.net"):
        r = curl(url + q)
        loc = r.h("Location") or ""
        check("evil" not in loc, "%s: Location %r", r.what, loc)
        check(r.status in (302, 404), "%s: %d", r.what, r.status)
        if r.status == 302:
            check(loc == S.links[S.i1][0], "%s: Location %r", r.what, loc)
    for path in ("/c/https://evil.example.net/1", "/c//evil.example.net/1",
                 "/%2F%2Fevil.example.net", "//evil.example.net/"):
        r = curl(S.srv.url + path)
        check(r.status == 404 and "evil" not in (r.h("Location") or ""), "%s: %d %r", r.what,
              r.status, r.h("Location"))


# --- unsubscribe --------------------------------------------------------------------------

def test_unsubscribe_get_shows_the_page_and_changes_nothing():
    setup()
    who = "reader04@example.org"
    url = local(mail(S.i1, who).unsub)
    before = state()
    for _ in range(3):
        r = expect(curl(url), 200)
        check("text/html" in (r.h("Content-Type") or ""), "Content-Type %r",
              r.h("Content-Type"))
        check("WWC News" in r.text and who in r.text, "page does not name list and address: %s",
              r.text[:1500])
        check(re.search(r"<form\b[^>]*method=[\"']?post", r.text, re.I),
              "no POST form: %s", r.text[:1500])
        action = re.search(r"<form\b[^>]*action=[\"']([^\"']*)", r.text, re.I)
        check(not action or action.group(1) in ("", urllib.parse.urlsplit(url).path),
              "the form posts elsewhere: %s", action and action.group(1))
        check(re.search(r"<button\b[^>]*>\s*Unsubscribe\s*</button>|<input\b[^>]*value=[\"']"
                        r"Unsubscribe[\"']", r.text, re.I), "no Unsubscribe button: %s",
              r.text[:1500])
        check_no_external(r)
    h = expect(curl(url, "HEAD"), 200)
    check(h.body == b"", "HEAD with a body")
    # the board page: the title is escaped, the list is the token's own
    r = expect(curl(local(mail(S.i2, who).unsub)), 200)
    check("Board &amp; &lt;Staff&gt;" in r.text and "<Staff>" not in r.text,
          "list title not escaped: %s", r.text[:1500])
    flush()
    check(state() == before, "GET/HEAD /u/TOKEN changed the database")
    check(status_of(who, "newsletter") == "confirmed", "status %s",
          status_of(who, "newsletter"))


def test_one_click_unsubscribe():
    setup()
    who = "reader05@example.org"
    url = local(mail(S.i1, who).unsub)
    before = last_event()
    r = expect(curl(url, "POST", data="List-Unsubscribe=One-Click",
                    headers=["Content-Type: application/x-www-form-urlencoded"]), 200)
    check((r.h("Content-Type") or "").startswith("text/plain"), "Content-Type %r",
          r.h("Content-Type"))
    check(r.text.strip() == "unsubscribed", "body %r", r.body)
    check(status_of(who, "newsletter") == "unsubscribed", "status %s",
          status_of(who, "newsletter"))
    check(status_of(who, "board") == "confirmed", "the newsletter token unsubscribed %s "
          "from board too", who)
    # a second one-click POST: fine, nothing more recorded
    expect(curl(url, "POST", data="List-Unsubscribe=One-Click"), 200)
    flush()
    ev = events_after(before, "unsubscribe")
    check(len(ev) == 1 and ev[0]["sub"] == S.sub_id[who] and
          ev[0]["list"] == S.list_id["newsletter"] and ev[0]["detail"].get("source") == "one-click",
          "unsubscribe events %s", ev)
    # multipart/form-data, as some receivers send it; on the private list
    who = "reader01@example.org"
    before = last_event()
    r = expect(curl(local(mail(S.i2, who).unsub), "POST",
                    form=[("List-Unsubscribe", "One-Click")]), 200)
    check(r.text.strip() == "unsubscribed", "body %r", r.body)
    check(status_of(who, "board") == "unsubscribed", "multipart one-click: status %s",
          status_of(who, "board"))
    check(status_of(who, "newsletter") == "confirmed", "board token touched the newsletter")
    ev = events_after(before, "unsubscribe")
    check(len(ev) == 1 and ev[0]["detail"].get("source") == "one-click", "events %s", ev)


def test_form_unsubscribe_then_subscribe_again():
    setup()
    who = "reader07@example.org"
    url = local(mail(S.i4, who).unsub)
    before = last_event()
    r = expect(form_post(url, action="unsubscribe"), 200)
    check("You have been unsubscribed from WWC News" in r.text, "page %s", r.text[:1500])
    check(re.search(r"Subscribe again", r.text) and
          re.search(r"name=[\"']?action[\"']?[^>]*value=[\"']?resubscribe|"
                    r"value=[\"']?resubscribe[\"']?[^>]*name=[\"']?action", r.text),
          "no 'Subscribe again' button posting action=resubscribe: %s", r.text[:1500])
    check_no_external(r)
    check(status_of(who, "newsletter") == "unsubscribed", "status %s",
          status_of(who, "newsletter"))
    ev = events_after(before, "unsubscribe")
    check(len(ev) == 1 and ev[0]["detail"].get("source") == "web", "events %s", ev)
    r = expect(form_post(url, action="resubscribe"), 200)
    check("You are subscribed again" in r.text, "page %s", r.text[:1500])
    check(status_of(who, "newsletter") == "confirmed", "status after resubscribe %s",
          status_of(who, "newsletter"))
    ev = [e for e in events_after(before) if e["kind"] in ("subscribe", "confirm")]
    check(len(ev) == 1 and ev[0]["detail"].get("source") == "web" and
          ev[0]["sub"] == S.sub_id[who], "resubscribe events %s", ev)
    # any other body unsubscribes too (source web)
    r = expect(curl(url, "POST", data="whatever=1"), 200)
    check(status_of(who, "newsletter") == "unsubscribed", "status %s",
          status_of(who, "newsletter"))


def test_unsubscribe_tampered_is_404_and_changes_nothing():
    setup()
    who = "reader08@example.org"
    m = mail(S.i1, who)
    tok = token_of(m.unsub)
    bad = [flip(tok, len(tok) - 5), flip(tok, 2), flip(tok, 0), tok[:-1], tok[:12], tok + "A",
           tok.swapcase(), token_of(m.pixel), token_of(m.clicks[0]),
           token_of(mail(S.i2, "reader00@example.org").view)]
    before = state()
    for t in bad:
        url = "%s/u/%s" % (S.srv.url, t)
        expect_404(curl(url))
        expect_404(curl(url, "POST", data="List-Unsubscribe=One-Click"))
        expect_404(form_post(url, action="unsubscribe"))
    expect_404(curl(S.srv.url + "/u/"))
    expect_404(curl(S.srv.url + "/u/%s/extra" % tok, "POST", data="List-Unsubscribe=One-Click"))
    flush()
    check(state() == before, "a bad unsubscribe token changed the database")
    check(status_of(who, "newsletter") == "confirmed", "status %s", status_of(who, "newsletter"))


# --- archive ------------------------------------------------------------------------------

def archive_links(r, page_url):
    """The paths the page's links lead to, in order (relative hrefs resolved)."""
    return [urllib.parse.urlsplit(urllib.parse.urljoin(page_url, html_unescape(h))).path
            for h in re.findall(r"""<a\b[^>]*\bhref=["']([^"']*)["']""", r.text, re.I)]


def html_unescape(s):
    import html
    return html.unescape(s)


def test_archive_lists_public_sent_issues():
    setup()
    r = expect(curl(S.srv.url + "/archive"), 200)
    body = r.text
    check("text/html" in (r.h("Content-Type") or ""), "Content-Type %r", r.h("Content-Type"))
    check_no_external(r)
    links = archive_links(r, S.srv.url + "/archive")
    p1 = "/archive/%s" % S.i1
    p4 = "/archive/%s" % S.i4
    check(p1 in links and p4 in links, "archive lacks the links of issues %s and %s: %s",
          S.i1, S.i4, links)
    check(links.index(p4) < links.index(p1),
          "not newest first: issue %s (sent now) after issue %s (a day ago)", S.i4, S.i1)
    for path in (p1, p4):   # the links work
        expect(curl(S.srv.url + path), 200)
    check("What Works Centre e-newsletter no.16" in body and "Second public issue" in body,
          "subjects missing: %s", body[:2000])
    for s, iid in (("Board minutes", S.i2), ("Board follow-up", S.i3), ("Draft not", S.i5)):
        check(s not in body and "/archive/%s" % iid not in links,
              "the archive shows issue %s (%s)", iid, s)
    check(expect(curl(S.srv.url + "/archive", "HEAD"), 200).body == b"", "HEAD with a body")


def all_mail_tokens():
    """Every subscriber's token the mails carry (not the view tokens: those
    are for subscriber 0, the same in every copy)."""
    out = set()
    for m in S.mails.values():
        out |= {t for t in m.tokens() if token_subscriber(t) != 0}
    return out


def check_no_reader_data(r):
    body = r.text
    for who in S.readers + ["sentinel@example.org"]:
        check(who not in body, "%s shows %s", r.what, who)
    check("Reader " not in body, "%s shows a subscriber's name", r.what)
    check("{{" not in body, "%s has unmerged fields", r.what)
    for p in ("/o/", "/c/"):
        check(BASE + p not in body, "%s has a %s URL", r.what, p)
    # a footer unsubscribe link may be there, but for nobody (subscriber 0),
    # and it acts on nothing
    for t in re.findall(r"%s/u/(%s)" % (re.escape(BASE), TOKEN_RE), body):
        check(token_subscriber(t) == 0, "%s has the unsubscribe token of subscriber %s",
              r.what, token_subscriber(t))
        before = state()
        r2 = curl("%s/u/%s" % (S.srv.url, t))
        check(r2.status in (404, 200), "%s: %d", r2.what, r2.status)
        check(S.readers[0] not in r2.text, "%s names a subscriber", r2.what)
        curl("%s/u/%s" % (S.srv.url, t), "POST", data="List-Unsubscribe=One-Click")
        check(state() == before, "the archive's unsubscribe link changed the database")
    for t in all_mail_tokens():
        check(t not in body, "%s shows a token from a mail (%s)", r.what, t)
    check_no_external(r)


def test_archive_issue_shows_no_subscriber_data():
    setup()
    r = expect(curl(local(mail(S.i1, "reader00@example.org").view)), 200)
    check("text/html" in (r.h("Content-Type") or ""), "Content-Type %r", r.h("Content-Type"))
    check(re.search(r"<h1[^>]*>What Works Centre for Children", r.text), "no h1: %s",
          r.text[:2000])
    check("https://example.org/programmes/hhp" in r.text, "links are not direct")
    check_no_reader_data(r)


def test_archive_private_issue_needs_its_view_token():
    setup()
    srv = S.srv.url
    view = mail(S.i2, "reader00@example.org").view
    tok = token_of(view)
    expect_404(curl("%s/archive/%s" % (srv, S.i2)))
    r = expect(curl(local(view)), 200)
    check(re.search(r"<h1[^>]*>Board minutes", r.text), "no h1: %s", r.text[:2000])
    check("https://example.org/board/agenda?who=" in r.text, "the agenda link: %s",
          r.text[:3000])
    check_no_reader_data(r)
    # bound to its issue, its kind, and not forgeable
    view3 = token_of(mail(S.i3, "reader00@example.org").view)
    for path in ["/archive/%s/%s" % (S.i3, tok), "/archive/%s/%s" % (S.i2, view3),
                 "/archive/%s/%s" % (S.i2, flip(tok, len(tok) - 5)),
                 "/archive/%s/%s" % (S.i2, tok[:-1]),
                 "/archive/%s/%s" % (S.i2, token_of(mail(S.i2, "reader00@example.org").pixel)),
                 "/archive/%s/%s" % (S.i2, token_of(mail(S.i2, "reader00@example.org").unsub)),
                 "/archive/%s/%s/x" % (S.i2, tok)]:
        expect_404(curl(srv + path))
    check(expect(curl(srv + "/archive/%s/%s" % (S.i3, view3)), 200), "issue 3 view")


def test_archive_drafts_and_unknown_are_404():
    setup()
    srv = S.srv.url
    for path in ("/archive/%s" % S.i5, "/archive/999", "/archive/0", "/archive/-1",
                 "/archive/abc", "/archive/1abc", "/archive/%s/" % S.i5):
        r = expect_404(curl(srv + path))
        check("Draft" not in r.text, "%s shows the draft", path)


# --- subscribe and double opt-in ----------------------------------------------------------

def mails_to(who):
    return [(msg, raw) for _, msg, raw in S.smtp.messages()
            if any(a.addr_spec.lower() == who.lower() for a in msg["To"].addresses)]


def dns_stub(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return S.dns.get(name if name.endswith(".") else name + ".")


def check_confirm_mail(msg, raw, who):
    check(str(msg.get("Auto-Submitted", "")).lower() == "auto-generated",
          "confirmation mail Auto-Submitted %r", msg.get("Auto-Submitted"))
    check(msg.get("List-Unsubscribe-Post") is None, "a confirmation mail with "
          "List-Unsubscribe-Post")
    check(msg.get("DKIM-Signature") is not None, "confirmation mail not DKIM-signed")
    if dkim:
        check(dkim.verify(raw, dnsfunc=dns_stub), "confirmation mail DKIM does not verify")
    text = msg.get_body(("plain",)).get_content()
    m = re.search(r"%s/confirm/(%s)" % (re.escape(BASE), TOKEN_RE), text)
    check(m, "no /confirm/ link in %r", text)
    html = msg.get_body(("html",))
    if html is not None:
        check(m.group(0) in html.get_content(), "the HTML part lacks the confirm link")
    return m.group(0)


def test_double_opt_in_round_trip():
    setup()
    w, srv = S.w, S.w.serve()    # its own server: a fresh per-IP limit (5 requests)
    sub = srv.url + "/subscribe"
    w.ok("sub", "add", "blocked@example.net", "--list", "newsletter")
    w.ok("sub", "block", "blocked@example.net")
    before = state()
    # 1. blocked: the same page as success, nothing happens
    r = expect(form_post(sub, email="blocked@example.net", list="board"), 200)
    check("Check your inbox" in r.text, "blocked address page: %s", r.text[:1500])
    # 2. single opt-in list: subscribed at once, no mail
    r = expect(form_post(sub, email="solo@example.net", name="Solo Reader", list="newsletter"),
               200)
    check("You are subscribed" in r.text, "single opt-in page: %s", r.text[:1500])
    check(status_of("solo@example.net", "newsletter") == "confirmed", "solo: %s",
          status_of("solo@example.net", "newsletter"))
    # 3. unknown list, 4. invalid address
    expect_404(form_post(sub, email="x@example.net", list="no-such-list"))
    r = expect(form_post(sub, email="not-an-address", list="board"), 400)
    check(re.search(r"address|@", r.text, re.I), "the 400 page does not name the problem: %s",
          r.text[:1500])
    check(sub_id("x@example.net") is None and sub_id("not-an-address") is None,
          "a refused request made a subscriber")
    # 5. double opt-in: unconfirmed, then a mail
    who = "new.person@example.net"
    r = expect(form_post(sub, email=who, name="New Person", list="board"), 200)
    check("Check your inbox" in r.text, "double opt-in page: %s", r.text[:1500])
    check_no_external(r)
    check(status_of(who, "board") == "unconfirmed", "status %s", status_of(who, "board"))
    wait_until(lambda: mails_to(who), 15, "the confirmation mail")
    time.sleep(0.5)
    check(len(mails_to(who)) == 1, "%d confirmation mails", len(mails_to(who)))
    check(not mails_to("blocked@example.net"), "mailed a blocked address")
    check(not mails_to("solo@example.net"), "mailed a single opt-in subscriber")
    check(status_of("blocked@example.net", "board") is None, "blocked address subscribed")
    check(state()[0][:len(before[0])] == before[0], "subscribers changed")
    url = check_confirm_mail(*mails_to(who)[0], who)
    # GET shows a button and changes nothing
    snap = state()
    for method in ("GET", "HEAD"):
        r = expect(curl(local(url, srv), method), 200)
    r = expect(curl(local(url, srv)), 200)
    check(re.search(r"Confirm my subscription", r.text) and
          re.search(r"<form\b[^>]*method=[\"']?post", r.text, re.I),
          "no confirm button: %s", r.text[:1500])
    check_no_external(r)
    check(state() == snap and status_of(who, "board") == "unconfirmed",
          "GET /confirm changed the database")
    # tampered: 404, still unconfirmed
    tok = token_of(url)
    for t in (flip(tok, len(tok) - 5), tok[:-1],
              token_of(mail(S.i2, "reader00@example.org").unsub)):
        expect_404(curl("%s/confirm/%s" % (srv.url, t)))
        expect_404(curl("%s/confirm/%s" % (srv.url, t), "POST", data="confirm=1"))
    expect_404(curl("%s/u/%s" % (srv.url, tok)))
    check(status_of(who, "board") == "unconfirmed", "a bad token confirmed")
    before_ev = last_event()
    r = expect(curl(local(url, srv), "POST", data="confirm=1"), 200)
    check("Subscription confirmed" in r.text, "page %s", r.text[:1500])
    check(status_of(who, "board") == "confirmed", "status after POST %s",
          status_of(who, "board"))
    ev = events_after(before_ev, "confirm")
    check(len(ev) == 1 and ev[0]["sub"] == sub_id(who) and ev[0]["detail"].get("source") == "web",
          "confirm events %s", ev)
    check(srv.stop() == 0, "serve exit status")


def test_unsubscribed_person_comes_back_through_confirmation():
    setup()
    who = "reader03@example.org"
    srv = S.w.serve()
    expect(curl(local(mail(S.i2, who).unsub, srv), "POST", data="List-Unsubscribe=One-Click"),
           200)
    check(status_of(who, "board") == "unsubscribed", "status %s", status_of(who, "board"))
    n = len(mails_to(who))
    r = expect(form_post(srv.url + "/subscribe", email=who, list="board"), 200)
    check("Check your inbox" in r.text, "page %s", r.text[:1500])
    check(status_of(who, "board") != "confirmed", "re-subscribed without confirmation")
    wait_until(lambda: len(mails_to(who)) > n, 15, "the confirmation mail")
    url = check_confirm_mail(*mails_to(who)[-1], who)
    expect(curl(local(url, srv), "POST", data=""), 200)
    check(status_of(who, "board") == "confirmed", "status %s", status_of(who, "board"))
    check(srv.stop() == 0, "serve exit status")


def test_subscribe_suppressed_domain():
    """A suppressed domain: the same page as for anyone (invariant 6), and
    nothing is created and nothing mailed."""
    setup()
    S.w.ok("suppress", "add", "@suppressed.example")
    srv = S.srv.url
    n = len(S.smtp.events("accept"))
    r = expect(form_post(srv + "/subscribe", email="new@suppressed.example", list="board"), 200)
    check("Check your inbox" in r.text, "page %s", r.text[:1500])
    check(not S.w.sql("SELECT id FROM subscribers WHERE email_key = 'new@suppressed.example'"),
          "a suppressed address became a subscriber")
    time.sleep(1)
    check(len(S.smtp.events("accept")) == n, "a confirmation went to a suppressed address")


def test_subscribe_refuses_header_injection():
    setup()
    srv = S.w.serve()
    before = state()
    n = len(S.smtp.messages())
    for fields in ({"email": "inj1@example.net\r\nBcc: evil@example.net", "list": "board"},
                   {"email": "inj2@example.net", "name": "Eve\r\nBcc: evil@example.net",
                    "list": "board"},
                   {"email": "inj3@example.net", "name": "Eve\nSubject: hi", "list": "board"}):
        r = expect(curl(srv.url + "/subscribe", "POST", data=urllib.parse.urlencode(fields)),
                   400)
        check("\nBcc:" not in r.text and "\nSubject:" not in r.text,
              "the 400 page reflects the line break: %r", r.text[-500:])
    time.sleep(1)
    check(len(S.smtp.messages()) == n, "a mail went out for a refused sign-up")
    check(state() == before, "a refused sign-up changed the database")
    check(srv.stop() == 0, "serve exit status")


def test_subscribe_rate_limit_per_address():
    setup()
    srv = S.w.serve()
    who = "limit@example.net"
    for i in range(3):
        r = expect(form_post(srv.url + "/subscribe", email=who, list="board"), 200)
    wait_until(lambda: len(mails_to(who)) == 3, 15, "3 confirmation mails")
    r = curl(srv.url + "/subscribe", "POST", data=urllib.parse.urlencode(
        {"email": who, "list": "board"}))
    expect(r, 429)
    check_no_external(r)
    # the same address in other case is the same person (one subscriber)
    expect(form_post(srv.url + "/subscribe", email="LIMIT@Example.NET", list="board"), 429)
    time.sleep(1)
    check(len(mails_to(who)) == 3, "%d confirmation mails to one address", len(mails_to(who)))
    check(srv.stop() == 0, "serve exit status")


def test_subscribe_rate_limit_per_ip():
    setup()
    srv = S.w.serve()
    for i in range(5):
        expect(form_post(srv.url + "/subscribe", email="ip%d@example.net" % i,
                         list="newsletter"), 200)
    r = expect(form_post(srv.url + "/subscribe", email="ip5@example.net", list="newsletter"),
               429)
    check_no_external(r)
    check(sub_id("ip5@example.net") is None, "the 6th request made a subscriber")
    check(all(status_of("ip%d@example.net" % i, "newsletter") == "confirmed" for i in range(5)),
          "the first five are not subscribed")
    check(srv.stop() == 0, "serve exit status")


# --- errors, methods, limits --------------------------------------------------------------

def test_unknown_paths_are_404():
    setup()
    for path in ("/", "/nope", "/o/", "/c/", "/u", "/confirm/", "/archive/", "/subscribe/x",
                 "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/o/x.gif/../../herald.db",
                 "/herald.db"):
        r = curl(S.srv.url + path)
        if path in ("/o/",):
            check(r.status in (200, 404), "%s: %d", path, r.status)
        else:
            # /archive/ may be the list page too; anything else is 404
            check(r.status == 404 or (path == "/archive/" and r.status == 200),
                  "%s: %d", path, r.status)
        check(b"SQLite format" not in r.body and b"root:" not in r.body, "%s: served a file",
              path)
    r = curl(S.srv.url + "/subscribe")   # GET /subscribe: only POST is defined
    check(r.status in (404, 405), "GET /subscribe: %d", r.status)
    check_no_external(r)


def test_other_methods_are_405():
    setup()
    who = "reader08@example.org"
    paths = ["/o/%s.gif" % token_of(mail(S.i1, who).pixel), mail(S.i1, who).clicks[0],
             mail(S.i1, who).unsub, "/subscribe", "/archive", "/archive/%s" % S.i1, "/nope"]
    before = state()
    for p in paths:
        url = local(p) if p.startswith(BASE) else S.srv.url + p
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
            r = curl(url, method, data="List-Unsubscribe=One-Click" if method in
                     ("PUT", "PATCH") else None)
            check(r.status == 405, "%s: %d", r.what, r.status)
            allow = [m.strip() for m in (r.h("Allow") or "").upper().split(",")]
            check(allow != [""] and method not in allow and
                  set(allow) <= {"GET", "HEAD", "POST"},
                  "%s: Allow %r (RFC 9110 15.5.6: a 405 lists the allowed methods)", r.what,
                  r.h("Allow"))
    flush()
    check(state() == before, "a 405 request changed the database")


def test_big_bodies_are_413():
    setup()
    who = "reader08@example.org"
    before = state()
    big = "List-Unsubscribe=One-Click&pad=" + "x" * 10240
    r = curl(local(mail(S.i1, who).unsub), "POST", data=big)
    check(r.status == 413, "%s: %d", r.what, r.status)
    r = curl(S.srv.url + "/subscribe", "POST", data=urllib.parse.urlencode(
        {"email": "big@example.net", "list": "newsletter", "name": "x" * 10240}))
    check(r.status == 413, "%s: %d", r.what, r.status)
    r = curl(S.srv.url + "/subscribe", "POST", form=[("email", "big2@example.net"),
                                                     ("list", "newsletter"),
                                                     ("name", "y" * 10240)])
    check(r.status == 413, "%s (multipart): %d", r.what, r.status)
    time.sleep(0.2)
    check(state() == before, "a refused big body changed the database")
    check(status_of(who, "newsletter") == "confirmed", "status %s", status_of(who, "newsletter"))
    # the server is still fine
    expect(curl(local(mail(S.i1, who).unsub)), 200)


def test_stalled_request_is_dropped():
    setup()
    host, port = "127.0.0.1", S.srv.port
    s = socket.create_connection((host, port), timeout=40)
    s.sendall(b"GET /archive HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # and never the end
    t0 = time.time()
    # others are served meanwhile
    r = curl(local(mail(S.i1, "reader09@example.org").pixel))
    check_gif(r)
    check(time.time() - t0 < 5, "a stalled connection held up others")
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout) as e:
        check(not isinstance(e, socket.timeout), "still open after %.0f s", time.time() - t0)
    s.close()
    took = time.time() - t0
    check(took <= 25, "a stalled request was dropped after %.0f s (15 wanted)", took)
    check(b"200 OK" not in data, "a stalled request was answered: %r", data[:200])


def test_listen_ipv6():
    setup()
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        raise Skip("no IPv6 loopback here (::1): IPv6 listen not checked")
    srv = S.w.serve("[::1]:0")
    check(srv.url.startswith("http://[::1]:"), "url %s", srv.url)
    r = expect(curl(srv.url + "/archive"), 200)
    check("/archive/%s" % S.i1 in archive_links(r, srv.url + "/archive"), "IPv6 archive page")
    check(srv.stop() == 0, "serve exit status")


def test_busy_port_is_an_error():
    setup()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        p = S.w.run("serve", "--listen", "127.0.0.1:%d" % s.getsockname()[1], timeout=20)
    finally:
        s.close()
    check(p.returncode != 0, "serve on a busy port: exit 0")
    check(p.stderr_text.strip(), "serve on a busy port: no message")
    check("listening on" not in p.stdout_text, "claims to listen: %s", p.stdout_text)
    p = S.w.run("serve", "--listen", "not-an-address", timeout=20)
    check(p.returncode != 0 and p.stderr_text.strip(), "--listen not-an-address: exit %d %s",
          p.returncode, p.stderr_text)


# --- a send in progress, a stop under load ------------------------------------------------

def test_unsubscribe_during_send_and_pixels_beside_it():
    with World() as w:
        w.init()
        w.set("smtp", connections=2)
        w.set("send", workers=1)
        emails = ["during%02d@example.org" % i for i in range(30)]
        w.subscribe(emails)
        # a first issue, sent at full speed, gives real URLs: the leaver's
        # unsubscribe link (a token for the list) and a pixel to hit meanwhile
        first_server = w.smtp()
        iid0 = w.new_issue("First", body="Dear {{name|reader}}, [a](https://example.org/a).\n")
        w.ok("send", iid0)
        got0 = {m.to: m for m in (Mail(msg, raw) for _, msg, raw in first_server.messages())}
        check(len(got0) == 30, "first issue: %d mails", len(got0))
        last = emails[-1]
        pm, first = got0[last], got0[emails[0]]
        check(pm.unsub and first.pixel, "the first issue's mails lack URLs")
        iid = w.new_issue("Second", body="Dear {{name|reader}}, [b](https://example.org/b).\n")
        server = w.smtp(rules=[{"stage": "rcpt", "delay": 0.25}])
        srv = w.serve()
        bg = w.spawn("send", iid)
        wait_until(lambda: w.sql("SELECT count(*) FROM deliveries WHERE issue_id = ?",
                                 iid)[0][0] == 30, 20, "the snapshot")
        r = expect(curl(srv.url + pm.unsub[len(BASE):], "POST",
                        data="List-Unsubscribe=One-Click"), 200)
        hits = 0
        while bg.poll() is None and hits < 40:
            r = curl(srv.url + first.pixel[len(BASE):])
            check(r.status == 200 and len(r.body) == 43, "pixel beside a send: %d", r.status)
            hits += 1
        rc = bg.wait(60)
        check(rc == 0, "send: exit %d %s", rc, bg.stderr_text)
        got = [r for r, _ in server.accepted()]
        check(last not in got, "mailed someone who unsubscribed on the web during the send")
        check(sorted(got) == sorted(emails[:-1]), "delivered %d: %s", len(got), got)
        row = w.sql("SELECT d.status FROM deliveries d JOIN subscribers s ON s.id = "
                    "d.subscriber_id WHERE s.email = ? AND d.issue_id = ?", last, iid)
        check(row == [("skipped",)], "the leaver's row: %s", row)
        check(hits > 0, "no pixel hit while the send ran")
        check(srv.stop() == 0, "serve exit status")
        opens = w.sql("SELECT count(*) FROM events WHERE kind = 'open'")[0][0]
        check(opens == hits, "%d pixel hits beside the send, %d opens recorded", hits, opens)
        ev = w.sql("SELECT json_extract(detail, '$.source') FROM events WHERE kind = "
                   "'unsubscribe'")
        check(ev == [("one-click",)], "unsubscribe events %s", ev)


def test_sigterm_under_load_loses_nothing():
    setup()
    srv = S.w.serve()
    paths = []
    for who in S.readers[9:]:
        for iid in (S.i1, S.i4):
            m = mail(iid, who)
            paths += [("open", m.pixel[len(BASE):])] + [("click", c[len(BASE):])
                                                        for c in m.clicks[:2]]
    before = last_event()
    counts = {"open": 0, "click": 0, "errors": 0, "bad": 0}
    lock = threading.Lock()
    stop = threading.Event()
    total = [0]

    def worker(k):
        i = k
        while not stop.is_set():
            kind, path = paths[i % len(paths)]
            i += 7
            try:
                c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                c.request("GET", path, headers={"User-Agent": UA})
                resp = c.getresponse()
                resp.read()
                c.close()
                want = 200 if kind == "open" else 302
                with lock:
                    counts[kind if resp.status == want else "bad"] += 1
                    total[0] += 1
            except (OSError, http.client.HTTPException):
                with lock:
                    counts["errors"] += 1
                if srv.poll() is not None:
                    return
                time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: total[0] >= 400, 30, "400 answered hits")
    srv.signal(signal.SIGTERM)
    try:
        rc = srv.wait(20)
    finally:
        stop.set()
        for t in threads:
            t.join()
    check(rc == 0, "serve after SIGTERM under load: exit %s %s", rc, srv.stderr_text)
    check(counts["bad"] == 0, "wrong answers under load: %s", counts)
    opens = len(events_after(before, "open"))
    clicks = len(events_after(before, "click"))
    print("     (under load: %d opens, %d clicks answered, %d errors; recorded %d, %d)" % (
        counts["open"], counts["click"], counts["errors"], opens, clicks))
    check(opens >= counts["open"] and clicks >= counts["click"],
          "events lost on SIGTERM: answered %d opens %d clicks, recorded %d %d", counts["open"],
          counts["click"], opens, clicks)
    # a request cut off by the stop may be recorded yet unanswered, no more
    check(opens + clicks <= counts["open"] + counts["click"] + counts["errors"],
          "more events (%d) than requests (%d)", opens + clicks,
          counts["open"] + counts["click"] + counts["errors"])


def test_sigterm_idle_exits_0():
    setup()
    srv = S.w.serve()
    t = time.time()
    check(srv.stop() == 0, "exit status")
    check(time.time() - t < 5, "SIGTERM took %.1f s", time.time() - t)
    # and SIGINT
    srv = S.w.serve()
    srv.signal(signal.SIGINT)
    check(srv.wait(10) == 0, "exit status after SIGINT")


def teardown():
    if hasattr(S, "w"):
        if getattr(S, "srv", None) is not None and S.srv.poll() is None:
            rc = S.srv.stop()
            check(rc == 0, "the shared server: exit %d %s", rc, S.srv.stderr_text)
        S.w.close()


def main():
    tests = [(n[5:], f) for n, f in globals().items() if n.startswith("test_")]
    if sys.argv[1:]:    # test_web.py NAME...: only those (by name without test_)
        tests = [(n, f) for n, f in tests if n in sys.argv[1:]]
    try:
        run_tests(tests + [("shared server stops cleanly", teardown)])
    finally:
        if hasattr(S, "w"):
            S.w.close()


if __name__ == "__main__":
    main()
