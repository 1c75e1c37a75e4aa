#!/bin/sh
# demo.sh - herald's main job end to end (README command 1).
#
# Installs what is missing, builds herald, and in demo-out/: creates a fresh
# database, a list, imports examples/subscribers.csv (a messy spreadsheet
# export: its bad rows are reported and skipped), creates the issue from
# examples/newsletter-16.md, makes a DKIM key, starts a real SMTP server on
# 127.0.0.1 (a free port) that writes what it receives to a Maildir, sends
# the issue to it (signed),
# stops the server, and prints what happened and where the mail is.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
out="$top/demo-out"

# Runs "$@" quietly, its output in the file $log; when it fails, says so and
# shows the output's errors and last lines, and exits with its status.
quietly() {
	rc=0
	"$@" >"$log" 2>&1 || rc=$?
	[ "$rc" = 0 ] && return 0
	echo "demo: \`$*\` failed (exit $rc); its output is in $log" >&2
	if [ "$(wc -l <"$log")" -le 60 ]; then
		cat "$log" >&2
	else
		echo "demo: the first errors:" >&2
		grep -n -i -m 20 -E 'error|not found' "$log" >&2 || true
		echo "demo: the last lines:" >&2
		tail -n 30 "$log" >&2
	fi
	exit "$rc"
}

scripts/deps.sh demo
mkdir -p build
# The tests are not the demo's: they would need scripts/deps.sh test.
log=build/demo-configure.log
quietly cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_TESTS=OFF
log=build/demo-build.log
quietly cmake --build build -j "$(nproc 2>/dev/null || echo 2)"
herald="$top/build/herald"

rm -rf "$out"
mkdir -p "$out"
/usr/bin/python3 tests/tools/smtpd.py --maildir "$out/maildir" \
	--port-file "$out/smtpd.port" --log "$out/smtpd.log" 2>"$out/smtpd.stderr" &
smtpd=$!
trap 'kill $smtpd 2>/dev/null || true' EXIT INT TERM
i=0
while [ ! -s "$out/smtpd.port" ]; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 $smtpd 2>/dev/null; then
		echo "demo: the SMTP server did not start:" >&2
		cat "$out/smtpd.stderr" >&2
		exit 69
	fi
	sleep 0.05
done
port=$(cat "$out/smtpd.port")

cat > "$out/herald.conf" <<CONF
# demo configuration: a local relay on loopback, so no STARTTLS
[database]
path = herald.db
[smtp]
url = smtp://127.0.0.1:$port
starttls = never
[sender]
from = What Works Centre <news@example.org>
reply_to = wwccsc@example.org
postal_address = What Works Centre for Children's Social Care,
  1 Example Street, London EC1A 1AA
[web]
base_url = https://news.example.org
CONF
export HERALD_CONFIG="$out/herald.conf"

echo "== herald dkim keygen (the demo signs its mail; the DNS record is for show)"
"$herald" dkim keygen --domain example.org --selector demo --out "$out/dkim-demo.pem" |
	sed -n '1p;/_domainkey/,/)/p'
printf '[dkim]\nselector = demo\nprivate_key = dkim-demo.pem\n' >> "$out/herald.conf"

echo "== herald init"
"$herald" init
echo "== herald list create newsletter"
"$herald" list create newsletter --title "What Works Centre e-newsletter"
echo "== herald sub import --list newsletter examples/subscribers.csv"
# exit status 65 means some rows were bad: they are listed, the rest imported
"$herald" sub import --list newsletter examples/subscribers.csv || [ $? -eq 65 ]
echo "== herald issue new examples/newsletter-16.md"
id=$("$herald" issue new examples/newsletter-16.md)
echo "$id"
echo "== herald send $id"
"$herald" send "$id"

kill $smtpd
wait $smtpd 2>/dev/null || true
trap - EXIT INT TERM

echo "== herald stats $id"
"$herald" stats "$id"
n=$(ls "$out/maildir/new" | wc -l)
echo
echo "The SMTP server on 127.0.0.1:$port received $n messages; they are in"
echo "  $out/maildir/new/"
ls "$out/maildir/new" | sed 's/^/    /'
echo "Open one in a mail client, or: HERALD_CONFIG=demo-out/herald.conf build/herald issue preview $id --format html"
