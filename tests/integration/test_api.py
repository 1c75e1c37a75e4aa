#!/usr/bin/python3
"""test_api.py - the HTTP API of `herald serve` (api.h, apikey.h, webapi.c)
against its contract, docs/openapi.yaml.

Against a real `herald serve` on 127.0.0.1, with curl as the client:
  - the spec itself is a valid OpenAPI 3.1 document (the OAI meta-schema,
    tests/data/openapi/, with Debian's python3-jsonschema), and every
    answer below is checked against the schema the spec gives for its
    path, method and status;
  - keys: no key, a wrong key, a revoked and an expired key are each the
    same 401 byte for byte (with WWW-Authenticate) and the wrong key gets
    a 401 before any 404; a key without the scope gets 403; `apikey ls`
    shows the prefix, never the key; the database holds only its hash;
  - lists, a subscriber, a page of subscribers (paging by next_after);
  - upsert: 201 created, the same twice 200 unchanged (the database dump
    is identical), a new name 200 updated; the consent record says "api"
    with the client; a double opt-in list gets a confirmation mail at the
    test SMTP server and an unconfirmed subscription; a suppressed address
    409; SQL-looking text stored as written;
  - hostile bodies - invalid JSON, invalid UTF-8, nesting 100 deep, a body
    over [api] max_body, the wrong content type, an unknown field, a bad
    address, an unknown list - each get their 4xx in the error shape and
    leave the database as it was;
  - a bulk upsert of 10,000 in one request (its time printed), again
    unchanged, and one with a bad item at index 5,000: 422 naming it and
    nothing stored;
  - unsubscribe from one list and from all (events and consent records);
    erase (DELETE) and then 404; an issue's status and its stats equal to
    `herald stats ID --json`; a key over its rate gets 429 with
    Retry-After; a wrong method 405 with Allow;
  - one-off mail: rendered from Markdown with merge data, received by the
    SMTP server DKIM-signed (python3-dkim verifies it against the record
    `herald dkim keygen` printed), recorded in api_mails and relay_usage;
    retried with the same Idempotency-Key: one mail and the same answer;
    the key with another body: 422; a suppressed address 409; data that
    would put CR/LF into the subject, or an unknown merge field: 422 and
    nothing stored or sent; a stored issue as the template; another key
    cannot read the mail's status.
"""
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, World, check, need_module, run_tests, wait_until  # noqa: E402
from dkimkeys import dns_stub, keygen  # noqa: E402
from webclient import curl  # noqa: E402

need_module("yaml")
need_module("jsonschema")
import jsonschema  # noqa: E402
import yaml  # noqa: E402

SPEC = yaml.safe_load(open(os.path.join(SOURCE_DIR, "docs", "openapi.yaml")))
META = json.load(open(os.path.join(SOURCE_DIR, "tests", "data", "openapi",
                                   "oas-3.1-schema.json")))
CONFIG = "[api]\nrate = 100000\nmax_body = 4194304\n"


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        cur = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            cur = cur[part]
        node = cur
    return node


def conforms(r, template, method):
    """The answer's body against the spec's schema for it; returns the JSON."""
    op = SPEC["paths"][template][method.lower()]
    resp = op["responses"].get(str(r.status))
    check(resp is not None, "%s: status %d is not in the spec for %s %s: %s", r.what,
          r.status, method, template, r.text[:300])
    check((r.h("Content-Type") or "").startswith("application/json"),
          "%s: Content-Type %r", r.what, r.h("Content-Type"))
    doc = json.loads(r.body)
    schema = resolve(resp)["content"]["application/json"]["schema"]
    v = jsonschema.Draft202012Validator(
        schema, resolver=jsonschema.RefResolver.from_schema(SPEC, id_of=lambda s: ""))
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    check(not errors, "%s: does not match the spec: %s\n%s", r.what,
          [(list(e.path), e.message[:200]) for e in errors[:3]], r.text[:500])
    return doc


class Env:
    pass


E = Env()


def call(method, path, body=None, key=None, ctype="application/json", template=None,
         raw=None):
    headers = []
    if key is not False:
        headers.append("Authorization: Bearer " + (key or E.key))
    data = raw
    if body is not None:
        data = json.dumps(body)
    if data is not None and ctype:
        headers.append("Content-Type: " + ctype)
    r = curl(E.srv.url + "/api/v1" + path, method, data=data, headers=headers)
    if template:
        r.json = conforms(r, template, method)
    return r


def error_of(r, status, code, field=None):
    check(r.status == status, "%s: status %d, wanted %d: %s", r.what, r.status, status,
          r.text[:300])
    doc = json.loads(r.body)
    check(doc["error"]["code"] == code, "%s: code %s, wanted %s", r.what, doc["error"], code)
    if field is not None:
        check(doc["error"].get("field") == field, "%s: field %r, wanted %r", r.what,
              doc["error"].get("field"), field)
    check(jsonschema.Draft202012Validator(
        SPEC["components"]["schemas"]["Error"]).is_valid(doc), "error shape %s", doc)
    return doc


def setup():
    w = E.w = World(extra_config=CONFIG)
    w.init()
    E.smtp = w.smtp()
    w.ok("list", "create", "news", "--title", "WWC News")
    w.ok("list", "create", "digest", "--title", "The Digest", "--double-opt-in")
    E.key = w.ok("apikey", "create", "website", "--scope",
                 "subscribers:read,subscribers:write,lists:read,issues:read").stdout_text.strip()
    E.readonly = w.ok("apikey", "create", "reader", "--scope", "lists:read").stdout_text.strip()
    E.srv = w.serve()


def test_spec_is_openapi_3_1():
    errors = list(jsonschema.Draft202012Validator(META).iter_errors(SPEC))
    check(not errors, "docs/openapi.yaml: %s", [e.message[:200] for e in errors[:3]])
    broken = dict(SPEC, info={"title": "x"})  # the check can fail: info.version missing
    check(list(jsonschema.Draft202012Validator(META).iter_errors(broken)),
          "the meta-schema accepted a spec without info.version")


def test_keys_and_scopes():
    check(re.fullmatch(r"hrk_[A-Za-z0-9_-]{43}", E.key), "key %r", E.key)
    ls = E.w.ok("apikey", "ls").stdout_text
    check(E.key[:12] in ls and E.key not in ls, "apikey ls shows the key:\n%s", ls)
    dump = E.w.dump()
    check(E.key not in dump and E.key[12:] not in dump, "the key is stored")
    E.w.ok("apikey", "create", "gone", "--scope", "lists:read")
    gone = E.w.ok("apikey", "create", "gone2", "--scope", "lists:read").stdout_text.strip()
    E.w.ok("apikey", "revoke", "gone2")
    old = E.w.ok("--now", "2020-01-01T00:00:00Z", "apikey", "create", "old", "--scope",
                 "lists:read", "--expires", "1d").stdout_text.strip()
    answers = [call("GET", "/lists", key=k, template="/lists")
               for k in (False, "hrk_" + "A" * 43, gone, old, "Basic abc")]
    for r in answers:
        check(r.status == 401 and r.h("WWW-Authenticate", ) and r.body == answers[0].body,
              "%s: %d %s", r.what, r.status, r.text)
    # the key comes first: no 404 for a wrong key
    r = call("GET", "/nowhere", key="hrk_" + "B" * 43)
    error_of(r, 401, "unauthorized")
    error_of(call("GET", "/nowhere"), 404, "not_found")
    error_of(call("GET", "/subscribers/a@example.org", key=E.readonly,
                  template="/subscribers/{email}"), 403, "forbidden")
    r = call("GET", "/lists", key=E.readonly, template="/lists")
    check(r.status == 200, "reader key on /lists: %s", r.text)
    js = json.loads(E.w.ok("apikey", "ls", "--json").stdout_text)
    states = {k["name"]: k["state"] for k in js}
    check(states == {"website": "active", "reader": "active", "gone": "active",
                     "gone2": "revoked", "old": "expired"}, "apikey ls --json %s", states)
    check(any(k["name"] == "reader" and k["last_used_at"] for k in js), "last use not kept")


def test_lists():
    r = call("GET", "/lists", template="/lists")
    check([l["name"] for l in r.json["lists"]] == ["digest", "news"], "lists %s", r.json)


def sub_row(email):
    return E.w.sql("SELECT s.name, u.status, l.name FROM subscribers s JOIN subscriptions u "
                   "ON u.subscriber_id = s.id JOIN lists l ON l.id = u.list_id "
                   "WHERE s.email = ? ORDER BY l.name", email)


def test_upsert_idempotent_and_consent():
    body = {"email": "Ada@Example.ORG", "name": "Ada", "lists": ["news"],
            "attributes": {"team": "research", "age": 36, "vip": True, "gone": None},
            "tracking_consent": True}
    r = call("POST", "/subscribers", body, template="/subscribers")
    check(r.status == 201 and r.json["result"] == "created", "first: %s", r.text)
    sub = r.json["subscriber"]
    check(sub["email"] == "Ada@example.org" and sub["attributes"] == {
        "team": "research", "age": "36", "vip": "true", "tracking_consent": "yes"},
        "subscriber %s", sub)
    dump = E.w.dump()
    r = call("POST", "/subscribers", body, template="/subscribers")
    check(r.status == 200 and r.json["result"] == "unchanged", "second: %s", r.text)
    check(E.w.dump() == dump, "the same upsert twice changed the database")
    body["name"] = "Ada Lovelace"
    r = call("POST", "/subscribers", body, template="/subscribers")
    check(r.status == 200 and r.json["result"] == "updated" and
          r.json["subscriber"]["name"] == "Ada Lovelace", "rename: %s", r.text)
    rec = E.w.sql("SELECT source, detail, ip FROM consent_log c JOIN subscribers s ON "
                  "s.id = c.subscriber_id WHERE s.email = 'Ada@example.org'")
    check(rec == [("api", "api key website", "127.0.0.1")], "consent %s", rec)
    # double opt-in: a confirmation mail, an unconfirmed subscription
    n0 = len(E.smtp.messages())
    r = call("POST", "/subscribers", {"email": "grace@example.net", "lists": ["digest"],
                                      "consent_text": "Yes, the Digest please"},
             template="/subscribers")
    check(r.status == 201 and r.json["subscriber"]["subscriptions"][0]["status"] ==
          "unconfirmed", "double opt-in: %s", r.text)
    msgs = wait_until(lambda: E.smtp.messages()[n0:], 20, "the confirmation mail")
    check(msgs[0][1]["To"].addresses[0].addr_spec == "grace@example.net", "mail to %s",
          msgs[0][1]["To"])
    check(E.w.sql("SELECT detail FROM consent_log c JOIN subscribers s ON s.id = "
                  "c.subscriber_id WHERE s.email = 'grace@example.net'") ==
          [("Yes, the Digest please",)], "consent text not kept")
    # suppressed: 409, nothing stored
    E.w.ok("suppress", "add", "blocked@example.org")
    dump = E.w.dump()
    error_of(call("POST", "/subscribers", {"email": "blocked@example.org", "lists": ["news"]},
                  template="/subscribers"), 409, "suppressed")
    check(E.w.dump() == dump, "a suppressed upsert changed the database")
    # SQL-looking text is text
    evil = "Robert'); DROP TABLE subscribers;--"
    r = call("POST", "/subscribers", {"email": "bobby@example.org", "name": evil,
                                      "lists": ["news"]}, template="/subscribers")
    check(r.status == 201 and sub_row("bobby@example.org") == [(evil, "confirmed", "news")],
          "bobby: %s", r.text)


def test_hostile_bodies_store_nothing():
    dump = E.w.dump()
    cases = [
        (dict(raw="{\"email\": ", ctype="application/json"), 400, "invalid_json", None),
        (dict(raw=b"{\"email\": \"a\xff@example.org\", \"lists\": [\"news\"]}"), 400,
         "invalid_json", None),
        (dict(raw="[" * 100 + "]" * 100), 400, "invalid_json", None),
        (dict(raw="{}", ctype="text/plain"), 415, "unsupported_media_type", None),
        (dict(raw="email=a@example.org", ctype="application/x-www-form-urlencoded"), 415,
         "unsupported_media_type", None),
        (dict(body={"email": "a@example.org", "lists": ["news"], "e-mail": "x"}), 422,
         "unknown_field", "e-mail"),
        (dict(body={"email": "not an address", "lists": ["news"]}), 422, "invalid_email",
         "email"),
        (dict(body={"email": "a@example.org", "lists": ["nosuch"]}), 422, "unknown_list",
         "lists[0]"),
        (dict(body={"email": "a@example.org", "lists": []}), 422, "invalid_field", "lists"),
        (dict(body={"email": "a@example.org", "lists": ["news"], "attributes": {"x": [1]}}),
         422, "invalid_field", "attributes.x"),
        (dict(body={"email": "a@example.org", "lists": ["news"], "name": "a\nb"}), 422,
         "invalid_field", None),
        (dict(raw="{\"email\": \"a@example.org\", \"email\": \"b@example.org\", "
                  "\"lists\": [\"news\"]}"), 400, "invalid_json", None),
    ]
    for kw, status, code, field in cases:
        r = call("POST", "/subscribers", template="/subscribers", **kw)
        error_of(r, status, code, field)
    big = json.dumps({"subscribers": [{"email": "x%d@example.org" % i, "lists": ["news"],
                                       "name": "n" * 200} for i in range(20000)]})
    check(len(big) > 4194304, "the big body is only %d bytes", len(big))
    error_of(call("POST", "/subscribers/bulk", raw=big), 413, "too_large")
    check(E.w.dump() == dump, "a refused request changed the database")


def test_bulk_10000():
    items = [{"email": "bulk%05d@example.org" % i, "name": "Reader %d" % i, "lists": ["news"],
              "attributes": {"n": i}} for i in range(10000)]
    t0 = time.monotonic()
    r = call("POST", "/subscribers/bulk", {"subscribers": items}, template="/subscribers/bulk")
    took = time.monotonic() - t0
    print("bulk upsert of 10,000: %.2f s (%.0f/s)" % (took, 10000 / took))
    check(r.status == 200 and len(r.json["results"]) == 10000 and
          all(x["result"] == "created" for x in r.json["results"]), "bulk: %s", r.text[:300])
    check(E.w.sql("SELECT count(*) FROM subscribers WHERE email LIKE 'bulk%'") == [(10000,)],
          "not all stored")
    dump = E.w.dump()
    r = call("POST", "/subscribers/bulk", {"subscribers": items}, template="/subscribers/bulk")
    check(all(x["result"] == "unchanged" for x in r.json["results"]), "again changed")
    check(E.w.dump() == dump, "the same bulk twice changed the database")
    more = [{"email": "more%05d@example.org" % i, "lists": ["news"]} for i in range(6000)]
    more[5000]["email"] = "broken@@example.org"
    error_of(call("POST", "/subscribers/bulk", {"subscribers": more},
                  template="/subscribers/bulk"), 422, "invalid_email",
             "subscribers[5000].email")
    check(E.w.sql("SELECT count(*) FROM subscribers WHERE email LIKE 'more%'") == [(0,)],
          "a refused bulk stored something")


def test_get_and_page():
    r = call("GET", "/subscribers/ADA@example.org", template="/subscribers/{email}")
    check(r.status == 200 and r.json["name"] == "Ada Lovelace", "get: %s", r.text)
    error_of(call("GET", "/subscribers/nobody@example.org", template="/subscribers/{email}"),
             404, "not_found")
    seen, after, pages = [], 0, 0
    while after is not None:
        r = call("GET", "/subscribers?list=news&limit=1000&after=%d" % after,
                 template="/subscribers")
        seen += [s["email"] for s in r.json["subscribers"]]
        after = r.json["next_after"]
        pages += 1
    want = E.w.sql("SELECT count(*) FROM subscriptions u JOIN lists l ON l.id = u.list_id "
                   "WHERE l.name = 'news'")[0][0]
    check(len(seen) == want == len(set(seen)) and pages == want // 1000 + 1,
          "paging: %d of %d in %d pages", len(seen), want, pages)
    error_of(call("GET", "/subscribers?limit=0", template="/subscribers"), 422,
             "invalid_field")
    # where=: the segment language (bulk rows have attr.n = their number)
    r = call("GET", "/subscribers?list=news&limit=1000&where=" +
             urllib.parse.quote("attr.n = 42 or attr.n = 4242"), template="/subscribers")
    check(sorted(s["email"] for s in r.json["subscribers"]) ==
          ["bulk00042@example.org", "bulk04242@example.org"], "where: %s", r.text[:300])
    error_of(call("GET", "/subscribers?where=" + urllib.parse.quote("attr.n = "),
                  template="/subscribers"), 422, "invalid_field", "where")
    error_of(call("GET", "/subscribers?list=nosuch", template="/subscribers"), 404,
             "not_found")


def test_unsubscribe_and_erase():
    E.w.ok("sub", "add", "ada@example.org", "--list", "digest")
    r = call("POST", "/subscribers/ada@example.org/unsubscribe", {"lists": ["news"]},
             template="/subscribers/{email}/unsubscribe")
    check(sorted((s["list"], s["status"]) for s in r.json["subscriptions"]) ==
          [("digest", "confirmed"), ("news", "unsubscribed")], "one list: %s", r.text)
    r = call("POST", "/subscribers/ada@example.org/unsubscribe",
             template="/subscribers/{email}/unsubscribe")
    check(r.status == 200 and all(s["status"] == "unsubscribed" for s in r.json["subscriptions"]), "all: %s %s", E.srv.stderr_text,
          r.text)
    n = E.w.sql("SELECT count(*) FROM events e JOIN subscribers s ON s.id = e.subscriber_id "
                "WHERE s.email = 'Ada@example.org' AND e.kind = 'unsubscribe'")[0][0]
    check(n == 2, "%d unsubscribe events", n)
    r = call("DELETE", "/subscribers/ada@example.org", template="/subscribers/{email}")
    check(r.status == 200 and r.json["result"] == "erased", "erase: %s", r.text)
    check(E.w.sql("SELECT by_whom FROM erasures") == [("api key website",)], "erasure log")
    error_of(call("GET", "/subscribers/ada@example.org", template="/subscribers/{email}"),
             404, "not_found")
    error_of(call("DELETE", "/subscribers/ada@example.org", template="/subscribers/{email}"),
             404, "not_found")


def test_issue_and_stats():
    iid = E.w.new_issue("Hello", "news", "Hello {{name|reader}}.\n")
    E.w.ok("send", iid)
    r = call("GET", "/issues/%s" % iid, template="/issues/{id}")
    check(r.json["status"] == "sent" and r.json["subject"] == "Hello", "issue %s", r.text)
    r = call("GET", "/issues/%s/stats" % iid, template="/issues/{id}/stats")
    want = json.loads(E.w.ok("stats", iid, "--json").stdout_text)
    check(r.json == want, "stats differ:\n%s\n%s", r.json, want)
    error_of(call("GET", "/issues/999999", template="/issues/{id}"), 404, "not_found")
    r = call("POST", "/lists", {})
    error_of(r, 405, "method_not_allowed")
    check(r.h("Allow") == "GET", "Allow %r", r.h("Allow"))


def test_one_off_mail():
    need_module("dkim")
    import dkim
    with World(extra_config=CONFIG) as w:
        path, records = keygen(w, "api2026", "rsa")
        w.set("dkim", selector="api2026", private_key=path)
        w.init()
        smtp = w.smtp()
        w.ok("list", "create", "news")
        w.ok("suppress", "add", "blocked@example.org")
        key = w.ok("apikey", "create", "booking", "--scope", "mail:send").stdout_text.strip()
        other = w.ok("apikey", "create", "other", "--scope", "mail:send").stdout_text.strip()
        nomail = w.ok("apikey", "create", "nomail", "--scope", "lists:read").stdout_text.strip()
        iid = w.new_issue("Welcome, {{name|reader}}", "news", "Hello {{name|reader}}.\n")
        srv = w.serve()

        def post(body, idem=None, k=key):
            headers = ["Authorization: Bearer " + k, "Content-Type: application/json"]
            if idem:
                headers.append("Idempotency-Key: " + idem)
            r = curl(srv.url + "/api/v1/mail", "POST", data=json.dumps(body), headers=headers)
            r.json = conforms(r, "/mail", "POST")
            return r

        body = {"to": "Reader@Example.NET", "subject": "Your booking {{attr.ref}}",
                "markdown": "Hello {{name|there}},\n\nbooking **{{attr.ref}}** is confirmed.\n",
                "data": {"name": "Ada", "ref": "B-17", "seats": 2}}
        r = post(body, "booking-B-17")
        check(r.status == 202 and r.json["to"] == "Reader@example.net", "first: %s", r.text)
        mid = r.json["id"]
        msgs = wait_until(lambda: smtp.messages(), 20, "the one-off mail")
        _, msg, raw = msgs[0]
        check(msg["Subject"] == "Your booking B-17" and msg["Auto-Submitted"] ==
              "auto-generated" and "List-Unsubscribe" not in msg, "headers %s", msg.items())
        check("Hello Ada," in msg.get_body(("plain",)).get_content() and
              "<strong>B-17</strong>" in msg.get_body(("html",)).get_content(), "body")
        check(dkim.verify(raw, dnsfunc=dns_stub(records)), "the mail does not verify")
        st = wait_until(lambda: [x for x in [call_get(srv, key, "/mail/%d" % mid)]
                                 if x.json["status"] != "queued"], 20, "the recorded result")[0]
        check(st.json["status"] == "sent" and st.json["smtp_code"] == 250 and
              st.json["relay"], "status %s", st.text)
        check(w.sql("SELECT count(*) FROM relay_usage")[0][0] >= 1, "relay usage not counted")
        # retried: the same answer, no second mail
        r = post(body, "booking-B-17")
        check(r.status == 200 and r.json["id"] == mid, "retry: %s", r.text)
        error_of(post(dict(body, subject="Changed"), "booking-B-17"), 422,
                 "idempotency_mismatch")
        # refusals store nothing and send nothing
        n = w.sql("SELECT count(*) FROM api_mails")[0][0]
        error_of(post(dict(body, to="blocked@example.org")), 409, "suppressed", "to")
        error_of(post(dict(body, data={"ref": "x\r\nBcc: evil@example.org"})), 422,
                 "invalid_field", "subject")
        error_of(post(dict(body, markdown="Hi {{nosuch}}")), 422, "invalid_field", "markdown")
        error_of(post(dict(body, cc="x@example.org")), 422, "unknown_field", "cc")
        error_of(post({"to": "a@example.org", "markdown": "x"}), 422, "invalid_field", "subject")
        check(w.sql("SELECT count(*) FROM api_mails")[0][0] == n, "a refusal was stored")
        # a stored issue as the template
        r = post({"to": "bob@example.org", "issue": int(iid), "data": {"name": "Bob"}})
        check(r.status == 202, "issue template: %s", r.text)
        got = wait_until(lambda: [m for _, m, _ in smtp.messages()
                                  if m["Subject"] == "Welcome, Bob"], 20, "the template mail")
        check("Hello Bob." in got[0].get_body(("plain",)).get_content(), "template body")
        check(len(smtp.messages()) == 2, "%d mails sent", len(smtp.messages()))
        error_of(call_get(srv, other, "/mail/%d" % mid), 404, "not_found")
        error_of(call_get(srv, nomail, "/mail/%d" % mid), 403, "forbidden")


def call_get(srv, key, path):
    r = curl(srv.url + "/api/v1" + path, headers=["Authorization: Bearer " + key])
    r.json = json.loads(r.body)
    if r.status == 200:
        r.json = conforms(r, "/mail/{id}", "GET")
    return r


def test_rate_limit():
    with World(extra_config="[api]\nrate = 3\n") as w:
        w.init()
        w.smtp()
        key = w.ok("apikey", "create", "k", "--scope", "lists:read").stdout_text.strip()
        srv = w.serve()
        codes = []
        for _ in range(6):
            r = curl(srv.url + "/api/v1/lists", headers=["Authorization: Bearer " + key])
            codes.append(r.status)
            if r.status == 429:
                check(r.h("Retry-After") == "1", "Retry-After %r", r.h("Retry-After"))
                error_of(r, 429, "rate_limited")
        check(codes[:3] == [200, 200, 200] and 429 in codes[3:], "codes %s", codes)
        time.sleep(1.1)
        r = curl(srv.url + "/api/v1/lists", headers=["Authorization: Bearer " + key])
        check(r.status == 200, "after a second: %d", r.status)


def teardown():
    if getattr(E, "w", None):
        E.w.close()


def main():
    try:
        try:
            setup()
        except Exception as e:
            print("FAIL setup: %s: %s" % (type(e).__name__, e))
            sys.exit(1)
        run_tests([
            ("spec_is_openapi_3_1", test_spec_is_openapi_3_1),
            ("keys_and_scopes", test_keys_and_scopes),
            ("lists", test_lists),
            ("upsert_idempotent_and_consent", test_upsert_idempotent_and_consent),
            ("hostile_bodies_store_nothing", test_hostile_bodies_store_nothing),
            ("bulk_10000", test_bulk_10000),
            ("get_and_page", test_get_and_page),
            ("unsubscribe_and_erase", test_unsubscribe_and_erase),
            ("issue_and_stats", test_issue_and_stats),
            ("rate_limit", test_rate_limit),
            ("one_off_mail", test_one_off_mail),
        ])
    finally:
        teardown()


if __name__ == "__main__":
    main()
