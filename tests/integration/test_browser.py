#!/usr/bin/python3
"""test_browser.py - herald's web pages in a real browser (issue 5).

Headless Debian chromium, driven by chromium-driver through python3-selenium,
loads what a subscriber sees from a mail the test SMTP server received:
  - the unsubscribe page (GET /u/TOKEN from the List-Unsubscribe header):
    it names the list and the address and changes nothing; clicking its
    Unsubscribe button unsubscribes (the database says so, source "web"),
    and the "Subscribe again" button takes the reader back;
  - the archive: /archive lists the issue, following its link shows the
    issue (its h1) with no subscriber data;
  - `herald stats ID --html FILE` (when that herald has it): the page shows an
    inline <svg> chart of a visible size.
On every page the browser's console must hold no Content-Security-Policy
violation (the server's CSP must not break its own pages: form posts, inline
styles).  Screenshots go to $HERALD_ARTIFACTS, else <build dir>/test-artifacts
(the directory of $HERALD_BIN); their paths are printed.  Exits 77 (skip)
when chromium, chromedriver or selenium is missing.
"""
import http.client
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, SKIP, SOURCE_DIR, World, check, need_module, run_tests  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
    if not os.access(path, os.X_OK):
        print("SKIP: %s is missing (apt-get install %s)" % (path, pkg))
        sys.exit(SKIP)
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
except ImportError:
    print("SKIP: python3-selenium is missing (apt-get install python3-selenium)")
    sys.exit(SKIP)
need_module("aiosmtpd")

ISSUE = os.path.join(SOURCE_DIR, "examples", "newsletter-16.md")
BASE = "https://news.example.org"
WHO = "zoe@example.org"
ARTIFACTS = os.environ.get("HERALD_ARTIFACTS") or os.path.join(
    os.path.dirname(os.path.abspath(HERALD)), "test-artifacts")


class Env:
    pass


E = Env()


def shot(name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "browser-%s.png" % name)
    check(E.driver.save_screenshot(path), "screenshot %s failed", path)
    print("     screenshot: %s" % path)
    return path


def csp_violations():
    """Console messages about the Content-Security-Policy since the last call."""
    try:
        logs = E.driver.get_log("browser")
    except Exception:   # a driver without the log endpoint: nothing to check
        return []
    return [e["message"] for e in logs
            if "Content Security Policy" in e.get("message", "")
            or "Content-Security-Policy" in e.get("message", "")]


def body_text():
    return E.driver.find_element(By.TAG_NAME, "body").text


def wait_text(s, timeout=20):
    # after a click the old page's body goes stale while the next one loads
    WebDriverWait(E.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
                  ).until(lambda d: s in body_text())


def click_one(xpath, what):
    """Click the one element `xpath` finds.  Chromium sometimes refuses a
    click with "Node with given id does not belong to the document" while
    it settles the page just loaded (seen with chromium 150): find the
    element again and retry.  A retry that finds nothing means the earlier
    click went through (the next page is loading): the caller's checks of
    what the click did still decide."""
    last = None
    for attempt in range(4):
        els = E.driver.find_elements(By.XPATH, xpath)
        if attempt == 0:
            check(len(els) == 1, "%d %s buttons", len(els), what)
        elif not els:
            return
        try:
            els[0].click()
            return
        except WebDriverException as e:   # StaleElementReference is one too
            last = e
            time.sleep(0.3)
    raise last


def status():
    return E.w.sql("SELECT s.status FROM subscriptions s JOIN subscribers r ON "
                   "r.id = s.subscriber_id WHERE r.email = ?", WHO)[0][0]


def setup():
    w = E.w = World()
    w.init()
    smtp = w.smtp()
    w.ok("list", "create", "newsletter", "--title", "WWC News", "--public")
    w.ok("sub", "add", WHO, "--list", "newsletter", "--name", "Zoë Müller")
    w.ok("sub", "add", "other@example.org", "--list", "newsletter", "--name", "Other Reader")
    E.iid = w.ok("issue", "new", ISSUE).stdout_text.strip()
    w.ok("send", E.iid)
    E.mail = None
    for _, msg, raw in smtp.messages():
        if msg["To"].addresses[0].addr_spec == WHO:
            E.mail = msg
    check(E.mail is not None, "no mail to %s", WHO)
    html = E.mail.get_body(("html",)).get_content()
    E.unsub = re.findall(r"<(%s/u/[^>]+)>" % re.escape(BASE), str(E.mail["List-Unsubscribe"]))[0]
    E.pixel = re.findall(r'src="(%s/o/[^"]+)"' % re.escape(BASE), html)[0]
    E.clicks = list(dict.fromkeys(re.findall(r'href="(%s/c/[^"]+)"' % re.escape(BASE), html)))
    E.srv = w.serve()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    E.profile = os.path.join(w.root, "chromium-profile")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--window-size=1000,1200",
              "--user-data-dir=" + E.profile):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    E.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    E.driver.set_page_load_timeout(20)


def local(url):
    return E.srv.url + url[len(BASE):]


def test_unsubscribe_page_and_button():
    E.driver.get(local(E.unsub))
    text = body_text()
    check("WWC News" in text and WHO in text, "the page does not name list and address: %r",
          text)
    shot("unsubscribe-page")
    check(status() == "confirmed", "loading the page unsubscribed (%s)", status())
    click_one("//button[normalize-space(.)='Unsubscribe'] | "
              "//input[@type='submit' and @value='Unsubscribe']", "Unsubscribe")
    wait_text("You have been unsubscribed from WWC News")
    shot("unsubscribed")
    check(status() == "unsubscribed", "after the click: %s", status())
    src = E.w.sql("SELECT json_extract(detail, '$.source') FROM events WHERE kind = "
                  "'unsubscribe'")
    check(src == [("web",)], "unsubscribe events %s", src)
    click_one("//button[contains(normalize-space(.), 'Subscribe again')] | "
              "//input[@type='submit' and contains(@value, 'Subscribe again')]",
              "'Subscribe again'")
    wait_text("You are subscribed again")
    check(status() == "confirmed", "after 'Subscribe again': %s", status())
    v = csp_violations()
    check(not v, "CSP violations on the unsubscribe pages: %s", v)


def test_archive_pages():
    E.driver.get(E.srv.url + "/archive")
    # the resolved href (the page may link relatively)
    links = [a for a in E.driver.find_elements(By.TAG_NAME, "a")
             if (a.get_property("href") or "").endswith("/archive/%s" % E.iid)]
    check(links, "no link to issue %s on /archive: %r", E.iid, body_text())
    check("What Works Centre e-newsletter no.16" in body_text(), "no subject: %r", body_text())
    shot("archive")
    for attempt in range(4):    # see click_one(): chromium may refuse a first click
        try:
            links[0].click()
            break
        except WebDriverException:
            if attempt == 3 or not E.driver.current_url.endswith("/archive"):
                raise
            time.sleep(0.3)
            links = [a for a in E.driver.find_elements(By.TAG_NAME, "a")
                     if (a.get_property("href") or "").endswith("/archive/%s" % E.iid)]
    WebDriverWait(E.driver, 10).until(lambda d: d.find_elements(By.TAG_NAME, "h1"))
    h1 = E.driver.find_element(By.TAG_NAME, "h1").text
    check(h1 in ("What Works Centre for Children's Social Care",
                 "What Works Centre for Children\u2019s Social Care"), "h1 %r", h1)
    text = body_text()
    check("Healthier Happier Professionals" in text, "the issue body is missing")
    check("Zoë" not in text and WHO not in text, "the archive shows a subscriber's data")
    # the h1 is rendered as a heading, not raw markup
    check(E.driver.find_element(By.TAG_NAME, "h1").size["height"] > 0, "h1 not displayed")
    shot("archive-issue")
    v = csp_violations()
    check(not v, "CSP violations on the archive pages: %s", v)


def hit(url):
    c = http.client.HTTPConnection("127.0.0.1", E.srv.port, timeout=10)
    c.request("GET", url[len(BASE):], headers={"User-Agent": "Mozilla/5.0 (test_browser)"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def test_stats_report_chart():
    # some opens and clicks to chart; the server writes them on stop
    check(hit(E.pixel) == 200, "pixel")
    for u in E.clicks[:3]:
        check(hit(u) == 302, "click %s", u)
    check(E.srv.stop() == 0, "serve exit status")
    out = os.path.join(E.w.root, "stats.html")
    p = E.w.run("stats", E.iid, "--html", out)
    check(p.returncode == 0, "herald stats --html: exit %d %s", p.returncode, p.stderr_text)
    html = open(out, encoding="utf-8").read()
    check(not re.search(r"""\bsrc\s*=\s*["']?(https?:)?//|<link\b[^>]*href\s*=\s*["']?"""
                        r"""(https?:)?//""", html, re.I), "the report loads something external")
    E.driver.get("file://" + out)
    svgs = E.driver.find_elements(By.TAG_NAME, "svg")
    check(svgs, "no <svg> in the report")
    size = svgs[0].size
    check(size["width"] > 50 and size["height"] > 50, "the chart is %s", size)
    shapes = E.driver.find_elements(By.CSS_SELECTOR, "svg rect, svg path, svg polyline, "
                                                     "svg line, svg circle")
    check(len(shapes) > 1, "the chart draws nothing")
    shot("stats")


def teardown():
    if getattr(E, "driver", None):
        E.driver.quit()
        E.driver = None
    if getattr(E, "w", None):
        E.w.close()


def main():
    t0 = time.time()
    try:
        try:
            setup()
        except Exception as e:
            print("FAIL setup: %s: %s" % (type(e).__name__, e))
            sys.exit(1)
        run_tests([("unsubscribe_page_and_button", test_unsubscribe_page_and_button),
                   ("archive_pages", test_archive_pages),
                   ("stats_report_chart", test_stats_report_chart)])
    finally:
        teardown()
        print("     (%.1f s)" % (time.time() - t0))


if __name__ == "__main__":
    main()
