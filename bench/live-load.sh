#!/usr/bin/env bash
# bench/live-load.sh — live fan-out under load: one stream, N HTTP-FLV, RTMP, HTTP-TS or HLS
# readers.
#
# What it measures: for each reader count N (and each round, and each server or binary of an
# A/B run) it starts a fresh server on loopback, publishes one 720p30 stream to it with ffmpeg
# (x264 + AAC, GOP 2 s; over HTTP POST, or RTMP with PUBLISH=rtmp), waits until it plays, then
# runs uringcast-loadgen with N HTTP-FLV readers (or RTMP players with READ=rtmp, HTTP-TS
# readers with READ=ts, HLS clients with READ=hls) for $DURATION s. It reports, per run:
# - readers ok: readers that got media and were still connected at the end of the window (HLS:
#   clients that had completed a segment within 2 x the target duration at that instant);
# - server CPU (utime+stime from /proc/PID/stat, whole thread group, summed over the server's
#   process and its children: nginx's master and workers; 100% = one core) and delivered
#   Gbit/s (from the loadgen: the FLV bytes all readers received, or with READ=rtmp every TCP
#   payload byte they received, chunk headers and protocol messages included; READ=ts: the TS
#   bytes after de-chunking; READ=hls: every response body byte, playlists and segments), both
#   over a steady-state window from ceil(N/RAMP) + WARMUP_S seconds after the load starts (ramp
#   done, the joining readers' GOP-cache bursts, or the HLS clients' first three segments,
#   over) to 1 s before its end;
# - % of one core per delivered Gbit/s: CPU% / Gbit/s, the headline figure of issue 8;
# - uringcast only, from /metrics over the same window: sends per reader per second
#   (uringcast_sends_submitted_total summed over workers / readers / seconds) and mean bytes
#   per send (uringcast_bytes_sent_total / sends), and connections per worker at the window's
#   end (uringcast_connections_active{worker}; it includes the publisher and the /metrics
#   request itself);
# - max RSS (VmRSS sampled every second, summed over the same processes), the readers'
#   bitrate, media-time lag p50/p99/max,
#   lag over each reader's best (p99; stalls and jitter), final lag and first-keyframe latency
#   over the whole run (READ=ts: over the video PES, DTS against arrival; READ=hls has no
#   per-frame lag: see the HLS columns). See bench/loadgen/main.rs for the exact definitions;
# - READ=hls only, over the whole run (bench/loadgen/hls.rs): segment download time p50/p99
#   (request sent to last byte), segment lag p99 (last byte minus the segment's program date +
#   duration, for segments new in a reloaded playlist; uringcast only: nginx-rtmp writes no
#   EXT-X-PROGRAM-DATE-TIME), stalls (gaps of more than 2 x target duration without a segment;
#   "stalls/clients"), failed/missed segments and failed playlists.
# A fixed-width table with every figure, then one markdown summary table, are printed at the
# end; the summary also goes to $OUT when set.
#
# PREENCODE=1 (default) encodes a 20 s test clip once per bitrate (cached in $BENCH_CACHE) and
# publishes it with `-re -stream_loop -1 -c copy`, so the publisher costs almost no CPU during
# the measurement — on a 2-core box a live x264 encode would compete with the server and the
# readers. PREENCODE=0 encodes live (closer to a real encoder, noisier).
#
# Bounds: each loadgen run lasts $DURATION s (hard cap 600 in the tool), each publisher is
# bounded by ffmpeg -t, the readiness probe by 15 tries of 2 s, everything is on 127.0.0.1,
# and all processes started here are stopped after each run and on exit (trap). Every run has
# a fresh server (so RSS and counters belong to that run alone) and takes about DURATION + 5 s
# (start, publish, readiness probe); a script does (count of N) x ROUNDS x (binaries + other
# servers) runs: with the defaults ("100 500 2000", 30 s, one server) about 2 minutes.
# Counters on /metrics are handed over once per server tick (100 ms), so sends and bytes are
# exact to about 100 ms of a window (under 1% of a 13 s window).
#
# Run:
#   cargo build --release && bench/live-load.sh [N ...]          # default N: 100 500 2000
#   BITRATE=1640k WORKERS=2 COALESCE_MS=100 DURATION=20 bench/live-load.sh 2000
#   BINS="before=/tmp/uringcast-main after=target/release/uringcast" ROUNDS=3 bench/live-load.sh 2000
#   SERVERS="uringcast node-media-server" OUT=/tmp/live.md bench/live-load.sh 500
#   PUBLISH=rtmp READ=rtmp SERVERS="uringcast nginx-rtmp" DURATION=20 bench/live-load.sh 500 2000
#   PRESET=rtmp-issue DURATION=20 OUT=/tmp/rtmp.md bench/live-load.sh
#   READ=hls PUBLISH=rtmp SERVERS="uringcast nginx-rtmp" DURATION=12 bench/live-load.sh 50
#   READ=ts DURATION=12 bench/live-load.sh 50
#   PRESET=hls-issue OUT=/tmp/hls.md bench/live-load.sh
# Environment:
#   URINGCAST_BIN  server binary (default target/release/uringcast). The special value
#                  "standin" runs bench/loadgen/flv_live_server.py instead, with no
#                  publisher (it plays the clip itself), to test this script and the loadgen.
#   BINS           A/B mode: several uringcast binaries, space-separated, each "PATH" or
#                  "LABEL=PATH" (the label names the row; default the file name, or the last two
#                  path components when file names collide). Every N runs once per binary per
#                  round, alternating, so drift on a shared box hits all of them alike.
#                  Default: $URINGCAST_BIN.
#   SERVERS        servers to alternate with in the same way, space-separated: uringcast
#                  (every binary of BINS), node-media-server (npm; same HTTP-FLV push and play
#                  URLs, and RTMP; READ=flv or rtmp only), nginx-rtmp (Debian nginx +
#                  libnginx-mod-rtmp; RTMP publish only, so it needs PUBLISH=rtmp, and READ=rtmp
#                  or READ=hls; with READ=ts it is skipped with a note: it serves no HTTP-TS).
#                  Default: $SERVER, or uringcast.
#   PUBLISH        http (default: ffmpeg POSTs FLV to http://127.0.0.1:PORT/live/bench.flv) or
#                  rtmp (ffmpeg publishes to rtmp://127.0.0.1:RTMP_PORT/live/bench)
#   READ           flv (default: the loadgen GETs http://127.0.0.1:PORT/live/bench.flv), rtmp
#                  (it plays rtmp://127.0.0.1:RTMP_PORT/live/bench), ts (HTTP-TS: it GETs
#                  /live/bench.ts; uringcast only) or hls (each client loops over
#                  /live/bench/index.m3u8 and its new segments on one keep-alive connection,
#                  starting 3 segments from the end, reloading every target duration / 2;
#                  nginx-rtmp: /hls/bench.m3u8, see below). With ts or hls uringcast's config
#                  gets [hls] segment_target_ms = 2000 (unless CONFIG_EXTRA sets it), nginx's
#                  hls_fragment. uringcast gets an RTMP listener (--rtmp-listen
#                  127.0.0.1:RTMP_PORT, a free port) when PUBLISH or READ is rtmp, and must
#                  print rtmp=ADDR on its first stdout line; a build without --rtmp-listen stops
#                  the script before anything runs.
#   PRESET         rtmp-issue: the RTMP issue's figures in one table: one 3 Mbit/s stream (the
#                  default clip) published over RTMP; uringcast and nginx-rtmp side by side
#                  with 500 and 2,000 RTMP readers, then uringcast with 2,000 HTTP-FLV readers
#                  of the same RTMP-published stream. Runs this script twice (BITRATE is
#                  ignored; the other knobs pass through: DURATION, ROUNDS, WORKERS, BINS,
#                  ...); give no N.
#                  hls-issue: the HLS issue's figures in one table: one 3 Mbit/s stream
#                  (BITRATE=3000k: 2872k video + 128k audio) published over RTMP; PRESET_N (1000)
#                  HLS clients of uringcast and of nginx-rtmp (hls on, 2 s fragments, 12 s
#                  playlist, served from disk by nginx's http module), then PRESET_N HTTP-TS
#                  readers of uringcast (nginx-rtmp has no HTTP-TS: skipped with a note). Give
#                  no N; the other knobs pass through.
#   PRESET_N       reader count of PRESET=hls-issue (default 1000; small for a smoke run)
#   NGINX_RTMP_WORKERS  nginx-rtmp's worker_processes (default 1). More than 1 turns on
#                  rtmp_auto_push (the module's relay of a published stream to the other
#                  workers) but, with Debian's dynamically loaded module (nginx 1.22.1), the
#                  workers never accept on the relay's unix sockets (the listener is not in
#                  their epoll set), so only the readers that land on the publisher's worker get
#                  media ("readers ok" shows it, and the readiness probe may never see any).
#                  Its CPU and RSS are summed over master and workers either way.
#                  READ=hls uses NGINX_HLS_WORKERS instead.
#   NGINX_HLS_WORKERS  nginx-rtmp's worker_processes with READ=hls (default: WORKERS, like
#                  uringcast): the publish lands on one worker, which writes the fragments
#                  (hls on; hls_path under the run's directory in /tmp; hls_fragment 2s;
#                  hls_playlist_length 12s), and every worker serves them over HTTP
#                  (location /hls/, m3u8 and ts types, Cache-Control: no-cache, sendfile,
#                  keepalive_requests 100000, listen ... reuseport unless NGINX_REUSEPORT=0;
#                  no open_file_cache). No rtmp_auto_push: nothing plays RTMP.
#   NGINX_RTMP_MODULE   path of ngx_rtmp_module.so (default: Debian's /usr/lib/nginx/modules)
#   ROUNDS         rounds per N (default 1)
#   FIRST_ROUND    number of the first round in the tables (default 1; for callers such as
#                  live-matrix.sh that alternate settings round by round themselves)
#   BITRATE        total bitrate of the test stream, e.g. 1640k for issue 8's 1.64 Mbit/s
#                  stream: video gets BITRATE minus the 128k of audio (x264 -b:v/-maxrate;
#                  the clip's measured rate is printed, x264 lands a few % above). Unset:
#                  today's clip, 3M video + 128k audio (about 3.1 Mbit/s), the README's figures.
#   WORKERS        uringcast workers (default: nproc)
#   COALESCE_MS    adds `send_coalesce_ms = X` to the [live] table of uringcast's config
#   CONFIG_EXTRA   TOML text appended to uringcast's generated config, e.g.
#                  $'[live]\nmax_lag_ms = 3000'; COALESCE_MS merges into its [live] table if it
#                  has one. The config is checked (--check-config) before anything runs.
#   SETTINGS_LABEL text for the "settings" column instead of the generated one
#   DURATION       seconds per run (default 30)
#   WARMUP_S       seconds after the ramp before the window opens (default 2: one GOP)
#   RAMP           loadgen connections per second (default 500)
#   PREENCODE      1 (default) or 0, see above
#   OUT            also write the markdown summary table to this file
#   BENCH_CACHE    where the encoded clips are kept (default /tmp/uringcast-bench)
#   PERF_DATA      profile the server with perf during each run's window (bench/live-flamegraph.sh
#                  sets it): perf.data goes to this path (one run) or PATH.LABEL-N-ROUND (several).
#                  The run's CPU figures then include perf's sampling overhead.
#   PERF_S, PERF_FREQ, CALL_GRAPH  seconds recorded from the window's start (default 8, at
#                  most the window), sampling rate (default 499 Hz, cpu-clock), perf's
#                  --call-graph (default dwarf,16384: release builds have no frame pointers)
#   NMS_DIR, NMS_VERSION  where/which node-media-server to install (default
#                  $BENCH_CACHE/nms, 4.4.3)
#   RAMP, readiness and everything else are the same for every PUBLISH/READ combination;
#   Runs that are not HTTP publish + FLV read end their "settings" column with both
#   ("publish rtmp, read flv").

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

URINGCAST_BIN=${URINGCAST_BIN:-$ROOT/target/release/uringcast}
LOADGEN_BIN=${LOADGEN_BIN:-$ROOT/target/release/uringcast-loadgen}
BINS=${BINS:-$URINGCAST_BIN}
SERVERS=${SERVERS:-${SERVER:-uringcast}}
ROUNDS=${ROUNDS:-1}
FIRST_ROUND=${FIRST_ROUND:-1}
WORKERS=${WORKERS:-$(nproc)}
DURATION=${DURATION:-30}
WARMUP_S=${WARMUP_S:-2}
RAMP=${RAMP:-500}
PREENCODE=${PREENCODE:-1}
BITRATE=${BITRATE:-}
COALESCE_MS=${COALESCE_MS:-}
CONFIG_EXTRA=${CONFIG_EXTRA:-}
SETTINGS_LABEL=${SETTINGS_LABEL:-}
OUT=${OUT:-}
PERF_DATA=${PERF_DATA:-}
PERF_S=${PERF_S:-8}
PERF_FREQ=${PERF_FREQ:-499}
CALL_GRAPH=${CALL_GRAPH:-dwarf,16384}
BENCH_CACHE=${BENCH_CACHE:-/tmp/uringcast-bench}
PUBLISH=${PUBLISH:-http}
READ=${READ:-flv}
PRESET=${PRESET:-}
NGINX_RTMP_WORKERS=${NGINX_RTMP_WORKERS:-1}
NGINX_HLS_WORKERS=${NGINX_HLS_WORKERS:-$WORKERS}
PRESET_N=${PRESET_N:-1000}
NGINX_RTMP_MODULE=${NGINX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
READER_COUNTS=${*:-100 500 2000}
STREAM_NAME=bench
STREAM_PATH=/live/$STREAM_NAME.flv
AUDIO_KBPS=128

die() { echo "live-load: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

case $PUBLISH in http | rtmp) ;; *) die "PUBLISH must be http or rtmp" ;; esac
case $READ in flv | rtmp | ts | hls) ;; *) die "READ must be flv, rtmp, ts or hls" ;; esac
# Whether uringcast needs its RTMP listener.
UC_RTMP=0
if [ "$PUBLISH" = rtmp ] || [ "$READ" = rtmp ]; then UC_RTMP=1; fi

# --- PRESET: several runs of this script, one table -------------------------------------------
if [ -n "$PRESET" ]; then
    case $PRESET in rtmp-issue | hls-issue) ;; *) die "unknown PRESET '$PRESET' (rtmp-issue, hls-issue)" ;; esac
    [ $# -eq 0 ] || die "PRESET=$PRESET chooses the reader counts itself; give no N"
    if ! is_uint "$PRESET_N" || [ "$PRESET_N" -lt 1 ] || [ "$PRESET_N" -gt 20000 ]; then
        die "PRESET_N must be 1..20000"
    fi
    PRESET_DIR=$(mktemp -d /tmp/uringcast-live-preset.XXXXXX)
    PART_PID=""
    # shellcheck disable=SC2317 # called by the traps
    preset_cleanup() {
        stop_pid "$PART_PID"
        rm -rf "$PRESET_DIR"
    }
    trap preset_cleanup EXIT
    trap 'exit 130' INT TERM
    # run_part NAME ENV... -- N... : one run of this script; its summary goes to NAME.md.
    # Each part's command, as one would type it from the repository's root, for the table's notes.
    PART_COMMANDS=""
    run_part() {
        local name=$1 arg words=""
        shift
        for arg in "$@"; do
            if [ "$arg" = "$HERE/live-load.sh" ]; then
                arg=bench/live-load.sh
            elif [[ $arg == *=*' '* ]]; then
                arg="${arg%%=*}=\"${arg#*=}\""
            fi
            words="$words${words:+ }$arg"
        done
        PART_COMMANDS="$PART_COMMANDS${PART_COMMANDS:+; }$words"
        env PRESET= OUT="$PRESET_DIR/$name.md" "$@" &
        PART_PID=$!
        wait "$PART_PID" || die "preset part '$name' failed"
        PART_PID=""
    }
    if [ "$PRESET" = rtmp-issue ]; then
        PARTS="rtmp flv"
        run_part rtmp PUBLISH=rtmp READ=rtmp SERVERS="uringcast nginx-rtmp" BITRATE= \
            "$HERE/live-load.sh" 500 2000
        run_part flv PUBLISH=rtmp READ=flv SERVERS=uringcast BITRATE= "$HERE/live-load.sh" 2000
    else
        # One 3 Mbit/s stream, published over RTMP to both servers.
        PARTS="hls ts"
        run_part hls PUBLISH=rtmp READ=hls SERVERS="uringcast nginx-rtmp" BITRATE=3000k \
            "$HERE/live-load.sh" "$PRESET_N"
        run_part ts PUBLISH=rtmp READ=ts SERVERS="uringcast nginx-rtmp" BITRATE=3000k \
            "$HERE/live-load.sh" "$PRESET_N"
    fi
    first_part=${PARTS%% *}
    combined() {
        head -n 2 "$PRESET_DIR/$first_part.md"
        for part in $PARTS; do
            tail -n +3 "$PRESET_DIR/$part.md" | grep '^| '
        done
        echo
        grep '^(' "$PRESET_DIR/$first_part.md" | grep -v ' skipped: '
        for part in $PARTS; do
            grep -h '^(.* skipped: ' "$PRESET_DIR/$part.md" || true
        done | sort -u
        echo "(PRESET=$PRESET runs: $PART_COMMANDS; with DURATION=$DURATION ROUNDS=$ROUNDS WORKERS=$WORKERS RAMP=$RAMP WARMUP_S=$WARMUP_S)"
    }
    echo
    echo "PRESET=$PRESET:"
    combined
    if [ -n "$OUT" ]; then
        combined >"$OUT"
        echo "wrote $OUT" >&2
    fi
    exit 0
fi

for tool in ffmpeg curl jq ss awk; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[ -x "$LOADGEN_BIN" ] || die "no loadgen at $LOADGEN_BIN (cargo build --release --bin uringcast-loadgen)"
"$LOADGEN_BIN" --help | grep -q -- --window-from-s ||
    die "$LOADGEN_BIN has no --window-from-s (rebuild it: cargo build --release --bin uringcast-loadgen)"
if [ "$READ" = rtmp ]; then
    "$LOADGEN_BIN" --help | grep -q 'rtmp://' ||
        die "$LOADGEN_BIN cannot play RTMP (rebuild it: cargo build --release --bin uringcast-loadgen)"
fi
if [ "$READ" = ts ] || [ "$READ" = hls ]; then
    "$LOADGEN_BIN" --help | grep -q 'm3u8' ||
        die "$LOADGEN_BIN reads no HTTP-TS or HLS (rebuild it: cargo build --release --bin uringcast-loadgen)"
fi
in_range() { is_uint "$1" && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
in_range "$ROUNDS" 1 1000 || die "ROUNDS must be 1..1000"
in_range "$FIRST_ROUND" 1 100000 || die "FIRST_ROUND must be a positive integer"
in_range "$DURATION" 3 600 || die "DURATION must be 3..600"
is_uint "$WARMUP_S" || die "WARMUP_S must be an integer"
is_uint "$RAMP" || die "RAMP must be an integer"
is_uint "$WORKERS" || die "WORKERS must be an integer"
in_range "$NGINX_RTMP_WORKERS" 1 64 || die "NGINX_RTMP_WORKERS must be 1..64"
in_range "$NGINX_HLS_WORKERS" 1 64 || die "NGINX_HLS_WORKERS must be 1..64"
[ -z "$COALESCE_MS" ] || is_uint "$COALESCE_MS" || die "COALESCE_MS must be an integer (ms)"
if [ -n "$PERF_DATA" ]; then
    command -v perf >/dev/null || die "PERF_DATA needs perf (apt-get install linux-perf)"
    in_range "$PERF_S" 1 600 || die "PERF_S must be 1..600"
    in_range "$PERF_FREQ" 1 10000 || die "PERF_FREQ must be 1..10000"
fi
for n in $READER_COUNTS; do
    in_range "$n" 1 20000 || die "reader count '$n' is not 1..20000"
done

# --- the test stream ------------------------------------------------------------------------
# kbps TEXT : "1640k", "1.64M" or "1640000" as kbit/s.
kbps() {
    awk -v v="$1" 'BEGIN {
        m = 1 / 1000; u = tolower(substr(v, length(v)))
        if (u == "k") { m = 1; v = substr(v, 1, length(v) - 1) }
        else if (u == "m") { m = 1000; v = substr(v, 1, length(v) - 1) }
        if (v !~ /^[0-9]+(\.[0-9]+)?$/) exit 1
        printf "%d", v * m + 0.5 }'
}
if [ -z "$BITRATE" ]; then
    VIDEO_RATE=3M # today's clip: the README's figures were measured with it
    CLIP=$BENCH_CACHE/clip-720p30-3M-20s.flv
    STREAM_LABEL="3M video"
else
    total_kbps=$(kbps "$BITRATE") || die "BITRATE '$BITRATE' is not like 1640k or 3M"
    [ "$total_kbps" -ge $((AUDIO_KBPS + 100)) ] || die "BITRATE must be at least $((AUDIO_KBPS + 100))k"
    VIDEO_RATE=$((total_kbps - AUDIO_KBPS))k
    CLIP=$BENCH_CACHE/clip-720p30-total${total_kbps}k-20s.flv
    STREAM_LABEL=$BITRATE
fi
ENCODE_ARGS=(-c:v libx264 -preset ultrafast -tune zerolatency -b:v "$VIDEO_RATE" -maxrate "$VIDEO_RATE"
    -bufsize "$VIDEO_RATE" -g 60 -c:a aac -b:a "${AUDIO_KBPS}k")
LAVFI_INPUTS=(-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=1000:sample_rate=48000)

ensure_clip() {
    mkdir -p "$BENCH_CACHE"
    [ -s "$CLIP" ] && return 0
    echo "encoding test clip $CLIP (once)..." >&2
    ffmpeg -hide_banner -loglevel error -y "${LAVFI_INPUTS[@]}" -t 20 "${ENCODE_ARGS[@]}" \
        -f flv "$CLIP.tmp.flv"
    mv "$CLIP.tmp.flv" "$CLIP"
}

# --- uringcast's config -----------------------------------------------------------------------
# config_text : CONFIG_EXTRA with COALESCE_MS merged into its [live] table (or a new one).
config_text() {
    local live_re='^[[:space:]]*\[[[:space:]]*live[[:space:]]*\][[:space:]]*(#.*)?$'
    local tables
    tables=$(printf '%s\n' "$CONFIG_EXTRA" | grep -Ec "$live_re" || true)
    [ "$tables" -le 1 ] || die "CONFIG_EXTRA has $tables [live] tables"
    if [ -z "$COALESCE_MS" ]; then
        [ -z "$CONFIG_EXTRA" ] || printf '%s\n' "$CONFIG_EXTRA"
        return 0
    fi
    if printf '%s\n' "$CONFIG_EXTRA" | grep -Eq '^[[:space:]]*send_coalesce_ms[[:space:]]*='; then
        die "COALESCE_MS and a send_coalesce_ms in CONFIG_EXTRA: set one of them"
    fi
    if [ "$tables" = 1 ]; then
        printf '%s\n' "$CONFIG_EXTRA" | awk -v re="$live_re" -v line="send_coalesce_ms = $COALESCE_MS" \
            '{ print } $0 ~ re { print line }'
    else
        [ -z "$CONFIG_EXTRA" ] || printf '%s\n' "$CONFIG_EXTRA"
        printf '[live]\nsend_coalesce_ms = %s\n' "$COALESCE_MS"
    fi
}

WORK=$(mktemp -d /tmp/uringcast-live-bench.XXXXXX)
SERVER_PID=""
PUBLISHER_PID=""
SAMPLER_PID=""
LOADGEN_PID=""
PERF_PID=""
SLEEP_PID=""
cleanup() {
    stop_pid "$SLEEP_PID"
    stop_pid "$PERF_PID"
    stop_pid "$LOADGEN_PID"
    stop_pid "$SAMPLER_PID"
    stop_pid "$PUBLISHER_PID"
    stop_pid "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# hls_config TEXT : TEXT with `segment_target_ms = HLS_SEGMENT_MS` in its [hls] table (added to
# it, or as a new table), for READ=ts and READ=hls, unless TEXT sets segment_target_ms itself.
HLS_SEGMENT_MS=2000
hls_config() {
    local text=$1 hls_re='^[[:space:]]*\[[[:space:]]*hls[[:space:]]*\][[:space:]]*(#.*)?$'
    if { [ "$READ" != ts ] && [ "$READ" != hls ]; } ||
        printf '%s\n' "$text" | grep -Eq '^[[:space:]]*segment_target_ms[[:space:]]*='; then
        [ -z "$text" ] || printf '%s\n' "$text"
        return 0
    fi
    if printf '%s\n' "$text" | grep -Eq "$hls_re"; then
        printf '%s\n' "$text" | awk -v re="$hls_re" -v line="segment_target_ms = $HLS_SEGMENT_MS" \
            '{ print } $0 ~ re { print line }'
    else
        [ -z "$text" ] || printf '%s\n' "$text"
        printf '[hls]\nsegment_target_ms = %s\n' "$HLS_SEGMENT_MS"
    fi
}

CONFIG=$WORK/uringcast.toml
# An assignment, so that a die in config_text stops the script (set -e).
CONFIG_TEXT=$(config_text)
{
    echo "# generated by bench/live-load.sh"
    hls_config "$CONFIG_TEXT"
} >"$CONFIG"

# --- what runs: a list of targets "KIND|LABEL|PATH", alternated within every round -------------
TARGETS=()
SKIP_NOTE=""
uc_bins=()
for entry in $BINS; do uc_bins+=("$entry"); done
bin_label() { # ENTRY : label of one BINS entry
    local entry=$1 path name other dup=0
    if [[ $entry == *=* ]]; then
        echo "${entry%%=*}"
        return 0
    fi
    path=$entry
    [ "$path" = standin ] && { echo standin; return 0; }
    name=$(basename "$path")
    for other in "${uc_bins[@]}"; do
        other=${other#*=}
        [ "$other" != "$path" ] && [ "$(basename "$other")" = "$name" ] && dup=1
    done
    if [ "$dup" = 1 ]; then
        echo "$(basename "$(dirname "$path")")/$name"
    elif [ "${#uc_bins[@]}" = 1 ]; then
        echo uringcast
    else
        echo "$name"
    fi
}
for server in $SERVERS; do
    case $server in
        uringcast)
            for entry in "${uc_bins[@]}"; do
                path=${entry#*=}
                if [ "$path" = standin ]; then
                    if [ "$UC_RTMP" = 1 ] || [ "$READ" != flv ]; then
                        die "the stand-in plays HTTP-FLV only (PUBLISH=http READ=flv)"
                    fi
                else
                    [ -x "$path" ] || die "no server binary at $path"
                    rtmp_args=()
                    if [ "$UC_RTMP" = 1 ]; then
                        "$path" --help 2>/dev/null | grep -q -- --rtmp-listen ||
                            die "$path has no --rtmp-listen (no RTMP listener in this build): PUBLISH=$PUBLISH READ=$READ needs one; use PUBLISH=http READ=flv"
                        rtmp_args=(--rtmp-listen 127.0.0.1:0)
                    fi
                    mkdir -p "$WORK/check-media"
                    "$path" --config "$CONFIG" --http-listen 127.0.0.1:0 "${rtmp_args[@]}" \
                        --media-root "$WORK/check-media" \
                        --workers "$WORKERS" --check-config >/dev/null 2>"$WORK/check.err" || {
                        cat "$WORK/check.err" >&2
                        echo "--- generated config:" >&2
                        cat "$CONFIG" >&2
                        die "$path rejects the generated config (COALESCE_MS / CONFIG_EXTRA)"
                    }
                fi
                TARGETS+=("uringcast|$(bin_label "$entry")|$path")
            done
            ;;
        node-media-server)
            command -v node >/dev/null || die "SERVERS=node-media-server needs node"
            command -v npm >/dev/null || die "SERVERS=node-media-server needs npm"
            case $READ in flv | rtmp) ;; *) die "SERVERS=node-media-server: READ=flv or rtmp only" ;; esac
            TARGETS+=("node-media-server|node-media-server|")
            ;;
        nginx-rtmp)
            command -v nginx >/dev/null || die "SERVERS=nginx-rtmp needs nginx (apt-get install nginx libnginx-mod-rtmp)"
            [ -f "$NGINX_RTMP_MODULE" ] ||
                die "SERVERS=nginx-rtmp: no RTMP module at $NGINX_RTMP_MODULE (apt-get install libnginx-mod-rtmp, or set NGINX_RTMP_MODULE)"
            [ "$PUBLISH" = rtmp ] || die "SERVERS=nginx-rtmp takes RTMP publish only: set PUBLISH=rtmp"
            case $READ in
                rtmp | hls) TARGETS+=("nginx-rtmp|nginx-rtmp|") ;;
                ts)
                    echo "note: nginx-rtmp serves no HTTP-TS (only RTMP, and HLS/DASH files): skipped for READ=ts" >&2
                    SKIP_NOTE="nginx-rtmp skipped: it serves no HTTP-TS."
                    ;;
                *) die "SERVERS=nginx-rtmp plays RTMP or serves HLS: set READ=rtmp or READ=hls" ;;
            esac
            ;;
        *) die "unknown server '$server' (uringcast, node-media-server, nginx-rtmp)" ;;
    esac
done
[ "${#TARGETS[@]}" -ge 1 ] || die "nothing to run"
RUNS=$(($(echo "$READER_COUNTS" | wc -w) * ROUNDS * ${#TARGETS[@]}))

# The protocols, when not both the HTTP-FLV defaults, end every settings label.
PROTO_LABEL=""
if [ "$PUBLISH" != http ] || [ "$READ" != flv ]; then PROTO_LABEL=", publish $PUBLISH, read $READ"; fi
UC_SETTINGS="$STREAM_LABEL, w$WORKERS"
[ -n "$COALESCE_MS" ] && UC_SETTINGS="$UC_SETTINGS, coalesce $COALESCE_MS ms"
[ -n "$CONFIG_EXTRA" ] && UC_SETTINGS="$UC_SETTINGS, +CONFIG_EXTRA"
UC_SETTINGS=$UC_SETTINGS$PROTO_LABEL
NMS_SETTINGS=$STREAM_LABEL$PROTO_LABEL
if [ "$READ" = hls ]; then
    NGINX_RTMP_SETTINGS="$STREAM_LABEL, w$NGINX_HLS_WORKERS, hls_fragment 2s$PROTO_LABEL"
    UC_SETTINGS="$UC_SETTINGS, segment $((HLS_SEGMENT_MS / 1000)) s"
else
    NGINX_RTMP_SETTINGS="$STREAM_LABEL, w$NGINX_RTMP_WORKERS$PROTO_LABEL"
fi
if [ -n "$SETTINGS_LABEL" ]; then
    UC_SETTINGS=$SETTINGS_LABEL
    NMS_SETTINGS=$SETTINGS_LABEL
    NGINX_RTMP_SETTINGS=$SETTINGS_LABEL
fi

# A publish must outlast its run: probe (up to 30 s) + run + slack.
PUBLISH_S=$((DURATION + 60))

# first_stdout_line FILE PID TIMEOUT_S : waits (10 tries a second, bounded) until FILE holds a
# whole first line, and prints it; fails when PID exits first or on timeout.
first_stdout_line() {
    local file=$1 pid=$2 limit=$3 i=0
    while [ $i -lt $((limit * 10)) ]; do
        if [ -s "$file" ] && [ "$(wc -l <"$file")" -ge 1 ]; then
            head -n 1 "$file"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# wait_tcp PORT TIMEOUT_S : polls (bounded) until something listens on 127.0.0.1:PORT.
wait_tcp() {
    local port=$1 limit=$2 i=0
    while [ $i -lt $((limit * 10)) ]; do
        [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "timed out waiting for a listener on 127.0.0.1:$port" >&2
    return 1
}

# --- one function per server: start it, set SERVER_PID, PORT (HTTP) and RTMP_PORT ------------
RTMP_PORT=""
start_server_uringcast() { # PATH
    local bin=$1 line rtmp_addr
    PORT=$(free_port)
    RTMP_PORT=""
    # /metrics: on the admin listener in builds that have one, else on the HTTP port.
    ADMIN_PORT=$PORT
    : >"$WORK/server.out"
    if [ "$bin" = standin ]; then
        ensure_clip
        python3 "$HERE/loadgen/flv_live_server.py" --file "$CLIP" --port "$PORT" \
            --max-seconds $((PUBLISH_S + 30)) >"$WORK/server.log" 2>&1 &
        SERVER_PID=$!
    else
        rm -rf "${WORK:?}/media"
        mkdir -p "$WORK/media"
        local rtmp_args=()
        if [ "$UC_RTMP" = 1 ]; then
            RTMP_PORT=$(free_port)
            rtmp_args=(--rtmp-listen "127.0.0.1:$RTMP_PORT")
        fi
        if "$bin" --help 2>/dev/null | grep -q -- --admin-listen; then
            ADMIN_PORT=$(free_port)
            rtmp_args+=(--admin-listen "127.0.0.1:$ADMIN_PORT")
        fi
        "$bin" --config "$CONFIG" --http-listen "127.0.0.1:$PORT" "${rtmp_args[@]}" \
            --media-root "$WORK/media" --workers "$WORKERS" >"$WORK/server.out" 2>"$WORK/server.log" &
        SERVER_PID=$!
        if [ "$UC_RTMP" = 1 ]; then
            # "uringcast listening http=ADDR rtmp=ADDR admin=ADDR workers=N": the RTMP listener is up once
            # it is printed; the address printed is the one to use.
            line=$(first_stdout_line "$WORK/server.out" "$SERVER_PID" 10) || {
                cat "$WORK/server.out" "$WORK/server.log" >&2
                die "$bin printed no first stdout line within 10 s"
            }
            rtmp_addr=$(printf '%s\n' "$line" | grep -o 'rtmp=[^ ]*' | head -n 1 | cut -d= -f2 || true)
            [ -n "$rtmp_addr" ] ||
                die "$bin printed no rtmp=ADDR on its first stdout line ('$line'): no RTMP listener"
            RTMP_PORT=${rtmp_addr##*:}
            is_uint "$RTMP_PORT" || die "cannot read a port from rtmp=$rtmp_addr"
        fi
    fi
    wait_http "http://127.0.0.1:$PORT/" 10 || {
        cat "$WORK/server.out" "$WORK/server.log" >&2
        exit 1
    }
}

# nginx-rtmp: Debian's nginx with the dynamically loaded libnginx-mod-rtmp, in its own
# directory under $WORK (nothing of the system's nginx config is read). Publish (and, with
# READ=rtmp, play) at rtmp://127.0.0.1:RTMP_PORT/live/NAME, chunk size 4096, no GOP cache
# (nginx-rtmp has none: a reader's first picture is the next keyframe). Multi-process: master +
# workers; see NGINX_RTMP_WORKERS above for why one worker is the default for RTMP play.
# READ=hls: the application also writes HLS (hls on, hls_fragment 2s, hls_playlist_length 12s)
# into $dir/hls, and an http server on 127.0.0.1:PORT serves that directory at /hls/ (the
# playlist is /hls/NAME.m3u8, its segments NAME-N.ts next to it) with NGINX_HLS_WORKERS workers.
start_server_nginx_rtmp() {
    local dir=$WORK/nginx-rtmp hard nofile auto_push="" workers=$NGINX_RTMP_WORKERS
    local hls_app="" http_block="" reuseport=""
    PORT=""
    RTMP_PORT=$(free_port)
    rm -rf "$dir"
    mkdir -p "$dir"
    hard=$(ulimit -Hn)
    nofile=65536
    [ "$hard" = unlimited ] || [ "$hard" -ge "$nofile" ] || nofile=$hard
    if [ "$READ" = hls ]; then
        workers=$NGINX_HLS_WORKERS
        PORT=$(free_port)
        [ "${NGINX_REUSEPORT:-1}" = 1 ] && reuseport=" reuseport"
        # The workers (an unprivileged user when started as root) write and read the fragments.
        mkdir -p "$dir/hls" "$dir/tmp"
        chmod 755 "$WORK" "$dir"
        chmod 1777 "$dir/hls"
        hls_app="
            hls on;
            hls_path $dir/hls;
            hls_fragment 2s;
            hls_playlist_length 12s;"
        http_block="
http {
$(nginx_http_settings "$dir")
    server {
        listen 127.0.0.1:$PORT$reuseport;
        location /hls/ {
            alias $dir/hls/;
            types {
                application/vnd.apple.mpegurl m3u8;
                video/mp2t ts;
            }
            add_header Cache-Control no-cache;
        }
    }
}"
    elif [ "$workers" -gt 1 ]; then
        # The workers (an unprivileged user when started as root) create the relay's sockets.
        mkdir -p "$dir/sock"
        chmod 755 "$WORK" "$dir"
        chmod 1777 "$dir/sock"
        auto_push="rtmp_auto_push on;
rtmp_socket_dir $dir/sock;"
    fi
    cat >"$dir/nginx.conf" <<EOF
# Generated by uringcast bench/live-load.sh (SERVERS=nginx-rtmp).
load_module $NGINX_RTMP_MODULE;
worker_processes $workers;
worker_rlimit_nofile $nofile;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
$auto_push
events {
    worker_connections 16384;
}
rtmp {
    server {
        listen 127.0.0.1:$RTMP_PORT;
        chunk_size 4096;
        application live {
            live on;$hls_app
        }
    }
}$http_block
EOF
    start_nginx "$dir" SERVER_PID
    wait_tcp "$RTMP_PORT" 10 || {
        cat "$dir/stdout.log" "$dir/error.log" >&2
        exit 1
    }
    if [ -n "$PORT" ]; then
        wait_tcp "$PORT" 10 || {
            cat "$dir/stdout.log" "$dir/error.log" >&2
            exit 1
        }
    fi
    # Where the failure paths below print the server's log from.
    ln -sf "$dir/error.log" "$WORK/server.log"
}

publish() {
    local url format_args=(-f flv)
    if [ "$PUBLISH" = rtmp ]; then
        url="rtmp://127.0.0.1:$RTMP_PORT/live/$STREAM_NAME"
    else
        url="http://127.0.0.1:$PORT$STREAM_PATH"
        format_args+=(-method POST)
    fi
    if [ "$PREENCODE" = 1 ]; then
        ensure_clip
        ffmpeg -hide_banner -loglevel warning -nostdin -re -stream_loop -1 -i "$CLIP" \
            -t "$PUBLISH_S" -c copy "${format_args[@]}" "$url" >"$WORK/publisher.log" 2>&1 &
    else
        ffmpeg -hide_banner -loglevel warning -nostdin -re "${LAVFI_INPUTS[@]}" \
            -t "$PUBLISH_S" "${ENCODE_ARGS[@]}" "${format_args[@]}" "$url" \
            >"$WORK/publisher.log" 2>&1 &
    fi
    PUBLISHER_PID=$!
}

# read_url KIND : the URL the loadgen reads from a server of KIND.
read_url() {
    case $READ in
        rtmp) echo "rtmp://127.0.0.1:$RTMP_PORT/live/$STREAM_NAME" ;;
        ts) echo "http://127.0.0.1:$PORT/live/$STREAM_NAME.ts" ;;
        hls)
            if [ "$1" = nginx-rtmp ]; then
                echo "http://127.0.0.1:$PORT/hls/$STREAM_NAME.m3u8"
            else
                echo "http://127.0.0.1:$PORT/live/$STREAM_NAME/index.m3u8"
            fi
            ;;
        *) echo "http://127.0.0.1:$PORT$STREAM_PATH" ;;
    esac
}

# server_pids : the server's process and its children (nginx: master and workers).
server_pids() {
    process_tree "$SERVER_PID"
}

# node-media-server (npm, v4): takes the same HTTP-FLV push (POST /live/NAME.flv) and serves
# the same HTTP-FLV play URL, so publisher, loadgen and measurement are identical; it also
# takes RTMP publish and play at rtmp://127.0.0.1:RTMP_PORT/live/NAME. Installed
# once with npm into $NMS_DIR (default $BENCH_CACHE/nms). Node is single-threaded: it uses one
# core whatever WORKERS says.
NMS_VERSION=${NMS_VERSION:-4.4.3}
NMS_DIR=${NMS_DIR:-$BENCH_CACHE/nms}
start_server_node_media_server() {
    if [ ! -f "$NMS_DIR/node_modules/node-media-server/bin/app.js" ]; then
        echo "installing node-media-server@$NMS_VERSION into $NMS_DIR (once)..." >&2
        mkdir -p "$NMS_DIR"
        (cd "$NMS_DIR" && npm install --silent --no-audit --no-fund "node-media-server@$NMS_VERSION" >/dev/null)
    fi
    PORT=$(free_port)
    RTMP_PORT=$(free_port)
    rm -rf "${WORK:?}/nms"
    mkdir -p "$WORK/nms"
    cat >"$WORK/nms/config.json" <<JSON
{ "bind": "127.0.0.1", "notify": { "url": "" },
  "store": { "path": "$WORK/nms/data", "maxHistory": 100 },
  "auth": { "play": false, "publish": false, "secret": "" },
  "rtmp": { "port": $RTMP_PORT }, "http": { "port": $PORT },
  "webadmin": { "enable": false }, "record": { "auto": false, "path": "$WORK/nms/record" } }
JSON
    (cd "$WORK/nms" && exec node "$NMS_DIR/node_modules/node-media-server/bin/app.js" \
        -c "$WORK/nms/config.json" --no-admin) >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "http://127.0.0.1:$PORT/" 15 || { cat "$WORK/server.log" >&2; exit 1; }
}

# Wait until the stream plays: one reader, 2 s, must see media. Up to 15 tries (30 s).
wait_playable() {
    local url=$1 media
    for _ in $(seq 1 15); do
        media=$("$LOADGEN_BIN" "$url" --readers 1 --duration-s 2 --json --quiet 2>/dev/null |
            jq -r '.readers_with_media' 2>/dev/null || echo 0)
        if [ "${media:-0}" -ge 1 ] 2>/dev/null; then
            return 0
        fi
        if [ -n "$PUBLISHER_PID" ] && ! kill -0 "$PUBLISHER_PID" 2>/dev/null; then
            echo "publisher exited:" >&2
            cat "$WORK/publisher.log" >&2
            exit 1
        fi
    done
    echo "stream never became playable" >&2
    cat "$WORK/server.log" >&2
    exit 1
}

# sample OUT : one line per second "ticks rss_kb" of the server (its processes summed) until
# it exits or this is killed.
sample() {
    local out=$1 rss pids
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        # shellcheck disable=SC2046 # one PID per word
        set -- $(server_pids)
        pids=("$@")
        rss=$(for pid in "${pids[@]}"; do cat "/proc/$pid/status" 2>/dev/null; done |
            awk '/^VmRSS:/ { s += $2 } END { print s + 0 }')
        echo "$(cpu_ticks "${pids[@]}") ${rss:-0}" >>"$out"
        sleep 1
    done
}

now() { date +%s.%N; }
# sleep_until EPOCH_SECONDS : in the background and waited for, so that a signal's trap runs
# at once instead of after the sleep.
sleep_until() {
    local d
    d=$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; if (d < 0) d = 0; printf "%.3f", d }')
    sleep "$d" &
    SLEEP_PID=$!
    wait "$SLEEP_PID" || true
    SLEEP_PID=""
}
# snapshot PREFIX : writes PREFIX.t (time), PREFIX.ticks (server CPU), PREFIX.metrics.
snapshot() {
    local prefix=$1
    now >"$prefix.t"
    # shellcheck disable=SC2046 # one PID per word
    cpu_ticks $(server_pids) >"$prefix.ticks"
    if [ -n "$METRICS_URL" ]; then
        curl -s --max-time 2 "$METRICS_URL" >"$prefix.metrics" || : >"$prefix.metrics"
    else
        : >"$prefix.metrics"
    fi
}
# metric_sum FILE NAME : sum of every series of NAME (empty when there is none).
metric_sum() {
    awk -v name="$2" '$1 == name || index($1, name "{") == 1 { s += $NF; n++ }
        END { if (n) printf "%.0f", s }' "$1"
}
# per_worker FILE NAME : "a/b/..." values of NAME{worker=...} in worker order.
per_worker() {
    awk -v name="$2" 'index($1, name "{") == 1 && match($1, /worker="[0-9]+"/) {
            w = substr($1, RSTART + 8, RLENGTH - 9); v[w] = $NF; if (w + 0 > max) max = w + 0; n++ }
        END { if (!n) exit; for (i = 0; i <= max; i++) printf "%s%s", (i ? "/" : ""), (i in v ? v[i] : "-") }' "$1"
}

# window_from N : the window opens when the ramp is done plus WARMUP_S (the joining readers'
# GOP-cache bursts are over); it closes 1 s before the end of the run.
window_from() {
    if [ "$RAMP" -gt 0 ]; then echo $((($1 + RAMP - 1) / RAMP + WARMUP_S)); else echo $((1 + WARMUP_S)); fi
}
for n in $READER_COUNTS; do
    from=$(window_from "$n")
    [ $((DURATION - 1 - from)) -ge 1 ] ||
        die "DURATION=$DURATION is too short for N=$n at RAMP=$RAMP: the window would open at ${from} s; use DURATION >= $((from + 2))"
done

ROWS=$WORK/rows.tsv
: >"$ROWS"
# run_one TARGET N ROUND : one fresh server, one publish, one load run; appends a row to ROWS.
run_one() {
    local kind label path n=$2 round=$3 settings url from to
    IFS='|' read -r kind label path <<<"$1"
    case $kind in
        uringcast)
            start_server_uringcast "$path"
            settings=$UC_SETTINGS
            METRICS_URL="http://127.0.0.1:$ADMIN_PORT/metrics"
            if [ "$path" = standin ]; then
                METRICS_URL="" # the stand-in plays the clip by itself and has no /metrics
            else
                publish
            fi
            ;;
        node-media-server)
            start_server_node_media_server
            settings=$NMS_SETTINGS
            METRICS_URL=""
            publish
            ;;
        nginx-rtmp)
            start_server_nginx_rtmp
            settings=$NGINX_RTMP_SETTINGS
            METRICS_URL=""
            publish
            ;;
    esac
    url=$(read_url "$kind")
    wait_playable "$url"
    from=$(window_from "$n")
    to=$((DURATION - 1))

    local cell=$WORK/cell samples=$WORK/cell.samples t0
    rm -f "$cell".*
    : >"$samples"
    sample "$samples" &
    SAMPLER_PID=$!
    t0=$(now)
    "$LOADGEN_BIN" "$url" --readers "$n" --duration-s "$DURATION" --ramp-per-s "$RAMP" \
        --window-from-s "$from" --window-to-s "$to" --json --quiet \
        >"$cell.report.json" 2>"$cell.loadgen.log" &
    LOADGEN_PID=$!
    sleep_until "$(awk -v a="$t0" -v b="$from" 'BEGIN { printf "%.3f", a + b }')"
    snapshot "$cell.a"
    if [ -n "$PERF_DATA" ]; then
        local perf_file=$PERF_DATA perf_s=$PERF_S
        [ "$RUNS" = 1 ] || perf_file=$PERF_DATA.$(printf '%s' "$label" | tr -c 'A-Za-z0-9_.-' '_')-$n-$round
        [ "$perf_s" -le $((to - from)) ] || perf_s=$((to - from))
        perf record -e cpu-clock -F "$PERF_FREQ" --call-graph "$CALL_GRAPH" -p "$(server_pids | paste -sd, -)" \
            -o "$perf_file" -- sleep "$perf_s" >"$WORK/perf.log" 2>&1 &
        PERF_PID=$!
    fi
    sleep_until "$(awk -v a="$t0" -v b="$to" 'BEGIN { printf "%.3f", a + b }')"
    snapshot "$cell.b"
    if [ -n "$PERF_PID" ]; then
        local perf_rc=0
        wait "$PERF_PID" || perf_rc=$?
        PERF_PID=""
        if [ "$perf_rc" != 0 ]; then
            cat "$WORK/perf.log" >&2
            die "perf record failed (exit $perf_rc)"
        fi
        echo "perf: $perf_file ($(grep -o '[0-9]* samples' "$WORK/perf.log" || echo '? samples'), ${perf_s} s)" >&2
    fi
    local rc=0
    wait "$LOADGEN_PID" || rc=$?
    LOADGEN_PID=""
    stop_pid "$SAMPLER_PID"
    SAMPLER_PID=""
    stop_pid "$PUBLISHER_PID"
    PUBLISHER_PID=""
    stop_pid "$SERVER_PID"
    SERVER_PID=""
    if [ "$rc" != 0 ] || ! jq -e .window "$cell.report.json" >/dev/null 2>&1; then
        echo "loadgen failed for $label N=$n (exit $rc):" >&2
        cat "$cell.loadgen.log" >&2
        exit 1
    fi

    local secs cpu_pct rss_mb sends bytes workers_conns
    secs=$(awk -v a="$(cat "$cell.a.t")" -v b="$(cat "$cell.b.t")" 'BEGIN { printf "%.6f", b - a }')
    cpu_pct=$(awk -v a="$(cat "$cell.a.ticks")" -v b="$(cat "$cell.b.ticks")" -v hz="$CLK_TCK" -v s="$secs" \
        'BEGIN { printf "%.1f", (b - a) / hz / s * 100 }')
    rss_mb=$(awk '{ if ($2 > m) m = $2 } END { printf "%.0f", m / 1024 }' "$samples")
    sends=""
    bytes=""
    local sa sb ba bb
    sa=$(metric_sum "$cell.a.metrics" uringcast_sends_submitted_total)
    sb=$(metric_sum "$cell.b.metrics" uringcast_sends_submitted_total)
    ba=$(metric_sum "$cell.a.metrics" uringcast_bytes_sent_total)
    bb=$(metric_sum "$cell.b.metrics" uringcast_bytes_sent_total)
    if [ -n "$sa" ] && [ -n "$sb" ]; then sends=$((sb - sa)); fi
    if [ -n "$ba" ] && [ -n "$bb" ]; then bytes=$((bb - ba)); fi
    workers_conns=$(per_worker "$cell.b.metrics" uringcast_connections_active)
    # Every figure of the row, in one place (the column order of the tables below).
    jq -r --arg name "$label" --arg settings "$settings" --arg n "$n" --arg round "$round" \
        --arg cpu "$cpu_pct" --arg rss "$rss_mb" --arg secs "$secs" --arg sends "$sends" \
        --arg bytes "$bytes" --arg conns "${workers_conns:--}" '
        def f(x): if x == null then "-" else (x | . * 10 | round / 10 | tostring) end;
        def g(x; d): if x == null then "-" else (x | . * d | round / d | tostring) end;
        (.window) as $w
        | (($w.readers_open_from + $w.readers_open_to) / 2) as $readers
        | ($w.mbps / 1000) as $gbps
        | ($cpu | tonumber) as $c
        | (if $sends == "" then null else ($sends | tonumber) end) as $s
        | (if $bytes == "" then null else ($bytes | tonumber) end) as $b
        | ($secs | tonumber) as $t
        | [ $name, $settings, $n, $round,
            ($w.readers_open_to | tostring), $cpu, $rss, g($gbps; 1000),
            (if $gbps > 0 then f($c / $gbps) else "-" end),
            (if $s == null or $readers == 0 then "-" else f($s / $readers / $t) end),
            (if $s == null or $s == 0 or $b == null then "-" else ($b / $s | round | tostring) end),
            f(.lag_ms.p99), f(.lag_over_best_ms.p99), $conns,
            f(.bitrate_kbps.p50), f(.bitrate_kbps.min), f(.lag_ms.p50), f(.lag_ms.max),
            f(.final_lag_ms.p50), f(.first_keyframe_ms.p50), f(.first_keyframe_ms.p99),
            f(.first_keyframe_ms.max), ((.errors | to_entries | map(.value) | add) | tostring),
            (if $b == null then "-" else g($b * 8 / $t / 1e9; 1000) end),
            g($w.from_s; 10) + "-" + g($w.to_s; 10),
            f(.hls.segment_download_ms.p50), f(.hls.segment_download_ms.p99),
            f(.hls.segment_lag_ms.p99),
            (if .hls == null then "-" else "\(.hls.stalls)/\(.hls.clients_stalled)" end),
            (if .hls == null then "-" else "\(.hls.segments_failed)/\(.hls.segments_missed)" end),
            (if .hls == null then "-" else "\(.hls.playlists_failed)" end) ] | @tsv' \
        "$cell.report.json" >>"$ROWS"
    tail -1 "$ROWS" | awk -F'\t' '{
        if (split($14, c, "/") > 1 && $3 >= 100) {
            lo = hi = c[1]; for (i in c) { if (c[i] < lo) lo = c[i]; if (c[i] > hi) hi = c[i] }
            if (lo < hi / 2) printf "warning: connections are not spread over the workers: %s\n", $14
        }
        printf "%s N=%s round %s: %s readers ok, CPU %s%%, %s Gbit/s delivered (server sent %s), %s%% of a core per Gbit/s, %s sends/reader/s of %s B, lag p99 %s ms, over best p99 %s ms, conns/worker %s",
            $1, $3, $4, $5, $6, $8, $24, $9, $10, $11, $12, $13, $14
        if ($29 != "-") printf ", segment download p99 %s ms, segment lag p99 %s ms, stalls/clients %s, segments failed/missed %s", $27, $28, $29, $30
        printf "\n" }' >&2
}

CLIP_NOTE=""
if [ "$PREENCODE" = 1 ]; then
    ensure_clip
    if command -v ffprobe >/dev/null; then
        CLIP_NOTE=$(ffprobe -v error -show_entries format=bit_rate -of default=nw=1:nk=1 "$CLIP" |
            awk '{ printf " (clip measured %.0f kbit/s)", $1 / 1000 }')
    fi
fi
{
    echo "servers: ${TARGETS[*]}"
    echo "stream $STREAM_LABEL: video $VIDEO_RATE + audio ${AUDIO_KBPS}k$CLIP_NOTE; workers=$WORKERS duration=${DURATION}s ramp=${RAMP}/s warmup=${WARMUP_S}s rounds=$ROUNDS preencode=$PREENCODE publish=$PUBLISH read=$READ"
    if grep -qv '^[[:space:]]*\(#.*\)\?$' "$CONFIG"; then
        echo "uringcast config:"
        grep -v '^#' "$CONFIG" | sed 's/^/    /'
    fi
} >&2
for n in $READER_COUNTS; do
    for round in $(seq "$FIRST_ROUND" $((FIRST_ROUND + ROUNDS - 1))); do
        for target in "${TARGETS[@]}"; do
            run_one "$target" "$n" "$round"
        done
    done
done

echo
printf '%-18s %6s %3s %6s %6s %7s | %8s %8s | %8s %8s %8s %9s %9s | %8s %8s %8s | %6s | %9s | %7s %7s %8s %9s %9s %5s\n' \
    server N rnd ok CPU% RSS-MB kbps-p50 kbps-min lag-p50 lag-p99 lag-max ">best-p99" final-p50 \
    key-p50 key-p99 key-max errors window-s seg-p50 seg-p99 slag-p99 stalls fail/miss pl-f
awk -F'\t' '{ printf "%-18s %6s %3s %6s %6s %7s | %8s %8s | %8s %8s %8s %9s %9s | %8s %8s %8s | %6s | %9s | %7s %7s %8s %9s %9s %5s\n",
    $1, $3, $4, $5, $6, $7, $15, $16, $17, $12, $18, $13, $19, $20, $21, $22, $23, $25,
    $26, $27, $28, $29, $30, $31 }' "$ROWS"
echo "(lag and key = first-keyframe latency in ms over the whole run (HLS: key = first segment); >best = lag over each reader's best; CPU% of one core over the window; kbps: FLV or TS bytes, RTMP readers: TCP payload bytes, HLS: playlist and segment bodies; HLS only: seg = segment download ms, slag = segment lag ms (needs program dates), stalls = stalls/clients stalled, fail/miss = segments failed/missed, pl-f = playlists failed)"

summary() {
    echo "| server | settings | N | round | readers ok | CPU % | RSS MB | Gbit/s | % core per Gbit/s | sends/reader/s | bytes/send | lag p99 ms | lag over best p99 ms | conns per worker | segment download p99 ms | stalls / clients |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
        $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $27, $29 }' "$ROWS"
    echo
    echo "($(nproc) CPUs, kernel $(uname -r); CPU % of one core and Gbit/s over each run's window" \
        "(ramp + ${WARMUP_S} s to 1 s before the end of ${DURATION} s), summed over a server's processes;" \
        "Gbit/s = FLV or TS bytes delivered, TCP payload bytes for RTMP readers, playlist and segment" \
        "bodies for HLS clients; lag over the whole run (HLS: none per frame); HLS: readers ok = clients" \
        "with a segment within 2 x target duration at the window's end, segment download = request to" \
        "last byte, a stall = more than 2 x target duration without a segment, over the whole run;" \
        "conns per worker = uringcast_connections_active at the window's end, publisher included.)"
    if [ -n "$SKIP_NOTE" ]; then echo "($SKIP_NOTE)"; fi
}
echo
summary
if [ -n "$OUT" ]; then
    summary >"$OUT"
    echo "wrote $OUT" >&2
fi
