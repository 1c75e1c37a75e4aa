"""dkimkeys.py - DKIM keys for the integration tests: `herald dkim keygen`
run in a World, and the DNS record it printed served to Debian's
python3-dkim through a stub lookup (no DNS).  Used by test_dkim.py and
test_api.py.
"""
import os
import re
import stat

from harness import check


def keygen(w, selector, kind):
    """Run herald dkim keygen; return (key path, {dns name: txt bytes})."""
    path = os.path.join(w.root, "%s.pem" % selector)
    p = w.ok("dkim", "keygen", "--domain", "example.org", "--selector", selector,
             "--type", kind, "--out", path)
    out = p.stdout_text
    m = re.search(r'^(\S+)\. IN TXT \((.*?)\)', out, re.S | re.M)
    check(m, "no TXT record in keygen output: %s", out)
    name = m.group(1)
    check(name == "%s._domainkey.example.org" % selector, "record name %s", name)
    txt = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    check(txt.startswith("v=DKIM1; k=%s; p=" % kind), "record %r", txt)
    check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, "key mode %o",
          stat.S_IMODE(os.stat(path).st_mode))
    return path, {name + ".": txt.encode()}


def dns_stub(records):
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name if name.endswith(".") else name + ".")
    return lookup
