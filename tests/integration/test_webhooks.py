#!/usr/bin/python3
"""test_webhooks.py - outgoing webhooks (webhook.h, sql/020_webhooks.sql).

A receiver of the test's own (Python's http.server on a free 127.0.0.1
port) records every POST and checks its Herald-Signature by recomputing
the HMAC-SHA256 of "T." and the body with the secret the test gave
`webhook add --secret-file`:
  - an unsubscribe through the API, a click on a tracked link and a hard
    bounce read by `herald bounce` each arrive once, as the event kind and
    payload docs/web.md promises, from `herald serve`; an event kind the
    webhook did not ask for (open) does not;
  - the receiver down: the event waits in the outbox (attempts and the
    error kept), and is delivered once the receiver is back, with the same
    Herald-Delivery id;
  - down past [webhooks] give_up: `webhook failures` lists it, `webhook
    retry` queues it again and it arrives;
  - a receiver that takes 4 s to answer does not slow the open pixel
    (answered in well under a second meanwhile);
  - without serve, `herald run` delivers what is due;
  - erasing the person removes the outbox rows that name them.
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, run_tests, wait_until  # noqa: E402
from test_bounce import dsn, sent_message  # noqa: E402
from webclient import curl  # noqa: E402

SECRET = "s3cret-for-the-test-receiver-0123456789"
BASE = "https://news.example.org"


class Receiver:
    """Records POSTs; `status` is what it answers, `delay` how long it waits."""

    def __init__(self, port=0):
        self.got, self.status, self.delay = [], 200, 0.0
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if rec.delay:
                    time.sleep(rec.delay)
                rec.got.append((dict(self.headers), body))
                self.send_response(rec.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()

    def events(self, kind=None):
        out = []
        for headers, body in self.got:
            verify(headers, body)
            doc = json.loads(body)
            if kind is None or doc["type"] == kind:
                out.append((headers, doc))
        return out


def verify(headers, body):
    sig = headers.get("Herald-Signature", "")
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", sig)
    check(m, "signature header %r", sig)
    want = hmac.new(SECRET.encode(), m.group(1).encode() + b"." + body,
                    hashlib.sha256).hexdigest()
    check(hmac.compare_digest(want, m.group(2)), "a bad signature on %r", body[:200])
    check(abs(time.time() - int(m.group(1))) < 300, "signature time %s", m.group(1))
    check(headers.get("Content-Type") == "application/json", "content type %r",
          headers.get("Content-Type"))


def api(srv, key, method, path, body=None):
    headers = ["Authorization: Bearer " + key]
    data = None
    if body is not None:
        data = json.dumps(body)
        headers.append("Content-Type: application/json")
    return curl(srv.url + "/api/v1" + path, method, data=data, headers=headers)


def world(extra=""):
    w = World(extra_config="[webhooks]\nretry = 1s\ngive_up = 4s\n" + extra)
    w.init()
    w.write("hook.secret", SECRET + "\n")
    return w


def test_events_arrive_signed_once():
    rec = Receiver()
    with world() as w:
        smtp = w.smtp()
        w.ok("list", "create", "newsletter", "--title", "News")
        w.subscribe(["ada@example.org", "bob@example.org", "carol@example.org"])
        out = w.ok("webhook", "add", rec.url, "--events", "unsubscribe,bounce,click",
                   "--secret-file", os.path.join(w.root, "hook.secret")).stdout_text
        check("added webhook 1" in out and "secret:" not in out, "add: %s", out)
        key = w.ok("apikey", "create", "crm", "--scope", "subscribers:write").stdout_text.strip()
        iid = w.new_issue("Hello", "newsletter", "See [our site](https://example.org/x).\n")
        w.ok("send", iid)
        srv = w.serve()
        # unsubscribe through the API
        check(api(srv, key, "POST", "/subscribers/ada@example.org/unsubscribe").status == 200,
              "unsubscribe")
        got = wait_until(lambda: rec.events("unsubscribe"), 15, "the unsubscribe webhook")
        h, doc = got[0]
        check(doc["email"] == "ada@example.org" and doc["list"] == "newsletter" and
              h.get("Herald-Event") == "unsubscribe" and doc["detail"]["source"] == "api",
              "unsubscribe payload %s %s", h, doc)
        # a click, and an open that nobody asked for
        _, msg, raw = sent_message(smtp, "bob@example.org")
        html = msg.get_body(("html",)).get_content()
        click = re.findall(r'href="%s(/c/[^"]+)"' % re.escape(BASE), html)[0]
        pixel = re.findall(r'src="%s(/o/[^"]+)"' % re.escape(BASE), html)[0]
        curl(srv.url + click)
        curl(srv.url + pixel)
        got = wait_until(lambda: rec.events("click"), 15, "the click webhook")
        check(got[0][1]["email"] == "bob@example.org" and got[0][1]["issue"] == int(iid),
              "click payload %s", got[0][1])
        # a hard bounce of carol
        ev, msg, _ = sent_message(smtp, "carol@example.org")
        w.ok("bounce", input=dsn("carol@example.org", "5.1.1", "550 5.1.1 no such user",
                                 ev["mail_from"], msg["Message-ID"].strip("<>")))
        got = wait_until(lambda: rec.events("bounce"), 15, "the bounce webhook")
        check(got[0][1]["email"] == "carol@example.org" and
              got[0][1]["detail"].get("class") == "hard", "bounce payload %s", got[0][1])
        time.sleep(2.5)   # more looks of the sender: nothing arrives twice
        kinds = sorted(d["type"] for _, d in rec.events())
        check(kinds == ["bounce", "click", "unsubscribe"], "received %s", kinds)
        ids = [hd.get("Herald-Delivery") for hd, _ in rec.events()]
        check(len(set(ids)) == 3, "delivery ids %s", ids)
        check(srv.stop() == 0, "serve exit")
        ls = json.loads(w.ok("webhook", "ls", "--json").stdout_text)
        check(ls[0]["delivered"] == 3 and ls[0]["pending"] == 0, "webhook ls %s", ls)
    rec.stop()


def test_receiver_down_then_back_and_give_up():
    rec = Receiver()
    port = rec.port
    with world() as w:
        w.smtp()
        w.ok("list", "create", "newsletter")
        w.subscribe(["ada@example.org", "bob@example.org", "dan@example.org"])
        w.ok("webhook", "add", rec.url, "--events", "unsubscribe", "--secret-file",
             os.path.join(w.root, "hook.secret"))
        srv = w.serve()
        rec.stop()
        w.ok("sub", "unsubscribe", "ada@example.org", "--list", "newsletter")
        row = wait_until(lambda: [r for r in w.sql("SELECT attempts, last_error, status FROM "
                                                   "webhook_outbox") if r[0] >= 1], 15,
                         "a failed attempt")[0]
        check(row[2] == "pending" and "connect" in row[1].lower(), "while down: %s", row)
        rec = Receiver(port)
        got = wait_until(lambda: rec.events("unsubscribe"), 15, "delivery after coming back")
        check(got[0][1]["email"] == "ada@example.org", "payload %s", got[0][1])
        # down past give_up (4 s): failed, listed, retried by hand
        rec.stop()
        w.ok("sub", "unsubscribe", "bob@example.org", "--list", "newsletter")
        wait_until(lambda: w.sql("SELECT count(*) FROM webhook_outbox WHERE status = "
                                 "'failed'") == [(1,)], 20, "giving up")
        fails = w.ok("webhook", "failures").stdout_text
        check("unsubscribe" in fails and "127.0.0.1" not in fails.split("\n")[0],
              "failures:\n%s", fails)
        rec = Receiver(port)
        check("1 failed deliveries queued again" in w.ok("webhook", "retry").stdout_text,
              "retry")
        got = wait_until(lambda: [d for _, d in rec.events("unsubscribe")
                                  if d["email"] == "bob@example.org"], 15, "the retried one")
        check(len(got) == 1, "bob's %s", got)
        check(srv.stop() == 0, "serve exit")
        # without serve: run delivers
        w.ok("sub", "unsubscribe", "dan@example.org", "--list", "newsletter")
        out = w.ok("run").stdout_text
        check("webhooks: 1 delivered" in out, "run: %s", out)
        check([d["email"] for _, d in rec.events("unsubscribe")][-1] == "dan@example.org",
              "run's delivery")
        # erasure takes the payloads naming the person
        w.ok("sub", "forget", "dan@example.org", "--by", "test")
        check(w.sql("SELECT count(*) FROM webhook_outbox WHERE payload LIKE '%dan@%'") == [(0,)],
              "an erased person's payload is kept")
    rec.stop()


def test_slow_receiver_does_not_slow_tracking():
    rec = Receiver()
    rec.delay = 4.0
    with world() as w:
        smtp = w.smtp()
        w.ok("list", "create", "newsletter")
        w.subscribe(["ada@example.org", "bob@example.org"])
        w.ok("webhook", "add", rec.url, "--events", "unsubscribe,open", "--secret-file",
             os.path.join(w.root, "hook.secret"))
        iid = w.new_issue("Hello", "newsletter", "Hi.\n")
        w.ok("send", iid)
        srv = w.serve()
        w.ok("sub", "unsubscribe", "ada@example.org", "--list", "newsletter")
        time.sleep(1.5)   # the sender is now waiting on the slow receiver
        _, msg, _ = sent_message(smtp, "bob@example.org")
        pixel = re.findall(r'src="%s(/o/[^"]+)"' % re.escape(BASE),
                           msg.get_body(("html",)).get_content())[0]
        worst = 0.0
        for _ in range(5):
            t0 = time.monotonic()
            r = curl(srv.url + pixel)
            worst = max(worst, time.monotonic() - t0)
            check(r.status == 200, "pixel %d", r.status)
        print("pixel while the receiver stalls: worst %.3f s" % worst)
        check(worst < 1.0, "the pixel took %.2f s", worst)
        got = wait_until(lambda: rec.events("open"), 30, "the open, after the slow one")
        check(got[0][1]["email"] == "bob@example.org", "open payload")
        srv.stop()
    rec.stop()


if __name__ == "__main__":
    run_tests([
        ("events_arrive_signed_once", test_events_arrive_signed_once),
        ("receiver_down_then_back_and_give_up", test_receiver_down_then_back_and_give_up),
        ("slow_receiver_does_not_slow_tracking", test_slow_receiver_does_not_slow_tracking),
    ])
