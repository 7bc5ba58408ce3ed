#!/usr/bin/env bash
# Integration tests: node's test runner drives the real binary
# ($SWITCHBOARD_BIN) with the official SignalR clients; faults.test.mjs drives
# the fault-injection build of the same tree ($SWITCHBOARD_FAULTS_BIN).
set -euo pipefail
cd "$(dirname "$0")/../tests/integration"
: "${SWITCHBOARD_BIN:?}"
export SWITCHBOARD_BIN SWITCHBOARD_TOOLS SWITCHBOARD_FAULTS_BIN
files=$(ls *.test.mjs 2>/dev/null || true)
if [ -z "$files" ]; then echo "integration: no tests found"; exit 1; fi
exec node --test --test-concurrency=1 --test-reporter=spec $files
