#!/usr/bin/env bash
# bench/live-matrix.sh — issue 8's live measurement matrix in one table.
#
# Runs bench/live-load.sh (so every figure means what it says there) for:
#   - send coalescing windows 0 20 50 100 350 ms (COALESCE_MS) with 2 workers,
#   - 1 worker at 0 ms (against the 2-worker 0 ms row: the cost of cross-worker wake-ups),
#   - node-media-server (npm),
# each with N=2000 HTTP-FLV readers of one BITRATE=1640k stream (issue 8's 1.64 Mbit/s) for
# DURATION=20 s, and prints one markdown table: readers ok, CPU %, RSS, delivered Gbit/s,
# % of one core per delivered Gbit/s, sends per reader per second, bytes per send, lag p99 and
# lag over best p99. With ROUNDS > 1 the whole matrix repeats, round by round, so each
# setting's rounds are spread over the session instead of back to back.
#
# Needs a build that knows `live.send_coalesce_ms` (issue 8); against an older build run
# WINDOWS=- WORKERS_COALESCE=- (the server's default, without the key), otherwise the config
# check of the first run stops the matrix at once.
#
# How long: every run is a fresh server plus DURATION + about 6 s (start, readiness probe,
# 2,000 closes), so with the defaults 7 runs of ~26 s: about 3.5 minutes per round (plus ~10 s
# the first time to encode the clip, and a one-time npm install of node-media-server).
# Bounded like live-load.sh (loadgen runs of DURATION s, loopback only, everything stopped on
# exit).
#
# Run:
#   cargo build --release && bench/live-matrix.sh
#   OUT=/tmp/matrix.md ROUNDS=3 bench/live-matrix.sh
# Environment:
#   N              readers (default 2000)
#   BITRATE        default 1640k (see live-load.sh)
#   DURATION       seconds per run (default 20)
#   ROUNDS         repeats of the whole matrix (default 1)
#   WINDOWS        coalescing windows in ms (default "0 20 50 100 350"); "-" in the list
#                  runs the server's default without setting send_coalesce_ms (the only way to
#                  run against a build that does not know the key yet)
#   WORKERS_COALESCE  the window of the 1-worker row (default 0; "-" as above)
#   NMS            1 (default) to include node-media-server, 0 to leave it out
#   OUT            also write the table to this file, and every run's full output to
#                  OUT.details.txt
#   URINGCAST_BIN, LOADGEN_BIN, RAMP, WARMUP_S, CONFIG_EXTRA, BENCH_CACHE ...: passed through
#                  to live-load.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

N=${N:-2000}
export BITRATE=${BITRATE:-1640k}
export DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-1}
WINDOWS=${WINDOWS:-0 20 50 100 350}
WORKERS_COALESCE=${WORKERS_COALESCE:-0}
NMS=${NMS:-1}
OUT=${OUT:-}
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 100 ]; then
    echo "ROUNDS must be 1..100" >&2
    exit 2
fi
# live-load.sh checks the rest (N, DURATION, the windows) before it starts anything. The matrix
# sets these itself:
unset SERVER SERVERS BINS COALESCE_MS WORKERS SETTINGS_LABEL PERF_DATA FIRST_ROUND

WORK=$(mktemp -d /tmp/uringcast-live-matrix.XXXXXX)
CHILD_PID=""
cleanup() {
    # The running live-load.sh stops its own server, publisher and loadgen on TERM.
    if [ -n "$CHILD_PID" ]; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One cell per line: "SERVERS WORKERS COALESCE" ("-" = not set).
CELLS=()
for w in $WINDOWS; do CELLS+=("uringcast 2 $w"); done
CELLS+=("uringcast 1 $WORKERS_COALESCE")
[ "$NMS" = 1 ] && CELLS+=("node-media-server - -")

part=0
started=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
    for cell in "${CELLS[@]}"; do
        read -r servers workers coalesce <<<"$cell"
        part=$((part + 1))
        echo "=== round $round/$ROUNDS: $servers workers=$workers coalesce=$coalesce ms (run $part of $((ROUNDS * ${#CELLS[@]})), $(($(date +%s) - started)) s so far)" >&2
        env_args=(SERVERS="$servers" ROUNDS=1 FIRST_ROUND="$round" OUT="$WORK/part-$part.md")
        [ "$workers" != - ] && env_args+=(WORKERS="$workers")
        [ "$coalesce" != - ] && env_args+=(COALESCE_MS="$coalesce")
        # In the background and waited for, so that a TERM to this script reaches it at once.
        env "${env_args[@]}" "$HERE/live-load.sh" "$N" >"$WORK/part-$part.txt" &
        CHILD_PID=$!
        rc=0
        wait "$CHILD_PID" || rc=$?
        CHILD_PID=""
        if [ "$rc" != 0 ]; then
            cat "$WORK/part-$part.txt" >&2
            echo "live-matrix: run $part ($cell) failed" >&2
            exit 1
        fi
    done
done

table() {
    head -n 2 "$WORK/part-1.md"
    for i in $(seq 1 "$part"); do
        awk 'NR > 2 && /^\|/' "$WORK/part-$i.md"
    done
    echo
    echo "(N=$N, BITRATE=$BITRATE, DURATION=${DURATION} s, $ROUNDS round(s), $(nproc) CPUs, kernel $(uname -r);" \
        "live-load.sh figures: CPU % of one core and Gbit/s over each run's steady-state window, lag over" \
        "the whole run; took $(($(date +%s) - started)) s)"
}
echo
table
if [ -n "$OUT" ]; then
    table >"$OUT"
    for i in $(seq 1 "$part"); do
        cat "$WORK/part-$i.txt"
        echo
    done >"$OUT.details.txt"
    echo "wrote $OUT and $OUT.details.txt" >&2
fi
