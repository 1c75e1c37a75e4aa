#!/bin/bash
# send_ab.sh - two or more herald builds sending the same issue on the same
# sink, alternating, so that a before/after comparison sees the same load
# (issue 19: the machine is shared).  For each NAME=PATH: its own database
# with the same 100,000 generated subscribers (bench/gen_subscribers.py,
# imported by that build); then ROUNDS rounds in which each build in turn
# sends examples/newsletter-16.md (8 connections, DKIM off) to one
# smtp-sink on 127.0.0.1 under `perf stat`: wall time, µs of CPU and
# context switches per message, and the load average before it.
# smtp-sink comes with Postfix: bench/send.sh installs it.  Not in ctest.
#
#   bench/send_ab.sh 2 before=/tmp/herald-main after=build-bench/herald
#   SUBSCRIBERS=20000 bench/send_ab.sh 1 a=... b=...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bench/send_ab.sh ROUNDS NAME=PATH..." >&2; exit 64; }
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=$1; shift
subs=${SUBSCRIBERS:-100000}
for tool in /usr/sbin/smtp-sink perf sqlite3 bc; do
	command -v "$tool" >/dev/null || { echo "send_ab.sh: $tool is missing" >&2; exit 69; }
done
wd=$(mktemp -d "${TMPDIR:-/tmp}/herald-ab.XXXXXX")
port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/sbin/smtp-sink -c -u nobody "127.0.0.1:$port" 1024 > "$wd/sink.counters" 2> "$wd/sink.err" &
sink=$!
trap 'kill $sink; rm -rf "$wd"' EXIT
python3 "$root/bench/gen_subscribers.py" "$subs" --out "$wd/subs.csv"
names=()
for arg in "$@"; do
	name=${arg%%=*}
	bin=$(realpath "${arg#*=}")
	names+=("$name")
	mkdir "$wd/$name"
	ln -s "$bin" "$wd/$name/herald"
	cat > "$wd/$name/herald.conf" <<CONF
[database]
path = herald.db
busy_timeout = 60000
[smtp]
url = smtp://127.0.0.1:$port
starttls = never
timeout = 120
connections = 8
[sender]
from = What Works Centre <news@example.org>
postal_address = 1 Example Street, London EC1A 1AA
[web]
base_url = https://news.example.org
CONF
	(cd "$wd/$name" && ./herald --config herald.conf --quiet init &&
	 ./herald --config herald.conf --quiet list create bench &&
	 ./herald --config herald.conf --quiet sub import --list bench ../subs.csv >/dev/null)
done
for r in $(seq 1 "$rounds"); do
	for name in "${names[@]}"; do
		cd "$wd/$name"
		id=$(./herald --config herald.conf issue new "$root/examples/newsletter-16.md" \
		     --list bench 2>/dev/null)
		load=$(cut -d' ' -f1 /proc/loadavg)
		t0=$(date +%s.%N)
		perf stat -x, -e context-switches,task-clock -o stat.txt \
			./herald --config herald.conf --quiet send "$id" > send.log 2>&1
		wall=$(echo "$(date +%s.%N) - $t0" | bc)
		cs=$(grep context-switches stat.txt | cut -d, -f1)
		tc=$(grep task-clock stat.txt | cut -d, -f1)
		sent=$(sqlite3 herald.db "SELECT count(*) FROM deliveries WHERE issue_id = $id AND status = 'sent'")
		printf '%s round %d: %d sent, %.1f s wall, %.0f msg/s, %.0f µs CPU/msg, %.2f context switches/msg (load %s)\n' \
			"$name" "$r" "$sent" "$wall" "$(echo "$sent / $wall" | bc -l)" \
			"$(echo "$tc * 1000 / $sent" | bc -l)" "$(echo "$cs / $sent" | bc -l)" "$load"
	done
done
