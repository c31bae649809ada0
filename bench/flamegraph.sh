#!/usr/bin/env bash
# bench/flamegraph.sh — a CPU flamegraph of uringcast serving a 64 KiB file to wrk
# (64 connections, keep-alive), written to flamegraphs/vod-64k.svg.
#
# Needs: perf (Debian linux-perf), wrk, and inferno (`cargo install inferno`).
# Samples the server process only (all its threads, io-wq workers included) with perf's
# cpu-clock event at 499 Hz for $DURATION seconds (default 8), DWARF call graphs.
# Bounded: wrk runs for DURATION + 2 s on loopback; everything started here is stopped on exit.
#
# Run:  cargo build --release && bench/flamegraph.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib.sh"
DURATION=${DURATION:-8}
BIN=${URINGCAST_BIN:-$ROOT/target/release/uringcast}
OUT=${OUT:-$ROOT/flamegraphs/vod-64k.svg}
for tool in perf wrk inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
WORK=$(mktemp -d /tmp/uringcast-flame.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/media"
head -c 65536 /dev/urandom > "$WORK/media/64k.bin"
PORT=$(free_port)
"$BIN" --http-listen "127.0.0.1:$PORT" --admin-listen 127.0.0.1:0 --media-root "$WORK/media" >"$WORK/log" 2>&1 &
PID=$!
wait_http "http://127.0.0.1:$PORT/vod/64k.bin" 10
wrk -t2 -c64 -d$((DURATION + 2))s "http://127.0.0.1:$PORT/vod/64k.bin" >"$WORK/wrk.txt" &
sleep 1
perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$PID" -o "$WORK/perf.data" -- sleep "$DURATION" 2>/dev/null
wait %2 2>/dev/null || true
perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --title "uringcast: 64 KiB file, wrk -c64 (cpu-clock, $DURATION s)" >"$OUT"
grep -E "Requests/sec|Transfer/sec" "$WORK/wrk.txt" || true
echo "wrote $OUT"
