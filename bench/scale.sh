#!/bin/bash
# scale.sh - the scale benchmark (issue 19): every command around a send at
# 100,000, 1,000,000 (and, when asked, 10,000,000) subscribers, each with its
# wall time, CPU time, peak RSS and the database size after it.
#
# What it does, for each size N (default: 100000 then 1000000):
#   1. in a fresh temporary directory: a database and the list `news`; N
#      subscribers written by bench/gen_subscribers.py (email, name,
#      organisation, role) plus a third attribute, region, so each has three;
#   2. `herald sub import` of the file (rows/s = N / wall);
#   3. `herald segment count --where 'attr.region = "Wales"' --list news`;
#   4. `herald sub ls --list news --json`, `herald sub ls --list news` and
#      `herald sub export --list news`, each to /dev/null: the streaming
#      commands, whose peak RSS must stay under 64 MB whatever N is (the
#      script says so and exits 1 when one does not: that is its assertion);
#   5. `herald send` of examples/newsletter-16.md to the list: the snapshot
#      of the audience into the ledger, then every message to smtp-sink
#      (Postfix's, on 127.0.0.1, the same two cores; 8 connections, DKIM
#      off), and the database's growth per delivery row measured around it
#      (used pages after a WAL checkpoint, before and after);
#   6. opens from 30 % of the recipients and clicks from 5 % written straight
#      into the database (no web server in the loop; a fixed function of the
#      subscriber id, so two runs write the same rows), their growth per
#      event, then `herald stats ID --json`.
# Every step runs under GNU time -v; GNU time and smtp-sink (Postfix, not
# started as a mail system) are installed from Debian when missing, by
# bench/install_postfix.sh.
# The machine is shared with whatever else runs on it: the load average is
# printed with the figures.  Progress goes to stderr, the table to stdout,
# and the last line is the same as JSON.  Not part of ctest.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/scale.sh [--sizes "N1 N2 ..."] [--ten-million] [--keep]
  --sizes LIST     subscriber counts to run (default "100000 1000000")
  --ten-million    also 10000000 (about an hour more on 2 cores: a 12-minute
                   import, a 35-minute send)
  --keep           keep the temporary directories
environment:
  HERALD_BENCH_BUILD=DIR   use DIR/herald as built; do not configure or build
  TMPDIR                   where the temporary directories are made (default /tmp)
EOF
}

sizes="100000 1000000"
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--sizes) sizes=${2:?}; shift 2 ;;
	--ten-million) sizes="$sizes 10000000"; shift ;;
	--keep) keep=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 64 ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '%s\n' "$*" >&2; }
rss_cap_kb=$((64 * 1024))

"$root/bench/install_postfix.sh" >&2
if [ -n "${HERALD_BENCH_BUILD:-}" ]; then
	herald=$(cd "$HERALD_BENCH_BUILD" && pwd)/herald
else
	say "building herald (Release) in build-bench/"
	cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release >&2
	cmake --build "$root/build-bench" -j"$(nproc)" --target herald >&2
	herald=$root/build-bench/herald
fi
[ -x "$herald" ] || { say "no herald at $herald"; exit 1; }

tmps=()
ok=0
sink_pid=""
cleanup() {
	local t
	[ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
	for t in "${tmps[@]}"; do
		if [ "$ok" = 1 ] && [ "$keep" = 0 ]; then rm -rf "$t"; else say "kept $t"; fi
	done
}
trap cleanup EXIT

# smtp-sink on a free loopback port, for every size's send: accepts and
# discards (-u nobody: it drops root after the bind).
sink_port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/sbin/smtp-sink -u nobody "127.0.0.1:$sink_port" 1024 >/dev/null 2>&1 &
sink_pid=$!
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null && break
	sleep 0.05
done

# Bytes of the database's used pages (WAL checkpointed into it first).
db_used() {
	python3 -c 'import sqlite3
c = sqlite3.connect("herald.db")
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
pc, fl, ps = (c.execute("PRAGMA " + p).fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
print((pc - fl) * ps)'
}

# A third attribute for every row: gen_subscribers.py writes CRLF rows whose
# quoted fields never hold a line break, so appending a column is safe.
add_region() {
	awk 'BEGIN { RS = "\r\n"; ORS = "\r\n"; n = split("London,North West,Scotland,Wales,South East,Yorkshire,Midlands", r, ",") }
	     NR == 1 { print $0 ",region"; next }
	     { print $0 "," r[NR % n + 1] }'
}

db_kb() { echo $(( ($(stat -c %s herald.db) + $( [ -f herald.db-wal ] && stat -c %s herald.db-wal || echo 0)) / 1024 )); }

json="{\"load_before\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"runs\": ["
first_run=1
over=()
printf '%-10s %-26s %9s %8s %8s %10s %9s %10s\n' "N" "step" "wall s" "user s" "sys s" "peak MB" "DB MB" "rows/s"

# step NAME N OUTFILE -- herald args...: one timed run; prints its row.
step() {
	local name=$1 n=$2 out=$3 wall user sys rss dbk rate t0 t1
	shift 4
	t0=$(date +%s.%N)
	if ! /usr/bin/time -v -o time.log "$herald" --config herald.conf --quiet "$@" > "$out" 2> step.err; then
		say "$name failed:"; cat step.err >&2; exit 1
	fi
	t1=$(date +%s.%N)
	wall=$(echo "$t1 - $t0" | bc)
	user=$(sed -n 's/.*User time (seconds): //p' time.log)
	sys=$(sed -n 's/.*System time (seconds): //p' time.log)
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' time.log)
	dbk=$(db_kb)
	case "$name" in
	import|"sub ls --json"|"sub ls"|"sub export"|send) rate=$(echo "$n / $wall" | bc) ;;
	*) rate=- ;;
	esac
	printf '%-10s %-26s %9.2f %8.2f %8.2f %10.1f %9.1f %10s\n' "$n" "$name" "$wall" "$user" \
		"$sys" "$(echo "$rss / 1024" | bc -l)" "$(echo "$dbk / 1024" | bc -l)" "$rate"
	case "$name" in
	import|"sub ls --json"|"sub ls"|"sub export")
		if [ "$rss" -ge "$rss_cap_kb" ]; then over+=("$name at $n: $((rss / 1024)) MB"); fi ;;
	esac
	[ "$first_run" = 1 ] || json+=", "
	first_run=0
	json+=$(printf '{"n": %s, "step": "%s", "wall_s": %.3f, "user_s": %s, "sys_s": %s, "peak_rss_kb": %s, "db_kb": %s}' \
		"$n" "$name" "$wall" "$user" "$sys" "$rss" "$dbk")
}

for n in $sizes; do
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-scale.XXXXXX")
	tmps+=("$tmp")
	cd "$tmp"
	cat > herald.conf <<'EOF'
[database]
path = herald.db
busy_timeout = 60000
[smtp]
url = smtp://127.0.0.1:SINK_PORT
starttls = never
timeout = 120
connections = 8
[sender]
from = Bench <bench@example.org>
postal_address = 1 Example Street
[web]
base_url = https://news.example.org
EOF
	sed -i "s/SINK_PORT/$sink_port/" herald.conf
	"$herald" --config herald.conf --quiet init
	"$herald" --config herald.conf --quiet list create news
	say "$n: writing the CSV"
	python3 "$root/bench/gen_subscribers.py" "$n" --seed 19 | add_region > subs.csv
	say "$n: import"
	step import "$n" /dev/null -- sub import --list news subs.csv
	step "segment count" "$n" count.out -- segment count --where 'attr.region = "Wales"' --list news
	step "sub ls --json" "$n" /dev/null -- sub ls --list news --json
	step "sub ls" "$n" /dev/null -- sub ls --list news
	step "sub export" "$n" /dev/null -- sub export --list news
	say "$n: send to smtp-sink"
	issue=$("$herald" --config herald.conf --quiet issue new "$root/examples/newsletter-16.md" \
	        --list news 2>/dev/null)
	before=$(db_used)
	step send "$n" send.out -- send "$issue"
	after=$(db_used)
	sent=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect("herald.db").execute("SELECT count(*) FROM deliveries WHERE issue_id = ? AND status = ?", (int(sys.argv[1]), "sent")).fetchone()[0])' "$issue")
	[ "$sent" = "$n" ] || { say "send: $sent of $n sent"; exit 1; }
	per_delivery=$(( (after - before) / n ))
	printf '%-10s %-26s %s bytes a delivery row (%s MB for %s rows, indexes included)\n' "$n" \
		"growth: send" "$per_delivery" "$(( (after - before) / 1048576 ))" "$n"
	json+=", {\"n\": $n, \"step\": \"growth per delivery\", \"bytes\": $per_delivery}"
	say "$n: opens and clicks written into the database"
	before=$(db_used)
	events=$(python3 - "$issue" <<'EOF'
import sqlite3, sys
# In SQL, so ten million rows cost no Python memory; who opens and clicks is
# a fixed function of the subscriber id, so two runs write the same rows.
issue = int(sys.argv[1])
con = sqlite3.connect("herald.db")
sent = con.execute("SELECT min(sent_at) FROM deliveries WHERE issue_id = ?", (issue,)).fetchone()[0]
con.execute("INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
            "SELECT 'open', ?2, subscriber_id, ?1 + 60 + (subscriber_id * 7919) % (15 * 86400), "
            "CASE WHEN (subscriber_id * 2654435761) % 100 < 10 THEN '{\"ua\":\"machine\"}' "
            "ELSE '{\"ua\":\"human\"}' END FROM deliveries "
            "WHERE issue_id = ?2 AND (subscriber_id * 2654435761) % 100 < 30", (sent, issue))
con.execute("INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
            "SELECT 'click', ?2, subscriber_id, ?1 + 120 + (subscriber_id * 104729) % (15 * 86400), "
            "'{\"n\":1}' FROM deliveries "
            "WHERE issue_id = ?2 AND (subscriber_id * 40503) % 100 < 5", (sent, issue))
con.commit()
print(con.execute("SELECT count(*) FROM events WHERE issue_id = ?", (issue,)).fetchone()[0])
EOF
)
	after=$(db_used)
	per_event=$(( (after - before) / events ))
	printf '%-10s %-26s %s bytes an event (%s opens and clicks)\n' "$n" "growth: events" \
		"$per_event" "$events"
	json+=", {\"n\": $n, \"step\": \"growth per event\", \"bytes\": $per_event}"
	step "stats --json" "$n" stats.out -- stats "$issue" --json
	cd "$root"
done
json+="], \"load_after\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"rss_cap_kb\": $rss_cap_kb, \"over_cap\": ${#over[@]}}"
say "load average $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: wall times include others' work)"
if [ ${#over[@]} -gt 0 ]; then
	printf 'peak RSS over 64 MB: %s\n' "$(printf '%s; ' "${over[@]}" | sed 's/; $//')"
else
	printf 'peak RSS under 64 MB for import, sub ls (--json) and sub export at every size\n'
fi
printf '%s\n' "$json"
ok=1
[ ${#over[@]} -eq 0 ]
