#!/bin/bash
# segment.sh - the segment benchmark (issue 14): how long `herald segment
# count` takes over a large list, and its peak memory.
#
# What it does, in order:
#   1. uses $HERALD_BENCH_BUILD/herald as built, or builds herald (Release)
#      in build-bench/; installs GNU time from Debian when it is missing;
#   2. in a fresh temporary directory: a database and a list, N subscribers
#      (default 1,000,000) written by bench/gen_subscribers.py and widened to
#      ten attributes each by bench/segment_attrs.py (organisation, role,
#      region, team, sector, county, interest, grade, years, joined; about
#      one cell in twenty blank), imported with `herald sub import`;
#   3. engagement rows written straight into the database (herald has no
#      command that makes them without sending): one issue delivered to
#      everyone 20 days ago, opens from 30% of them (a third of those flagged
#      machine), clicks from 5%, a soft bounce for 1%;
#   4. each expression below, RUNS times (default 3): `herald segment count
#      --where EXPR [--list news]` under GNU time -v; the median wall time
#      (and CPU time) and the largest peak RSS are reported, with the count;
#   5. a send's snapshot (target: under 5 s at 1M): an issue with `lists:
#      [news]` and `where:` the headline expression, and one with the whole
#      list (every subscriber a pending delivery), each by bench_snapshot
#      (bench/snapshot.c, built with -DHERALD_BENCH=ON) runs the transaction
#      a send starts with - the merge-field check against the audience and a
#      pending delivery for each person - and prints recipients, wall time
#      and peak RSS.  Nothing is sent.
# The first expression is the headline figure (target: under 1 s at 1M):
# three attribute terms, so every subscriber's JSON is parsed.  Progress goes
# to stderr, the table to stdout, and the last line is the same as JSON.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/segment.sh [--subscribers N] [--quick] [--runs N] [--keep]
  --subscribers N  subscribers to import (default 1000000)
  --quick          100000 subscribers
  --runs N         runs of each count; the median is reported (default 3)
  --keep           keep the temporary directory
environment:
  HERALD_BENCH_BUILD=DIR   use DIR/herald as built; do not configure or build
  TMPDIR                   where the temporary directory is made (default /tmp)
EOF
}

subs=1000000
runs=3
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--subscribers) subs=${2:?}; shift 2 ;;
	--quick) subs=100000; shift ;;
	--runs) runs=${2:?}; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 64 ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '%s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
	say "installing GNU time"
	apt-get install -y -q time >&2
fi
if [ -n "${HERALD_BENCH_BUILD:-}" ]; then
	herald=$(cd "$HERALD_BENCH_BUILD" && pwd)/herald
else
	say "building herald (Release) in build-bench/"
	cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DHERALD_BENCH=ON >&2
	cmake --build "$root/build-bench" -j"$(nproc)" --target herald bench_snapshot >&2
	herald=$root/build-bench/herald
fi
snapshot=$(dirname "$herald")/bench_snapshot
[ -x "$herald" ] || { say "no herald at $herald"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-segbench.XXXXXX")
ok=0
cleanup() {
	if [ "$ok" = 1 ] && [ "$keep" = 0 ]; then
		rm -rf "$tmp"
	else
		say "kept $tmp"
	fi
}
trap cleanup EXIT
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
h() { "$herald" --config herald.conf --quiet "$@"; }
now_s() { date +%s.%N; }

h init
h list create news
say "writing $subs subscribers with ten attributes"
t0=$(now_s)
python3 "$root/bench/gen_subscribers.py" "$subs" --seed 16 |
	python3 "$root/bench/segment_attrs.py" --seed 16 > subs.csv
t1=$(now_s)
say "importing (generated in $(printf '%.1f' "$(echo "$t1 - $t0" | bc)") s)"
h sub import --list news subs.csv
t2=$(now_s)
import_s=$(printf '%.1f' "$(echo "$t2 - $t1" | bc)")
say "imported in $import_s s; adding engagement rows"
python3 - <<'EOF'
import random, sqlite3, time
now = int(time.time())
rng = random.Random(16)
con = sqlite3.connect("herald.db")
ids = [r[0] for r in con.execute("SELECT id FROM subscribers ORDER BY id")]
sent = now - 20 * 86400
con.execute("INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, "
            "status, created_at, started_at, finished_at) VALUES (1, 1, 'Bench', "
            "'bench@example.org', '', '', '', 'sent', ?, ?, ?)", (sent, sent, sent))
con.executemany("INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, "
                "updated_at, sent_at) VALUES (1, ?, 'sent', ?, ?, ?)",
                ((i, sent, sent, sent) for i in ids))
ev = []
for i in ids:
    r = rng.random()
    if r < 0.30:
        ua = "machine" if r < 0.10 else "human"
        ev.append(("open", i, sent + rng.randrange(60, 15 * 86400), '{"ua":"%s"}' % ua))
    if rng.random() < 0.05:
        ev.append(("click", i, sent + rng.randrange(60, 15 * 86400), '{"n":1}'))
con.executemany("INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
                "VALUES (?, 1, ?, ?, ?)", ev)
con.executemany("INSERT INTO bounces (subscriber_id, recipient, source, class, reason, at) "
                "VALUES (?, 'x', 'dsn', 'soft', 'mailboxfull', ?)",
                ((i, now - rng.randrange(1, 60) * 86400) for i in ids if rng.random() < 0.01))
con.commit()
con.close()
EOF
db_mb=$(( $(stat -c %s herald.db) / 1048576 ))

exprs=(
	'attr.role = "Social worker" and attr.region = "London" and attr.years >= 5'
	'attr.role = "Social worker" and attr.region = "London" and attr.years >= 5'
	'attr.role = "Social worker" and engaged 180d and email ends_with ".gov.uk"'
	'attr.role = "Social worker" and engaged 180d and email ends_with ".gov.uk"'
	'attr.years >= 5'
	'engaged 90d and not bounced_soft_within 30d and received 30d'
)
lists=("" "news" "" "news" "" "")

printf '%-76s %-6s %8s %7s %7s %12s\n' "segment count --where" "--list" "matches" "wall s" "CPU s" "peak RSS MB"
json="{\"subscribers\": $subs, \"import_s\": $import_s, \"db_mb\": $db_mb, \"runs\": ["
for k in "${!exprs[@]}"; do
	e=${exprs[$k]}
	l=${lists[$k]}
	args=(segment count --where "$e")
	[ -n "$l" ] && args+=(--list "$l")
	walls=()
	cpus=()
	rss=0
	for r in $(seq "$runs"); do
		t0=$(now_s)
		/usr/bin/time -v -o time.log "$herald" --config herald.conf "${args[@]}" > count.out
		t1=$(now_s)
		walls+=("$(echo "$t1 - $t0" | bc)")
		m=$(sed -n 's/.*Maximum resident set size (kbytes): //p' time.log)
		cpus+=("$(echo "$(sed -n 's/.*User time (seconds): //p' time.log) + $(sed -n 's/.*System time (seconds): //p' time.log)" | bc)")
		[ "$m" -gt "$rss" ] && rss=$m
	done
	med=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
	cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
	n=$(cat count.out)
	printf '%-76s %-6s %8s %7.2f %7.2f %12.1f\n' "$e" "${l:--}" "$n" "$med" "$cpu" "$(echo "$rss / 1024" | bc -l)"
	[ "$k" -gt 0 ] && json+=", "
	json+=$(printf '{"expr": "%s", "list": "%s", "matches": %s, "wall_s": %.3f, "cpu_s": %.2f, "peak_rss_kb": %s}' \
		"$(printf '%s' "$e" | sed 's/\\/\\\\/g; s/"/\\"/g')" "$l" "$n" "$med" "$cpu" "$rss")
	if [ "$k" = 0 ]; then
		headline=$med
		headline_cpu=$cpu
	fi
done
json+="]"
if [ -x "$snapshot" ]; then
	# The headline audience, then the whole list (a million pending rows).
	for w in "${exprs[0]}" ""; do
		say "a send's snapshot: lists: [news]${w:+, where: $w}"
		{
			printf -- '---\nsubject: Snapshot bench\nlists: [news]\n'
			[ -n "$w" ] && printf 'where: %s\n' "$w"
			printf -- '---\nHello {{first_name | there}}.\n'
		} > issue.md
		iid=$(h issue new issue.md)
		snap=$("$snapshot" herald.db "$iid")
		snap_s=$(printf '%s' "$snap" | sed -n 's/.*"wall_s": \([0-9.]*\).*/\1/p')
		printf 'snapshot, lists: [news]%s: %s (target < 5 s: %s)\n' "${w:+, where: the headline expression}" \
			"$snap" "$(echo "$snap_s < 5" | bc | sed 's/1/met/; s/0/NOT met/')"
		if [ -n "$w" ]; then key=snapshot_where; else key=snapshot_list; fi
		json+=", \"$key\": $snap"
	done
else
	say "no $snapshot (configure with -DHERALD_BENCH=ON): snapshot not measured"
fi
json+="}"
printf 'database %d MB, import %s s, load average %s; headline (three attribute terms, all subscribers): %.2f s wall, %.2f s CPU (target < 1 s: %s)\n' \
	"$db_mb" "$import_s" "$(cut -d' ' -f1-3 /proc/loadavg)" "$headline" "$headline_cpu" \
	"$(echo "$headline < 1" | bc | sed 's/1/met/; s/0/NOT met/')"
printf '%s\n' "$json"
ok=1
