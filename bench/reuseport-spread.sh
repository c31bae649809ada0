#!/usr/bin/env bash
# bench/reuseport-spread.sh — how evenly SO_REUSEPORT spreads new connections over uringcast's
# per-worker listeners, read from the server's own per-worker accept counters.
#
# Starts uringcast (release) with $WORKERS workers on loopback, runs wrk with
# "Connection: close" (so every request is a new connection) for $DURATION s, ROUNDS times, and
# prints uringcast_connections_accepted_total per worker and the max/min ratio.
# Bounded: wrk -d per round, loopback only; the server is stopped on exit.
#
# Run:  cargo build --release && bench/reuseport-spread.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
. "$HERE/lib.sh"
BIN=${URINGCAST_BIN:-$ROOT/target/release/uringcast}
WORKERS=${WORKERS:-$(nproc)}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d /tmp/uringcast-spread.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/media"
echo hello > "$WORK/media/a.txt"
PORT=$(free_port)
ADMIN_PORT=$(free_port)
"$BIN" --http-listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" --media-root "$WORK/media" \
    --workers "$WORKERS" >"$WORK/log" 2>&1 &
PID=$!
wait_http "http://127.0.0.1:$PORT/vod/a.txt" 10
accepted() {
    curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk -F'[{}" ]+' '/^uringcast_connections_accepted_total\{/ { print $3, $NF }' | sort
}
for round in $(seq 1 "$ROUNDS"); do
    before=$(accepted)
    wrk -t2 -c32 -d"${DURATION}s" -H "Connection: close" "http://127.0.0.1:$PORT/vod/a.txt" >/dev/null
    sleep 0.3
    after=$(accepted)
    join <(echo "$before") <(echo "$after") | awk -v r="$round" '
        { d[$1] = $3 - $2; total += d[$1]; if (min == "" || d[$1] < min) min = d[$1]; if (d[$1] > max) max = d[$1] }
        END { printf "round %d: %d connections;", r, total; for (w in d) printf " worker %s %.1f%%", w, 100 * d[w] / total; printf "; max/min %.3f\n", max / min }'
done
