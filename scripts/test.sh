#!/usr/bin/env bash
# Every check CI runs, in one command: formatting, lints, all tests, and the
# Terraform checks (validate, terraform test, checkov, apply to moto).
# Installs what the tests need (moto_server, in a project-local .venv) and
# needs no network beyond the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build artefacts live outside the clone so CI runs on the same machine reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# moto >= 5.2.2: 5.2.1 answers CompleteMultipartUpload with the wrong XML root.
# awscrt: without it moto stores a CRC32 labelled CRC64NVME for multipart
# uploads that declare CRC64NVME, and every SDK read of them fails its check.
MOTO_VERSION=5.2.5
AWSCRT_VERSION=0.38.0
if ! .venv/bin/python -c "import moto, awscrt, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "== installing moto[server]==$MOTO_VERSION and awscrt==$AWSCRT_VERSION into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "awscrt==$AWSCRT_VERSION"
fi
export BOTTLESYNC_MOTO_SERVER="$PWD/.venv/bin/moto_server"

# nginx: tests/nginx_mirror.rs runs the shipped contrib/nginx config and
# skips (saying so) without it. Installed only where that is possible.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing nginx (tests/nginx_mirror.rs)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q nginx-light || { apt-get update -q && apt-get install -y -q nginx-light; } ||
      apt-get install -y -q nginx; } >/dev/null 2>&1 ||
      echo "== could not install nginx: tests/nginx_mirror.rs will be skipped"
  else
    echo "== no nginx and no way to install it here (needs root and apt-get): tests/nginx_mirror.rs will be skipped"
  fi
fi

# curl (with HTTP/2, as Debian builds it): tests/serve.rs checks HTTPS with it.
if ! command -v curl >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing curl (tests/serve.rs)"
  { apt-get install -y -q curl || { apt-get update -q && apt-get install -y -q curl; }; } >/dev/null 2>&1
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
if [ -d terraform ]; then
  echo "== terraform fmt -check"
  terraform fmt -check -recursive terraform
fi
echo "== crate boundaries (scripts/check-layers.sh)"
./scripts/check-layers.sh
echo "== the ECS image's build stage (scripts/check-dockerfile.sh)"
./scripts/check-dockerfile.sh
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
if [ -d terraform ]; then
  # validate, terraform test, checkov, and apply + plan + work + destroy on moto.
  echo "== scripts/terraform-check.sh"
  BOTTLESYNC_PREBUILT=1 ./scripts/terraform-check.sh all
fi
