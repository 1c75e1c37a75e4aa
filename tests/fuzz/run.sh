#!/bin/sh
# tests/fuzz/run.sh - fuzz one target for a while (never part of ctest).
#
#   tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]
#
# TARGET is bounce, csv, issue, tmpl, address or web (tests/fuzz/fuzz_TARGET.c);
# BUILD_DIR defaults to $FUZZ_BUILD_DIR, else build-fuzz/ at the top of
# the tree.  Builds BUILD_DIR/fuzz_TARGET (tests/fuzz/build.sh: clang-14,
# libFuzzer, ASan, UBSan; only what changed is rebuilt), then runs it for
# SECONDS on a fresh copy of the committed seeds:
#   BUILD_DIR/run/TARGET/corpus    tests/fuzz/corpus/TARGET/ copied anew each
#                                  run; the inputs libFuzzer finds go here
#   BUILD_DIR/run/TARGET/crashes/  crashes, leaks, UBSan reports, timeouts
#                                  and out-of-memory inputs
#   BUILD_DIR/run/TARGET/fuzz.log  libFuzzer's output
#   BUILD_DIR/run/TARGET/generated bounce only: seeds too big to commit (deep
#                                  MIME nesting, 300 KB headers, ...) made by
#                                  tests/fuzz/gen_bounce_seeds.py, read only
# with -timeout=10 -rss_limit_mb=2048, a -max_len fit for the target, and
# tests/fuzz/TARGET.dict when there is one.  FUZZ_ARGS adds libFuzzer
# options (e.g. FUZZ_ARGS=-jobs=2).
#
# Prints one line: executions, executions per second, crashes, and the
# corpus size at the end.  Exits 0 when nothing was found, 1 when
# something was (the first lines of the report follow), 2 for a usage
# error, 77 (skip) when clang-14 or its libFuzzer runtime is missing.
set -eu

usage="usage: tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]"
target=${1:?$usage}
secs=${2:?$usage}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${3:-${FUZZ_BUILD_DIR:-$root/build-fuzz}}

if [ ! -f "$here/fuzz_$target.c" ]; then
	known=
	for f in "$here"/fuzz_*.c; do
		t=${f##*/fuzz_}
		known="$known ${t%.c}"
	done
	echo "run.sh: no fuzz target '$target'; there are:$known" >&2
	exit 2
fi
case $secs in
	'' | *[!0-9]*) echo "$usage (SECONDS: a whole number)" >&2; exit 2 ;;
esac
seeds=$here/corpus/$target
if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
	echo "run.sh: no seeds in $seeds" >&2
	exit 2
fi

rc=0
"$here/build.sh" "$build" "$target" >/dev/null || rc=$?
if [ "$rc" != 0 ]; then
	[ "$rc" = 77 ] || echo "run.sh: building fuzz_$target failed (exit $rc)" >&2
	exit "$rc"
fi
build=$(cd "$build" && pwd)
bin=$build/fuzz_$target
work=$build/run/$target

# Inputs: the largest each target's parser takes, or enough to reach the
# code for large inputs (csv: past its 16 KiB read block).
case $target in
	bounce) max_len=1048576 ;;
	csv) max_len=40000 ;;
	issue) max_len=65536 ;;
	web) max_len=8192 ;;
	address) max_len=2048 ;;
	*) max_len=16384 ;;
esac

rm -rf "$work/corpus"
mkdir -p "$work/corpus" "$work/crashes"
cp "$seeds"/* "$work/corpus/"
extra=
if [ "$target" = bounce ]; then
	rm -rf "$work/generated"
	mkdir -p "$work/generated"
	python=/usr/bin/python3
	[ -x "$python" ] || python=python3
	"$python" "$here/gen_bounce_seeds.py" "$work/generated"
	extra=$work/generated
fi
dict=
[ -f "$here/$target.dict" ] && dict=-dict=$here/$target.dict

log=$work/fuzz.log
stamp=$work/.started
: >"$stamp"
rc=0
# -error_exitcode and -timeout_exitcode: libFuzzer's default (77) would
# read as "skipped".
# shellcheck disable=SC2086
"$bin" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -max_total_time="$secs" \
	-error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
	-artifact_prefix="$work/crashes/" $dict ${FUZZ_ARGS:-} \
	"$work/corpus" $extra >"$log" 2>&1 || rc=$?

final_stat() {
	sed -n "s/^stat::$1: *//p" "$log" | tail -n 1
}
execs=$(final_stat number_of_executed_units)
speed=$(final_stat average_exec_per_sec)
found=$(find "$work/crashes" -type f -newer "$stamp" \
	\( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
files=$(find "$work/corpus" -type f | wc -l)
bytes=$(find "$work/corpus" -type f -exec cat {} + | wc -c)
echo "fuzz_$target: ${execs:-0} executions in $secs s (${speed:-0} exec/s)," \
	"$found crashes, corpus $files files ($bytes bytes); log: $log"
if [ "$rc" != 0 ] || [ "$found" != 0 ]; then
	grep -E "ERROR|runtime error|broken promise|Test unit written|SUMMARY" "$log" |
		head -n 20 >&2 || true
	exit 1
fi
exit 0
