#!/usr/bin/python3
"""test_mta_dsns_live.py - the stored real-MTA fixtures are not stale: two
cases (an unknown remote user, a full mailbox) made again now by a private
Postfix (tests/tools/postfix.py with an smtp client, in a mount namespace
without DNS, via tests/tools/make_mta_dsns.py) must come out as their rows
in tests/data/bounces/mta/expected.tsv say, and herald must classify the new
files the same way.  Skipped (77) where that Postfix cannot run (not
installed, not root, no private mount namespace: some containers).
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Skip, check, run_tests  # noqa: E402
from mtadsns import compare, expected_rows, explain  # noqa: E402

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "tools"))

LIVE_CASES = ("userunknown-remote", "mailboxfull")


def test_live_postfix_regenerates():
    import make_mta_dsns
    why = make_mta_dsns.MTAS["postfix"].available()
    if why:
        raise Skip(why)
    stored = [r for r in expected_rows()
              if r["file"] in ("postfix-%s.eml" % c for c in LIVE_CASES)]
    check(len(stored) == len(LIVE_CASES), "stored rows %s", stored)
    cases = [make_mta_dsns.CASE_BY_NAME[c] for c in LIVE_CASES]
    with tempfile.TemporaryDirectory(prefix="herald-test-") as out:
        rows, problems = make_mta_dsns.generate("postfix", out, cases, log=lambda *a: None)
        check(not problems, "regenerating: %s", "\n".join(problems))
        made = {r[0]: r for r in rows}
        for r in stored:
            new = made.get(r["file"])
            check(new is not None, "%s was not made again", r["file"])
            check(new[1:] == (r["recipient"], r["action"], r["status"], r["class"],
                              r["reason"]), "%s now %s, stored %s", r["file"], new, r)
        got = explain([os.path.join(out, r["file"]) for r in stored])
        bad = compare(stored, got)
        check(not bad, "live Postfix DSNs classified otherwise:\n  %s", "\n  ".join(bad))


run_tests([
    ("live_postfix_regenerates", test_live_postfix_regenerates),
])
