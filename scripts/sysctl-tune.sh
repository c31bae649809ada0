#!/usr/bin/env bash
# scripts/sysctl-tune.sh — kernel settings for a uringcast streaming box.
#
# What it does: `show` prints each setting's current and recommended value; `apply` saves the
# current values to a state file and writes the recommended ones, printing `key: old -> new`
# for each change; `revert` writes the saved values back and removes the state file.
# `--dry-run` (with apply or revert) prints what would change and writes nothing, not even the
# state file. The reason for each value is in the table below.
#
# Bounds: touches only the keys listed below, through /proc/sys; never lowers a limit that is
# already higher than recommended ("at least" keys); loads no module except tcp_bbr/sch_fq
# (modprobe, apply only, and only to decide whether bbr/fq can be used); changes are not
# persistent across reboots (put them in /etc/sysctl.d/ if you want that: `show` prints the
# lines). A second `apply` keeps the first saved state, so `revert` always returns to the
# values from before the first `apply`.
#
# Run:
#   scripts/sysctl-tune.sh show
#   sudo scripts/sysctl-tune.sh apply [--dry-run] [--state FILE]
#   sudo scripts/sysctl-tune.sh revert [--dry-run] [--state FILE]
# State file default: /var/lib/uringcast/sysctl.saved (or $URINGCAST_SYSCTL_STATE).

set -euo pipefail

STATE=${URINGCAST_SYSCTL_STATE:-/var/lib/uringcast/sysctl.saved}
DRY_RUN=0
CMD=""

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
        apply | revert | show) CMD=$1 ;;
        --dry-run) DRY_RUN=1 ;;
        --state) shift; STATE=${1:?--state needs a file} ;;
        --state=*) STATE=${1#--state=} ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
    shift
done
[ -n "$CMD" ] || usage

# key | mode | value | why
#   mode "min": raise to value if lower, never lower (limits, queue lengths, buffer ceilings)
#   mode "set": write exactly value
# Keys for fq/bbr are added below only if the kernel has them.
SETTINGS=$(cat <<'EOF'
net.core.somaxconn|min|65535|Caps every listen() backlog; a publisher restart makes thousands of players reconnect within a second, and a short accept queue turns that into SYN drops and 1-3 s retransmit stalls.
net.ipv4.tcp_max_syn_backlog|min|65535|Half-open connections kept during such a reconnect storm before SYN cookies kick in.
net.core.netdev_max_backlog|min|16384|Per-CPU queue of received packets waiting for the stack; at 10G+ ingest of many publishers the default 1000 drops packets in bursts.
net.core.rmem_max|min|67108864|Ceiling for SO_RCVBUF set by the application (64 MiB), e.g. a big ingest buffer for a long-RTT publisher.
net.core.wmem_max|min|67108864|Ceiling for SO_SNDBUF set by the application (64 MiB).
net.ipv4.tcp_rmem|set|4096 131072 33554432|Receive autotuning min/default/max: 32 MiB max lets one long-RTT ingest reach full rate (bandwidth x RTT); the default stays small so idle sockets cost little.
net.ipv4.tcp_wmem|set|4096 65536 33554432|Send autotuning: 32 MiB max for VOD downloads over long fat paths; live readers are kept short by tcp_notsent_lowat below, not by a small buffer.
fs.file-max|min|2097152|System-wide open files: every viewer is one socket, plus files and pipes for VOD.
fs.nr_open|min|2097152|Per-process ceiling for RLIMIT_NOFILE; uringcast raises its own limit up to this at start.
net.ipv4.ip_local_port_range|set|10240 65535|Ephemeral ports for outgoing connections (edge pulls from an origin, the load generator): ~55k instead of ~28k, starting above the usual service ports.
net.ipv4.tcp_fin_timeout|set|15|Seconds an orphaned connection waits in FIN_WAIT_2 for a vanished player; 60 keeps dead viewers' memory around four times as long.
net.ipv4.tcp_tw_reuse|set|1|Reuse TIME_WAIT ports for new outgoing connections (safe with timestamps); matters for edges and load tests that open many connections to one origin.
net.ipv4.tcp_slow_start_after_idle|set|0|Live video is bursty (a keyframe every GOP); after an idle gap longer than the RTO the kernel would shrink cwnd and slow-start each burst again, adding delay to every keyframe.
net.ipv4.tcp_notsent_lowat|set|131072|A socket reports writable only while less than 128 KiB is queued but unsent. Without it a live reader's send buffer can swallow megabytes (seconds of video) that can no longer be skipped; with it the backlog stays in the relay's ring, where lag is measured and a slow reader is moved to the latest keyframe.
EOF
)

proc_path() { echo "/proc/sys/${1//.//}"; }

read_key() { # prints the value with whitespace normalised, or fails if the key is absent
    local p
    p=$(proc_path "$1")
    [ -r "$p" ] || return 1
    tr -s ' \t' '  ' <"$p" | sed 's/^ //; s/ $//'
}

write_key() {
    local p
    p=$(proc_path "$1")
    printf '%s\n' "$2" >"$p"
}

# fq and bbr: only when the kernel has them. In apply mode try loading tcp_bbr first.
available_cc() { cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null || true; }
have_bbr() { available_cc | tr ' ' '\n' | grep -qx bbr; }
# sch_fq may be a module, built in, or missing. The last resort asks the kernel directly by
# attaching fq to the loopback device of a throwaway network namespace (root only; nothing
# outside that namespace changes).
have_fq() {
    [ -d /sys/module/sch_fq ] && return 0
    modinfo sch_fq >/dev/null 2>&1 && return 0
    command -v unshare >/dev/null && command -v tc >/dev/null || return 1
    unshare -n tc qdisc replace dev lo root fq >/dev/null 2>&1
}

if [ "$CMD" = apply ] && [ "$DRY_RUN" = 0 ] && ! have_bbr; then
    modprobe -q tcp_bbr 2>/dev/null || true
fi
NOTES=""
if have_fq; then
    SETTINGS+=$'\n'"net.core.default_qdisc|set|fq|Fair queueing with per-flow pacing: one fast VOD download cannot starve live readers on the same NIC, and BBR's pacing is done by the qdisc instead of TCP's internal timer. Applies to qdiscs created later; for a running interface also run: tc qdisc replace dev IFACE root fq."
else
    NOTES+="note: the fq qdisc is not available in this kernel; default_qdisc left alone"$'\n'
fi
if have_bbr; then
    SETTINGS+=$'\n'"net.ipv4.tcp_congestion_control|set|bbr|Model-based congestion control: keeps throughput on lossy last-mile paths where CUBIC halves its rate at each loss, and keeps bottleneck queues (and so viewer latency) short. Since Linux 4.13 it paces by itself when fq is absent."
else
    NOTES+="note: bbr is not available (tcp_available_congestion_control: $(available_cc)); congestion control left alone"$'\n'
fi

is_int() { [[ $1 =~ ^[0-9]+$ ]]; }

# target CURRENT MODE VALUE -> the value apply would write
target() {
    local cur=$1 mode=$2 val=$3
    if [ "$mode" = min ] && is_int "$cur" && is_int "$val" && [ "$cur" -ge "$val" ]; then
        echo "$cur"
    else
        echo "$val"
    fi
}

need_root() {
    if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
        echo "$CMD needs root (or use --dry-run)" >&2
        exit 1
    fi
}

cmd_show() {
    printf '%-38s %-24s %-24s %s\n' KEY CURRENT RECOMMENDED STATUS
    local key mode val why cur tgt status
    while IFS='|' read -r key mode val why; do
        [ -n "$key" ] || continue
        if ! cur=$(read_key "$key"); then
            printf '%-38s %-24s %-24s %s\n' "$key" "-" "$val" "absent in this kernel"
            continue
        fi
        tgt=$(target "$cur" "$mode" "$val")
        if [ "$cur" = "$tgt" ]; then status=ok; else status=differs; fi
        [ "$mode" = min ] && [ "$status" = ok ] && [ "$cur" != "$val" ] && status="ok (higher)"
        printf '%-38s %-24s %-24s %s\n' "$key" "$cur" "$val" "$status"
    done <<<"$SETTINGS"
    printf "%s" "$NOTES"
    if [ -f "$STATE" ]; then
        echo "saved state: $STATE ($(wc -l <"$STATE") keys; 'revert' restores them)"
    fi
    echo
    echo "# To persist, put these lines in /etc/sysctl.d/90-uringcast.conf:"
    while IFS='|' read -r key mode val why; do
        [ -n "$key" ] || continue
        echo "# $why"
        echo "$key = $val"
    done <<<"$SETTINGS"
}

cmd_apply() {
    need_root
    local key mode val why cur tgt changed=0 failed=0 save_state=1
    if [ -f "$STATE" ]; then
        echo "state file $STATE exists (an earlier apply); keeping it so revert returns to the original values" >&2
        save_state=0
    fi
    local tmp=""
    if [ "$DRY_RUN" = 0 ] && [ "$save_state" = 1 ]; then
        mkdir -p "$(dirname "$STATE")"
        tmp=$(mktemp "$STATE.XXXXXX")
        # Save every key first, so that a failure half-way still leaves a complete state file.
        while IFS='|' read -r key mode val why; do
            [ -n "$key" ] || continue
            cur=$(read_key "$key") || continue
            printf '%s\t%s\n' "$key" "$cur" >>"$tmp"
        done <<<"$SETTINGS"
        mv "$tmp" "$STATE"
    fi
    while IFS='|' read -r key mode val why; do
        [ -n "$key" ] || continue
        if ! cur=$(read_key "$key"); then
            echo "$key: absent in this kernel, skipped"
            continue
        fi
        tgt=$(target "$cur" "$mode" "$val")
        [ "$cur" != "$tgt" ] || continue
        if [ "$DRY_RUN" = 1 ]; then
            echo "$key: $cur -> $tgt (dry run)"
        elif write_key "$key" "$tgt" 2>/dev/null; then
            echo "$key: $cur -> $tgt"
        else
            echo "$key: $cur -> $tgt FAILED (not writable here, e.g. inside a network namespace)" >&2
            failed=$((failed + 1))
            continue
        fi
        changed=$((changed + 1))
    done <<<"$SETTINGS"
    printf "%s" "$NOTES"
    echo "$changed change(s)$([ "$DRY_RUN" = 1 ] && echo ' would be made')$([ "$failed" -gt 0 ] && echo ", $failed failed")"
    if [ "$DRY_RUN" = 0 ] && [ "$save_state" = 1 ]; then
        echo "previous values saved in $STATE"
    fi
    [ "$failed" = 0 ]
}

cmd_revert() {
    need_root
    if [ ! -f "$STATE" ]; then
        echo "no saved state at $STATE; nothing to revert" >&2
        exit 1
    fi
    local key old cur failed=0
    while IFS=$'\t' read -r key old; do
        [ -n "$key" ] || continue
        # Only keys this script manages, whatever the file says.
        if ! grep -q "^$key|" <<<"$SETTINGS" && ! [[ $key =~ ^net\.(core\.default_qdisc|ipv4\.tcp_congestion_control)$ ]]; then
            echo "$key: not managed by this script, ignored" >&2
            continue
        fi
        cur=$(read_key "$key") || continue
        [ "$cur" != "$old" ] || continue
        if [ "$DRY_RUN" = 1 ]; then
            echo "$key: $cur -> $old (dry run)"
        elif write_key "$key" "$old" 2>/dev/null; then
            echo "$key: $cur -> $old"
        else
            echo "$key: $cur -> $old FAILED" >&2
            failed=$((failed + 1))
        fi
    done <"$STATE"
    if [ "$DRY_RUN" = 0 ] && [ "$failed" = 0 ]; then
        rm -f "$STATE"
        echo "reverted; removed $STATE"
    fi
    [ "$failed" = 0 ]
}

case $CMD in
    show) cmd_show ;;
    apply) cmd_apply ;;
    revert) cmd_revert ;;
esac
