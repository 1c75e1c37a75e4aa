#!/usr/bin/python3
"""test_browser_prefs.py - the preference centre in a real browser (issue 15).

Headless Debian chromium through chromium-driver and python3-selenium, as
test_browser.py: the reader opens the "Manage your subscription" link of a
mail the test SMTP server received, ticks a list, unticks another, saves
with the button, and the database says exactly that (the nonce travelled
in the form, nothing else needed); answers the optional "Why are you
leaving?" form shown after that unsubscribe; asks for "Download my data"
(the page shows none of it, the mail brings it); asks "Delete me", follows
the link of the confirmation mail in the browser and presses the button,
and the address is gone from the database; signs a new reader up on the
hosted form GET /subscribe/NAME, whose consent text and User-Agent the
consent record keeps.  No page has a Content-Security-Policy violation.  Screenshots go to $HERALD_ARTIFACTS, else <build dir>/
test-artifacts.  Exits 77 (skip) when chromium, chromedriver or selenium is
missing.
"""
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD, SKIP, World, check, need_module, run_tests  # noqa: E402

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

BASE = "https://news.example.org"
WHO = "zoe@example.org"
ARTIFACTS = os.environ.get("HERALD_ARTIFACTS") or os.path.join(
    os.path.dirname(os.path.abspath(HERALD)), "test-artifacts")


class Env:
    pass


E = Env()


def status(name):
    rows = E.w.sql("SELECT s.status FROM subscriptions s JOIN subscribers r ON r.id = "
                   "s.subscriber_id JOIN lists l ON l.id = s.list_id WHERE r.email = ? AND "
                   "l.name = ?", WHO, name)
    return rows[0][0] if rows else None


def body_text():
    return E.driver.find_element(By.TAG_NAME, "body").text


def click(xpath):
    """As test_browser.click_one(): chromium may refuse a first click while
    it settles a page; find the element again and retry."""
    last = None
    for attempt in range(4):
        els = E.driver.find_elements(By.XPATH, xpath)
        if attempt == 0:
            check(len(els) == 1, "%d elements for %s", len(els), xpath)
        elif not els:
            return
        try:
            els[0].click()
            return
        except WebDriverException as e:
            last = e
            time.sleep(0.3)
    raise last


def setup():
    w = E.w = World()
    w.init()
    smtp = E.smtp = w.smtp()
    w.ok("list", "create", "newsletter", "--title", "WWC News", "--public", "--signup")
    w.ok("list", "create", "research", "--title", "Research Digest", "--signup")
    w.ok("sub", "add", WHO, "--list", "newsletter", "--name", "Zoë Müller")
    iid = w.new_issue("Hello", "newsletter", "Dear {{name}}, hello.\n")
    w.ok("send", iid)
    msg = [m for _, m, _ in smtp.messages() if m["To"].addresses[0].addr_spec == WHO][0]
    html = msg.get_body(("html",)).get_content()
    E.prefs = re.findall(r'href="(%s/p/[A-Za-z0-9_-]+)"' % re.escape(BASE), html)[0]
    E.srv = w.serve()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--window-size=1000,1400",
              "--user-data-dir=" + os.path.join(w.root, "chromium-profile")):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    E.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    E.driver.set_page_load_timeout(20)


def test_tick_save_and_the_database_follows():
    E.driver.get(E.srv.url + E.prefs[len(BASE):])
    text = body_text()
    check("Your subscriptions" in text and WHO in text and "Research Digest" in text,
          "page: %r", text)
    check(status("newsletter") == "confirmed" and status("research") is None,
          "loading the page changed something")
    # tick research (single opt-in: joined at once), untick the newsletter
    click("//input[@type='checkbox' and @name='list' and ../text()[contains(., "
          "'Research Digest')]]")
    click("//input[@type='checkbox' and @name='list' and ../text()[contains(., "
          "'WWC News')]]")
    os.makedirs(ARTIFACTS, exist_ok=True)
    E.driver.save_screenshot(os.path.join(ARTIFACTS, "browser-preferences.png"))
    click("//button[normalize-space(.)='Save my choices']")
    WebDriverWait(E.driver, 20, ignored_exceptions=(StaleElementReferenceException,)
                  ).until(lambda d: "Your choices are saved" in body_text())
    check(status("research") == "confirmed", "research: %s", status("research"))
    check(status("newsletter") == "unsubscribed", "newsletter: %s", status("newsletter"))
    src = E.w.sql("SELECT json_extract(detail, '$.source') FROM events WHERE kind = "
                  "'unsubscribe'")
    check(src == [("preferences",)], "unsubscribe events %s", src)
    no_csp_violation()


def no_csp_violation():
    try:
        logs = E.driver.get_log("browser")
    except Exception:
        logs = []
    v = [e["message"] for e in logs if "Content Security Policy" in e.get("message", "")]
    check(not v, "CSP violations: %s", v)


def wait_text(words):
    WebDriverWait(E.driver, 20, ignored_exceptions=(StaleElementReferenceException,)
                  ).until(lambda d: words in body_text())


def mails_to_who():
    return [m for _, m, _ in E.smtp.messages()
            if m["To"].addresses[0].addr_spec.lower() == WHO.lower()]


def wait_mails(n, what):
    deadline = time.time() + 20
    while len(mails_to_who()) < n:
        check(time.time() < deadline, "no %s after 20 s", what)
        time.sleep(0.2)
    return mails_to_who()[n - 1]


def test_survey_after_leaving():
    # the page of the save above offers the survey; answering is optional
    check("Why are you leaving?" in body_text(), "no survey: %r", body_text())
    click("//input[@type='radio' and @name='reason' and @value='other']")
    E.driver.find_element(By.XPATH, "//input[@name='note']").send_keys("Wrong team")
    click("//button[normalize-space(.)='Send my answer']")
    wait_text("Thank you")
    rows = E.w.sql("SELECT reason, note FROM leave_answers")
    check(rows == [("other", "Wrong team")], "leave_answers %s", rows)
    no_csp_violation()


def test_download_my_data_comes_by_mail():
    n = len(mails_to_who())
    E.driver.get(E.srv.url + E.prefs[len(BASE):])
    click("//button[normalize-space(.)='Download my data']")
    wait_text("on its way")
    text = body_text()
    check("Zoë Müller" not in text and "{" not in text, "the page shows data: %r", text)
    m = wait_mails(n + 1, "export mail")
    body = m.get_body(("plain",)).get_content()
    doc = json.loads(body[body.index("\n{") + 1:body.rindex("\n}") + 2])
    check(doc["subscriber"]["email"] == WHO and doc["subscriber"]["name"] == "Zoë Müller",
          "export %s", doc["subscriber"])
    no_csp_violation()


def test_delete_me_needs_the_mail_then_erases():
    n = len(mails_to_who())
    E.driver.get(E.srv.url + E.prefs[len(BASE):])
    click("//button[normalize-space(.)='Delete me']")
    wait_text("Check your inbox")
    m = wait_mails(n + 1, "erase mail")
    check(E.w.sql("SELECT count(*) FROM subscribers WHERE email = ?", WHO) == [(1,)],
          "erased before the mail's link was followed")
    codes = re.findall(r"%s(/erase/[0-9a-f]{32})\b" % re.escape(BASE),
                       m.get_body(("plain",)).get_content())
    check(len(codes) == 1, "erase links %s", codes)
    E.driver.get(E.srv.url + codes[0])
    check("Delete my data" in body_text(), "erase page: %r", body_text())
    E.driver.save_screenshot(os.path.join(ARTIFACTS, "browser-erase.png"))
    click("//button[normalize-space(.)='Delete my data']")
    wait_text("has been deleted")
    check(E.w.sql("SELECT count(*) FROM subscribers WHERE email_key = ?", WHO.lower()) == [(0,)],
          "still a subscriber")
    check(E.w.sql("SELECT count(*) FROM erased") == [(1,)], "no erasure hash kept")
    no_csp_violation()


def test_hosted_signup_form():
    text = "Yes, send me the Research Digest. I can leave at any time."
    E.w.ok("list", "set", "research", "--consent-text", text)
    E.driver.get(E.srv.url + "/subscribe/research")
    check("Subscribe to Research Digest" in body_text() and text in body_text(),
          "hosted form: %r", body_text())
    E.driver.find_element(By.XPATH, "//input[@name='email']").send_keys("new.one@example.net")
    E.driver.find_element(By.XPATH, "//input[@name='name']").send_keys("Ny Läsare")
    click("//button[normalize-space(.)='Subscribe']")
    wait_text("You are subscribed")
    rows = E.w.sql("SELECT c.kind, c.source, c.detail, c.ip, c.user_agent FROM consent_log c "
                   "JOIN subscribers s ON s.id = c.subscriber_id WHERE s.email = ?",
                   "new.one@example.net")
    check(len(rows) == 1 and rows[0][:4] == ("subscribe", "web form", text, "127.0.0.1") and
          "HeadlessChrome" in rows[0][4], "consent record %s", rows)
    check(E.w.sql("SELECT name FROM subscribers WHERE email = ?", "new.one@example.net") ==
          [("Ny Läsare",)], "the name was not kept")
    no_csp_violation()


def teardown():
    if getattr(E, "driver", None):
        E.driver.quit()
        E.driver = None
    if getattr(E, "w", None):
        E.w.close()


def main():
    try:
        try:
            setup()
        except Exception as e:
            print("FAIL setup: %s: %s" % (type(e).__name__, e))
            sys.exit(1)
        run_tests([("tick_save_and_the_database_follows",
                    test_tick_save_and_the_database_follows),
                   ("survey_after_leaving", test_survey_after_leaving),
                   ("download_my_data_comes_by_mail", test_download_my_data_comes_by_mail),
                   ("delete_me_needs_the_mail_then_erases",
                    test_delete_me_needs_the_mail_then_erases),
                   ("hosted_signup_form", test_hosted_signup_form)])
    finally:
        teardown()


if __name__ == "__main__":
    main()
