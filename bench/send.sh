#!/bin/bash
# send.sh - herald's send benchmark: herald against Postfix's smtp-source on
# the same loopback sink, in one run (issue 3; issue 4's DKIM figures).
#
# What it does, in order:
#   1. installs what is missing from Debian: herald's build dependencies
#      (scripts/deps.sh), postfix for smtp-sink and smtp-source WITHOUT
#      starting the mail system (debconf "No configuration" and a temporary
#      policy-rc.d that denies service starts), GNU time, openssl, python3
#      (bench/install_postfix.sh, shared with bench/scale.sh);
#   2. builds herald (Release) in build-bench/, or uses $HERALD_BENCH_BUILD;
#   3. in a fresh temporary directory: a database, a list, N generated
#      subscribers (bench/gen_subscribers.py) and the sample issue
#      examples/newsletter-16.md; the average message size is measured from
#      herald's own rendering (`issue preview --format eml`) of a sample;
#   4. starts smtp-sink on a free 127.0.0.1 port (stopped by its pid at the
#      end, also on failure or ^C);
#   5. `herald send ID` under GNU time: wall s, msg/s, CPU s per 1,000
#      messages, peak RSS; with --dkim a second issue is sent with a [dkim]
#      section (a fresh RSA-2048 key) and measured the same way;
#   6. `smtp-source -d -s 16` with the same number of messages of the same
#      size to the same sink: the raw SMTP ceiling of this machine;
#   7. `openssl speed -multi NPROC rsa2048`: RSA-2048 signs/s on all cores;
#   8. prints a table and, as the last line, the same figures as JSON.
# Everything talks to 127.0.0.1 only.  Progress goes to stderr, the results
# to stdout.  Exit status 0 when every measurement that was asked for ran
# (a herald that does not know [dkim] yet is reported, not an error).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/send.sh [--subscribers N] [--quick] [--connections N] [--dkim]
                     [--sessions N] [--samples N] [--keep]
  --subscribers N  subscribers to import and mail (default 100000)
  --quick          5000 subscribers and short openssl timing: under a minute
  --connections N  [smtp] connections for herald (default 8)
  --dkim           also measure a send with DKIM signing ([dkim] section)
  --sync-full      also measure a send with [database] synchronous = full
  --sessions N     smtp-source parallel sessions (default 16)
  --samples N      messages previewed to measure the average size (default 40)
  --keep           keep the temporary directory (database, logs, config)
environment:
  HERALD_BENCH_BUILD=DIR   use DIR/herald as built; do not configure or build
  TMPDIR                   where the temporary directory is made (default /tmp)
EOF
}

subs=100000
conns=8
dkim=0
syncfull=0
sync_mode=normal
sessions=16
samples=40
keep=0
quick=0
while [ $# -gt 0 ]; do
	case "$1" in
	--subscribers) subs=${2:?}; shift 2 ;;
	--subscribers=*) subs=${1#*=}; shift ;;
	--quick) quick=1; subs=5000; shift ;;
	--connections) conns=${2:?}; shift 2 ;;
	--connections=*) conns=${1#*=}; shift ;;
	--dkim) dkim=1; shift ;;
	--sync-full) syncfull=1; shift ;;
	--sessions) sessions=${2:?}; shift 2 ;;
	--samples) samples=${2:?}; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "send.sh: unknown option '$1'" >&2; usage >&2; exit 64 ;;
	esac
done
for v in "$subs" "$conns" "$sessions" "$samples"; do
	case "$v" in
	''|*[!0-9]*|0) echo "send.sh: '$v' is not a positive number" >&2; exit 64 ;;
	esac
done

cd "$(dirname "$0")/.."
top=$(pwd)
ncpu=$(nproc 2>/dev/null || echo 2)
t_start=$(date +%s)

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'send.sh: %s\n' "$*" >&2; exit 1; }

# --- 1. packages ----------------------------------------------------------
sink_pid=""
wd=""
ok=0
cleanup() {
	if [ -n "$sink_pid" ]; then
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
		sink_pid=""
	fi
	if [ -n "$wd" ] && [ -d "$wd" ]; then
		if [ "$ok" = 1 ] && [ "$keep" = 0 ]; then
			rm -rf "$wd"
		else
			echo "send.sh: kept $wd" >&2
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$top/bench/install_postfix.sh" || die "cannot install what the benchmark needs"
SINK=/usr/sbin/smtp-sink
SOURCE=/usr/sbin/smtp-source
GTIME=/usr/bin/time
for f in "$SINK" "$SOURCE" "$GTIME"; do
	[ -x "$f" ] || die "$f is missing after install"
done

# --- 2. herald ------------------------------------------------------------
if [ -n "${HERALD_BENCH_BUILD:-}" ]; then
	bdir=$HERALD_BENCH_BUILD
	[ -x "$bdir/herald" ] || die "no herald in HERALD_BENCH_BUILD=$bdir"
	say "using $bdir/herald as built"
else
	scripts/deps.sh build
	bdir=$top/build-bench
	say "building herald (Release) in $bdir"
	cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF >/dev/null
	cmake --build "$bdir" -j "$ncpu" >/dev/null
fi
herald=$bdir/herald

# --- 3. database, list, subscribers, issue --------------------------------
wd=$(mktemp -d "${TMPDIR:-/tmp}/herald-bench.XXXXXX")
res=$wd/results
: >"$res"
put() { printf '%s=%s\n' "$1" "$2" >>"$res"; }
put subscribers "$subs"
put ncpu "$ncpu"
put sessions "$sessions"
put connections_asked "$conns"
put load_start "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
put herald_version "$("$herald" --version 2>/dev/null | head -1 || echo unknown)"

# A free loopback port: bind port 0 and read what the kernel gave.  smtp-sink
# binds it a moment later; if something took it meanwhile, try again.
free_port() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_sink() {
	local port
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		# -u nobody: required as root (drops privileges after bind).
		# -c: running counters (sess=, quit=, mesg=) that tell how many
		# messages each phase really delivered.  No dump: accept and discard.
		"$SINK" -c -u nobody "127.0.0.1:$port" 1024 \
			>"$wd/sink.counters" 2>"$wd/sink.stderr" &
		sink_pid=$!
		for _ in $(seq 1 100); do
			kill -0 "$sink_pid" 2>/dev/null || break
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				sink_port=$port
				return 0
			fi
			sleep 0.05
		done
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
		sink_pid=""
	done
	cat "$wd/sink.stderr" >&2
	die "smtp-sink did not start"
}

# Messages the sink has accepted so far (its last mesg= counter).
sink_mesg() {
	tr '\r' '\n' <"$wd/sink.counters" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' |
		tail -1 | grep . || echo 0
}

say "starting smtp-sink on 127.0.0.1"
start_sink
say "smtp-sink pid $sink_pid on 127.0.0.1:$sink_port"

conf=$wd/herald.conf
write_conf() {	# write_conf WITH_CONNECTIONS WITH_DKIM
	{
		cat <<CONF
# send benchmark: the relay is smtp-sink on loopback, so no STARTTLS
[database]
path = herald.db
busy_timeout = 60000
synchronous = $sync_mode
[smtp]
url = smtp://127.0.0.1:$sink_port
starttls = never
timeout = 120
CONF
		if [ "$1" = 1 ]; then echo "connections = $conns"; fi
		cat <<CONF
[sender]
from = What Works Centre <news@example.org>
reply_to = wwccsc@example.org
postal_address = What Works Centre for Children's Social Care,
  1 Example Street, London EC1A 1AA
[web]
base_url = https://news.example.org
CONF
		if [ "$2" = 1 ]; then
			cat <<CONF
[dkim]
domain = example.org
selector = bench
private_key = dkim.pem
CONF
		fi
	} >"$conf"
}
H() { "$herald" --config "$conf" "$@"; }

# Does this herald know [smtp] connections yet?  Unknown keys are errors, so
# `init` (which loads the config) says so; then measure it without the key.
use_conns=1
write_conf 1 0
if ! (cd "$wd" && H init) >"$wd/init.out" 2>&1; then
	if grep -q "unknown key 'connections'" "$wd/init.out"; then
		say "this herald does not know [smtp] connections: measuring it without"
		use_conns=0
		write_conf 0 0
		(cd "$wd" && H init) >"$wd/init.out" 2>&1 ||
			{ cat "$wd/init.out" >&2; die "herald init failed"; }
	else
		cat "$wd/init.out" >&2
		die "herald init failed"
	fi
fi
H config check >"$wd/check.out" 2>&1 ||
	{ cat "$wd/check.out" >&2; die "herald config check failed"; }
put connections_key "$use_conns"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

cd "$wd"
H list create bench --title "Benchmark list" >/dev/null
say "generating $subs subscribers"
t=$(now)
python3 "$top/bench/gen_subscribers.py" "$subs" --out "$wd/subs.csv"
put gen_s "$(since "$t")"
say "herald sub import ($subs rows)"
t=$(now)
H sub import --list bench "$wd/subs.csv" >"$wd/import.out" 2>&1 ||
	{ cat "$wd/import.out" >&2; die "import failed"; }
put import_s "$(since "$t")"
say "$(tail -1 "$wd/import.out") in $(since "$t") s"
issue=$(H issue new "$top/examples/newsletter-16.md" --list bench)
put issue "$issue"

# Average size of the messages herald builds: render the issue for a sample
# of subscribers spread over the list, the way `send` does (MESSAGE_ISSUE;
# CRLF line ends as on the wire, before dot-stuffing).
avg_size() {	# avg_size ISSUE
	local n total=0 count=0 step addr size
	step=$(( subs / samples )); [ "$step" -ge 1 ] || step=1
	n=0
	while IFS=, read -r addr _; do
		n=$((n + 1))
		[ "$n" -eq 1 ] && continue	# header
		[ $(( (n - 2) % step )) -eq 0 ] || continue
		size=$(H issue preview "$1" --format eml --subscriber "$addr" | wc -c) ||
			continue
		[ "$size" -gt 0 ] || continue
		total=$((total + size)); count=$((count + 1))
		[ "$count" -ge "$samples" ] && break
	done <"$wd/subs.csv"
	[ "$count" -gt 0 ] || die "could not preview issue $1"
	echo $(( (total + count / 2) / count ))
}
say "measuring the average message size ($samples samples)"
msg_size=$(avg_size "$issue")
put msg_size "$msg_size"
say "average message: $msg_size bytes"

# --- 5. herald send -------------------------------------------------------
# run_send TAG ISSUE: herald send under GNU time; figures go to results as
# TAG_*; returns herald's exit status.
run_send() {
	local tag=$1 id=$2 before after rc=0 line
	before=$(sink_mesg)
	say "herald send $id ($tag, $subs messages)"
	"$GTIME" -f '%e %U %S %M' -o "$wd/$tag.time" \
		"$herald" --config "$conf" send "$id" >"$wd/$tag.log" 2>&1 || rc=$?
	# the sink updates its counter as each "." is answered; let it catch up
	sleep 0.3
	after=$(sink_mesg)
	if [ "$rc" -ne 0 ]; then
		tail -5 "$wd/$tag.log" >&2
		return "$rc"
	fi
	read -r wall user sys rss_kb <"$wd/$tag.time"
	sent=$(H stats "$id" --json | python3 -c \
		'import json,sys; print(json.load(sys.stdin)["deliveries"]["sent"])')
	line=$(grep "^issue $id:" "$wd/$tag.log" | tail -1 || true)
	used=$(printf '%s\n' "$line" | sed -n 's/.* over \([0-9]*\) connection.*/\1/p')
	put "${tag}_wall" "$wall"
	put "${tag}_user" "$user"
	put "${tag}_sys" "$sys"
	put "${tag}_rss_kb" "$rss_kb"
	put "${tag}_sent" "$sent"
	put "${tag}_sink" "$((after - before))"
	put "${tag}_conns_used" "${used:-?}"
	put "${tag}_summary" "$line"
	say "$line"
	return 0
}

run_send herald "$issue" || die "herald send failed (see $wd/herald.log)"

if [ "$syncfull" = 1 ]; then
	# the same send with every commit fsynced (the default is normal)
	sync_mode=full
	write_conf "$use_conns" 0
	issue3=$(H issue new "$top/examples/newsletter-16.md" --list bench)
	run_send syncfull "$issue3" || die "herald send with synchronous = full failed"
	sync_mode=normal
	write_conf "$use_conns" 0
fi

dkim_status=off
if [ "$dkim" = 1 ]; then
	say "DKIM: generating an RSA-2048 key"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$wd/dkim.pem" 2>/dev/null
	chmod 600 "$wd/dkim.pem"
	write_conf "$use_conns" 1
	if ! H config check >"$wd/check-dkim.out" 2>&1; then
		# herald before issue 4: "unknown section [dkim]"
		if grep -qi "unknown.*dkim" "$wd/check-dkim.out"; then
			dkim_status=unsupported
			say "DKIM: not supported by this herald yet"
		else
			cat "$wd/check-dkim.out" >&2
			dkim_status=failed
		fi
	else
		issue2=$(H issue new "$top/examples/newsletter-16.md" --list bench)
		put issue_dkim "$issue2"
		put msg_size_dkim "$(avg_size "$issue2")"
		# preview builds the message as send does; is it signed there too?
		a=$(sed -n 2p "$wd/subs.csv" | cut -d, -f1)
		if H issue preview "$issue2" --format eml --subscriber "$a" |
			grep -qi '^DKIM-Signature:'; then
			put dkim_preview_signed yes
		else
			put dkim_preview_signed no
		fi
		if run_send dkim "$issue2"; then
			dkim_status=measured
		else
			dkim_status=failed
		fi
	fi
	write_conf "$use_conns" 0
fi
put dkim "$dkim_status"

# --- 6. smtp-source, the reference ----------------------------------------
# -d: keep each connection for many messages (as herald does); -s: sessions
# in parallel; -m: messages; -l: payload bytes (smtp-source adds ~110 bytes
# of its own From/To/Date/Message-Id headers).
say "smtp-source -d -s $sessions -m $subs -l $msg_size"
before=$(sink_mesg)
"$GTIME" -f '%e %U %S %M' -o "$wd/source.time" \
	"$SOURCE" -d -s "$sessions" -m "$subs" -l "$msg_size" \
	-f from@example.org -t to@example.org "127.0.0.1:$sink_port" \
	>"$wd/source.log" 2>&1 || { cat "$wd/source.log" >&2; die "smtp-source failed"; }
sleep 0.3
after=$(sink_mesg)
read -r wall user sys rss_kb <"$wd/source.time"
put source_wall "$wall"
put source_user "$user"
put source_sys "$sys"
put source_sink "$((after - before))"

kill "$sink_pid" 2>/dev/null || true
wait "$sink_pid" 2>/dev/null || true
sink_pid=""

# --- 7. openssl speed -----------------------------------------------------
secs=10; [ "$quick" = 1 ] && secs=2
say "openssl speed -multi $ncpu -seconds $secs rsa2048"
openssl speed -multi "$ncpu" -seconds "$secs" rsa2048 >"$wd/openssl.out" 2>&1 ||
	{ tail -5 "$wd/openssl.out" >&2; die "openssl speed failed"; }
signs=$(awk '/^rsa 2048 bits/ { print $6 }' "$wd/openssl.out" | tail -1)
[ -n "$signs" ] || die "cannot read signs/s from openssl speed"
put rsa2048_signs "$signs"
put openssl_seconds "$secs"
put openssl_version "$(openssl version | cut -d' ' -f1-2)"

put total_s "$(( $(date +%s) - t_start ))"
put load_end "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"

# --- 8. report ------------------------------------------------------------
python3 "$top/bench/report.py" "$res"
ok=1
