#!/bin/sh
# deps.sh - install the Debian packages herald needs that are missing.
#   scripts/deps.sh build   what compiling herald needs
#   scripts/deps.sh demo    build + the local SMTP server the demo starts
#   scripts/deps.sh test    build + everything the test suite uses
# Runs apt-get only when something is missing; needs root (or sudo) then.
set -eu

build="cmake gcc make pkg-config libcurl4-openssl-dev libsqlite3-dev libcmark-dev
libssl-dev libinih-dev libjansson-dev libyaml-dev libidn2-dev libcsv-dev libpsl-dev libmicrohttpd-dev libgmime-3.0-dev"
demo="python3 python3-aiosmtpd"
test="libcmocka-dev valgrind sqlite3 python3-dkim python3-nacl python3-dnspython spamassassin
curl chromium chromium-driver python3-selenium dovecot-imapd dovecot-pop3d postfix
clang libclang-rt-14-dev"

case "${1:-build}" in
build) want="$build" ;;
demo) want="$build $demo" ;;
test) want="$build $demo $test" ;;
*) echo "usage: scripts/deps.sh build|demo|test" >&2; exit 64 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the package lists first; refresh once if needed.
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null ||
	{ $SUDO apt-get update -q >/dev/null &&
	  $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; }
