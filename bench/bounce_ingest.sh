#!/bin/bash
# bounce_ingest.sh - how fast `herald bounce` records returned mail (issue 6).
#
# In a fresh temporary directory: a database with N subscribers
# (bench/gen_subscribers.py), N RFC 3464 DSNs (one per subscriber, half
# 5.1.1 hard, half 4.2.2 soft, each naming its recipient and quoting a
# Message-ID) in a Maildir, then:
#   1. `herald bounce --maildir` over all of them, timed: messages/s, and a
#      check that every hard one marked its subscriber bounced;
#   2. the same Maildir again (now in cur/: nothing to do) and the same files
#      piped one by one into `herald bounce` for the first 200 (duplicates):
#      the per-message cost of the MTA-pipe path, process start included.
# The reference is the parser alone (`herald bounce --explain` over the same
# files, no database): the ratio says what recording costs.
# Prints a table and the figures as one JSON line.  Loopback only, nothing
# written outside the temporary directory and build-bench/.
set -euo pipefail

n=2000
[ "${1:-}" = "--count" ] && n=${2:?--count N}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [ -n "${HERALD_BIN:-}" ]; then
	herald=$HERALD_BIN
else
	build=${HERALD_BENCH_BUILD:-$root/build-bench}
	"$root/scripts/deps.sh" build >&2
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF >/dev/null
	cmake --build "$build" -j "$(nproc)" --target herald >/dev/null
	herald=$build/herald
fi
/usr/bin/python3 -c 'import idna' 2>/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-idna >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-bounce-bench.XXXXXX")
[ -n "${HERALD_BENCH_KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
cat > herald.conf <<'EOF'
[database]
path = herald.db
[smtp]
url = smtp://127.0.0.1:1
starttls = never
[sender]
from = Bench <news@example.org>
postal_address = 1 Example Street
[web]
base_url = https://news.example.org
EOF
H() { "$herald" --config herald.conf --quiet "$@"; }
H init
H list create bench
/usr/bin/python3 "$here/gen_subscribers.py" "$n" --out subs.csv
H sub import --list bench subs.csv || true
mkdir -p mail/new mail/cur mail/tmp
/usr/bin/python3 - "$n" <<'EOF'
import csv, sys
import idna
n = int(sys.argv[1])
rows = list(csv.DictReader(open("subs.csv", encoding="utf-8")))[:n]
for i, r in enumerate(rows):
    # the address as herald sent it (and a DSN names it): the A-label
    # domain, IDNA 2008 with UTS #46 as libidn2 makes it (python3-idna)
    local, _, dom = r["email"].rpartition("@")
    r["email"] = "%s@%s" % (local, idna.encode(dom, uts46=True).decode("ascii"))
    hard = i % 2 == 0
    status, diag = ("5.1.1", "550 5.1.1 <%s>: Recipient address rejected: User unknown") if hard \
        else ("4.2.2", "452 4.2.2 <%s>: mailbox full")
    msg = ("From: MAILER-DAEMON@mx.example.net\r\nTo: news@example.org\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b%d@mx.example.net>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
           " boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nnot delivered\r\n"
           "\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
           "mx.example.net\r\n\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\n"
           "Status: %s\r\nDiagnostic-Code: smtp; %s\r\n\r\n--b\r\nContent-Type: "
           "text/rfc822-headers\r\n\r\nMessage-ID: <1.%d.00000000@example.org>\r\nTo: %s\r\n"
           "\r\n--b--\r\n") % (i, r["email"], status, diag % r["email"], i + 1, r["email"])
    with open("mail/new/%010d.bench" % i, "w", encoding="utf-8") as f:
        f.write(msg)
EOF
count=$(ls mail/new | wc -l)

t0=$(date +%s.%N)
"$herald" bounce --explain mail/new/* > explain.jsonl
t1=$(date +%s.%N)
H bounce --maildir mail
t2=$(date +%s.%N)
for f in $(ls mail/cur | head -200); do H bounce < "mail/cur/$f"; done
t3=$(date +%s.%N)

bounced=$("$herald" --config herald.conf sub ls --list bench --json |
	/usr/bin/python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s.get("status") == "bounced"))' 2>/dev/null || echo "?")
rows=$(/usr/bin/python3 -c "import sqlite3; c=sqlite3.connect('herald.db'); print(c.execute('SELECT count(*) FROM bounces').fetchone()[0], c.execute('SELECT count(*) FROM inbound').fetchone()[0], c.execute(\"SELECT count(*) FROM subscribers WHERE status='bounced'\").fetchone()[0])")
set -- $rows
/usr/bin/python3 - "$count" "$t0" "$t1" "$t2" "$t3" "$1" "$2" "$3" <<'EOF'
import json, sys
n, t0, t1, t2, t3 = int(sys.argv[1]), *map(float, sys.argv[2:6])
b, inbound, marked = map(int, sys.argv[6:9])
parse, ingest, pipe = t1 - t0, t2 - t1, t3 - t2
print("messages                   %8d" % n)
print("parse only (--explain)     %8.0f msg/s  (%.3f s)" % (n / parse, parse))
print("--maildir (parse+record)   %8.0f msg/s  (%.3f s)  ratio to parse only %.2f"
      % (n / ingest, ingest, parse / ingest))
print("pipe, one process each     %8.1f ms/message (200 duplicates)" % (pipe / 200 * 1000))
print("bounces rows %d, inbound rows %d, subscribers marked bounced %d (hard: %d expected)"
      % (b, inbound, marked, (n + 1) // 2))
ok = b == n and inbound == n and marked == (n + 1) // 2
print(json.dumps({"messages": n, "parse_per_s": round(n / parse), "maildir_per_s":
                  round(n / ingest), "pipe_ms": round(pipe / 200 * 1000, 2), "ok": ok}))
sys.exit(0 if ok else 1)
EOF
