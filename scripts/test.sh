#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this and nothing else).
#
# 1. Installs what the tests need on a fresh Debian machine (as root, with apt-get):
#    ffmpeg/ffprobe (real publishers, players and decoders) and curl (a real HTTP client).
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

cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Criterion benches once each in test mode (they must keep building and running), then every
# other target: unit, property and integration tests.
cargo test --bench http_parse
cargo test
