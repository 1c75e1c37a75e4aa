#!/bin/sh
# test.sh - the whole test suite, as CI runs it (README command 2).
#
# Installs what the tests need, builds herald twice - the default build
# (-Werror) and an ASan+UBSan build - runs the unit and integration tests
# against the sanitizer build, then the whole suite (including the valgrind
# leak check of the CLI) against the default build.  The last lines are
# ctest's summary of that final run.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh test

echo "== building (default: -Wall -Wextra -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

echo "== building (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"

echo "== tests under ASan + UBSan"
(cd build-asan && ctest -j "$jobs" --output-on-failure -LE "valgrind|fuzz")

echo "== all tests"
cd build && exec ctest -j "$jobs" --output-on-failure
