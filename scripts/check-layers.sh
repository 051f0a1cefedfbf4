#!/usr/bin/env bash
# The crate boundaries ARCHITECTURE.md promises, checked on the dependency
# graph (normal dependencies; dev-dependencies may use anything):
#   - bottlesync-core links no AWS SDK, HTTP client or server, or CLI parser;
#   - bottlesync-planner and bottlesync-worker depend on core only: not on
#     each other, not on bottlesync-adapters, not on an AWS SDK crate;
#   - bottlesync-loadtest (the Homebrew stand-in) links no AWS SDK crate;
#   - bottlesync-core takes no tokio "net" (mio, socket2): it does no I/O
#     of its own;
#   - no two source files of a product crate (core, planner, worker,
#     adapters, the binaries) import each other, directly or round a longer
#     circle (`use crate::...` / `use super::...` lines).
# "AWS crate": aws-config, aws-sdk-*, aws-smithy-*, aws-sigv4,
# aws_lambda_events, ...; not aws-lc-rs/aws-lc-sys, the TLS crypto rustls
# uses, which is no SDK. The binaries (the root crate) and adapters may.
# Exits 1 naming every crate, feature or circle that breaks a rule.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
# deps PACKAGE: the names of its normal dependency tree, one per line.
deps() { cargo tree --locked -q -p "$1" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u; }
# forbid PACKAGE PATTERN WHY
forbid() {
  local tree found
  tree=$(deps "$1") # a failing `cargo tree` stops the check (set -e)
  found=$(echo "$tree" | grep -E "$2" | grep -vE '^aws-lc-' | grep -vx "$1" || true)
  if [ -n "$found" ]; then
    echo "$1 must not depend on $3, but its tree has: $(echo "$found" | tr '\n' ' ')" >&2
    status=1
  else
    echo "   $1: depends on no $3"
  fi
}
forbid bottlesync-core '^(aws[-_]|reqwest$|clap$|clap_|axum$)' 'aws-*, aws_*, reqwest, clap or axum'
forbid bottlesync-planner '^(aws[-_]|bottlesync-worker$|bottlesync-adapters$)' 'bottlesync-worker, bottlesync-adapters, aws-* or aws_*'
forbid bottlesync-worker '^(aws[-_]|bottlesync-planner$|bottlesync-adapters$)' 'bottlesync-planner, bottlesync-adapters, aws-* or aws_*'
forbid bottlesync-loadtest '^aws[-_]' 'aws-* or aws_*'

# tokio's features as core alone resolves them (what `cargo build -p
# bottlesync-core` compiles), one line per package.
core_tree=$(cargo tree --locked -q -p bottlesync-core -e normal --prefix none --format '{p} {f}')
core_tokio=$(echo "$core_tree" | awk '$1 == "tokio" {print; exit}')
[ -n "$core_tokio" ] || { echo "bottlesync-core: no tokio in its tree?" >&2; exit 1; }
if echo "$core_tokio" | grep -qE '(^|[ ,])(net|full)(,|$)'; then
  echo "bottlesync-core must not take tokio's \"net\" feature, but has: $core_tokio" >&2
  status=1
else
  echo "   bottlesync-core: tokio without \"net\""
fi

# Import circles between the files of each crate the product is made of
# (the stand-ins in loadtest/ are test equipment, left out).
python3 - core planner worker adapters . <<'PY' || status=1
import os, re, sys

def files(src):
    for dirpath, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d != "bin"]
        for name in names:
            if name.endswith(".rs"):
                yield os.path.join(dirpath, name)

def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel

def resolve(src, segments):
    """The file a module path names (the longest prefix that is a file)."""
    for n in range(len(segments), 0, -1):
        base = os.path.join(src, *segments[:n])
        for candidate in (base + ".rs", os.path.join(base, "mod.rs")):
            if os.path.isfile(candidate):
                return candidate
    return None

failed = False
for crate in sys.argv[1:]:
    src = os.path.join(crate, "src")
    if not os.path.isdir(src):
        continue
    edges = {}
    for path in files(src):
        module = module_of(src, path)
        targets = set()
        for line in open(path, encoding="utf-8"):
            # Top-level imports only: a test module's `use super::*` is
            # its own file.
            m = re.match(r"use (crate|super)::([A-Za-z0-9_:]+)", line)
            if not m:
                continue
            segments = [s for s in m.group(2).split("::") if s and s != "{"]
            if m.group(1) == "super":
                segments = module[:-1] + segments
            target = resolve(src, segments)
            if target and target != path and not target.endswith(("lib.rs", "main.rs")):
                targets.add(target)
        edges[path] = targets
    # Depth-first search for a circle.
    state, stack = {}, []
    def visit(node):
        global failed
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circle = stack[stack.index(nxt):] + [nxt]
                print("import circle: " + " -> ".join(circle), file=sys.stderr)
                failed = True
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2
    for node in sorted(edges):
        if node not in state:
            visit(node)
    if not failed:
        print(f"   {crate if crate != '.' else 'bottlesync (src)'}: no import circles between its files")
sys.exit(1 if failed else 0)
PY
exit $status
