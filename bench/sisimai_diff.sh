#!/bin/bash
# sisimai_diff.sh - a second opinion: Debian's sisimai 4.25 (libsisimai-perl)
# and `herald bounce --explain` over the same messages, and where they
# disagree, recipient by recipient.
#
# What it does, in order:
#   1. installs libsisimai-perl from Debian when `perl -MSisimai` fails
#      (apt-get install -y; a benchmark tool, not a dependency of herald);
#   2. builds herald (Release) in build-bench-bounces/, or uses
#      $HERALD_BENCH_BUILD (a build directory) or $HERALD_BIN as they are;
#   3. picks the messages: the FILEs given (less any of the corpus's
#      held-out part), or by default
#        tests/data/bounces/*.eml and tests/data/bounces/mta/*.eml (either
#        may be absent), and the TUNE part of ../shared/bounces (*.eml and
#        dos/*.eml; bench/bounce_split.py).  The held-out part is never
#        read here: it is for measuring, not for looking at;
#   4. runs `herald bounce --explain` over them (its output is JSON lines),
#      then bench/sisimai_diff.pl runs Sisimai->make(FILE, delivered => 1)
#      on each and prints the table of disagreements (file, recipient,
#      sisimai's reason / hardbounce|softbounce / status, herald's reason /
#      class / status, sisimai 5.1's reason from the corpus's expected.tsv
#      where there is one, marks) and the totals.  A mark [newer] says
#      herald's reason is one sisimai added after 4.25 (authfailure,
#      requireptr, speeding, ...): a difference of vocabulary, not of
#      reading; [5.1=herald] says the corpus's sisimai 5.1 verdict is
#      herald's.  See sisimai_diff.pl for the rest.
# Exit status 0 when it ran (whatever the disagreements), 1 on failure.
# Nothing is written outside build-bench-bounces/ and $TMPDIR.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/sisimai_diff.sh [--corpus DIR] [--no-corpus] [--no-tests] [--all] [--json] [FILE...]
  FILE...        compare these messages only (instead of the defaults;
                 held-out corpus files among them are left out)
  --corpus DIR   the shared corpus (default ../shared/bounces from the repo);
                 only its tune part is used, never the held-out part
  --no-corpus    leave the shared corpus out
  --no-tests     leave tests/data/bounces out
  --all          print the rows that agree too
  --json         also the totals as one JSON line at the end
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
use_corpus=1
use_tests=1
opts=()
given=()
while [ $# -gt 0 ]; do
	case "$1" in
	--corpus) corpus=$(abs "${2:?}"); shift 2 ;;
	--corpus=*) corpus=$(abs "${1#*=}"); shift ;;
	--no-corpus) use_corpus=0; shift ;;
	--no-tests) use_tests=0; shift ;;
	--all) opts+=(--all); shift ;;
	--json) opts+=(--json); shift ;;
	-h|--help) usage; exit 0 ;;
	--) shift; for f in "$@"; do given+=("$(realpath -m --relative-to="$top" "$(abs "$f")")"); done; break ;;
	-*) echo "sisimai_diff.sh: unknown option '$1'" >&2; usage >&2; exit 64 ;;
	*) given+=("$(realpath -m --relative-to="$top" "$(abs "$1")")"); shift ;;
	esac
done

if ! perl -MSisimai -e 1 2>/dev/null; then
	echo "sisimai_diff.sh: installing libsisimai-perl (Debian's sisimai 4.25)" >&2
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y libsisimai-perl >&2; then
		apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y libsisimai-perl >&2
	fi
fi
perl -MSisimai -e 1 || { echo "sisimai_diff.sh: no Sisimai perl module" >&2; exit 1; }

if [ -n "${HERALD_BIN:-}" ]; then
	herald=$HERALD_BIN
elif [ -n "${HERALD_BENCH_BUILD:-}" ]; then
	herald=$HERALD_BENCH_BUILD/herald
else
	echo "sisimai_diff.sh: building herald (Release) in build-bench-bounces/" >&2
	cmake -S "$top" -B "$top/build-bench-bounces" -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF >/dev/null
	cmake --build "$top/build-bench-bounces" -j"$(nproc 2>/dev/null || echo 2)" --target herald >/dev/null
	herald=$top/build-bench-bounces/herald
fi
[ -x "$herald" ] || { echo "sisimai_diff.sh: no herald binary at $herald" >&2; exit 1; }

# The files, as paths relative to the repository where they are inside it.
files=()
expected=()
if [ ${#given[@]} -gt 0 ]; then
	for f in "${given[@]}"; do
		[ -f "$f" ] || { echo "sisimai_diff.sh: no file $f" >&2; exit 1; }
		files+=("$f")
	done
else
	if [ $use_tests -eq 1 ]; then
		for f in tests/data/bounces/*.eml tests/data/bounces/mta/*.eml; do
			[ -f "$f" ] && files+=("$f")
		done
	fi
	if [ $use_corpus -eq 1 ]; then
		if [ -f "$corpus/expected.tsv" ]; then
			corpus=$(cd "$corpus" && pwd)
			rel=$(realpath --relative-to="$top" "$corpus")
			while IFS= read -r -d '' f; do
				files+=("$rel/$f")
			done < <(/usr/bin/python3 "$top/bench/bounce_split.py" --list tune --null "$corpus")
			expected=(--expected "$corpus/expected.tsv")
		else
			echo "sisimai_diff.sh: no corpus at $corpus (needs expected.tsv); left out" >&2
		fi
	fi
fi
# The corpus's sisimai 5.1 verdicts, shown beside its files.
if [ ${#expected[@]} -eq 0 ] && [ -f "$corpus/expected.tsv" ]; then
	expected=(--expected "$corpus/expected.tsv")
fi
# Never a held-out file, even named on the command line.
if [ ${#given[@]} -gt 0 ] && [ -d "$corpus" ]; then
	kept=()
	while IFS= read -r -d '' f; do
		kept+=("$f")
	done < <(/usr/bin/python3 - "$top/bench" "$corpus" "${files[@]}" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import bounce_split
corpus = os.path.realpath(sys.argv[2])
for f in sys.argv[3:]:
    rel = os.path.relpath(os.path.realpath(f), corpus)
    if not rel.startswith("..") and bounce_split.part_of(rel) == "heldout":
        print("sisimai_diff.sh: %s is in the held-out part; left out" % f, file=sys.stderr)
        continue
    sys.stdout.write(f + "\0")
PY
)
	files=("${kept[@]}")
fi
if [ ${#files[@]} -eq 0 ]; then
	echo "sisimai_diff.sh: no messages to compare"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-sisimai.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Exit 65: some file was not a message (said on stderr); it then has no
# herald lines and shows up as "(no record)".
set +e
"$herald" bounce --explain "${files[@]}" >"$tmp/herald.jsonl" 2>"$tmp/err.txt"
rc=$?
set -e
if [ $rc -ne 0 ] && [ $rc -ne 65 ]; then
	echo "sisimai_diff.sh: herald exited $rc" >&2
	cat "$tmp/err.txt" >&2
	exit 1
fi
if [ -s "$tmp/err.txt" ]; then
	echo "herald reported on stderr:"
	sed 's/^/  /' "$tmp/err.txt"
fi

perl "$top/bench/sisimai_diff.pl" --herald "$tmp/herald.jsonl" "${expected[@]}" \
	"${opts[@]}" -- "${files[@]}"
