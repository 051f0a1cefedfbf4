#!/usr/bin/env bash
# The crate boundaries ARCHITECTURE.md promises, checked on the dependency
# graph (normal dependencies; dev-dependencies may use anything):
#   - bottlesync-core links no AWS SDK, HTTP client or server, or CLI parser;
#   - bottlesync-planner and bottlesync-worker depend on core only: not on
#     each other, not on bottlesync-adapters, not on an AWS SDK crate;
#   - bottlesync-loadtest (the Homebrew stand-in) links no AWS SDK crate.
# "AWS SDK crate": aws-config, aws-sdk-*, aws-smithy-*, aws-sigv4, ...; not
# aws-lc-rs/aws-lc-sys, the TLS crypto rustls uses, which is no SDK.
# Exits 1 naming every crate that breaks a rule.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
# deps PACKAGE: the names of its normal dependency tree, one per line.
deps() { cargo tree --locked -q -p "$1" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u; }
# forbid PACKAGE PATTERN WHY
forbid() {
  local found
  found=$(deps "$1" | grep -E "$2" | grep -vE '^aws-lc-' | grep -vx "$1" || true)
  if [ -n "$found" ]; then
    echo "$1 must not depend on $3, but its tree has: $(echo "$found" | tr '\n' ' ')" >&2
    status=1
  else
    echo "   $1: depends on no $3"
  fi
}
forbid bottlesync-core '^(aws-|reqwest$|clap$|clap_|axum$)' 'aws-*, reqwest, clap or axum'
forbid bottlesync-planner '^(aws-|bottlesync-worker$|bottlesync-adapters$)' 'bottlesync-worker, bottlesync-adapters or aws-*'
forbid bottlesync-worker '^(aws-|bottlesync-planner$|bottlesync-adapters$)' 'bottlesync-planner, bottlesync-adapters or aws-*'
forbid bottlesync-loadtest '^aws-' 'aws-*'
exit $status
