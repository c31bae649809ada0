#!/usr/bin/env bash
# bench/live-flamegraph.sh — a CPU flamegraph of uringcast's live fan-out: one stream, N
# HTTP-FLV readers, written to flamegraphs/$LABEL.svg.
#
# It runs bench/live-load.sh once (one server, one N, one round; every knob of that script
# applies: BITRATE, WORKERS, COALESCE_MS, CONFIG_EXTRA, URINGCAST_BIN, DURATION, RAMP...) with
# PERF_DATA set, so perf samples the server (all its threads, io-wq workers included) with the
# cpu-clock event at $PERF_FREQ Hz (default 499) and DWARF call graphs for $PERF_S seconds
# (default 8) from the start of the steady-state window (after the ramp). The stacks are then
# folded and drawn with inferno, as bench/flamegraph.sh does for VOD, and the functions with
# the most self time are printed. The run's own table is printed too; its CPU figures include
# perf's sampling overhead, so take the figures from a live-load.sh run without perf.
#
# Needs: perf (Debian linux-perf), inferno (`cargo install inferno`), and what live-load.sh
# needs (ffmpeg, curl, jq, ss, the release build). Bounded like live-load.sh: one run of
# DURATION s (default 20) on loopback, perf bounded by `sleep PERF_S`; everything started is
# stopped on exit. N=2000 with the defaults takes about 30 s plus the perf script/folding
# (a minute or two for ~8,000 DWARF samples).
#
# Run:
#   cargo build --release
#   LABEL=live-2000-hub-0ms BITRATE=1640k WORKERS=2 COALESCE_MS=0 bench/live-flamegraph.sh 2000
# Environment (besides live-load.sh's):
#   LABEL      names the SVG: flamegraphs/$LABEL.svg (default live-N)
#   SVG        full output path instead
#   FOLDED     also keep the folded stacks at this path (for inferno-diff-folded between two
#              builds: inferno-diff-folded before.folded after.folded | inferno-flamegraph)
#   TOP        how many self-time functions to print (default 25)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

N=${1:-${N:-2000}}
LABEL=${LABEL:-live-$N}
SVG=${SVG:-$ROOT/flamegraphs/$LABEL.svg}
FOLDED=${FOLDED:-}
TOP=${TOP:-25}
export DURATION=${DURATION:-20}
export PERF_S=${PERF_S:-8} PERF_FREQ=${PERF_FREQ:-499} CALL_GRAPH=${CALL_GRAPH:-dwarf,16384}

[[ $N =~ ^[0-9]+$ ]] || { echo "N must be a number of readers" >&2; exit 2; }
[[ $LABEL =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "LABEL must be [A-Za-z0-9_.-]+ (it names a file)" >&2; exit 2; }
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || {
        echo "missing tool: $tool (apt-get install linux-perf; cargo install inferno)" >&2
        exit 2
    }
done
case ${SERVERS:-${SERVER:-uringcast}} in
    uringcast) ;;
    *) echo "live-flamegraph.sh profiles uringcast only (SERVERS=uringcast)" >&2; exit 2 ;;
esac
BIN_LIST=${BINS:-${URINGCAST_BIN:-$ROOT/target/release/uringcast}}
[ "$(echo "$BIN_LIST" | wc -w)" = 1 ] || { echo "one binary at a time (BINS has several)" >&2; exit 2; }
BIN=${BIN_LIST#*=}
[ "$BIN" != standin ] || { echo "the stand-in is not uringcast" >&2; exit 2; }

WORK=$(mktemp -d /tmp/uringcast-live-flame.XXXXXX)
CHILD_PID=""
cleanup() {
    if [ -n "$CHILD_PID" ]; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# In the background and waited for, so that a TERM to this script reaches it at once.
PERF_DATA=$WORK/perf.data SERVERS=uringcast ROUNDS=1 FIRST_ROUND=1 OUT=$WORK/summary.md \
    "$HERE/live-load.sh" "$N" &
CHILD_PID=$!
wait "$CHILD_PID"
CHILD_PID=""

settings=$(awk -F' [|] ' 'NR == 3 { print $2 }' "$WORK/summary.md")
version=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
echo "folding $(du -h "$WORK/perf.data" | cut -f1) of perf data..." >&2
perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"$WORK/folded"
[ -s "$WORK/folded" ] || { echo "no stacks in the profile" >&2; exit 1; }
mkdir -p "$(dirname "$SVG")"
inferno-flamegraph --title "uringcast live: $N HTTP-FLV readers, $settings ($(basename "$BIN") @ $version; cpu-clock ${PERF_FREQ} Hz, ${PERF_S} s)" \
    <"$WORK/folded" >"$SVG"
[ -z "$FOLDED" ] || cp "$WORK/folded" "$FOLDED"

# Self time per function: the leaf frame of each folded stack.
echo
echo "top $TOP functions by self time (% of samples):"
awk 'match($0, / [0-9]+$/) { n = substr($0, RSTART + 1); k = split(substr($0, 1, RSTART - 1), f, ";")
        self[f[k]] += n; total += n }
    END { for (s in self) printf "%6.2f%%  %s\n", 100 * self[s] / total, s }' "$WORK/folded" |
    sort -rn | head -n "$TOP"
echo
echo "wrote $SVG"
