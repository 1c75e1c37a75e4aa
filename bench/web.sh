#!/bin/bash
# web.sh - herald serve's load benchmark: the open pixel and the click
# redirect under wrk on loopback, then a count of what reached the database
# (issue 5).
#
# What it does, in order:
#   1. installs what is missing from Debian: herald's build dependencies
#      (scripts/deps.sh build), wrk, python3 and python3-aiosmtpd (for the
#      test SMTP server tests/tools/smtpd.py);
#   2. builds herald (Release) in build-bench/, or uses $HERALD_BENCH_BUILD;
#   3. in a fresh temporary directory: a database, a list, N generated
#      subscribers (bench/gen_subscribers.py, default 200), the sample issue
#      examples/newsletter-16.md sent through tests/tools/smtpd.py on a free
#      127.0.0.1 port; the real pixel URLs (one per mail) and click URLs (six
#      per mail) are read back from the received mails;
#   4. starts `herald serve --listen 127.0.0.1:0` and reads its port from the
#      "listening on" line;
#   5. wrk -t2 -c64 -d30s on the pixel paths (bench/web_rotate.lua rotates
#      over them and counts 2xx/3xx/other in a response hook), then the same
#      on the click paths (302s);
#   6. stops the server with SIGTERM (it flushes its event queue and exits 0)
#      and counts the events table: opens against pixel 2xx, clicks against
#      click 3xx.  "lost" = answered but not recorded, must be 0.  "extra" =
#      recorded but not counted by wrk: requests still in flight when wrk's
#      clock ran out (wrk drops them; the server answered them), at most one
#      per connection;
#   7. prints a table and, as the last line, the same figures as JSON.
# With --api (issue 17) it also measures the HTTP API in the same run, after
# the pixel and the click: an authenticated GET /api/v1/subscribers/ADDR
# rotating over the subscribers, and POST /api/v1/subscribers upserts of new
# addresses (bench/api_wrk.lua), each against the pixel's req/s as a ratio;
# every upsert answered 2xx must be a subscriber afterwards ("lost" 0).
# Everything talks to 127.0.0.1 only.  Progress goes to stderr, the results
# to stdout.  Exit status 0 when the runs completed and no event was lost.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/web.sh [--quick] [--duration S] [--subscribers N]
                    [--threads N] [--connections N] [--api] [--keep]
  --quick          5 s per endpoint instead of 30
  --duration S     seconds per endpoint (default 30)
  --subscribers N  subscribers mailed, so N pixel and 6N click URLs (default 200)
  --threads N      wrk threads (default 2)
  --connections N  wrk connections (default 64)
  --keep           keep the temporary directory (database, logs, config)
environment:
  HERALD_BENCH_BUILD=DIR   use DIR/herald as built; do not configure or build
  TMPDIR                   where the temporary directory is made (default /tmp)
EOF
}

duration=30
subs=200
threads=2
conns=64
keep=0
api=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) duration=5; shift ;;
	--duration) duration=${2:?}; shift 2 ;;
	--duration=*) duration=${1#*=}; shift ;;
	--subscribers) subs=${2:?}; shift 2 ;;
	--subscribers=*) subs=${1#*=}; shift ;;
	--threads) threads=${2:?}; shift 2 ;;
	--threads=*) threads=${1#*=}; shift ;;
	--connections) conns=${2:?}; shift 2 ;;
	--connections=*) conns=${1#*=}; shift ;;
	--keep) keep=1; shift ;;
	--api) api=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "web.sh: unknown option '$1'" >&2; usage >&2; exit 64 ;;
	esac
done
for v in "$duration" "$subs" "$threads" "$conns"; do
	case "$v" in
	''|*[!0-9]*|0) echo "web.sh: '$v' is not a positive number" >&2; exit 64 ;;
	esac
done

cd "$(dirname "$0")/.."
top=$(pwd)
ncpu=$(nproc 2>/dev/null || echo 2)
target_rps=10000
PY=/usr/bin/python3

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'web.sh: %s\n' "$*" >&2; exit 1; }

smtpd_pid=""
serve_pid=""
wd=""
ok=0
stop_pid() {	# stop_pid PID: SIGTERM, then wait for it
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
cleanup() {
	[ -n "$serve_pid" ] && stop_pid "$serve_pid"
	[ -n "$smtpd_pid" ] && stop_pid "$smtpd_pid"
	serve_pid=""
	smtpd_pid=""
	if [ -n "$wd" ] && [ -d "$wd" ]; then
		if [ "$ok" = 1 ] && [ "$keep" = 0 ]; then
			rm -rf "$wd"
		else
			echo "web.sh: kept $wd" >&2
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. packages ----------------------------------------------------------
missing=""
for p in wrk python3 python3-aiosmtpd; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" -eq 0 ] || die "needs root to install:$missing"
	say "installing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null &&
		  apt-get install -y -q --no-install-recommends $missing >/dev/null; } ||
		die "apt-get install$missing failed"
fi
WRK=$(command -v wrk) || die "wrk is missing after install"

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

# --- 3. database, subscribers, a sent issue -------------------------------
wd=$(mktemp -d "${TMPDIR:-/tmp}/herald-webbench.XXXXXX")
cd "$wd"
say "starting tests/tools/smtpd.py on 127.0.0.1"
"$PY" "$top/tests/tools/smtpd.py" --maildir "$wd/maildir" --port-file "$wd/smtpd.port" \
	--log "$wd/smtpd.jsonl" >"$wd/smtpd.stderr" 2>&1 &
smtpd_pid=$!
for _ in $(seq 1 200); do
	[ -s "$wd/smtpd.port" ] && break
	kill -0 "$smtpd_pid" 2>/dev/null || { cat "$wd/smtpd.stderr" >&2; die "smtpd did not start"; }
	sleep 0.05
done
[ -s "$wd/smtpd.port" ] || die "smtpd did not start"
smtp_port=$(cat "$wd/smtpd.port")

conf=$wd/herald.conf
cat >"$conf" <<CONF
# web benchmark: the relay is tests/tools/smtpd.py on loopback
[database]
path = herald.db
busy_timeout = 60000
[smtp]
url = smtp://127.0.0.1:$smtp_port
starttls = never
timeout = 60
[sender]
from = What Works Centre <news@example.org>
reply_to = wwccsc@example.org
postal_address = What Works Centre for Children's Social Care,
  1 Example Street, London EC1A 1AA
[web]
base_url = https://news.example.org
# wrk is one client with many connections; readers are many clients
max_connections_per_client = $((conns + 16))
[api]
rate = 100000
CONF
H() { "$herald" --config "$conf" "$@"; }
H init >"$wd/init.out" 2>&1 || { cat "$wd/init.out" >&2; die "herald init failed"; }
H list create bench --title "Benchmark list" >/dev/null
"$PY" "$top/bench/gen_subscribers.py" "$subs" --out "$wd/subs.csv"
H sub import --list bench "$wd/subs.csv" >"$wd/import.out" 2>&1 ||
	{ cat "$wd/import.out" >&2; die "import failed"; }
issue=$(H issue new "$top/examples/newsletter-16.md" --list bench)
say "sending issue $issue to $subs subscribers through smtpd.py"
H send "$issue" >"$wd/send.out" 2>&1 || { cat "$wd/send.out" >&2; die "send failed"; }
stop_pid "$smtpd_pid"
smtpd_pid=""

# The URLs, as paths, from the mails themselves.
"$PY" - "$wd" <<'PY'
import email, email.policy, json, re, sys
wd = sys.argv[1]
base = re.escape("https://news.example.org")
pix, clk = [], []
for line in open(wd + "/smtpd.jsonl"):
    ev = json.loads(line)
    if ev.get("event") != "accept":
        continue
    msg = email.message_from_bytes(open(ev["file"], "rb").read(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()
    pix += re.findall(r'src="%s(/o/[A-Za-z0-9_-]+\.gif)"' % base, html)
    clk += list(dict.fromkeys(re.findall(r'href="%s(/c/[A-Za-z0-9_-]+/\d+)"' % base, html)))
open(wd + "/pixel.paths", "w").write("".join(p + "\n" for p in pix))
open(wd + "/click.paths", "w").write("".join(p + "\n" for p in clk))
print("%d pixel and %d click URLs" % (len(pix), len(clk)), file=sys.stderr)
PY
[ "$(wc -l <"$wd/pixel.paths")" -eq "$subs" ] || die "expected $subs pixel URLs"
[ -s "$wd/click.paths" ] || die "no click URLs in the mails"
if [ "$api" = 1 ]; then
	apikey=$(H apikey create bench --scope subscribers:read,subscribers:write)
	"$PY" - "$wd" <<'PY'
import csv, sys, urllib.parse
wd = sys.argv[1]
rows = list(csv.DictReader(open(wd + "/subs.csv")))
col = "email" if "email" in rows[0] else list(rows[0])[0]
open(wd + "/api_get.paths", "w").write("".join(
    "/api/v1/subscribers/%s\n" % urllib.parse.quote(r[col].strip(), safe="@") for r in rows))
PY
fi

# --- 4. herald serve ------------------------------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true
# not through H(): a function in the background is a subshell, and the
# SIGTERM must reach herald itself
"$herald" --config "$conf" serve --listen 127.0.0.1:0 >"$wd/serve.out" 2>"$wd/serve.err" &
serve_pid=$!
url=""
for _ in $(seq 1 200); do
	url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$wd/serve.out" | head -1)
	[ -n "$url" ] && break
	kill -0 "$serve_pid" 2>/dev/null || { cat "$wd/serve.err" >&2; die "herald serve exited"; }
	sleep 0.05
done
[ -n "$url" ] || die "herald serve did not print its address"
say "herald serve (pid $serve_pid) at $url"

# --- 5. wrk ---------------------------------------------------------------
res=$wd/results
: >"$res"
put() { printf '%s=%s\n' "$1" "$2" >>"$res"; }
run_wrk() {	# run_wrk TAG PATHFILE
	say "wrk -t$threads -c$conns -d${duration}s --latency: $1 ($(wc -l <"$2") URLs)"
	"$WRK" -t"$threads" -c"$conns" -d"${duration}s" --latency --timeout 10s \
		-s "$top/bench/web_rotate.lua" "$url" -- "$2" >"$wd/wrk-$1.out" 2>&1 ||
		{ cat "$wd/wrk-$1.out" >&2; die "wrk failed on $1"; }
	local line kv
	line=$(grep '^WRK_RESULT ' "$wd/wrk-$1.out" | tail -1)
	[ -n "$line" ] || { cat "$wd/wrk-$1.out" >&2; die "no WRK_RESULT from wrk ($1)"; }
	for kv in ${line#WRK_RESULT }; do
		put "$1_${kv%%=*}" "${kv#*=}"
	done
}
put load_start "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
run_wrk pixel "$wd/pixel.paths"
run_wrk click "$wd/click.paths"
if [ "$api" = 1 ]; then
	for mode in get upsert; do
		say "wrk -t$threads -c$conns -d${duration}s --latency: API $mode"
		"$WRK" -t"$threads" -c"$conns" -d"${duration}s" --latency --timeout 10s \
			-s "$top/bench/api_wrk.lua" "$url" -- "$mode" "$apikey" "$wd/api_get.paths" \
			>"$wd/wrk-api_$mode.out" 2>&1 || { cat "$wd/wrk-api_$mode.out" >&2; die "wrk: API $mode"; }
		line=$(grep '^WRK_RESULT ' "$wd/wrk-api_$mode.out" | tail -1)
		[ -n "$line" ] || { cat "$wd/wrk-api_$mode.out" >&2; die "no WRK_RESULT (API $mode)"; }
		for kv in ${line#WRK_RESULT }; do
			put "api_${mode}_${kv%%=*}" "${kv#*=}"
		done
	done
fi
put load_end "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"

# --- 6. stop, count -------------------------------------------------------
say "stopping herald serve (SIGTERM)"
t0=$(date +%s.%N)
kill -TERM "$serve_pid"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=""
put stop_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
put serve_exit "$rc"
if grep -qi "database is locked" "$wd/serve.err"; then
	put locked_errors yes
else
	put locked_errors no
fi
"$PY" - "$wd/herald.db" >>"$res" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for kind in ("open", "click"):
    n = con.execute("SELECT count(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]
    print("events_%s=%d" % (kind, n))
n = con.execute("SELECT count(*) FROM subscribers WHERE email LIKE '%@bench.example.org'"
                ).fetchone()[0]
print("api_upserted=%d" % n)
PY

# --- 7. report ------------------------------------------------------------
"$PY" - "$res" "$duration" "$threads" "$conns" "$subs" "$target_rps" "$ncpu" <<'PY'
import json, sys
r = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
duration, threads, conns, subs, target, ncpu = map(int, sys.argv[2:8])
def i(k):
    return int(float(r.get(k, 0)))
out = {"duration_s": duration, "threads": threads, "connections": conns,
       "subscribers": subs, "ncpu": ncpu, "target_pixel_rps": target,
       "serve_exit": i("serve_exit"), "stop_s": float(r.get("stop_s", 0)),
       "database_locked_errors": r.get("locked_errors") == "yes"}
rows = []
ok = out["serve_exit"] == 0 and not out["database_locked_errors"]
for tag, code, kind in (("pixel", "c2xx", "open"), ("click", "c3xx", "click")):
    answered = i("%s_%s" % (tag, code))
    recorded = i("events_" + kind)
    d = {"requests": i(tag + "_requests"), "answered": answered,
         "other_status": i(tag + "_other") + i(tag + "_c2xx" if code == "c3xx" else
                                               tag + "_c3xx"),
         "socket_errors": sum(i("%s_%s" % (tag, e)) for e in ("connect", "read", "write",
                                                                "timeout")),
         "rps": float(r.get(tag + "_rps", 0)), "p50_ms": i(tag + "_p50_us") / 1000,
         "p99_ms": i(tag + "_p99_us") / 1000, "max_ms": i(tag + "_max_us") / 1000,
         "events": recorded, "lost": max(0, answered - recorded),
         "extra": max(0, recorded - answered)}
    out[tag] = d
    ok = ok and d["lost"] == 0 and d["other_status"] == 0 and d["extra"] <= conns
    rows.append((tag, d))
if "api_get_requests" in r:
    for tag in ("api_get", "api_upsert"):
        answered = i(tag + "_c2xx")
        d = {"requests": i(tag + "_requests"), "answered": answered,
             "other_status": i(tag + "_other") + i(tag + "_c3xx"),
             "socket_errors": sum(i("%s_%s" % (tag, e)) for e in ("connect", "read", "write",
                                                                    "timeout")),
             "rps": float(r.get(tag + "_rps", 0)), "p50_ms": i(tag + "_p50_us") / 1000,
             "p99_ms": i(tag + "_p99_us") / 1000, "max_ms": i(tag + "_max_us") / 1000}
        d["vs_pixel_rps"] = round(d["rps"] / out["pixel"]["rps"], 3) if out["pixel"]["rps"] else 0
        if tag == "api_upsert":
            d["events"] = i("api_upserted")
            d["lost"] = max(0, answered - d["events"])
            d["extra"] = max(0, d["events"] - answered)
            ok = ok and d["lost"] == 0 and d["other_status"] == 0 and d["extra"] <= conns
        else:
            d["events"] = d["lost"] = d["extra"] = 0
            ok = ok and d["other_status"] == 0
        out[tag] = d
        rows.append((tag, d))
    out["upsert_target_met"] = out["api_upsert"]["rps"] >= 2000
out["pixel_target_met"] = out["pixel"]["rps"] >= target
out["ok"] = ok
print("herald serve load benchmark: wrk -t%d -c%d, %d s per endpoint, %d CPUs, %d subscribers"
      % (threads, conns, duration, ncpu, subs))
print("%-10s %10s %10s %9s %9s %9s %10s %10s %6s %6s" % ("", "requests", "req/s", "p50 ms",
      "p99 ms", "max ms", "answered", "recorded", "lost", "extra"))
for tag, d in rows:
    print("%-10s %10d %10.0f %9.2f %9.2f %9.1f %10d %10d %6d %6d" % (
        tag, d["requests"], d["rps"], d["p50_ms"], d["p99_ms"], d["max_ms"], d["answered"],
        d["events"], d["lost"], d["extra"]))
print("target: >= %d pixel req/s: %s (%.0f)" % (target, "met" if out["pixel_target_met"]
      else "NOT met", out["pixel"]["rps"]))
if "api_upsert" in out:
    print("API against the pixel, req/s: GET subscriber %.2f x, POST upsert %.2f x; "
          "target >= 2000 upserts/s: %s (%.0f), none lost: %s" % (
              out["api_get"]["vs_pixel_rps"], out["api_upsert"]["vs_pixel_rps"],
              "met" if out["upsert_target_met"] else "NOT met", out["api_upsert"]["rps"],
              "yes" if out["api_upsert"]["lost"] == 0 else "NO"))
print("events lost: %d (must be 0); serve exit %d after SIGTERM in %.2f s; "
      "database locked errors: %s" % (out["pixel"]["lost"] + out["click"]["lost"],
                                      out["serve_exit"], out["stop_s"],
                                      "yes" if out["database_locked_errors"] else "no"))
print("load average before/after: %s / %s" % (r.get("load_start"), r.get("load_end")))
print(json.dumps(out, sort_keys=True))
sys.exit(0 if ok else 1)
PY
ok=1
