#!/usr/bin/env bash
# Builds the Lambda zips where the Terraform variables planner_zip_path and
# worker_zip_path point by default:
#   terraform/dist/bottlesync-planner-lambda.zip
#   terraform/dist/bottlesync-worker-lambda.zip
# each a `bootstrap` for the provided.al2023 runtime, built by cargo-lambda
# (from PyPI; it brings Zig to cross-compile). arm64 by default, as the
# functions are; `--x86-64` builds for x86_64 (then set
# lambda_architecture = "x86_64").
# The ECS worker image is the repository's Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}"

ARCH_FLAG=--arm64
TARGET=aarch64-unknown-linux-gnu
case "${1:-}" in
"") ;;
--x86-64) ARCH_FLAG=--x86-64 TARGET=x86_64-unknown-linux-gnu ;;
*)
  echo "usage: $0 [--x86-64]" >&2
  exit 2
  ;;
esac

CARGO_LAMBDA_VERSION=1.9.2
if ! cargo lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
  if [ ! -x .venv/cargo-lambda/bin/cargo-lambda ]; then
    echo "== installing cargo-lambda==$CARGO_LAMBDA_VERSION into .venv/cargo-lambda"
    python3 -m venv .venv/cargo-lambda
    .venv/cargo-lambda/bin/pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
  fi
  export PATH="$ROOT/.venv/cargo-lambda/bin:$PATH"
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
  echo "the Rust standard library for $TARGET is missing: rustup target add $TARGET" >&2
  exit 1
fi

echo "== cargo lambda build --release $ARCH_FLAG --output-format zip"
cargo lambda build --release "$ARCH_FLAG" --output-format zip --locked \
  -p bottlesync --bin bottlesync-planner-lambda --bin bottlesync-worker-lambda

mkdir -p terraform/dist
for bin in bottlesync-planner-lambda bottlesync-worker-lambda; do
  zip="$CARGO_TARGET_DIR/lambda/$bin/bootstrap.zip"
  python3 -c 'import sys, zipfile; sys.exit("bootstrap" not in zipfile.ZipFile(sys.argv[1]).namelist())' "$zip" || {
    echo "$zip has no bootstrap" >&2
    exit 1
  }
  cp "$zip" "terraform/dist/$bin.zip"
  echo "   terraform/dist/$bin.zip ($(du -h "terraform/dist/$bin.zip" | cut -f1))"
done
