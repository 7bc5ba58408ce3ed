#!/usr/bin/env bash
# Run every cmocka unit test binary given; fail if any fails.
set -u
fail=0; total=0
for t in "$@"; do
    total=$((total + 1))
    if ! "$t"; then echo "unit: FAILED $t"; fail=$((fail + 1)); fi
done
echo "unit: $((total - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
