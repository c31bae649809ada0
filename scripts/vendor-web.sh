#!/usr/bin/env bash
# Vendor the console's two players into web/vendor/ (committed; the binary embeds them, so
# `cargo build` and the server need no network).
#
# The versions are the ones tests/browser/package-lock.json pins (the browser tests play with
# the same builds the console ships). For each package: `npm pack NAME@VERSION` into a temp
# dir, check the tarball's integrity against the lock, and copy its minified browser build and
# licence files, unchanged, into web/vendor/. web/vendor/VERSIONS records what came from where.
#
# To refresh: change the versions in tests/browser/package.json, `npm install` there (updates
# the lock), run this script, then update the versioned URLs in src/app/console.rs (a unit
# test fails until the URLs and VERSIONS agree) and commit web/vendor/ with the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

lock=tests/browser/package-lock.json
out=web/vendor
command -v npm >/dev/null 2>&1 || { echo "vendor-web.sh: needs npm" >&2; exit 1; }

# NAME FIELD -> the lock's entry for node_modules/NAME
locked() {
    node -e 'const l = require(process.argv[1]); const p = l.packages["node_modules/" + process.argv[2]];
             if (!p) { console.error("no " + process.argv[2] + " in the lock"); process.exit(1); }
             console.log(p[process.argv[3]]);' "$PWD/$lock" "$1" "$2"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Everything is staged first: web/vendor/ changes only once both packages are in hand.
staged="$tmp/out"
mkdir -p "$staged"
versions="$staged/VERSIONS"
cat >"$versions" <<'EOF'
# The console's players, vendored by scripts/vendor-web.sh from the npm registry at the
# versions tests/browser/package-lock.json pins; files are copied unchanged from the package
# tarballs (their source maps are not shipped); each package's licence is NAME.LICENSE beside
# them (mpegts.js.LICENSE.txt: the notices of what mpegts.js bundles). Refresh: see the
# header of scripts/vendor-web.sh.
# package version npm-integrity file sha256
EOF

# NAME DIST-FILE VENDORED-NAME LICENCE-FILE:VENDORED-NAME...
vendor() {
    local name=$1 dist=$2 file=$3
    shift 3
    local version integrity
    version=$(locked "$name" version)
    integrity=$(locked "$name" integrity)
    mkdir -p "$tmp/$name"
    local packed
    packed=$(cd "$tmp/$name" && npm pack --silent "$name@$version" --json)
    local got
    got=$(node -e 'console.log(JSON.parse(process.argv[1])[0].integrity)' "$packed")
    if [ "$got" != "$integrity" ]; then
        echo "vendor-web.sh: $name@$version integrity $got differs from the lock's $integrity" >&2
        exit 1
    fi
    tar -xzf "$tmp/$name"/*.tgz -C "$tmp/$name"
    cp "$tmp/$name/package/$dist" "$staged/$file"
    for licence in "$@"; do
        cp "$tmp/$name/package/${licence%%:*}" "$staged/${licence#*:}"
    done
    echo "$name $version $integrity $file $(sha256sum "$staged/$file" | cut -d' ' -f1)" >>"$versions"
    echo "vendor-web.sh: $name $version -> $out/$file"
}

vendor hls.js dist/hls.min.js hls.min.js LICENSE:hls.js.LICENSE
# mpegts.js's dist build is minified; dist/mpegts.js.LICENSE.txt (named by its first line)
# holds the notices of what it bundles.
vendor mpegts.js dist/mpegts.js mpegts.min.js LICENSE:mpegts.js.LICENSE \
    dist/mpegts.js.LICENSE.txt:mpegts.js.LICENSE.txt

rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r "$staged" "$out"
ls -l "$out"
