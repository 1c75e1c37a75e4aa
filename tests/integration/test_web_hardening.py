#!/usr/bin/python3
"""test_web_hardening.py - consent where the web form meets the database,
and HTTP a hostile client cannot bend: `herald serve` against curl and raw
sockets on loopback, mail read back from the test SMTP server.

Consent (subscriber.h rule 8, lists' --signup, confirmation links):
  1. a form sign-up of an address that unsubscribed never re-subscribes it:
     the page is the one anyone gets, the row stays unsubscribed, a
     confirmation mail goes, and only following its link brings them back;
     a blocked address gets the same page and no mail;
  2. a list takes web sign-ups only with --signup: an internal list (no
     flags) and a private double opt-in list are 404 like an unknown list,
     nothing is written, no mail; `list set --signup` opens it;
  3. a confirmation link works once and until [web] confirm_ttl: used or
     expired, it changes nothing and offers a new link, which works;
HTTP:
  4. slow headers: connections that trickle a header line every 2 s are cut
     once WEB_TIMEOUT (15 s) passed since they opened, and one client holds
     at most [web] max_connections_per_client of them; the pixel answers
     another client all along;
  5. Content-Length with Transfer-Encoding: 400, and the connection closes;
  6. %00 and other bytes after a number in a path: 404, nothing recorded;
  7. herald's own error answers (400, 404, 405, 413, 429) carry the security
     headers (checked on every response webclient.curl sees); the library's
     own (431 for an oversized header block) are answered and close, and
     docs/web.md says the proxy must add the headers to those;
  8. X-Real-IP moves the per-client sign-up limit only when the peer is in
     [web] trusted_proxies.
"""
import os
import re
import shutil
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, World, check, need_module, run_tests, wait_until  # noqa: E402
from webclient import (connect, curl, expect, expect_404, form_post, raw)  # noqa: E402

if not shutil.which("curl"):
    print("SKIP: curl is missing (apt-get install curl)")
    sys.exit(SKIP)
need_module("aiosmtpd")

BASE = "https://news.example.org"
TOKEN_RE = r"[A-Za-z0-9_-]+"


class Site:
    """A world with lists of every kind, an SMTP server and a running serve."""

    def __init__(self, extra_web=None):
        self.w = World().init()
        self.smtp = self.w.smtp()
        if extra_web:
            self.w.set("web", **extra_web)
        ok = self.w.ok
        ok("list", "create", "single", "--title", "Single", "--signup")
        ok("list", "create", "board", "--title", "Board", "--double-opt-in", "--signup")
        ok("list", "create", "internal", "--title", "Internal")
        ok("list", "create", "private", "--title", "Private", "--double-opt-in")
        self.srv = self.w.serve()
        self.sub = self.srv.url + "/subscribe"

    def close(self):
        self.w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def status(self, who, list_name):
        rows = self.w.sql("SELECT sub.status FROM subscriptions sub JOIN subscribers s ON "
                          "s.id = sub.subscriber_id JOIN lists l ON l.id = sub.list_id "
                          "WHERE s.email = ? AND l.name = ?", who, list_name)
        return rows[0][0] if rows else None

    def mails_to(self, who):
        return [msg for _, msg, _ in self.smtp.messages()
                if any(a.addr_spec.lower() == who.lower() for a in msg["To"].addresses)]

    def confirm_links(self, who):
        out = []
        for msg in self.mails_to(who):
            text = msg.get_body(("plain",)).get_content()
            out += re.findall(r"%s(/confirm/%s)" % (re.escape(BASE), TOKEN_RE), text)
        return out

    def local(self, path):
        return self.srv.url + path


def page_for(site, email, list_name):
    """The sign-up page with the address taken out, to compare across states."""
    r = expect(form_post(site.sub, email=email, list=list_name), 200)
    return r.text.replace(email, "ADDRESS")


# --- 1. an unsubscribe is undone only by the reader ----------------------------------------

def test_signup_never_undoes_an_unsubscribe():
    with Site() as s:
        who = "left@example.org"
        s.w.ok("sub", "add", who, "--list", "single", "--name", "Left")
        s.w.ok("sub", "unsubscribe", who, "--list", "single")
        s.w.ok("sub", "add", "gone@example.org", "--list", "single")
        s.w.ok("sub", "block", "gone@example.org")
        before = s.w.sql("SELECT unsubscribed_at FROM subscriptions")
        fresh = page_for(s, "new@example.org", "single")
        again = page_for(s, who, "single")
        blocked = page_for(s, "gone@example.org", "single")
        check(fresh == again == blocked, "the page tells states apart:\n%s\n---\n%s\n---\n%s",
              fresh, again, blocked)
        check(s.status("new@example.org", "single") == "confirmed", "a new address on a "
              "single opt-in list is subscribed at once")
        check(s.status(who, "single") == "unsubscribed", "the form re-subscribed %s: %s", who,
              s.status(who, "single"))
        check(s.w.sql("SELECT unsubscribed_at FROM subscriptions WHERE unsubscribed_at IS NOT "
                      "NULL") == [r for r in before if r[0] is not None],
              "unsubscribed_at changed")
        wait_until(lambda: s.confirm_links(who), 15, "the confirmation mail to %s" % who)
        time.sleep(0.5)
        check(not s.mails_to("gone@example.org"), "a blocked address was mailed")
        check(not s.mails_to("new@example.org"), "a single opt-in sign-up was mailed")
        check(s.status(who, "single") == "unsubscribed", "the mail alone re-subscribed")
        link = s.confirm_links(who)[0]
        expect(curl(s.local(link)), 200)                       # GET changes nothing
        check(s.status(who, "single") == "unsubscribed", "GET of the link re-subscribed")
        r = expect(form_post(s.local(link), action="confirm"), 200)
        check("confirmed" in r.text.lower(), "confirm page: %s", r.text[:800])
        check(s.status(who, "single") == "confirmed", "following the link did not "
              "re-subscribe: %s", s.status(who, "single"))
        ev = s.w.sql("SELECT e.kind, json_extract(e.detail, '$.source') FROM events e JOIN "
                     "subscribers r ON r.id = e.subscriber_id WHERE r.email = ? ORDER BY e.id",
                     who)
        check(ev[-1] == ("subscribe", "web"), "events %s", ev)
        # an admin may still override, as documented
        s.w.ok("sub", "unsubscribe", who, "--list", "single")
        s.w.ok("sub", "add", who, "--list", "single")
        check(s.status(who, "single") == "confirmed", "sub add did not re-subscribe")


# --- 2. closed lists stay closed ------------------------------------------------------------

def test_lists_without_signup_refuse_the_form():
    with Site() as s:
        before = (s.w.sql("SELECT * FROM subscribers"), s.w.sql("SELECT * FROM subscriptions"))
        unknown = expect_404(form_post(s.sub, email="a@example.org", list="no-such-list"))
        for name in ("internal", "private"):
            r = expect_404(form_post(s.sub, email="a@example.org", list=name))
            check(r.text == unknown.text, "%s answers unlike an unknown list", name)
        check((s.w.sql("SELECT * FROM subscribers"), s.w.sql("SELECT * FROM subscriptions"))
              == before, "a refused sign-up wrote something")
        time.sleep(1)
        check(not s.mails_to("a@example.org"), "a refused sign-up sent mail")
        listed = s.w.ok("list", "show", "private", "--json").stdout_text
        check('"signup": false' in listed, "list show: %s", listed)
        s.w.ok("list", "set", "private", "--signup")
        expect(form_post(s.sub, email="a@example.org", list="private"), 200)
        check(s.status("a@example.org", "private") == "unconfirmed", "after --signup: %s",
              s.status("a@example.org", "private"))
        s.w.ok("list", "set", "private", "--no-signup")
        expect_404(form_post(s.sub, email="b@example.org", list="private"))


# --- 3. confirmation links: once, and not forever ------------------------------------------

def test_confirmation_link_single_use():
    with Site() as s:
        who = "reader@example.org"
        expect(form_post(s.sub, email=who, list="board"), 200)
        wait_until(lambda: s.confirm_links(who), 15, "the confirmation mail")
        link = s.confirm_links(who)[0]
        expect(form_post(s.local(link), action="confirm"), 200)
        check(s.status(who, "board") == "confirmed", "not confirmed")
        s.w.ok("sub", "unsubscribe", who, "--list", "board")
        for method in ("GET", "POST"):
            r = expect(curl(s.local(link)) if method == "GET" else
                       form_post(s.local(link), action="confirm"), 200)
            check("no longer works" in r.text and 'value="resend"' in r.text,
                  "%s of a used link: %s", method, r.text[:800])
            check(s.status(who, "board") == "unsubscribed", "a used link re-subscribed")
        # the page's button sends a new link, which works once
        r = expect(form_post(s.local(link), action="resend"), 200)
        check("Check your inbox" in r.text, "resend page: %s", r.text[:800])
        wait_until(lambda: len(s.confirm_links(who)) == 2, 15, "the new confirmation mail")
        fresh = s.confirm_links(who)[1]
        check(fresh != link, "the new mail has the old link")
        check(s.status(who, "board") == "unsubscribed", "resending re-subscribed")
        expect(form_post(s.local(fresh), action="confirm"), 200)
        check(s.status(who, "board") == "confirmed", "the new link did not confirm")


def test_confirmation_link_expires():
    with Site(extra_web={"confirm_ttl": "2s"}) as s:
        who = "late@example.org"
        expect(form_post(s.sub, email=who, list="board"), 200)
        wait_until(lambda: s.confirm_links(who), 15, "the confirmation mail")
        time.sleep(3.2)
        r = expect(form_post(s.local(s.confirm_links(who)[0]), action="confirm"), 200)
        check("no longer works" in r.text, "an expired link: %s", r.text[:800])
        check(s.status(who, "board") == "unconfirmed", "an expired link confirmed")


# --- 4. slow headers -----------------------------------------------------------------------

def test_slow_headers_are_cut_and_capped():
    with Site() as s:
        port = s.srv.port
        conns, lock, stop = [], threading.Lock(), threading.Event()

        def trickle(sock):
            """One header line every 2 s, never the blank line."""
            i = 0
            try:
                sock.sendall(b"GET /archive HTTP/1.1\r\nHost: x\r\n")
                while not stop.is_set():
                    time.sleep(2)
                    sock.sendall(b"X-Slow-%d: y\r\n" % i)
                    i += 1
            except OSError:
                pass

        t0 = time.time()
        for _ in range(150):
            try:
                sk = connect(port, "127.0.0.5", timeout=40)
            except OSError:
                continue
            with lock:
                conns.append(sk)
            threading.Thread(target=trickle, args=(sk,), daemon=True).start()

        def open_count():
            n = 0
            for sk in conns:
                try:
                    sk.setblocking(False)
                    data = sk.recv(1, socket.MSG_PEEK)
                    if data:
                        n += 1        # an answer waiting: the server spoke
                    # b"": closed by the server
                except BlockingIOError:
                    n += 1            # nothing yet: still open
                except OSError:
                    pass
            return n

        time.sleep(1.5)
        held = open_count()
        check(held <= 32, "one client holds %d connections (cap 32)", held)
        # the pixel answers another client meanwhile, promptly
        worst = 0.0
        while time.time() - t0 < 12:
            a = time.time()
            r = curl(s.local("/o/not-a-token.gif"), source="127.0.0.2")
            expect(r, 200)
            worst = max(worst, time.time() - a)
            time.sleep(0.5)
        check(worst < 3.0, "the pixel took %.1f s during the slow attack", worst)
        # past the 15 s deadline every slow connection is gone
        wait_until(lambda: open_count() == 0, 12, "the slow connections to be cut")
        elapsed = time.time() - t0
        check(elapsed < 15 + 10, "took %.1f s to cut them", elapsed)
        stop.set()
        for sk in conns:
            sk.close()
        # a normal request from that client works again afterwards
        expect(curl(s.local("/archive"), source="127.0.0.5"), 200)


# --- 5. conflicting framing ----------------------------------------------------------------

def test_content_length_with_transfer_encoding_is_400_and_closes():
    with Site() as s:
        body = b"5\r\nemail\r\n0\r\n\r\n"
        req = (b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/x-www-form-urlencoded\r\nContent-Length: 5\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + body +
               b"GET /archive HTTP/1.1\r\nHost: x\r\n\r\n")
        out, closed = raw(s.srv.port, req)
        check(out.startswith(b"HTTP/1.1 400"), "answer %r", out[:200])
        check(out.count(b"HTTP/1.1 ") == 1, "the next request on the connection was "
              "answered: %r", out[:600])
        check(closed, "the connection stayed open")
        head = out.split(b"\r\n\r\n", 1)[0].lower()
        check(b"content-security-policy:" in head and b"connection: close" in head,
              "headers %r", head)


# --- 6. strict path segments ---------------------------------------------------------------

def test_nul_and_trailing_bytes_in_paths_are_404():
    with Site() as s:
        w = s.w
        w.ok("sub", "add", "r@example.org", "--list", "single")
        w.ok("list", "set", "single", "--public")
        path = w.write("i.md", "---\nsubject: Hi\nlist: single\n---\n[a](https://example.org/a)"
                       " [b](https://example.org/b)\n")
        iid = w.ok("issue", "new", path).stdout_text.strip()
        w.ok("send", iid)
        html = s.mails_to("r@example.org")[0].get_body(("html",)).get_content()
        clicks = re.findall(r'href="%s(/c/%s/)1"' % (re.escape(BASE), TOKEN_RE), html)
        check(clicks, "no click link in %s", html[:500])
        c = clicks[0]
        expect(curl(s.local(c + "1")), 302)
        # the good click is written (the event writer batches) before counting
        wait_until(lambda: w.sql("SELECT count(*) FROM events WHERE kind = 'click'") == [(1,)],
                   10, "the click of a good link")
        before = w.sql("SELECT count(*) FROM events WHERE kind = 'click'")
        for bad in (c + "1%00", c + "1%00/../2", c + "1%00junk", c + "1%0a", c + "1%20",
                    "/archive/%s%%00" % iid, "/archive/%s%%00/x" % iid, "/o/x%00.gif/"):
            expect_404(curl(s.local(bad)))
        time.sleep(0.5)
        expect(curl(s.local("/archive/%s" % iid)), 200)
        check(w.sql("SELECT count(*) FROM events WHERE kind = 'click'") == before,
              "a bad path recorded a click")


# --- 7. error answers ----------------------------------------------------------------------

def test_error_answers():
    with Site() as s:
        # herald's own: the security headers (webclient.curl checks them)
        expect(curl(s.local("/nothing-here")), 404)
        expect(curl(s.local("/subscribe"), "PUT"), 405)
        expect(curl(s.local("/subscribe"), "POST", data="x" * 10000), 413)
        # the library's own, for a header block past its memory: answered, closed
        huge = b"GET /archive HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
        out, closed = raw(s.srv.port, huge)
        check(re.match(rb"HTTP/1\.[01] 4(31|13|00)", out), "oversized headers: %r", out[:200])
        check(closed, "the connection stayed open after an oversized header block")
        web_md = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "web.md")).read()
        check("431" in web_md and "add_header" in web_md,
              "docs/web.md does not tell the proxy to add the headers to the library's answers")


# --- 8. X-Real-IP only from a trusted proxy ------------------------------------------------

def test_real_ip_only_from_trusted_proxies():
    with Site() as s:
        # untrusted: six sign-ups "from" six addresses are one client: the 6th is 429
        codes = [form_post(s.sub, email="u%d@example.org" % i, list="single",
                           headers=["X-Real-IP: 198.51.100.%d" % i]).status for i in range(6)]
        check(codes == [200] * 5 + [429], "without trusted_proxies: %s", codes)
    with Site(extra_web={"trusted_proxies": "127.0.0.1"}) as s:
        codes = [form_post(s.sub, email="t%d@example.org" % i, list="single",
                           headers=["X-Real-IP: 198.51.100.%d" % i]).status for i in range(6)]
        check(codes == [200] * 6, "behind the trusted proxy: %s", codes)
        # another local process is not the proxy
        codes = [form_post(s.sub, email="v%d@example.org" % i, list="single",
                           source="127.0.0.3",
                           headers=["X-Real-IP: 203.0.113.%d" % i]).status for i in range(6)]
        check(codes == [200] * 5 + [429], "from 127.0.0.3: %s", codes)


if __name__ == "__main__":
    run_tests([
        ("signup_never_undoes_an_unsubscribe", test_signup_never_undoes_an_unsubscribe),
        ("lists_without_signup_refuse_the_form", test_lists_without_signup_refuse_the_form),
        ("confirmation_link_single_use", test_confirmation_link_single_use),
        ("confirmation_link_expires", test_confirmation_link_expires),
        ("slow_headers_are_cut_and_capped", test_slow_headers_are_cut_and_capped),
        ("content_length_with_transfer_encoding_is_400_and_closes",
         test_content_length_with_transfer_encoding_is_400_and_closes),
        ("nul_and_trailing_bytes_in_paths_are_404", test_nul_and_trailing_bytes_in_paths_are_404),
        ("error_answers", test_error_answers),
        ("real_ip_only_from_trusted_proxies", test_real_ip_only_from_trusted_proxies),
    ])
