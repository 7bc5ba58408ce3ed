#!/usr/bin/env bash
# Install what the build and the tests need, only when it is missing:
# Debian packages through apt-get, the Node test clients through `npm ci`
# with the committed lock file.  Idempotent and quiet when all is present.
#   scripts/deps.sh          everything (make test)
#   scripts/deps.sh build    only what building and running the service needs (make run)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential pkg-config clang libclang-rt-14-dev
      libuv1-dev libhttp-parser-dev libjansson-dev libmsgpack-dev libssl-dev
      libsqlite3-dev libcurl4-openssl-dev libcmocka-dev nodejs)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodejs may come from another repository that bundles npm; only require the command.
if [ ${#missing[@]} -gt 0 ]; then
    filtered=()
    for p in "${missing[@]}"; do
        if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
        filtered+=("$p")
    done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi
if ! command -v npm >/dev/null; then missing+=(npm); fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-all}" = build ]; then
    exit 0
fi

if [ -f tests/integration/package-lock.json ]; then
    stamp=tests/integration/node_modules/.switchboard-stamp
    if [ ! -f "$stamp" ] || [ tests/integration/package-lock.json -nt "$stamp" ]; then
        echo "deps: npm ci (tests/integration)"
        (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
        touch "$stamp"
    fi
fi
