#!/bin/bash
# stats.sh - `herald stats ID --json` on one issue sent to N subscribers
# (issue 19): the time the figures take as the list grows.
#
# The database is written straight in SQL, in seconds rather than the
# import's minutes: issue 1 with a delivery per subscriber id 1..N (sent),
# open events from 30 % of them (a third of those machine opens by their
# user agent) spread over 15 days, clicks from 5 %: the same rows as
# bench/scale.sh's step 5, without the subscribers themselves, which stats
# never reads.  Then `herald stats 1 --json` three times under GNU time,
# with the load average before each run (the machine may be shared).
# Not part of ctest.
#
#   bench/stats.sh                 # 1,000,000 and 10,000,000 (about 1 GB)
#   bench/stats.sh 100000          # one size
#   HERALD_BENCH_BUILD=DIR bench/stats.sh   # DIR/herald as built
#   TMPDIR=DIR bench/stats.sh      # where the databases go (deleted after)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sizes=${*:-1000000 10000000}
if [ ! -x /usr/bin/time ]; then apt-get install -y -q time >&2; fi
if [ -n "${HERALD_BENCH_BUILD:-}" ]; then
	herald=$(cd "$HERALD_BENCH_BUILD" && pwd)/herald
else
	cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release >&2
	cmake --build "$root/build-bench" -j2 --target herald >&2
	herald=$root/build-bench/herald
fi

for n in $sizes; do
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-stats.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	cd "$tmp"
	printf '[database]\npath = herald.db\n[smtp]\nurl = smtp://127.0.0.1:1\n[sender]\nfrom = B <b@example.org>\npostal_address = 1 Example Street\n[web]\nbase_url = https://news.example.org\n' > herald.conf
	"$herald" --config herald.conf --quiet init
	sent=$(( $(date +%s) - 20 * 86400 ))
	t0=$(date +%s.%N)
	python3 - "$n" "$sent" <<'PY'
import sqlite3, sys
n, sent = int(sys.argv[1]), int(sys.argv[2])
con = sqlite3.connect("herald.db")
con.execute("PRAGMA foreign_keys = OFF")   # no subscriber rows: stats never reads them
con.execute("PRAGMA cache_size = -200000")
con.execute("INSERT INTO lists (id, name, created_at) VALUES (1, 'news', ?1)", (sent,))
con.execute("INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, "
            "status, created_at, started_at, finished_at) VALUES (1, 1, 'Bench', "
            "'bench@example.org', '', '', '', 'sent', ?1, ?1, ?1)", (sent,))
ids = "WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < ?2) "
con.execute(ids + "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, "
            "updated_at, sent_at) SELECT 1, id, 'sent', ?1, ?1, ?1 FROM s", (sent, n))
con.execute(ids + "INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
            "SELECT 'open', 1, id, ?1 + 60 + (id * 7919) % (15 * 86400), "
            "CASE WHEN (id * 2654435761) % 100 < 10 THEN '{\"ua\":\"machine\"}' "
            "ELSE '{\"ua\":\"human\"}' END FROM s WHERE (id * 2654435761) % 100 < 30", (sent, n))
con.execute(ids + "INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
            "SELECT 'click', 1, id, ?1 + 120 + (id * 104729) % (15 * 86400), '{\"n\":1}' "
            "FROM s WHERE (id * 40503) % 100 < 5", (sent, n))
con.commit()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
PY
	printf '%s: database written in %.1f s, %d MB\n' "$n" "$(echo "$(date +%s.%N) - $t0" | bc)" \
		$(( $(stat -c %s herald.db) / 1048576 ))
	for i in 1 2 3; do
		load=$(cut -d' ' -f1 /proc/loadavg)
		/usr/bin/time -f "%e %U %S %M" -o time.log "$herald" --config herald.conf --quiet \
			stats 1 --json > stats.json
		read -r wall user sys rss < time.log
		printf '%s: stats --json %s s wall, %s + %s s CPU, %d MB peak RSS (load %s)\n' \
			"$n" "$wall" "$user" "$sys" $((rss / 1024)) "$load"
	done
	cd "$root"
	rm -rf "$tmp"
	trap - EXIT
done
