#!/usr/bin/env bash
# Build each fuzz/fuzz_<parser>.c with clang + libFuzzer (+ASan/UBSan) and run it
# over its committed corpus, then for a short time (smoke) or longer (long).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1; shift
secs=10; [ "$mode" = long ] && secs=300
out=build/fuzz
mkdir -p "$out" fuzz/crashes
LIB_SRCS=$(find src -name '*.c' ! -name main.c | sort)
CFLAGS="-std=gnu17 -g -O1 -D_GNU_SOURCE -Isrc $(pkg-config --cflags libuv jansson msgpack libcrypto)"
LIBS="$(pkg-config --libs libuv jansson msgpack libcrypto libssl sqlite3 libcurl) -lhttp_parser -lpthread -lm"
# One instrumented archive of the library, shared by every target.
if [ ! -f "$out/lib.stamp" ] || [ -n "$(find src -newer "$out/lib.stamp" -name '*.[ch]' | head -1)" ]; then
    rm -rf "$out/obj"; mkdir -p "$out/obj"
    for s in $LIB_SRCS; do
        o="$out/obj/$(echo "$s" | tr / _).o"
        clang $CFLAGS -fsanitize=fuzzer-no-link,address,undefined -c "$s" -o "$o"
    done
    rm -f "$out/libsb.a"; ar rcs "$out/libsb.a" "$out"/obj/*.o
    touch "$out/lib.stamp"
fi
fail=0; n=0
for src in "$@"; do
    name=$(basename "$src" .c)
    clang $CFLAGS -fsanitize=fuzzer,address,undefined "$src" "$out/libsb.a" $LIBS -o "$out/$name"
    corpus="fuzz/corpus/${name#fuzz_}"
    mkdir -p "$corpus"
    work=$(mktemp -d)
    n=$((n + 1))
    if "$out/$name" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=fuzz/crashes/ \
        "$work" "$corpus" >"$out/$name.log" 2>&1; then
        echo "fuzz: $name ok ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$out/$name.log" | grep -Eo '[0-9]+$' || echo '?') runs)"
    else
        echo "fuzz: $name FAILED"; tail -40 "$out/$name.log"; fail=$((fail + 1))
    fi
    rm -rf "$work"
done
echo "fuzz: $((n - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
