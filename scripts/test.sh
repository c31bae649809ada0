#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this and nothing else).
#
# 1. Installs what the tests need on a fresh Debian machine (as root, with apt-get):
#    ffmpeg/ffprobe (real publishers, players and decoders), curl (a real HTTP client),
#    rtmpdump (librtmp) and GStreamer with its RTMP elements (rtmp2sink/rtmp2src from
#    plugins-bad, librtmp's rtmpsink, flvmux/flvdemux from plugins-good): RTMP peers that
#    are not ffmpeg; Debian's chromium (headless, for the browser players in tests/browser.rs)
#    and, with the machine's Node.js (>= 20) and npm, `npm ci` in tests/browser (playwright-core
#    and the players; nothing downloads a browser). The npm step is skipped when node_modules
#    already matches package-lock.json. systemd's tools and cargo-deb (pinned) for
#    tests/package.rs, which makes the Debian package and inspects it. promtool comes from
#    Debian's prometheus package, downloaded and unpacked under target/tools (never
#    installed: no daemon).
# 2. cargo fmt --check, cargo clippy --all-targets -D warnings.
# 3. cargo test --bench http_parse (criterion in test mode), then cargo test: unit and property tests (parsers, ring, timer, config), the stable runs of
#    the fuzz entry points, and the integration tests that start the real binary on
#    ephemeral loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v rtmpdump >/dev/null 2>&1 || missing+=(rtmpdump)
command -v gst-launch-1.0 >/dev/null 2>&1 || missing+=(gstreamer1.0-tools)
# The elements the RTMP tests use, by the package that has them.
if command -v gst-inspect-1.0 >/dev/null 2>&1; then
    gst-inspect-1.0 rtmp2sink >/dev/null 2>&1 || missing+=(gstreamer1.0-plugins-bad)
    gst-inspect-1.0 flvmux >/dev/null 2>&1 || missing+=(gstreamer1.0-plugins-good)
    gst-inspect-1.0 filesrc >/dev/null 2>&1 || missing+=(gstreamer1.0-plugins-base)
else
    missing+=(gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-plugins-base)
fi
[ -x /usr/bin/chromium ] || missing+=(chromium)
# tests/package.rs: systemd-analyze (verify, security), systemd-sysusers and systemd-tmpfiles
# (run with --root on the packaged files). In a container, where systemd is not running,
# installing it starts nothing. dpkg-deb comes with dpkg.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: need ${missing[*]}; run as root or install them (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "scripts/test.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The browser harness's packages, pinned by tests/browser/package-lock.json.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "scripts/test.sh: need Node.js >= 20 and npm for tests/browser" >&2
    exit 1
fi
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.uringcast-lock; then
    echo "scripts/test.sh: npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp tests/browser/package-lock.json tests/browser/node_modules/.uringcast-lock
fi

# promtool (Prometheus' rule and exposition checker, for tests/ops.rs): Debian's prometheus
# package unpacked under target/tools, not installed, so no daemon or user is set up.
PROMTOOL_DIR=target/tools/prometheus
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$PROMTOOL_DIR/usr/bin/promtool" ]; then
    echo "scripts/test.sh: fetching promtool (Debian's prometheus package, unpacked only)"
    mkdir -p "$PROMTOOL_DIR"
    if ! (cd "$PROMTOOL_DIR" && apt-get download prometheus >/dev/null 2>&1); then
        # A fresh machine may have no package lists yet.
        [ "$(id -u)" -eq 0 ] && apt-get update -qq
        (cd "$PROMTOOL_DIR" && apt-get download prometheus >/dev/null)
    fi
    (cd "$PROMTOOL_DIR" && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb)
fi
if [ -z "${PROMTOOL:-}" ]; then
    PROMTOOL=$(command -v promtool 2>/dev/null || echo "$PWD/$PROMTOOL_DIR/usr/bin/promtool")
fi
export PROMTOOL

# cargo-deb for tests/package.rs, pinned (the maintainer scripts it generates are asserted).
# Built once, about a minute; an installed cargo-deb is used as it is.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo install cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
elif [ "$(cargo deb --version)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "scripts/test.sh: note: $(cargo deb --version) installed; the tests expect $CARGO_DEB_VERSION" >&2
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Criterion benches once each in test mode (they must keep building and running), then every
# other target: unit, property and integration tests.
cargo test --bench http_parse
cargo test
