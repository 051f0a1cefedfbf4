#!/usr/bin/env bash
# An offline demo: start the Homebrew stand-in, mirror wget and its
# dependencies into ./mirror, show what was written, and check it the way
# brew clients use it (`bottlesync verify`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}"
# One build: the crates both binaries share (tokio, hyper, ...) compile once,
# with one set of features. The stand-in itself needs no AWS SDK.
cargo build --release --quiet -p bottlesync --bin bottlesync -p bottlesync-loadtest --bin bottlesync-fixture
bin="$CARGO_TARGET_DIR/release"

fifo=$(mktemp -u); mkfifo "$fifo"
"$bin/bottlesync-fixture" --preset tricky >"$fifo" 2>/dev/null &
fixture=$!
trap 'kill $fixture 2>/dev/null; rm -f "$fifo"' EXIT
read -r line <"$fifo"
api_url=${line#API_URL=}
echo "Homebrew stand-in at $api_url"

"$bin/bottlesync" sync --dest ./mirror --api-url "$api_url" --formula wget --with-deps "$@"
echo
find ./mirror -type f -not -path '*/.bottlesync/*' | sort
echo
"$bin/bottlesync" verify --dest ./mirror
echo
echo "Clients: HOMEBREW_API_DOMAIN=<base>/api HOMEBREW_BOTTLE_DOMAIN=<base>/bottles HOMEBREW_NO_AUTO_UPDATE=1,"
echo "with <base> a static server of ./mirror (README: Serving the mirror to brew)."
