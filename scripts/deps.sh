#!/bin/sh
# deps.sh - install the Debian packages herald needs that are missing.
#   scripts/deps.sh build   what compiling herald needs
#   scripts/deps.sh demo    build + the local SMTP server the demo starts
#   scripts/deps.sh test    build + everything the test suite uses
# Runs apt-get only when something is missing; needs root (or sudo) then.
#
#   scripts/deps.sh --list build|demo|test
# prints, one per line and installing nothing, the packages the same
# argument would install (each list includes the ones before it: demo is
# build + demo's, test is build + demo + test's).  The "guard" tests
# (tests/build/check_deps.py, run by ctest) check against these lists that
# every pkg-config module, library, header and tool the CMake configuration
# asks for comes from a listed package or one they depend on: build for the
# default configuration (tests off), test for -DHERALD_TESTS=ON and the
# integration tests' Python modules, demo for the modules of
# tests/tools/smtpd.py.  A new dependency goes into the right list here.
# tzdata is not compiled against but read at run time: sequence steps sent
# at a subscriber's local time (sequence.h) need the zone files.
set -eu

build="cmake gcc make pkg-config scdoc libcurl4-openssl-dev libsqlite3-dev libcmark-dev
libssl-dev libinih-dev libjansson-dev libyaml-dev libidn2-dev libcsv-dev libpsl-dev libmicrohttpd-dev libgmime-3.0-dev libc-ares-dev
tzdata"
demo="python3 python3-aiosmtpd"
test="libcmocka-dev valgrind sqlite3 python3-dkim python3-nacl python3-dnspython python3-yaml python3-jsonschema python3-prometheus-client spamassassin
curl openssl chromium chromium-driver python3-selenium dovecot-imapd dovecot-pop3d postfix
clang libclang-rt-14-dev dpkg-dev file"

usage() {
	echo "usage: scripts/deps.sh build|demo|test" >&2
	echo "       scripts/deps.sh --list build|demo|test" >&2
	exit 64
}
list=0
if [ "${1:-}" = "--list" ]; then
	list=1
	shift
fi
case "${1:-build}" in
build) want="$build" ;;
demo) want="$build $demo" ;;
test) want="$build $demo $test" ;;
*) usage ;;
esac
if [ "$list" = 1 ]; then
	# shellcheck disable=SC2086
	printf '%s\n' $want
	exit 0
fi

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
# The tests start their own private Postfix and Dovecot on loopback ports;
# installing the packages must not configure or start the system ones
# (they would listen on every interface): Postfix gets "No configuration",
# and a policy-rc.d that exits 101 tells invoke-rc.d to start nothing while
# apt runs (Docker images ship one; it is only added, and removed again,
# when missing).
policy_added=0
case "$missing" in
*postfix*|*dovecot*)
	echo "postfix postfix/main_mailer_type select No configuration" |
		$SUDO debconf-set-selections
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# scripts/deps.sh: no service starts during install\nexit 101\n' |
			$SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod 755 /usr/sbin/policy-rc.d
		policy_added=1
	fi
	;;
esac
# Try without refreshing the package lists first; refresh once if needed.
rc=0
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null ||
	{ $SUDO apt-get update -q >/dev/null &&
	  $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; } || rc=$?
[ "$policy_added" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
exit "$rc"
