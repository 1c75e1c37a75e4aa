#!/bin/sh
# tests/fuzz/build.sh - build the libFuzzer binaries of herald's fuzz targets.
#
#   tests/fuzz/build.sh BUILD_DIR [TARGET...]
#
# TARGET is a name of tests/fuzz/fuzz_TARGET.c (bounce, csv, issue, tmpl,
# address, web); with none, all of them.  BUILD_DIR/cmake is a CMake build
# of herald with clang-14, ASan, UBSan (-fno-sanitize-recover: UB aborts)
# and libFuzzer's coverage instrumentation over all of herald_core,
# configured once (-DHERALD_TESTS=ON -DHERALD_SANITIZE=ON
# -DHERALD_LIBFUZZER=ON, see tests/CMakeLists.txt), so a target uses
# whatever herald_core uses and CMake rebuilds only what changed.  Each
# binary is then BUILD_DIR/fuzz_TARGET (a symbolic link into the CMake
# tree).  Warnings do not stop this build (-DHERALD_WERROR=OFF): the
# default gcc build is the -Werror gate, and it builds the same targets as
# the ctest replays.
#
# Needs Debian's clang-14 and libclang-rt-14-dev (scripts/deps.sh test
# installs them, and cmocka, which -DHERALD_TESTS=ON asks for); exits 77
# (skip) without them.  CC overrides the compiler, JOBS the parallel jobs
# (default: the number of CPUs).
set -eu

out=${1:?usage: tests/fuzz/build.sh BUILD_DIR [TARGET...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC:-clang-14}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "build.sh: $cc not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
	exit 77
fi
# The runtime (libclang-rt-14-dev): link an empty target.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n%s\n' \
	'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }' \
	>"$probe/probe.c"
if ! "$cc" -fsanitize=fuzzer,address "$probe/probe.c" -o "$probe/probe" >/dev/null 2>&1; then
	echo "build.sh: $cc cannot link a libFuzzer target (apt-get install libclang-rt-14-dev)" >&2
	exit 77
fi

targets=$*
if [ -z "$targets" ]; then
	for f in "$here"/fuzz_*.c; do
		t=${f##*/fuzz_}
		targets="$targets ${t%.c}"
	done
fi
for t in $targets; do
	if [ ! -f "$here/fuzz_$t.c" ]; then
		echo "build.sh: no fuzz target '$t' (no tests/fuzz/fuzz_$t.c)" >&2
		exit 2
	fi
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
tree=$out/cmake
if [ ! -f "$tree/CMakeCache.txt" ]; then
	mkdir -p "$tree"
	rc=0
	cmake -S "$root" -B "$tree" \
		-DCMAKE_C_COMPILER="$cc" \
		-DCMAKE_BUILD_TYPE=Fuzz \
		-DCMAKE_C_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link" \
		-DHERALD_TESTS=ON -DHERALD_SANITIZE=ON -DHERALD_LIBFUZZER=ON \
		-DHERALD_WERROR=OFF >"$out/configure.log" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		echo "build.sh: configuring $tree failed (exit $rc); $out/configure.log:" >&2
		cat "$out/configure.log" >&2
		rm -f "$tree/CMakeCache.txt"
		exit "$rc"
	fi
fi

build_targets=
for t in $targets; do
	build_targets="$build_targets --target fuzz_$t"
done
# shellcheck disable=SC2086
cmake --build "$tree" -j "$jobs" $build_targets
for t in $targets; do
	bin=$tree/tests/fuzz_$t
	[ -x "$bin" ] || { echo "build.sh: $bin was not built" >&2; exit 1; }
	ln -sf "$bin" "$out/fuzz_$t"
	echo "built $out/fuzz_$t"
done
