#!/bin/sh
# tests/fuzz/build.sh - build herald's libFuzzer targets into a directory.
#
#   tests/fuzz/build.sh BUILD_DIR
#
# Builds BUILD_DIR/fuzz_bounce (tests/fuzz/fuzz_bounce.c) with clang-14 and
# -fsanitize=fuzzer,address,undefined, against the herald sources the bounce
# parser needs: src/bounce.c and src/bouncereason.c, then every src/X.c whose
# include/herald/X.h is included by a file already in the list (followed
# through headers too), so a new dependency of the parser is picked up
# without editing this script.  GMime 3 and libcrypto come from pkg-config.
# Needs Debian's clang-14 and libclang-rt-14-dev; exits 77 (skip) without
# them.  CC overrides the compiler.
set -eu

out=${1:?usage: tests/fuzz/build.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC:-clang-14}

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "build.sh: $cc not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
	exit 77
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The sources: a fixed start, closed over herald's own #include lines.
srcs="$here/fuzz_bounce.c $root/src/bounce.c $root/src/bouncereason.c $root/src/herr.c $root/src/buf.c"
todo=$srcs
seen=" "
while [ -n "$todo" ]; do
	set -- $todo
	f=$1
	shift
	todo=$*
	case $seen in *" $f "*) continue ;; esac
	seen="$seen$f "
	[ -f "$f" ] || { echo "build.sh: missing $f" >&2; exit 1; }
	for m in $(sed -n 's/^[ \t]*#[ \t]*include[ \t]*"herald\/\([A-Za-z0-9_]*\)\.h".*/\1/p' "$f"); do
		h=$root/include/herald/$m.h
		c=$root/src/$m.c
		[ -f "$h" ] && todo="$todo $h"
		if [ -f "$c" ]; then
			case " $srcs " in *" $c "*) ;; *) srcs="$srcs $c" ;; esac
			todo="$todo $c"
		fi
	done
done

libs="gmime-3.0 libcrypto"
# shellcheck disable=SC2046,SC2086
"$cc" -std=c17 -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Wno-unused-parameter \
	-D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DHERALD_FUZZING=1 \
	-I"$root/include" $(pkg-config --cflags $libs) \
	$srcs \
	$(pkg-config --libs $libs) -lpthread -lm \
	-o "$out/fuzz_bounce.tmp"
mv "$out/fuzz_bounce.tmp" "$out/fuzz_bounce"
echo "$srcs" | tr ' ' '\n' | sed "s|^$root/||" > "$out/fuzz_bounce.sources"
echo "built $out/fuzz_bounce from: $(tr '\n' ' ' < "$out/fuzz_bounce.sources")"
