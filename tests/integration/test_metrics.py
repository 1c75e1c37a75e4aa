#!/usr/bin/python3
"""test_metrics.py - `herald serve`'s GET /metrics (issue 18).

Every scrape is parsed by the Prometheus project's own Python parser
(Debian python3-prometheus-client), which refuses what is not the text
exposition format.

  (a) /metrics is on its own listener ([metrics] listen); the public one
      answers it 404.  Requests by endpoint and status count exactly the
      requests made (3 pixels, 2 unknown paths, 1 tampered unsubscribe,
      1 API call without a key); the open of a real pixel is counted in
      events_written once the event writer committed it, and the events
      table holds it.
  (b) a real send in progress (a relay answering each RCPT after a second,
      one connection): the issue's deliveries by status agree with the
      database read around the scrape, total is the audience, and the rate
      between two scrapes is the sent count's change over the time between.
  (c) [metrics] allow without the client's address: 403 and no figure;
      a POST is 405; another path 404.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, check, need_module, run_tests, wait_until  # noqa: E402

need_module("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"


def curl(url, *args):
    p = subprocess.run(["curl", "-s", "-A", UA, "-o", "-", "-w", "\n%{http_code}", *args, url],
                       capture_output=True, timeout=30)
    body, _, code = p.stdout.decode("utf-8", "replace").rpartition("\n")
    return int(code), body


def start(w):
    srv = w.serve()
    out = ""
    deadline = time.time() + 10
    while "metrics on" not in out and time.time() < deadline:
        out = srv.stdout_text
        time.sleep(0.05)
    m = re.search(r"^herald serve: metrics on (http://\S+/metrics)$", out, re.M)
    check(m, "serve did not say where the metrics are: %r", out)
    pub = re.search(r"^herald serve: listening on (http://\S+)$", out, re.M).group(1)
    return srv, pub, m.group(1)


def scrape(url):
    code, body = curl(url)
    check(code == 200, "GET /metrics: %d %r", code, body[:200])
    samples = {}
    types = {}
    for fam in text_string_to_metric_families(body):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types, body


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_requests_and_events_counted():
    with World(extra_config="\n[metrics]\nlisten = 127.0.0.1:0\n") as w:
        w.init()
        srv_smtp = w.smtp()
        w.subscribe(["ann@example.org", "bob@example.org"])
        iid = w.new_issue(body="Dear {{name|reader}}, see [the report](https://example.org/r).\n")
        w.ok("send", iid)
        msgs = srv_smtp.messages()
        check(len(msgs) == 2, "sent %d", len(msgs))
        html = msgs[0][1].get_body(("html",)).get_content()
        pixel = re.search(r'src="https://news\.example\.org(/o/[A-Za-z0-9_-]+\.gif)"', html)
        check(pixel, "no pixel in the mail")
        srv, pub, murl = start(w)
        samples, types, _ = scrape(murl)
        check(types.get("herald_http_requests") == "counter", "types: %s", types)
        check(value(samples, "herald_build_info", version=re.sub(
            r"^herald ", "", w.ok("--version").stdout_text.strip())) == 1, "build_info")
        base = value(samples, "herald_http_requests_total", endpoint="open", code="200") or 0
        check(base == 0, "opens before any: %s", base)
        # the public listener does not answer /metrics
        check(curl(pub + "/metrics")[0] == 404, "/metrics on the public listener")
        for _ in range(2):
            check(curl(pub + "/o/not-a-token.gif")[0] == 200, "pixel")
        check(curl(pub + pixel.group(1))[0] == 200, "real pixel")
        check(curl(pub + "/nope")[0] == 404, "404")
        check(curl(pub + "/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "-X", "POST", "-d",
                   "List-Unsubscribe=One-Click")[0] in (400, 404), "tampered unsubscribe")
        check(curl(pub + "/api/v1/lists")[0] == 401, "API without a key")
        samples, _, body = scrape(murl)
        want = {("open", "200"): 3, ("other", "404"): 2, ("api", "401"): 1}
        for (ep, code), n in want.items():
            got = value(samples, "herald_http_requests_total", endpoint=ep, code=code)
            check(got == n, "requests %s %s: %s, wanted %d\n%s", ep, code, got, n, body)
        uns = [v for (name, labels), v in samples.items()
               if name == "herald_http_requests_total" and ("endpoint", "unsubscribe") in labels]
        check(sum(uns) == 1, "unsubscribe requests: %s", uns)
        # the one real open reaches the database and the counter
        wait_until(lambda: value(scrape(murl)[0], "herald_events_written_total") == 1, 10,
                   "events_written_total = 1")
        check(w.sql("SELECT count(*) FROM events WHERE kind = 'open'") == [(1,)], "open event")
        check(value(samples, "herald_issues", status="sent") == 1, "issues sent")
        check(value(samples, "herald_serve_start_time_seconds") <= time.time(), "start time")


def test_send_progress():
    with World(extra_config="\n[metrics]\nlisten = 127.0.0.1:0\n") as w:
        w.init()
        w.smtp(rules=[{"stage": "rcpt", "match": "slow", "delay": 0.7}])
        w.set("smtp", connections="1")
        n = 8
        w.subscribe(["slow%d@example.org" % i for i in range(n)])
        iid = w.new_issue()
        srv, pub, murl = start(w)
        send = w.spawn("send", iid)
        wait_until(lambda: w.sql("SELECT count(*) FROM deliveries WHERE status = 'sent'")[0][0]
                   >= 1, 30, "the first message sent")
        lo = w.sql("SELECT count(*) FROM deliveries WHERE status = 'sent'")[0][0]
        t0 = time.time()
        s1, _, body = scrape(murl)
        hi = w.sql("SELECT count(*) FROM deliveries WHERE status = 'sent'")[0][0]
        sent1 = value(s1, "herald_issue_deliveries", issue=iid, status="sent")
        check(sent1 is not None and lo <= sent1 <= hi, "sent %s, database %d..%d\n%s",
              sent1, lo, hi, body)
        check(value(s1, "herald_issue_deliveries", issue=iid, status="total") == n, "total")
        check(value(s1, "herald_issues", status="sending") == 1, "sending")
        check(sum(value(s1, "herald_issue_deliveries", issue=iid, status=st) for st in
                  ("pending", "sending", "sent", "deferred", "bounced", "failed", "skipped"))
              == n, "statuses do not add up")
        check(value(s1, "herald_issue_send_rate", issue=iid) == 0, "first rate")
        wait_until(lambda: w.sql("SELECT count(*) FROM deliveries WHERE status = 'sent'")[0][0]
                   >= sent1 + 2, 30, "two more sent")
        s2, _, _ = scrape(murl)
        t1 = time.time()
        sent2 = value(s2, "herald_issue_deliveries", issue=iid, status="sent")
        rate = value(s2, "herald_issue_send_rate", issue=iid)
        # the scrapes' own times lie between t0 and t1
        check(sent2 > sent1, "sent did not grow: %s -> %s", sent1, sent2)
        check(rate >= (sent2 - sent1) / (t1 - t0 + 0.2) * 0.99,
              "rate %s for %s more in %.2f s", rate, sent2 - sent1, t1 - t0)
        check(rate <= (sent2 - sent1) / max(t1 - t0 - 0.5, 0.05), "rate %s too high", rate)
        check(send.wait(60) == 0, "send failed: %s", send.stderr_text)
        s3, _, _ = scrape(murl)
        check(value(s3, "herald_issue_deliveries", issue=iid, status="sent") is None,
              "a finished issue is still shown")
        check(value(s3, "herald_issues", status="sent") == 1, "issue sent")


def test_allow_list_and_methods():
    with World(extra_config="\n[metrics]\nlisten = 127.0.0.1:0\nallow = 10.0.0.0/8\n") as w:
        w.init()
        srv, pub, murl = start(w)
        code, body = curl(murl)
        check(code == 403 and "herald_" not in body, "outside allow: %d %r", code, body)
        w.set("metrics", allow="127.0.0.1")
        srv.stop()
        srv, pub, murl = start(w)
        check(curl(murl)[0] == 200, "inside allow")
        check(curl(murl, "-X", "POST", "-d", "x")[0] == 405, "POST")
        check(curl(murl.replace("/metrics", "/other"))[0] == 404, "other path")
        # a bad allow entry is a config error
        w.set("metrics", allow="everyone")
        p = w.run("config", "check")
        check(p.returncode == 78 and "'allow' wants addresses" in p.stderr_text,
              "config check: %d %r", p.returncode, p.stderr_text)


if __name__ == "__main__":
    run_tests([
        ("requests by endpoint and status, events written", test_requests_and_events_counted),
        ("a send in progress", test_send_progress),
        ("allow-list, methods, paths", test_allow_list_and_methods),
    ])
