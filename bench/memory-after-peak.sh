#!/usr/bin/env bash
# bench/memory-after-peak.sh — does the server give memory back after a peak of live traffic?
#
# What it measures: starts a uringcast binary on loopback, records its idle RSS, then drives a
# peak: $PUBLISHERS HTTP-FLV publishes (ffmpeg -re -stream_loop -1 -c copy, POST, the
# 720p30 ~3 Mbit/s clip of bench/live-load.sh) for $PEAK_S s, with $READERS HTTP-FLV readers
# (uringcast-loadgen, spread evenly over the streams) for the same time. Then it stops the load
# and samples VmRSS once a second for $AFTER_S s. The streams end after the server's publisher
# grace period (5 s by default), so their rings are freed by then; whatever RSS remains after
# that is allocator retention (or a leak). One line per run:
#   variant round idle-MB peak-MB +1s +5s +10s +20s +${AFTER_S}s streams-left
#
# Comparing allocators / settings: VARIANTS lists "label|binary|ENV=V ENV2=V2" entries, one per
# line; ROUNDS rounds run them alternately (A B C, A B C, ...) so a busy neighbour on the box
# hits every variant alike, and a summary prints each column's median per variant with the
# min–max range as the noise. Without VARIANTS: one variant, "current", target/release/uringcast.
#
# Bounds: PUBLISHERS ≤ 64, READERS ≤ 4000, PEAK_S ≤ 120, AFTER_S ≤ 300, ROUNDS ≤ 10; every
# process is bounded by ffmpeg -t / loadgen --duration-s as well, everything is on 127.0.0.1,
# and everything started here is stopped on exit (trap). Defaults (20 publishes, 300 readers,
# 15 s + 30 s, 1 round): about 50 s per run.
#
# Run:
#   cargo build --release && bench/memory-after-peak.sh
#   VARIANTS=$'glibc|/tmp/a/uringcast|\ntrim|/tmp/a/uringcast|URINGCAST_MALLOC_TRIM_MS=5000' \
#       ROUNDS=3 bench/memory-after-peak.sh
# Environment: VARIANTS, ROUNDS (1), PUBLISHERS (20), READERS (300), PEAK_S (15), AFTER_S (30),
#   WORKERS (nproc), LOADGEN_BIN (target/release/uringcast-loadgen),
#   BENCH_CACHE (/tmp/uringcast-bench, shared with live-load.sh).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib.sh"

LOADGEN_BIN=${LOADGEN_BIN:-$ROOT/target/release/uringcast-loadgen}
VARIANTS=${VARIANTS:-"current|$ROOT/target/release/uringcast|"}
ROUNDS=${ROUNDS:-1}
PUBLISHERS=${PUBLISHERS:-20}
READERS=${READERS:-300}
PEAK_S=${PEAK_S:-15}
AFTER_S=${AFTER_S:-30}
WORKERS=${WORKERS:-$(nproc)}
BENCH_CACHE=${BENCH_CACHE:-/tmp/uringcast-bench}
CLIP=$BENCH_CACHE/clip-720p30-3M-20s.flv

bound() { # NAME VALUE MIN MAX
    if ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
        echo "$1 must be an integer in $3..$4 (got '$2')" >&2
        exit 2
    fi
}
bound PUBLISHERS "$PUBLISHERS" 1 64
bound READERS "$READERS" 0 4000
bound PEAK_S "$PEAK_S" 5 120
bound AFTER_S "$AFTER_S" 20 300
bound ROUNDS "$ROUNDS" 1 10
for tool in ffmpeg curl ss; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
[ -x "$LOADGEN_BIN" ] || { echo "no loadgen at $LOADGEN_BIN (cargo build --release)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/uringcast-mem-bench.XXXXXX)
PIDS=()
SERVER_PID=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    stop_pid "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -s "$CLIP" ]; then
    mkdir -p "$BENCH_CACHE"
    echo "encoding test clip $CLIP (once)..." >&2
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=1000:sample_rate=48000 \
        -t 20 -c:v libx264 -preset ultrafast -tune zerolatency -b:v 3M -maxrate 3M -bufsize 3M \
        -g 60 -c:a aac -b:a 128k -f flv "$CLIP.tmp.flv"
    mv "$CLIP.tmp.flv" "$CLIP"
fi

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
stream_count() {
    curl -s --max-time 2 "http://127.0.0.1:$1/api/v1/streams" | grep -o '"name":' | wc -l
}

# run_one LABEL BINARY ENV... : one measurement; prints its result line.
run_one() {
    local label=$1 bin=$2 env_args=$3 round=$4
    [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 2; }
    local port api_port i pid peak=0 rss idle admin_args=()
    port=$(free_port)
    api_port=$port
    # Builds with an admin listener serve the API there only (older ones on the HTTP port).
    if "$bin" --help 2>/dev/null | grep -q -- --admin-listen; then
        api_port=$(free_port)
        admin_args=(--admin-listen "127.0.0.1:$api_port")
    fi
    mkdir -p "$WORK/media"
    # shellcheck disable=SC2086 # env_args is a list of NAME=VALUE words on purpose
    env $env_args "$bin" --http-listen "127.0.0.1:$port" "${admin_args[@]}" --media-root "$WORK/media" \
        --workers "$WORKERS" >"$WORK/server-$label-$round.log" 2>&1 &
    SERVER_PID=$!
    wait_http "http://127.0.0.1:$port/healthz" 10 || { cat "$WORK/server-$label-$round.log" >&2; exit 1; }
    sleep 1
    idle=$(rss_kb "$SERVER_PID")
    PIDS=()
    for i in $(seq 1 "$PUBLISHERS"); do
        ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$CLIP" \
            -t $((PEAK_S + 10)) -c copy -f flv -method POST "http://127.0.0.1:$port/live/s$i.flv" \
            >"$WORK/pub-$i.log" 2>&1 &
        PIDS+=($!)
    done
    # All streams up (at most 15 s), then the readers, spread over the streams.
    for _ in $(seq 1 150); do
        [ "$(stream_count "$api_port")" -ge "$PUBLISHERS" ] && break
        sleep 0.1
    done
    local per_stream=$((READERS / PUBLISHERS)) extra=$((READERS % PUBLISHERS)) n
    for i in $(seq 1 "$PUBLISHERS"); do
        n=$per_stream
        [ "$i" -le "$extra" ] && n=$((n + 1))
        [ "$n" -gt 0 ] || continue
        "$LOADGEN_BIN" "http://127.0.0.1:$port/live/s$i.flv" --readers "$n" \
            --duration-s "$PEAK_S" --ramp-per-s 200 --quiet --json \
            >"$WORK/lg-$i.json" 2>"$WORK/lg-$i.log" &
        PIDS+=($!)
    done
    for _ in $(seq 1 "$PEAK_S"); do
        sleep 1
        rss=$(rss_kb "$SERVER_PID")
        [ "$rss" -gt "$peak" ] && peak=$rss
    done
    # Stop the load: publishers and any loadgen still running.
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    local t at=(1 5 10 20 "$AFTER_S") out=()
    for t in $(seq 1 "$AFTER_S"); do
        sleep 1
        rss=$(rss_kb "$SERVER_PID")
        [ "$rss" -gt "$peak" ] && peak=$rss
        for i in "${at[@]}"; do
            [ "$t" = "$i" ] && out+=("$((rss / 1024))")
        done
    done
    local left
    left=$(stream_count "$api_port")
    stop_pid "$SERVER_PID"
    SERVER_PID=""
    echo "$label $round $((idle / 1024)) $((peak / 1024)) ${out[*]} $left"
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
echo "publishers=$PUBLISHERS readers=$READERS peak=${PEAK_S}s after=${AFTER_S}s workers=$WORKERS rounds=$ROUNDS; $(nproc) CPUs, kernel $(uname -r)" >&2
printf '%-14s %5s %7s %7s %6s %6s %6s %6s %6s %6s\n' variant round idle-MB peak-MB +1s +5s +10s +20s "+${AFTER_S}s" streams
for round in $(seq 1 "$ROUNDS"); do
    while IFS='|' read -r label bin env_args; do
        [ -n "$label" ] || continue
        line=$(run_one "$label" "$bin" "$env_args" "$round")
        echo "$line" >>"$RESULTS"
        echo "$line" | awk '{ printf "%-14s %5s %7s %7s %6s %6s %6s %6s %6s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
    done <<<"$VARIANTS"
done

if [ "$ROUNDS" -gt 1 ]; then
    echo
    echo "medians over $ROUNDS rounds (min-max):"
    printf '%-14s %9s %9s %9s %9s %9s %9s %9s\n' variant idle-MB peak-MB +1s +5s +10s +20s "+${AFTER_S}s"
    for label in $(awk '{ print $1 }' "$RESULTS" | awk '!seen[$0]++'); do
        row=$(printf '%-14s' "$label")
        for col in 3 4 5 6 7 8 9; do
            vals=$(awk -v l="$label" -v c="$col" '$1 == l { print $c }' "$RESULTS")
            med=$(echo "$vals" | median)
            lo=$(echo "$vals" | sort -g | head -1)
            hi=$(echo "$vals" | sort -g | tail -1)
            row+=$(printf ' %9s' "$med($lo-$hi)")
        done
        echo "$row"
    done
fi
