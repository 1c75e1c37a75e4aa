#!/bin/sh
# test.sh - the whole test suite, as CI runs it (README command 2).
#
# Installs what the tests need (scripts/deps.sh test), builds herald and its
# tests (-DHERALD_TESTS=ON) twice - the default build (-Werror) and an
# ASan+UBSan build - runs the unit and integration tests against the
# sanitizer build, then the whole suite (including the valgrind leak check of
# the CLI and the "guard" check of scripts/deps.sh's lists) against the
# default build.  A failing configure shows CMake's output (kept in
# BUILD_DIR/configure.log).  The last lines are ctest's summary of that
# final run.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh test

# Configures build directory $1 with the tests (-DHERALD_TESTS=ON) and the
# other arguments; CMake's output goes to $1/configure.log, which is shown
# when configuring fails.
configure() {
	dir=$1
	shift
	mkdir -p "$dir"
	rc=0
	cmake -S . -B "$dir" -DHERALD_TESTS=ON "$@" >"$dir/configure.log" 2>&1 || rc=$?
	[ "$rc" = 0 ] && return 0
	echo "test.sh: configuring $dir failed (exit $rc); $dir/configure.log:" >&2
	cat "$dir/configure.log" >&2
	exit "$rc"
}

echo "== building (default: -Wall -Wextra -Werror)"
configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$jobs"

echo "== building (ASan + UBSan)"
configure build-asan -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=ON
cmake --build build-asan -j "$jobs"

echo "== tests under ASan + UBSan"
(cd build-asan && ctest -j "$jobs" --output-on-failure -LE "valgrind|guard")

echo "== all tests"
cd build && exec ctest -j "$jobs" --output-on-failure
