#!/usr/bin/env bash
# bench/run.sh - `make bench`: Switchboard side by side with nginx + nchan on this machine.
#
#   bench/run.sh            the standard set, servers alternated (A B A B ...) over BENCH_ROUNDS
#                           rounds; medians and Switchboard/nchan ratios go to bench/RESULTS.md
#   bench/run.sh --smoke    ~10 s check for `make test`: the load generator's self-test, then a
#                           small broadcast against Switchboard that must lose nothing
#   bench/run.sh --report FILE   rewrite the report from the raw results of an earlier run (the
#                           results.txt that BENCH_KEEP=1 leaves, or the block at the end of RESULTS.md)
#
# Every run starts a fresh server (Switchboard, its app server for default-mode cases, or nginx
# with bench/nchan.conf.in) on a free loopback port in a private temporary directory, drives it
# with bench/loadgen, and stops it again by its pid.  The system nginx (its config, pid file,
# logs, service) is never used.  nginx and the nchan module are installed with apt-get when
# missing; if that is impossible, the nchan column says so and Switchboard runs alone.
#
# Knobs (environment): SWITCHBOARD_BIN, SWITCHBOARD_APPSERVER and LOADGEN (binaries other than
# build/ and bench/loadgen), SWITCHBOARD_NOMETRICS_BIN (the same tree built with the hot-path metric
# recorders compiled out, for the "metrics" case; default $BUILD/switchboard-nometrics unless
# SWITCHBOARD_BIN is given, since the two must come from one tree), BENCH_ROUNDS (3),
# BENCH_DURATION (seconds of publishing per run, 5),
# BENCH_CASES (space-separated case names, default all), BENCH_OUT (bench/RESULTS.md),
# BENCH_BUDGET (seconds; runs that would start after it are skipped and reported, 840),
# BENCH_PIN=1 (server on CPU 1, load generator on CPU 0), BENCH_KEEP=1 (keep the work dir),
# BENCH_SB_DESC (how the report names the Switchboard build when SWITCHBOARD_BIN is given).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
SB_BIN=${SWITCHBOARD_BIN:-$ROOT/$BUILD/switchboard}
APP_BIN=${SWITCHBOARD_APPSERVER:-$ROOT/$BUILD/switchboard-appserver}
if [ -n "${SWITCHBOARD_BIN:-}" ]; then NM_BIN=${SWITCHBOARD_NOMETRICS_BIN:-}; else NM_BIN=${SWITCHBOARD_NOMETRICS_BIN:-$ROOT/$BUILD/switchboard-nometrics}; fi
LG=${LOADGEN:-$ROOT/bench/loadgen}
ROUNDS=${BENCH_ROUNDS:-3}
DUR=${BENCH_DURATION:-5}
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
BUDGET=${BENCH_BUDGET:-840}
KEY=bench0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH
SMOKE=0
REPORT_ONLY=""
case "${1:-}" in
--smoke) SMOKE=1 ;;
--report) REPORT_ONLY=${2:?--report takes the raw results file} ;;
"") ;;
*) echo "usage: bench/run.sh [--smoke | --report RESULTS_TXT]" >&2; exit 2 ;;
esac

die() { echo "bench: $*" >&2; exit 1; }
if [ -z "$REPORT_ONLY" ]; then
    for b in "$SB_BIN" "$LG"; do [ -x "$b" ] || die "$b is missing: build it first (make all bench/loadgen)"; done
fi
WORK=$(mktemp -d /tmp/switchboard-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# both sides of 20,000 loopback connections need the hard limit (the kernel caps a process at it)
ulimit -n "$(ulimit -Hn)" 2>/dev/null
START=$SECONDS
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
PIN_SERVER=()
PIN_LG=()
if [ "${BENCH_PIN:-0}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 1)
    PIN_LG=(taskset -c 0)
fi

# ---- processes --------------------------------------------------------------------------------

# Stop one process we started: TERM, then KILL after 5 s.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# If a server we started has already exited (gone, or a zombie not yet reaped), reap it, set DIED_HOW
# ("exit 1", "signal 11") and succeed.  Not in a subshell: only this shell can wait for its children.
died() {
    local state st
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && return 1
    wait "$1" 2>/dev/null
    st=$?
    if [ "$st" -gt 128 ]; then DIED_HOW="signal $((st - 128))"; else DIED_HOW="exit $st"; fi
    return 0
}

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Wait (at most 10 s) for a line matching $2 in file $1; print the match.
wait_for_line() {
    local i
    for i in $(seq 100); do
        if grep -qE "$2" "$1" 2>/dev/null; then grep -oE "$2" "$1" | head -1; return 0; fi
        sleep 0.1
    done
    return 1
}

# start_switchboard DIR MODE -> SB_PID, SB_URL (the binary: $RUN_SB_BIN if set, else $SB_BIN)
start_switchboard() {
    local dir=$1 mode=$2
    mkdir -p "$dir"
    "${PIN_SERVER[@]}" "${RUN_SB_BIN:-$SB_BIN}" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --access-key "$KEY" \
        --mode "$mode" >"$dir/switchboard.log" 2>&1 &
    SB_PID=$!
    PIDS+=("$SB_PID")
    local ep
    ep=$(wait_for_line "$dir/switchboard.log" 'Endpoint=http://[0-9.]+:[0-9]+') || {
        echo "bench: switchboard did not start: $(tail -3 "$dir/switchboard.log")" >&2; return 1; }
    SB_URL=${ep#Endpoint=}
}

# start_appserver DIR -> APP_PID, APP_URL
start_appserver() {
    local dir=$1
    "$APP_BIN" --connection-string "Endpoint=$SB_URL;AccessKey=$KEY;Version=1.0;" --listen 127.0.0.1:0 \
        --hub chat --connections 5 >"$dir/appserver.log" 2>&1 &
    APP_PID=$!
    PIDS+=("$APP_PID")
    APP_URL=$(wait_for_line "$dir/appserver.log" 'http://[0-9.]+:[0-9]+') || {
        echo "bench: app server did not start: $(tail -3 "$dir/appserver.log")" >&2; return 1; }
    sleep 0.5 # its server connections reach the service
}

NCHAN_OK=0
NCHAN_WHY=""
NCHAN_MODULE=""
ensure_nchan() {
    find_module() {
        NCHAN_MODULE=$(dpkg -L libnginx-mod-nchan 2>/dev/null | grep -m1 'ngx_nchan_module\.so$')
        [ -n "$NCHAN_MODULE" ] || NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
        command -v nginx >/dev/null && [ -f "$NCHAN_MODULE" ]
    }
    if ! find_module; then
        echo "bench: installing nginx and libnginx-mod-nchan with apt-get" >&2
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan) \
                >"$WORK/apt.log" 2>&1
        fi
    fi
    if find_module; then NCHAN_OK=1; else NCHAN_WHY="nginx with the nchan module is not installed and could not be"; fi
}

# start_nchan DIR -> NG_PID (master), NG_WORKER, NG_URL
start_nchan() {
    local dir=$1 port i
    mkdir -p "$dir/ng"
    port=$("$LG" --free-port) || return 1
    local user=""
    [ "$(id -u)" = 0 ] && user="user root;"
    sed -e "s#@DIR@#$dir/ng#g" -e "s#@PORT@#$port#g" -e "s#@MODULE@#$NCHAN_MODULE#g" -e "s#@WORKERS@#1#g" \
        -e "s#@USER@#$user#g" "$ROOT/bench/nchan.conf.in" >"$dir/ng/nginx.conf"
    "${PIN_SERVER[@]}" nginx -p "$dir/ng" -e "$dir/ng/error.log" -c "$dir/ng/nginx.conf" -g 'daemon off;' \
        >"$dir/ng/stdout.log" 2>&1 &
    NG_PID=$!
    PIDS+=("$NG_PID")
    NG_URL=http://127.0.0.1:$port
    NG_WORKER=""
    for i in $(seq 100); do
        NG_WORKER=$(pgrep -P "$NG_PID" | head -1)
        [ -n "$NG_WORKER" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: nginx did not start: $(tail -3 "$dir/ng/error.log" "$dir/ng/stdout.log" 2>/dev/null)" >&2
    return 1
}

# ---- one run ----------------------------------------------------------------------------------

RESULTS=$WORK/results.txt
: >"$RESULTS"
RUN_NO=0

# run_one CASE ROUND TARGET MODE ARGS... : start the server(s), run the load generator, stop them,
# append "case=.. round=.. tag=.. RESULT..." (or an error line) to $RESULTS.
run_one() {
    local name=$1 round=$2 target=$3 mode=$4 tag=$5
    shift 5
    RUN_NO=$((RUN_NO + 1))
    local dir=$WORK/run$RUN_NO out rc started=() extra=()
    mkdir -p "$dir"
    out=$dir/loadgen.out
    if [ "$target" = switchboard ]; then
        start_switchboard "$dir" "$mode" || { echo "case=$name round=$round tag=$tag target=$target error=start" >>"$RESULTS"; stop_pid "$SB_PID"; return; }
        started+=("$SB_PID")
        extra=(--target switchboard --url "$SB_URL" --access-key "$KEY" --server-pid "$SB_PID")
        if [ "$mode" = default ]; then
            start_appserver "$dir" || { echo "case=$name round=$round tag=$tag target=$target error=appserver" >>"$RESULTS"; stop_pid "$APP_PID"; stop_pid "$SB_PID"; return; }
            started+=("$APP_PID")
            extra+=(--appserver "$APP_URL" --app-pid "$APP_PID")
        fi
    else
        start_nchan "$dir" || { echo "case=$name round=$round tag=$tag target=$target error=start" >>"$RESULTS"; stop_pid "$NG_PID"; return; }
        started+=("$NG_PID")
        extra=(--target nchan --url "$NG_URL" --server-pid "$NG_WORKER")
    fi
    local args=("$@")
    local i
    for i in "${!args[@]}"; do args[i]=${args[i]//@DATA@/$dir/data}; done
    timeout 240 "${PIN_LG[@]}" "$LG" "${extra[@]}" "${args[@]}" >"$out" 2>&1
    rc=$?
    local p deaths=""
    for p in "${started[@]}"; do
        if died "$p"; then deaths="${deaths}server_died=${DIED_HOW// /_} "; fi
        stop_pid "$p"
        forget_pid "$p"
    done
    local line
    line=$(grep -m1 '^RESULT ' "$out")
    local problem
    problem=$(grep -m1 '^first problem: ' "$out" | sed 's/^first problem: //; s/ /_/g')
    if [ -n "$line" ]; then
        echo "case=$name round=$round tag=$tag rc=$rc ${deaths}${line#RESULT } problem=${problem:-none}" >>"$RESULTS"
    else
        echo "case=$name round=$round tag=$tag target=$target ${deaths}error=loadgen_rc_$rc problem=$(tail -1 "$out" | tr ' =' '__')" >>"$RESULTS"
    fi
    printf 'bench: %-14s round %d %-11s %-4s %s\n' "$name" "$round" "$target" "$tag" \
        "$(grep -m1 -E '^(delivered|server:)' "$out" || tail -1 "$out")" >&2
}

# ---- smoke ------------------------------------------------------------------------------------

if [ "$SMOKE" = 1 ]; then
    "$LG" --self-test || exit 1
    dir=$WORK/smoke
    start_switchboard "$dir" serverless || exit 1
    timeout 60 "$LG" --target switchboard --url "$SB_URL" --access-key "$KEY" --server-pid "$SB_PID" \
        --scenario broadcast --subscribers 100 --payload 64 --rate 0 --duration 2 --check >"$dir/out" 2>&1
    rc=$?
    died "$SB_PID" && echo "bench smoke: switchboard died during the run ($DIED_HOW)"
    stop_pid "$SB_PID"
    forget_pid "$SB_PID"
    grep -v '^RESULT' "$dir/out"
    if [ "$rc" != 0 ]; then
        echo "bench smoke: FAILED (loadgen exit $rc)"
        tail -5 "$dir/switchboard.log"
        exit 1
    fi
    echo "bench smoke: ok (zero loss, $(grep -o 'received=[0-9]*' "$dir/out" | cut -d= -f2) deliveries)"
    exit 0
fi

# ---- the standard set -------------------------------------------------------------------------

# name|description|switchboard mode|loadgen args (both)|switchboard-only args|nchan args, or "=case" to compare
# with that case's nchan runs instead of running nchan again
CASES=(
"b1k-64-flat|Broadcast, 1,000 subscribers, 64 B, flat out (REST API / nchan POST)|serverless|--scenario broadcast --subscribers 1000 --payload 64 --rate 0||"
"b1k-2k-flat|Broadcast, 1,000 subscribers, 2 KB, flat out|serverless|--scenario broadcast --subscribers 1000 --payload 2048 --rate 0||"
"b1k-64-r20|Broadcast, 1,000 subscribers, 64 B, 20 msg/s|serverless|--scenario broadcast --subscribers 1000 --payload 64 --rate 20||"
"b10k-64-flat|Broadcast, 10,000 subscribers, 64 B, flat out|serverless|--scenario broadcast --subscribers 10000 --payload 64 --rate 0 --window 8||"
"b10k-64-r2|Broadcast, 10,000 subscribers, 64 B, 2 msg/s|serverless|--scenario broadcast --subscribers 10000 --payload 64 --rate 2||"
"b1k-64-mp|Broadcast, 1,000 MessagePack subscribers, 64 B, flat out (nchan: b1k-64-flat)|serverless|--scenario broadcast --subscribers 1000 --payload 64 --rate 0|--protocol messagepack|=b1k-64-flat"
"b1k-64-ws|Broadcast, 1,000 subscribers, 64 B, flat out, published over WebSocket (Broadcast invocations via the app server, default mode / nchan pubsub frames)|default|--scenario broadcast --subscribers 1000 --payload 64 --rate 0 --via ws --publishers 2||"
"group10|Group send, 100 groups of 10, 64 B, flat out|serverless|--scenario group --subscribers 1000 --group-size 10 --payload 64 --rate 0||"
"user|Send to user, 1,000 users, 64 B, flat out|serverless|--scenario user --subscribers 1000 --payload 64 --rate 0||"
"echo-flat|Echo, 1,000 clients, 64 B, flat out (via the app server, default mode / nchan pubsub)|default|--scenario echo --subscribers 1000 --payload 64 --rate 0||"
"echo-r1k|Echo, 1,000 clients, 64 B, 1,000 msg/s|default|--scenario echo --subscribers 1000 --payload 64 --rate 1000||"
"idle-19k|19,000 idle WebSocket connections, held for the run's duration|serverless|--scenario connect --subscribers 19000||"
)
# b1k-64-flat against the normal build (tag on) and switchboard-nometrics (tag off): what the platform
# metrics' recorders cost on the broadcast path (src/metrics/metrics.h, SB_METRICS_OFF).
METRICS_BASE=b1k-64-flat
LOGS_CASE="logs|Broadcast, 1,000 subscribers, 64 B, flat out, every REST send traced (X-ASRS-Message-Tracing-Id): messaging logs collect-all off vs on|serverless|--scenario broadcast --subscribers 1000 --payload 64 --rate 0 --tracing"

wanted() { [ -z "${BENCH_CASES:-}" ] || [[ " $BENCH_CASES " == *" $1 "* ]]; }
# case_args NAME: the load generator arguments (both servers) of a standard case
case_args() {
    local c n common
    for c in "${CASES[@]}"; do
        IFS='|' read -r n _ _ common _ <<<"$c"
        [ "$n" = "$1" ] && { echo "$common"; return; }
    done
}
budget_left() { [ $((SECONDS - START)) -lt "$BUDGET" ]; }

# Facts the report needs besides the RESULT lines, kept in the raw results as "#meta KEY VALUE".
meta_put() { echo "#meta $1 $2" >>"$RESULTS"; }
meta() { sed -n "s/^#meta $1 //p" "$RESULTS" | tail -1; }

run_standard_set() {
    ensure_nchan
    [ "$NCHAN_OK" = 1 ] || echo "bench: $NCHAN_WHY; Switchboard runs alone" >&2
    local sb_desc
    if [ -n "${SWITCHBOARD_BIN:-}" ]; then
        sb_desc=${BENCH_SB_DESC:-"the binaries named by SWITCHBOARD_BIN / SWITCHBOARD_APPSERVER"}
    else
        sb_desc="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no git)')$(git -C "$ROOT" diff --quiet HEAD -- src appserver 2>/dev/null || echo ' with uncommitted changes')"
    fi
    meta_put switchboard "$sb_desc"
    meta_put cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online"
    meta_put memory "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    meta_put kernel "$(uname -r)"
    meta_put peer "$(nginx -v 2>&1 | sed 's/^nginx version: //'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?'), worker_processes 1"
    [ "$NCHAN_OK" = 1 ] || meta_put nchan_missing "$NCHAN_WHY"
    meta_put load_before "$LOAD_AT_START"
    meta_put rounds "$ROUNDS"
    meta_put duration "$DUR"
    [ ${#PIN_SERVER[@]} -gt 0 ] && meta_put pinned "server CPU 1, load generator CPU 0"
    local round c name desc mode common sbonly ngargs target tag logargs metrics_ok=0
    if wanted metrics; then
        if [ -z "$NM_BIN" ]; then
            meta_put metrics_missing "SWITCHBOARD_BIN is given but SWITCHBOARD_NOMETRICS_BIN is not (the metrics-off build of the same tree)"
        elif [ -x "$NM_BIN" ]; then
            metrics_ok=1
        else
            meta_put metrics_missing "$NM_BIN is missing (make BUILD=$BUILD $BUILD/switchboard-nometrics)"
        fi
        [ "$metrics_ok" = 1 ] || echo "bench: metrics case not run: $(meta metrics_missing)" >&2
    fi
    for round in $(seq "$ROUNDS"); do
        for c in "${CASES[@]}"; do
            IFS='|' read -r name desc mode common sbonly ngargs <<<"$c"
            wanted "$name" || continue
            if ! budget_left; then meta_put skipped "$name round $round"; continue; fi
            # A B A B: the servers alternate run by run, so slow drifts in the machine's load hit both alike
            for target in switchboard nchan; do
                if [ "$target" = switchboard ]; then
                    # shellcheck disable=SC2086
                    run_one "$name" "$round" switchboard "$mode" run --duration "$DUR" $common $sbonly
                elif [ "$NCHAN_OK" = 1 ] && [ "${ngargs:0:1}" != "=" ]; then
                    # shellcheck disable=SC2086
                    run_one "$name" "$round" nchan - run --duration "$DUR" $common $ngargs
                fi
            done
        done
        if wanted logs; then
            IFS='|' read -r name desc mode common <<<"$LOGS_CASE"
            if budget_left; then
                for tag in off on; do
                    logargs=()
                    [ "$tag" = on ] && logargs=(--logs --logs-dir @DATA@/storage)
                    # shellcheck disable=SC2086
                    run_one logs "$round" switchboard serverless "$tag" --duration "$DUR" $common "${logargs[@]}"
                done
            else
                meta_put skipped "logs round $round"
            fi
        fi
        if [ "$metrics_ok" = 1 ]; then
            if budget_left; then
                for tag in on off; do
                    RUN_SB_BIN=$SB_BIN
                    [ "$tag" = off ] && RUN_SB_BIN=$NM_BIN
                    # shellcheck disable=SC2046
                    run_one metrics "$round" switchboard serverless "$tag" --duration "$DUR" $(case_args "$METRICS_BASE")
                done
                RUN_SB_BIN=""
            else
                meta_put skipped "metrics round $round"
            fi
        fi
    done
    meta_put load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
    meta_put finished "$(date -u +%Y-%m-%dT%H:%MZ)"
    meta_put elapsed "$((SECONDS - START))"
}

# ---- report -----------------------------------------------------------------------------------

# values CASE TARGET TAG KEY: the key's values over the rounds (runs without a RESULT are skipped)
values() {
    awk -v c="$1" -v t="$2" -v g="$3" -v k="$4" '
        /^#/ { next }
        { delete f; for (i = 1; i <= NF; i++) { n = index($i, "="); if (n) f[substr($i, 1, n - 1)] = substr($i, n + 1) } }
        f["case"] == c && f["target"] == t && f["tag"] == g && (k in f) { print f[k] }' "$RESULTS"
}
# median of the values on stdin; "-" if none
median() { sort -g | awk '{ v[NR] = $1 } END { if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { values "$@" | median; }
worst() { values "$@" | sort -g | awk '{ w = $1 } END { print NR ? w : "-" }'; }
# ratio A B with 2 decimals; "-" when either is missing or B is 0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
# a rate or size, 3 significant digits
fmt() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else if (v + 0 >= 1e6) printf "%.2fM", v / 1e6; else if (v + 0 >= 1e4) printf "%.1fk", v / 1e3; else if (v + 0 >= 100) printf "%.0f", v; else printf "%.2g", v }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.1f", v / 1000 }'; }
# FORMATTER CASE TARGET TAG KEY: the median with the range over the rounds, "761.7k (472.2k-792.8k)"
spread_with() {
    local f=$1 v n
    shift
    v=$(values "$@" | sort -g)
    [ -n "$v" ] || { echo "-"; return; }
    n=$(echo "$v" | wc -l)
    if [ "$n" -gt 1 ]; then
        echo "$($f "$(echo "$v" | median)") ($($f "$(echo "$v" | head -1)")-$($f "$(echo "$v" | tail -1)"))"
    else
        $f "$v"
    fi
}
spread() { spread_with fmt "$@"; }
lat() { echo "$(ms "$(med "$@" p50_us)") / $(ms "$(med "$@" p99_us)") / $(ms "$(med "$@" max_us)")"; }
pass() { if [ "$1" = "-" ]; then echo "n/a"; elif awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { exit !((op == ">=" && v + 0 >= t + 0) || (op == "<=" && v + 0 <= t + 0)) }'; then echo "**met**"; else echo "**not met**"; fi; }

ng_case() { # the case whose nchan runs a case compares with
    local name=$1 c n rest
    for c in "${CASES[@]}"; do
        IFS='|' read -r n _ _ _ _ rest <<<"$c"
        if [ "$n" = "$name" ]; then [ "${rest:0:1}" = "=" ] && echo "${rest:1}" || echo "$name"; return; fi
    done
    echo "$name"
}

has_case() { grep -q "^case=$1 " "$RESULTS"; }

write_report() {
    local rounds dur sb ng r loss res open off on recs exp c name desc ngc tag k key label s
    rounds=$(meta rounds)
    dur=$(meta duration)
    echo "# Benchmark results"
    echo
    echo "Written by \`make bench\` (bench/run.sh), finished $(meta finished) after $(meta elapsed) s. Switchboard: $(meta switchboard)."
    echo
    echo "## Machine"
    echo
    echo "- CPU: $(meta cpu)"
    echo "- Memory: $(meta memory); kernel $(meta kernel)"
    echo "- Peer: $(meta peer)"
    [ -n "$(meta nchan_missing)" ] && echo "- **nchan was not run: $(meta nchan_missing).**"
    echo "- Load averages (1, 5, 15 min): $(meta load_before) before the bench, $(meta load_after) after it (the bench itself keeps about 2 busy)."
    echo "  Server and load generator share the cores$([ -n "$(meta pinned)" ] && echo " (pinned: $(meta pinned))"); other work on the machine shows as"
    echo "  server CPU under 100 % in flat-out runs and as the spread between rounds given in parentheses."
    cat <<EOF

## Method

One process of each server (Switchboard: one event loop, its write threads (one per extra core, sharing the socket
writes of a busy turn) and its log writer thread; nginx: one worker) is started fresh for every run on loopback and driven by bench/loadgen (C, one epoll thread). Each case runs $rounds times, the
servers alternating run by run (A B A B); figures are medians (with the range over the rounds where it matters),
ratios are Switchboard's median over nchan's. Publishing lasts $dur s per run.

- Every message carries its send time and a sequence number. Latency runs from just before the publish is written
  to the kernel's receive timestamp on the subscriber's socket. Loss = deliveries owed by accepted publishes -
  deliveries received.
- "Flat out" keeps a fixed number of publishes in flight (32 broadcasts, 8 at 10,000 subscribers, 256 group sends,
  2,048 user sends or echoes), so the figure is the server's pace and no server's queue limit is hit because of the
  generator. Flat-out latency is mostly that window divided by the throughput; the paced cases are the latency
  figures.
- Server CPU is utime + stime from /proc over the publishing and drain phases, and "deliveries per CPU-second"
  divides by it: it is the figure least disturbed by other work on the machine.
- RSS per connection = (RSS with every connection open - RSS before the first connect) / connections.
- Switchboard runs in serverless mode (REST API) unless the case says default mode (reference app server in between).

## Targets

| Target | Switchboard | nchan | Ratio | Result |
|---|---|---|---|---|
EOF
    sb=$(med b1k-64-flat switchboard run deliveries_per_s); ng=$(med b1k-64-flat nchan run deliveries_per_s); r=$(ratio "$sb" "$ng")
    loss=$(worst b1k-64-flat switchboard run loss)
    res=$(pass "$r" ">=" 2)
    [ -n "$loss" ] && [ "$loss" != 0 ] && res="**not met** (loss $loss)"
    echo "| 1,000 subs, 64 B, flat out: deliveries/s >= 2x nchan, no loss (worst loss: ${loss:--}) | $(spread b1k-64-flat switchboard run deliveries_per_s) | $(spread b1k-64-flat nchan run deliveries_per_s) | $r | $res |"
    for c in b1k-64-r20 b10k-64-r2; do
        sb=$(med "$c" switchboard run p99_us); ng=$(med "$c" nchan run p99_us); r=$(ratio "$sb" "$ng")
        echo "| $c: p99 latency <= half of nchan's (ms) | $(spread_with ms "$c" switchboard run p99_us) | $(spread_with ms "$c" nchan run p99_us) | $r | $(pass "$r" "<=" 0.5) |"
    done
    sb=$(med idle-19k switchboard run rss_per_conn_b); ng=$(med idle-19k nchan run rss_per_conn_b)
    open=$(med idle-19k switchboard run open_end)
    res=$(pass "$sb" "<=" 1024)
    [ "$open" != - ] && [ "${open%.*}" -lt 19000 ] && res="**not met** (only $open open)"
    echo "| 19,000 idle WebSockets at <= 1 KB server user-space memory each (bytes/connection) | $(fmt "$sb") | $(fmt "$ng") | $(ratio "$sb" "$ng") | $res |"
    sb=$(med idle-19k switchboard run connect_per_s); ng=$(med idle-19k nchan run connect_per_s)
    echo "| Connect rate >= 10,000/s (19,000 connections; Switchboard: negotiate + upgrade + handshake, nchan: upgrade) | $(spread idle-19k switchboard run connect_per_s) | $(spread idle-19k nchan run connect_per_s) | $(ratio "$sb" "$ng") | $(pass "$sb" ">=" 10000) |"
    off=$(med logs switchboard off deliveries_per_s); on=$(med logs switchboard on deliveries_per_s); r=$(ratio "$on" "$off")
    recs=$(values logs switchboard on log_records | paste -sd' '); exp=$(values logs switchboard on expected | paste -sd' ')
    res=$(pass "$r" ">=" 0.9)
    if [ "$recs" = "$exp" ]; then
        res="$res; every record archived"
    else
        res="$res; **records missing** (archived / owed per round: $(paste -d/ <(echo "$recs" | tr ' ' '\n') <(echo "$exp" | tr ' ' '\n') | paste -sd' ' | sed 's/ /, /g'))"
    fi
    echo "| Messaging logs collect-all >= 90% of logs-off throughput (deliveries/s on / off) | $(fmt "$on") / $(fmt "$off") | - | $r | $res |"
    echo
    if has_case metrics || [ -n "$(meta metrics_missing)" ]; then
        echo "## Cost of platform metrics"
        echo
        echo "$METRICS_BASE (broadcast, 1,000 subscribers, 64 B, flat out) against the normal build (on) and against"
        echo "switchboard-nometrics (off): the same tree with the per-read, per-message and per-request metric recorders"
        echo "compiled out of their callers (\`make \$(BUILD)/switchboard-nometrics\`), alternated run by run (on off on off)."
        echo
        if [ -n "$(meta metrics_missing)" ]; then
            echo "**Not run: $(meta metrics_missing).**"
        else
            on=$(med metrics switchboard on deliveries_per_s); off=$(med metrics switchboard off deliveries_per_s)
            echo "| Measure | On | Off | Ratio on / off |"
            echo "|---|---|---|---|"
            echo "| Platform metrics on / off (deliveries/s) | $(spread metrics switchboard on deliveries_per_s) | $(spread metrics switchboard off deliveries_per_s) | $(ratio "$on" "$off") |"
            on=$(med metrics switchboard on deliveries_per_cpu_s); off=$(med metrics switchboard off deliveries_per_cpu_s)
            echo "| Deliveries per server CPU-second | $(spread metrics switchboard on deliveries_per_cpu_s) | $(spread metrics switchboard off deliveries_per_cpu_s) | $(ratio "$on" "$off") |"
        fi
        echo
    fi
    echo "## All figures (medians)"
    echo
    echo "| Case | Deliveries/s: Switchboard | nchan | Ratio | Latency p50 / p99 / max, ms: Switchboard | nchan | Server CPU %: SB / nchan | Deliveries per CPU-second: SB / nchan | Worst loss: SB / nchan |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for c in "${CASES[@]}"; do
        IFS='|' read -r name desc _ <<<"$c"
        [ "$name" = idle-19k ] && continue
        has_case "$name" || continue
        ngc=$(ng_case "$name")
        sb=$(med "$name" switchboard run deliveries_per_s); ng=$(med "$ngc" nchan run deliveries_per_s)
        echo "| **$name**: $desc | $(spread "$name" switchboard run deliveries_per_s) | $(spread "$ngc" nchan run deliveries_per_s) | $(ratio "$sb" "$ng") | $(lat "$name" switchboard run) | $(lat "$ngc" nchan run) | $(fmt "$(med "$name" switchboard run server_cpu_pct)") / $(fmt "$(med "$ngc" nchan run server_cpu_pct)") | $(fmt "$(med "$name" switchboard run deliveries_per_cpu_s)") / $(fmt "$(med "$ngc" nchan run deliveries_per_cpu_s)") | $(worst "$name" switchboard run loss) / $(worst "$ngc" nchan run loss) |"
    done
    if has_case logs; then
        for tag in off on; do
            echo "| **logs $tag**: broadcast 1,000 subscribers, 64 B, flat out, traced sends, collect-all $tag | $(spread logs switchboard "$tag" deliveries_per_s) | - | - | $(lat logs switchboard "$tag") | - | $(fmt "$(med logs switchboard "$tag" server_cpu_pct)") / - | $(fmt "$(med logs switchboard "$tag" deliveries_per_cpu_s)") / - | $(worst logs switchboard "$tag" loss) / - |"
        done
    fi
    if has_case metrics; then
        for tag in on off; do
            echo "| **metrics $tag**: $METRICS_BASE, platform metrics' hot-path recorders $tag | $(spread metrics switchboard "$tag" deliveries_per_s) | - | - | $(lat metrics switchboard "$tag") | - | $(fmt "$(med metrics switchboard "$tag" server_cpu_pct)") / - | $(fmt "$(med metrics switchboard "$tag" deliveries_per_cpu_s)") / - | $(worst metrics switchboard "$tag" loss) / - |"
        done
    fi
    if has_case idle-19k; then
        echo
        echo "| Idle connections (19,000, held $dur s) | Switchboard | nchan | Ratio |"
        echo "|---|---|---|---|"
        for k in "open_end:Open at the end" "connect_per_s:Connects/s" "connect_cpu_s:Server CPU seconds to accept them" \
            "rss_per_conn_b:Server RSS per connection, bytes" "hwm_kb:Server peak RSS, kB"; do
            key=${k%%:*}; label=${k#*:}
            sb=$(med idle-19k switchboard run "$key"); ng=$(med idle-19k nchan run "$key")
            echo "| $label | $sb | $ng | $(ratio "$sb" "$ng") |"
        done
    fi
    echo
    echo "## Problems seen"
    echo
    s=$(awk '/^#/ { next }
        { delete f; for (i = 1; i <= NF; i++) { n = index($i, "="); if (n) f[substr($i, 1, n - 1)] = substr($i, n + 1) } }
        ("error" in f) || ("server_died" in f) || f["loss"] + 0 != 0 || f["failed"] + 0 != 0 || f["closed"] + 0 != 0 ||
        f["publish_errors"] + 0 != 0 || (f["problem"] != "" && f["problem"] != "none") ||
        (f["scenario"] == "broadcast" && f["closed"] == "0" && f["recv_min"] != f["recv_max"]) ||
        (f["log_records"] + 0 >= 0 && f["log_records"] + 0 < f["expected"] + 0) {
            printf "- %s round %s %s %s: ", f["case"], f["round"], f["target"], f["tag"]
            if ("server_died" in f) { d = f["server_died"]; gsub("_", " ", d); printf "**the server died (%s)** ", d }
            if ("error" in f) printf "run failed (%s) ", f["error"]
            else printf "loss %s, failed %s, closed %s, publish errors %s ", f["loss"], f["failed"], f["closed"], f["publish_errors"]
            if (f["log_records"] + 0 >= 0 && f["log_records"] + 0 < f["expected"] + 0)
                printf "**%d of %d messaging log records missing from the archive** ", f["expected"] - f["log_records"], f["expected"]
            if (f["log_dropped"] + 0 > 0)
                printf "(the service logged LogRecordsDropped warnings for %d records) ", f["log_dropped"]
            if (f["recv_min"] != f["recv_max"] && f["scenario"] == "broadcast")
                printf "(subscribers got %s to %s messages each) ", f["recv_min"], f["recv_max"]
            if (f["problem"] != "" && f["problem"] != "none") { p = f["problem"]; gsub("_", " ", p); printf "- first problem: %s", p }
            print ""
        }' "$RESULTS")
    if [ -n "$s" ]; then echo "$s"; else echo "None: every run opened every connection, lost nothing and had no publish refused."; fi
    sed -n 's/^#meta skipped /- skipped (time budget reached): /p' "$RESULTS"
    echo
    echo "## Raw results"
    echo
    echo "One line per run as bench/loadgen printed it, plus the facts above; \`bench/run.sh --report FILE\` rebuilds this"
    echo "report from them."
    echo
    echo '```'
    cat "$RESULTS"
    echo '```'
}

if [ -n "$REPORT_ONLY" ]; then
    # accept either a bare results file or a report whose raw block holds one
    # shellcheck disable=SC2016
    if grep -q '^```$' "$REPORT_ONLY"; then
        sed -n '/^```$/,/^```$/p' "$REPORT_ONLY" | sed '1d;$d' >"$RESULTS"
    else
        cp "$REPORT_ONLY" "$RESULTS"
    fi
else
    run_standard_set
fi
write_report >"$OUT"
echo "bench: wrote $OUT" >&2
