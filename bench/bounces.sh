#!/bin/bash
# bounces.sh - how well herald reads real bounces: `herald bounce --explain`
# over sisimai's set-of-emails sample, compared with sisimai's own verdicts
# (issue 6).
#
# What it does, in order:
#   1. finds the corpus: ../shared/bounces relative to the repository
#      (*.eml and dos/*.eml, with expected.tsv: file, recipient, status,
#      reason, hardbounce, one row per recipient, taken from sisimai 5.1's
#      own test tables where sisimai's run on the file agrees with them).
#      No corpus: says SKIP and exits 77 (measured nothing; the corpus is
#      not part of the repository, so a fresh clone has none);
#   2. builds herald (Release) in build-bench-bounces/, or uses $HERALD_BENCH_BUILD
#      (a build directory) or $HERALD_BIN (a binary) as they are;
#   3. runs `herald bounce --explain` once over every message of the part
#      asked for (one process, so the time includes one start-up), timed;
#   4. bench/bounce_agreement.py compares the JSON lines with expected.tsv
#      and prints the agreement on recipient found, class (hard / soft /
#      complaint / autoreply) and reason, the misses grouped by expected
#      reason with their file names, and the time per message.
# Parts: the corpus is split for good (bench/bounce_split.py: a file is
# held out when sha256("herald-split-1:" + its name without dos/)[0] < 86,
# about a third; a dos/ twin goes with its LF original).  Rules are tuned
# on `--part tune`, which lists its misses; `--part heldout` is only
# measured: it prints the figures and never the misses (not even with
# --part all, the default, which shows only the tune part's misses and
# the figures of both), unless --show-heldout-misses says so.  Do not use
# that while writing rules.
# Exit status: 0 when it ran (whatever the figures), 77 when there was no
# corpus to run on, 1 when herald or the comparison failed.  Nothing is written outside build-bench-bounces/ and $TMPDIR.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/bounces.sh [--corpus DIR] [--part tune|heldout|all] [--misses-only] [--json]
                        [--show-heldout-misses]
  --corpus DIR     the corpus directory (default ../shared/bounces from the repo)
  --part P         tune: the part rules are written against (misses listed);
                   heldout: the part only measured (figures only, no misses);
                   all (default): both, figures per part, misses of tune only
  --misses-only    print only the misses
  --json           also print the figures as one JSON line at the end
                   (with --part all also per part, under "parts")
  --show-heldout-misses
                   list the held-out files' misses too (for a final look
                   only, never while tuning rules)
environment:
  HERALD_BIN=PATH          use this herald binary
  HERALD_BENCH_BUILD=DIR   use DIR/herald as built; do not configure or build
EOF
}

# Paths given (options, environment) are relative to where it was started.
here=$(pwd)
abs() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$here/$1" ;; esac; }
[ -n "${HERALD_BENCH_BUILD:-}" ] && HERALD_BENCH_BUILD=$(abs "$HERALD_BENCH_BUILD")
case "${HERALD_BIN:-}" in */*) HERALD_BIN=$(abs "$HERALD_BIN") ;; esac
cd "$(dirname "$0")/.."
top=$(pwd)
corpus="$top/../shared/bounces"
extra=()
part=all
while [ $# -gt 0 ]; do
	case "$1" in
	--corpus) corpus=$(abs "${2:?}"); shift 2 ;;
	--corpus=*) corpus=$(abs "${1#*=}"); shift ;;
	--misses-only) extra+=(--misses-only); shift ;;
	--json) extra+=(--json); shift ;;
	--part) part=${2:?}; shift 2 ;;
	--part=*) part=${1#*=}; shift ;;
	--show-heldout-misses) extra+=(--show-heldout-misses); shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "bounces.sh: unknown option '$1'" >&2; usage >&2; exit 64 ;;
	esac
done

case "$part" in
tune|heldout|all) ;;
*) echo "bounces.sh: --part must be tune, heldout or all, not '$part'" >&2; exit 64 ;;
esac

if [ ! -d "$corpus" ] || [ ! -f "$corpus/expected.tsv" ]; then
	echo "SKIP: bounces.sh: no corpus at $corpus (needs *.eml and expected.tsv); nothing measured"
	exit 77
fi
corpus=$(cd "$corpus" && pwd)

if [ -n "${HERALD_BIN:-}" ]; then
	herald=$HERALD_BIN
elif [ -n "${HERALD_BENCH_BUILD:-}" ]; then
	herald=$HERALD_BENCH_BUILD/herald
else
	echo "bounces.sh: building herald (Release) in build-bench-bounces/" >&2
	cmake -S "$top" -B "$top/build-bench-bounces" -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF >/dev/null
	cmake --build "$top/build-bench-bounces" -j"$(nproc 2>/dev/null || echo 2)" --target herald >/dev/null
	herald=$top/build-bench-bounces/herald
fi
if [ ! -x "$herald" ]; then
	echo "bounces.sh: no herald binary at $herald" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-bounces.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# File names relative to the corpus, as expected.tsv has them: the
# part's *.eml and dos/*.eml (bounce_split.py holds the rule).
cd "$corpus"
files=()
while IFS= read -r -d '' f; do
	files+=("$f")
done < <(/usr/bin/python3 "$top/bench/bounce_split.py" --list "$part" --null "$corpus")
if [ ${#files[@]} -eq 0 ]; then
	echo "bounces.sh: no *.eml of part $part in $corpus; nothing to measure"
	exit 0
fi

# One run over everything, timed.  Exit 65 means some file was not a
# message: reported on stderr, the comparison counts it as missed.
start=$(date +%s.%N)
set +e
"$herald" bounce --explain "${files[@]}" >"$tmp/out.jsonl" 2>"$tmp/err.txt"
rc=$?
set -e
end=$(date +%s.%N)
if [ $rc -ne 0 ] && [ $rc -ne 65 ]; then
	echo "bounces.sh: herald exited $rc" >&2
	cat "$tmp/err.txt" >&2
	exit 1
fi
if [ -s "$tmp/err.txt" ]; then
	echo "herald reported on stderr:"
	sed 's/^/  /' "$tmp/err.txt"
fi
bytes=$(cat "${files[@]}" | wc -c)

/usr/bin/python3 "$top/bench/bounce_agreement.py" \
	--expected "$corpus/expected.tsv" --output "$tmp/out.jsonl" \
	--seconds "$(echo "$end - $start" | bc -l)" --messages ${#files[@]} --bytes "$bytes" \
	--part "$part" "${extra[@]}"
