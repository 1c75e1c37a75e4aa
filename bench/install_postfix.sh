#!/bin/bash
# install_postfix.sh - what the benchmarks need from Debian and do not find:
# postfix for its smtp-sink and smtp-source, WITHOUT starting or configuring
# a mail system (debconf "No configuration", and a policy-rc.d that denies
# service starts while apt runs, removed after), GNU time, openssl and
# python3.  Used by bench/send.sh and bench/scale.sh; does nothing when all
# are installed.  Network only to the Debian archive, through apt-get.
set -euo pipefail

missing=""
for p in postfix time openssl python3; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "install_postfix.sh: needs root to install:$missing" >&2
	exit 77
fi
echo "== installing Debian packages:$missing (postfix is not started)" >&2
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
created_policy=0
cleanup() { if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
# policy-rc.d exiting 101 tells invoke-rc.d not to start services.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# install_postfix.sh: no service starts during install\nexit 101\n' \
		>/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	created_policy=1
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
	{ apt-get update -q >/dev/null &&
	  apt-get install -y -q --no-install-recommends $missing >/dev/null; } ||
	{ echo "install_postfix.sh: apt-get install$missing failed" >&2; exit 1; }
for f in /usr/sbin/smtp-sink /usr/sbin/smtp-source /usr/bin/time; do
	[ -x "$f" ] || { echo "install_postfix.sh: $f is missing after install" >&2; exit 1; }
done
