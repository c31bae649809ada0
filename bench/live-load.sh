#!/usr/bin/env bash
# bench/live-load.sh — live HTTP-FLV fan-out under load: one ~3 Mbit/s stream, N readers.
#
# What it measures: starts uringcast on loopback, publishes one 720p30 ~3.1 Mbit/s stream
# (x264 + AAC, GOP 2 s) to it over HTTP POST with ffmpeg, then for each reader count N runs
# uringcast-loadgen with N HTTP-FLV readers for $DURATION s while sampling the server's CPU%
# (utime+stime from /proc/PID/stat, whole thread group) and RSS (VmRSS) every second. Prints,
# per N: readers that got media, server CPU% (average; 100% = one core) and max RSS, the
# readers' delivered bitrate, media-time lag p50/p99/max, lag over each reader's best (p99;
# stalls), final lag and first-keyframe latency. See bench/loadgen/main.rs for the exact
# definitions.
#
# PREENCODE=1 (default) encodes a 20 s test clip once (cached in $BENCH_CACHE) and publishes
# it with `-re -stream_loop -1 -c copy`, so the publisher costs almost no CPU during the
# measurement — on a 2-core box a live x264 encode would compete with the server and the
# readers. PREENCODE=0 encodes live (closer to a real encoder, noisier).
#
# Bounds: each loadgen run lasts $DURATION s (hard cap 600 in the tool), the publisher is
# bounded by ffmpeg -t, everything is on 127.0.0.1, and all processes started here are
# stopped on exit (trap). With defaults ("100 500 2000", 30 s) about 2 minutes.
#
# Run:
#   cargo build --release && bench/live-load.sh [N ...]          # default N: 100 500 2000
# Environment:
#   URINGCAST_BIN  server binary (default target/release/uringcast). The special value
#                  "standin" runs bench/loadgen/flv_live_server.py instead, with no
#                  publisher (it plays the clip itself), to test this script and the loadgen.
#   LOADGEN_BIN    default target/release/uringcast-loadgen
#   WORKERS        server workers (default: nproc)
#   DURATION       seconds per N (default 30)
#   RAMP           loadgen connections per second (default 500)
#   PREENCODE      1 (default) or 0, see above
#   BENCH_CACHE    where the encoded clip is kept (default /tmp/uringcast-bench)
#   SERVER         uringcast (default) or node-media-server (npm, same HTTP-FLV push and
#                  play URLs); nginx-rtmp is a placeholder (it plays only RTMP)
#   NMS_DIR, NMS_VERSION  where/which node-media-server to install (default
#                  $BENCH_CACHE/nms, 4.4.3)

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib.sh"

URINGCAST_BIN=${URINGCAST_BIN:-$ROOT/target/release/uringcast}
LOADGEN_BIN=${LOADGEN_BIN:-$ROOT/target/release/uringcast-loadgen}
WORKERS=${WORKERS:-$(nproc)}
DURATION=${DURATION:-30}
RAMP=${RAMP:-500}
PREENCODE=${PREENCODE:-1}
BENCH_CACHE=${BENCH_CACHE:-/tmp/uringcast-bench}
SERVER=${SERVER:-uringcast}
READER_COUNTS=${*:-100 500 2000}
STREAM_PATH=/live/bench.flv
CLIP=$BENCH_CACHE/clip-720p30-3M-20s.flv

for tool in ffmpeg curl jq ss; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
[ -x "$LOADGEN_BIN" ] || { echo "no loadgen at $LOADGEN_BIN (cargo build --release --bin uringcast-loadgen)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/uringcast-live-bench.XXXXXX)
SERVER_PID=""
PUBLISHER_PID=""
SAMPLER_PID=""
cleanup() {
    stop_pid "$SAMPLER_PID"
    stop_pid "$PUBLISHER_PID"
    stop_pid "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The whole publish must outlast every measurement: N runs + probes + slack.
N_COUNT=$(echo "$READER_COUNTS" | wc -w)
PUBLISH_S=$((N_COUNT * (DURATION + 10) + 60))

ENCODE_ARGS=(-c:v libx264 -preset ultrafast -tune zerolatency -b:v 3M -maxrate 3M -bufsize 3M
    -g 60 -c:a aac -b:a 128k)
LAVFI_INPUTS=(-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=1000:sample_rate=48000)

ensure_clip() {
    mkdir -p "$BENCH_CACHE"
    [ -s "$CLIP" ] && return 0
    echo "encoding test clip $CLIP (once)..." >&2
    ffmpeg -hide_banner -loglevel error -y "${LAVFI_INPUTS[@]}" -t 20 "${ENCODE_ARGS[@]}" \
        -f flv "$CLIP.tmp.flv"
    mv "$CLIP.tmp.flv" "$CLIP"
}

# --- one function per server: start it, set SERVER_PID and PORT ------------------------------
start_server_uringcast() {
    PORT=$(free_port)
    if [ "$URINGCAST_BIN" = standin ]; then
        ensure_clip
        python3 "$HERE/loadgen/flv_live_server.py" --file "$CLIP" --port "$PORT" \
            --max-seconds $((PUBLISH_S + 30)) >"$WORK/server.log" 2>&1 &
        SERVER_PID=$!
    else
        [ -x "$URINGCAST_BIN" ] || { echo "no server binary at $URINGCAST_BIN" >&2; exit 2; }
        mkdir -p "$WORK/media"
        "$URINGCAST_BIN" --http-listen "127.0.0.1:$PORT" --media-root "$WORK/media" \
            --workers "$WORKERS" >"$WORK/server.log" 2>&1 &
        SERVER_PID=$!
    fi
    wait_http "http://127.0.0.1:$PORT/" 10 || { cat "$WORK/server.log" >&2; exit 1; }
}

publish_uringcast() {
    [ "$URINGCAST_BIN" = standin ] && return 0 # the stand-in plays the clip by itself
    local url="http://127.0.0.1:$PORT$STREAM_PATH"
    if [ "$PREENCODE" = 1 ]; then
        ensure_clip
        ffmpeg -hide_banner -loglevel warning -nostdin -re -stream_loop -1 -i "$CLIP" \
            -t "$PUBLISH_S" -c copy -f flv -method POST "$url" >"$WORK/publisher.log" 2>&1 &
    else
        ffmpeg -hide_banner -loglevel warning -nostdin -re "${LAVFI_INPUTS[@]}" \
            -t "$PUBLISH_S" "${ENCODE_ARGS[@]}" -f flv -method POST "$url" \
            >"$WORK/publisher.log" 2>&1 &
    fi
    PUBLISHER_PID=$!
}

# nginx-rtmp: playback is RTMP only (no HTTP-FLV), so the comparable test is RTMP play,
# which needs an RTMP client in the loadgen. Not implemented yet.
start_server_nginx_rtmp() { echo "SERVER=nginx-rtmp: needs RTMP play in uringcast-loadgen (not implemented)" >&2; exit 2; }
publish_nginx_rtmp() { :; }
# node-media-server (npm, v4): takes the same HTTP-FLV push (POST /live/NAME.flv) and serves
# the same HTTP-FLV play URL, so publisher, loadgen and measurement are identical. Installed
# once with npm into $NMS_DIR (default $BENCH_CACHE/nms). Node is single-threaded: it uses one
# core whatever WORKERS says.
NMS_VERSION=${NMS_VERSION:-4.4.3}
NMS_DIR=${NMS_DIR:-$BENCH_CACHE/nms}
start_server_node_media_server() {
    command -v node >/dev/null && command -v npm >/dev/null ||
        { echo "SERVER=node-media-server needs node and npm" >&2; exit 2; }
    if [ ! -f "$NMS_DIR/node_modules/node-media-server/bin/app.js" ]; then
        echo "installing node-media-server@$NMS_VERSION into $NMS_DIR (once)..." >&2
        mkdir -p "$NMS_DIR"
        (cd "$NMS_DIR" && npm install --silent --no-audit --no-fund "node-media-server@$NMS_VERSION" >/dev/null)
    fi
    PORT=$(free_port)
    local rtmp_port
    rtmp_port=$(free_port)
    mkdir -p "$WORK/nms"
    cat >"$WORK/nms/config.json" <<JSON
{ "bind": "127.0.0.1", "notify": { "url": "" },
  "store": { "path": "$WORK/nms/data", "maxHistory": 100 },
  "auth": { "play": false, "publish": false, "secret": "" },
  "rtmp": { "port": $rtmp_port }, "http": { "port": $PORT },
  "webadmin": { "enable": false }, "record": { "auto": false, "path": "$WORK/nms/record" } }
JSON
    (cd "$WORK/nms" && exec node "$NMS_DIR/node_modules/node-media-server/bin/app.js" \
        -c "$WORK/nms/config.json" --no-admin) >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "http://127.0.0.1:$PORT/" 15 || { cat "$WORK/server.log" >&2; exit 1; }
}
publish_node_media_server() { publish_uringcast; }

case $SERVER in
    uringcast) start_server_uringcast; publish_uringcast ;;
    nginx-rtmp) start_server_nginx_rtmp; publish_nginx_rtmp ;;
    node-media-server) start_server_node_media_server; publish_node_media_server ;;
    *) echo "unknown SERVER=$SERVER" >&2; exit 2 ;;
esac
URL="http://127.0.0.1:$PORT$STREAM_PATH"

# Wait until the stream plays: one reader, 2 s, must see media. Up to 30 s.
echo "waiting for $URL ..." >&2
ready=0
for _ in $(seq 1 15); do
    media=$("$LOADGEN_BIN" "$URL" --readers 1 --duration-s 2 --json --quiet 2>/dev/null |
        jq -r '.readers_with_media' 2>/dev/null || echo 0)
    if [ "${media:-0}" -ge 1 ] 2>/dev/null; then
        ready=1
        break
    fi
    if [ -n "$PUBLISHER_PID" ] && ! kill -0 "$PUBLISHER_PID" 2>/dev/null; then
        echo "publisher exited:" >&2
        cat "$WORK/publisher.log" >&2
        exit 1
    fi
done
[ "$ready" = 1 ] || { echo "stream never became playable" >&2; cat "$WORK/server.log" >&2; exit 1; }

# sample PID OUT : one line per second "ticks rss_kb" until killed.
sample() {
    local pid=$1 out=$2 rss
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        echo "$(cpu_ticks "$pid") ${rss:-0}" >>"$out"
        sleep 1
    done
}

ROWS=$WORK/rows.txt
: >"$ROWS"
echo "server=$SERVER workers=$WORKERS duration=${DURATION}s ramp=${RAMP}/s preencode=$PREENCODE" >&2
for n in $READER_COUNTS; do
    samples=$WORK/samples-$n.txt
    : >"$samples"
    sample "$SERVER_PID" "$samples" &
    SAMPLER_PID=$!
    t0_ticks=$(cpu_ticks "$SERVER_PID")
    t0=$(date +%s.%N)
    "$LOADGEN_BIN" "$URL" --readers "$n" --duration-s "$DURATION" --ramp-per-s "$RAMP" --json \
        >"$WORK/report-$n.json" 2>"$WORK/loadgen-$n.log" || {
        echo "loadgen failed for N=$n:" >&2
        cat "$WORK/loadgen-$n.log" >&2
        exit 1
    }
    t1=$(date +%s.%N)
    t1_ticks=$(cpu_ticks "$SERVER_PID")
    stop_pid "$SAMPLER_PID"
    SAMPLER_PID=""
    cpu_pct=$(awk -v a="$t0_ticks" -v b="$t1_ticks" -v hz="$CLK_TCK" -v s0="$t0" -v s1="$t1" \
        'BEGIN { printf "%.0f", (b - a) / hz / (s1 - s0) * 100 }')
    rss_mb=$(awk '{ if ($2 > m) m = $2 } END { printf "%.0f", m / 1024 }' "$samples")
    jq -r --arg n "$n" --arg cpu "$cpu_pct" --arg rss "$rss_mb" '
        def f(x): if x == null then "-" else (x | . * 10 | round / 10 | tostring) end;
        [ $n, (.readers_with_media | tostring), $cpu, $rss,
          f(.bitrate_kbps.p50), f(.bitrate_kbps.min),
          f(.lag_ms.p50), f(.lag_ms.p99), f(.lag_ms.max),
          f(.lag_over_best_ms.p99), f(.final_lag_ms.p50),
          f(.first_keyframe_ms.p50), f(.first_keyframe_ms.p99), f(.first_keyframe_ms.max),
          ((.errors | to_entries | map(.value) | add) | tostring) ] | @tsv' \
        "$WORK/report-$n.json" >>"$ROWS"
    tail -1 "$ROWS" | awk -F'\t' '{ printf "N=%s done: %s readers with media, server CPU %s%%, RSS %s MB\n", $1, $2, $3, $4 }' >&2
done

echo
printf '%6s %6s %6s %7s | %8s %8s | %8s %8s %8s %9s %9s | %8s %8s %8s | %6s\n' \
    N media CPU% RSS-MB kbps-p50 kbps-min lag-p50 lag-p99 lag-max ">best-p99" final-p50 \
    key-p50 key-p99 key-max errors
awk -F'\t' '{ printf "%6s %6s %6s %7s | %8s %8s | %8s %8s %8s %9s %9s | %8s %8s %8s | %6s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 }' "$ROWS"
echo "(lag and key = first-keyframe latency in ms; >best = lag over each reader's best; CPU% of one core; $(nproc) CPUs; kernel $(uname -r))"
