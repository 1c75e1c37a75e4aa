#!/bin/sh
# selftest.sh - the guard (check_deps.py) bites.  ctest: guard.build_deps_selftest.
#
#   tests/build/selftest.sh [PACKAGE]
#
# 1. Copies scripts/deps.sh to a temporary file with PACKAGE (default
#    libcurl4-openssl-dev) taken out of its build list, and checks that
#    `check_deps.py --check build` with DEPS_SH set to the copy fails and
#    names PACKAGE as missing from the build list.
# 2. With the real deps.sh, configures the way a default gone wrong would
#    (-DHERALD_TESTS=ON: the bug where a plain configure needed cmocka) and
#    checks that the guard fails naming libcmocka-dev.
# Exits 0 when the guard failed as it should both times, 1 otherwise, 77
# (skip) when the guard skips (not Debian).  PYTHON is the interpreter for
# check_deps.py (default /usr/bin/python3), CMAKE the cmake.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pkg=${1:-libcurl4-openssl-dev}
python=${PYTHON:-/usr/bin/python3}
cmake=${CMAKE:-cmake}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-guard-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
	echo "selftest: FAIL: $*"
	exit 1
}

# The guard's output and exit status, run with "$@" as its arguments.
guard() {
	rc=0
	"$python" "$here/check_deps.py" --source "$root" --cmake "$cmake" "$@" \
		>"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" = 77 ]; then
		cat "$tmp/out"
		echo "selftest: SKIP: the guard skipped"
		exit 77
	fi
}

# --- 1: a package missing from the build list -------------------------------
sh "$root/scripts/deps.sh" --list build | grep -qxF "$pkg" ||
	fail "$pkg is not in \`scripts/deps.sh --list build\`: nothing to take out"
re=$(printf '%s\n' "$pkg" | sed 's/[][\.*^$+?(){}|/]/\\&/g')
sed -E "s/(^|[[:space:]\"])$re([[:space:]\"]|\$)/\\1\\2/" \
	"$root/scripts/deps.sh" >"$tmp/deps.sh"
if sh "$tmp/deps.sh" --list build | grep -qxF "$pkg"; then
	fail "could not take $pkg out of the copy of scripts/deps.sh"
fi
n=$(sh "$root/scripts/deps.sh" --list build | wc -l)
m=$(sh "$tmp/deps.sh" --list build | wc -l)
[ "$m" -eq $((n - 1)) ] || fail "the copy lists $m build packages, not $((n - 1))"

DEPS_SH=$tmp/deps.sh guard --check build
if [ "$rc" != 1 ] || ! grep -q "^check_deps: MISSING $pkg: .*add $pkg to the build list" "$tmp/out"; then
	cat "$tmp/out"
	fail "without $pkg in the build list the guard exited $rc and did not name $pkg (want 1 and a MISSING $pkg line)"
fi
echo "selftest: ok: without $pkg in the build list the guard fails:"
grep "^check_deps: MISSING" "$tmp/out" | sed 's/^/  /'

# --- 2: a configuration that needs the test packages ------------------------
guard --check build --cmake-arg=-DHERALD_TESTS=ON
if [ "$rc" != 1 ] || ! grep -q "^check_deps: MISSING libcmocka-dev: .*add libcmocka-dev to the build list" "$tmp/out"; then
	cat "$tmp/out"
	fail "configured with -DHERALD_TESTS=ON the guard exited $rc and did not name libcmocka-dev (want 1 and a MISSING libcmocka-dev line)"
fi
echo "selftest: ok: a build configuration needing cmocka fails the guard:"
grep "^check_deps: \(MISSING\|HERALD_TESTS\)" "$tmp/out" | sed 's/^/  /'
echo "selftest: OK"
