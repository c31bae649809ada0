#!/usr/bin/env bash
# scripts/sysctl-tune.sh — kernel settings for a uringcast streaming box.
#
# What it does: `show` prints each setting's current and recommended value; `apply` saves the
# current values to a state file and writes the recommended ones, printing `key: old -> new`
# for each change; `revert` writes the saved values back and removes the state file.
# `--dry-run` (with apply or revert) prints what would change and writes nothing, not even the
# state file. The settings and the reason for each value are in the settings file named below.
#
# Bounds: touches only the keys of that file, through /proc/sys; never lowers a limit that is
# already higher than recommended ("at least" keys); loads no module except tcp_bbr/sch_fq
# (modprobe, apply only, and only to decide whether bbr/fq can be used); changes are not
# persistent across reboots (the uringcast package installs the settings file as a sysctl.d
# drop-in for that). A second `apply` keeps the first saved state, so `revert` always returns
# to the values from before the first `apply`.
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

# The settings come from the sysctl drop-in the uringcast package installs (its header explains
# the format), so this script and the package cannot disagree: packaging/sysctl/60-uringcast.conf
# next to this script in a checkout, else the installed /usr/lib/sysctl.d/60-uringcast.conf, or
# $URINGCAST_SYSCTL_CONF. Each becomes a line `key|mode|value|why`:
#   mode "min": raise to value if lower, never lower (limits, queue lengths, buffer ceilings)
#   mode "set": write exactly value
# Settings the kernel may lack (fq, bbr; `-key` in the file) go to OPTIONAL and are added below
# only if the kernel has them.
if [ -z "${URINGCAST_SYSCTL_CONF:-}" ]; then
    URINGCAST_SYSCTL_CONF="$(dirname "$0")/../packaging/sysctl/60-uringcast.conf"
    [ -f "$URINGCAST_SYSCTL_CONF" ] || URINGCAST_SYSCTL_CONF=/usr/lib/sysctl.d/60-uringcast.conf
fi
CONF=$URINGCAST_SYSCTL_CONF
if [ ! -r "$CONF" ]; then
    echo "cannot read the settings file $CONF (set URINGCAST_SYSCTL_CONF)" >&2
    exit 1
fi
SETTINGS=""
OPTIONAL=()
load_settings() {
    local line n=0 mode="" why="" prefix key val
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        if [[ $line =~ ^#\ \[(min|set)\]\ (.+)$ ]]; then
            mode=${BASH_REMATCH[1]}
            why=${BASH_REMATCH[2]}
            continue
        fi
        if [[ $line =~ ^(-|#)?([a-z0-9_.-]+)\ *=\ *(.*[^ ])\ *$ ]]; then
            prefix=${BASH_REMATCH[1]}
            key=${BASH_REMATCH[2]}
            val=${BASH_REMATCH[3]}
            if [ -z "$mode" ]; then
                # A commented-out line without a reason is an ordinary comment; a setting
                # must say why.
                if [ "$prefix" != "#" ]; then
                    echo "$CONF:$n: $key has no '# [min] ...' or '# [set] ...' line above it" >&2
                    exit 1
                fi
            elif [ "$prefix" = "-" ]; then
                OPTIONAL+=("$key|$mode|$val|$why")
            else
                SETTINGS+="$key|$mode|$val|$why"$'\n'
            fi
        elif [ -n "$mode" ]; then
            echo "$CONF:$n: a '# [$mode]' line must be followed by its key = value line" >&2
            exit 1
        fi
        mode=""
    done <"$CONF"
    if [ -z "$SETTINGS" ]; then
        echo "$CONF: no settings found" >&2
        exit 1
    fi
}
load_settings

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

# fq and bbr: only when the kernel has them. In apply mode try loading the module first.
available_cc() { cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null || true; }
have_cc() { available_cc | tr ' ' '\n' | grep -qx "$1"; }
# A qdisc may be a module, built in, or missing. The last resort asks the kernel directly by
# attaching it to the loopback device of a throwaway network namespace (root only; nothing
# outside that namespace changes).
have_qdisc() {
    [ -d "/sys/module/sch_$1" ] && return 0
    modinfo "sch_$1" >/dev/null 2>&1 && return 0
    command -v unshare >/dev/null && command -v tc >/dev/null || return 1
    unshare -n tc qdisc replace dev lo root "$1" >/dev/null 2>&1
}

NOTES=""
for entry in "${OPTIONAL[@]}"; do
    IFS='|' read -r key mode val why <<<"$entry"
    case $key in
        net.core.default_qdisc)
            if have_qdisc "$val"; then
                SETTINGS+="$entry"$'\n'
            else
                NOTES+="note: the $val qdisc is not available in this kernel; default_qdisc left alone"$'\n'
            fi
            ;;
        net.ipv4.tcp_congestion_control)
            if [ "$CMD" = apply ] && [ "$DRY_RUN" = 0 ] && ! have_cc "$val"; then
                modprobe -q "tcp_$val" 2>/dev/null || true
            fi
            if have_cc "$val"; then
                SETTINGS+="$entry"$'\n'
            else
                NOTES+="note: $val is not available (tcp_available_congestion_control: $(available_cc)); congestion control left alone"$'\n'
            fi
            ;;
        *)
            if read_key "$key" >/dev/null; then
                SETTINGS+="$entry"$'\n'
            else
                NOTES+="note: $key is absent in this kernel; left alone"$'\n'
            fi
            ;;
    esac
done

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
    if [ "$CONF" -ef /usr/lib/sysctl.d/60-uringcast.conf ]; then
        echo "persistent: $CONF is applied at every boot (systemd-sysctl)"
    else
        echo "to persist: install the uringcast package, or copy $CONF to /etc/sysctl.d/"
    fi
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
        if ! grep -q "^$key|" <<<"$SETTINGS" && ! printf '%s\n' "${OPTIONAL[@]}" | grep -q "^$key|"; then
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
