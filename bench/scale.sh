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
#   5. one sent issue written straight into the database, as bench/segment.sh
#      does (a delivery row per subscriber, opens from 30 %, clicks from 5 %;
#      herald has no command that makes them without sending; the send itself
#      is bench/send.sh's), then `herald stats 1 --json`.
# Every step runs under GNU time -v (installed from Debian when missing).
# The machine is shared with whatever else runs on it: the load average is
# printed with the figures.  Progress goes to stderr, the table to stdout,
# and the last line is the same as JSON.  Not part of ctest.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/scale.sh [--sizes "N1 N2 ..."] [--ten-million] [--keep]
  --sizes LIST     subscriber counts to run (default "100000 1000000")
  --ten-million    also 10000000 (about half an hour more on 2 cores)
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

if [ ! -x /usr/bin/time ]; then
	say "installing GNU time"
	apt-get install -y -q time >&2
fi
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
cleanup() {
	local t
	for t in "${tmps[@]}"; do
		if [ "$ok" = 1 ] && [ "$keep" = 0 ]; then rm -rf "$t"; else say "kept $t"; fi
	done
}
trap cleanup EXIT

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
	import|"sub ls --json"|"sub ls"|"sub export") rate=$(echo "$n / $wall" | bc) ;;
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
[smtp]
url = smtp://127.0.0.1:1
[sender]
from = Bench <bench@example.org>
postal_address = 1 Example Street
[web]
base_url = https://news.example.org
EOF
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
	say "$n: one sent issue written into the database"
	python3 - <<'EOF'
import sqlite3, time
# In SQL, so ten million rows cost no Python memory; who opens and clicks is
# a fixed function of the subscriber id, so two runs write the same rows.
now = int(time.time())
sent = now - 20 * 86400
con = sqlite3.connect("herald.db")
con.execute("INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, "
            "status, created_at, started_at, finished_at) VALUES (1, 1, 'Bench', "
            "'bench@example.org', '', '', '', 'sent', ?1, ?1, ?1)", (sent,))
con.execute("INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at, "
            "sent_at) SELECT 1, id, 'sent', ?1, ?1, ?1 FROM subscribers ORDER BY id", (sent,))
con.execute("INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
            "SELECT 'open', 1, id, ?1 + 60 + (id * 7919) % (15 * 86400), "
            "CASE WHEN (id * 2654435761) % 100 < 10 THEN '{\"ua\":\"machine\"}' "
            "ELSE '{\"ua\":\"human\"}' END "
            "FROM subscribers WHERE (id * 2654435761) % 100 < 30 ORDER BY id", (sent,))
con.execute("INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
            "SELECT 'click', 1, id, ?1 + 120 + (id * 104729) % (15 * 86400), '{\"n\":1}' "
            "FROM subscribers WHERE (id * 40503) % 100 < 5 ORDER BY id", (sent,))
con.commit()
con.close()
EOF
	step "stats --json" "$n" stats.out -- stats 1 --json
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
