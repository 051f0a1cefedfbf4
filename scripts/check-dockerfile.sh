#!/usr/bin/env bash
# The ECS image's build stage, rehearsed without docker (none runs here):
# lay out exactly what the Dockerfile's build stage COPYs from the build
# context (the repository's files less .dockerignore), then run that
# stage's cargo command inside it, offline against the registry cargo has
# already fetched. It fails when the Dockerfile leaves out something the
# build needs: a workspace member, a source file, the lock file.
#
# The one liberty: `--release` becomes the dev profile, whose dependencies
# `cargo test` has already built (a release build would add minutes to CI
# and tests the optimiser, not the Dockerfile).
#
# Usage: scripts/check-dockerfile.sh [DOCKERFILE]
set -euo pipefail
cd "$(dirname "$0")/.."
dockerfile=${1:-Dockerfile}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}"
# The context's workspace crates are the same units to cargo as the
# repository's (a path package's unit hash is relative to its workspace
# root), so this build overwrites theirs in the shared target dir, with
# fingerprints naming the context's copies of the sources. Left in place,
# those copies (never edited) made every later build of the repository take
# the artefact as fresh and link stale crates after an edit. Deleting the
# context afterwards makes cargo rebuild those units from the repository's
# sources the next time.
work="$CARGO_TARGET_DIR/dockerfile-check"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work/root"' EXIT

# Prints the build stage's WORKDIR and its cargo command, and lays the
# stage's COPYs out under $work/root (the image's file system).
python3 - "$dockerfile" "$work" <<'PY'
import fnmatch, glob, json, os, shlex, shutil, subprocess, sys

dockerfile, work = sys.argv[1], sys.argv[2]
root = os.path.join(work, "root")

# Instructions, continuation lines joined, comments dropped.
lines, current = [], ""
for raw in open(dockerfile):
    line = raw.rstrip("\n")
    if not current and line.lstrip().startswith("#"):
        continue
    if line.endswith("\\"):
        current += line[:-1] + " "
        continue
    current += line
    if current.strip():
        lines.append(current.strip())
    current = ""

stages, stage = [], None
for line in lines:
    word, _, rest = line.partition(" ")
    if word.upper() == "FROM":
        stage = {"from": rest, "instructions": []}
        stages.append(stage)
    elif stage is not None:
        stage["instructions"].append((word.upper(), rest.strip()))
build = [s for s in stages if any(w == "RUN" and "cargo build" in r for w, r in s["instructions"])]
if len(build) != 1:
    sys.exit(f"{dockerfile}: expected one stage that runs `cargo build`, found {len(build)}")

# The build context: what `docker build .` sends (the files git knows,
# tracked or not ignored), less .dockerignore's patterns.
files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                       check=True, capture_output=True).stdout.decode().split("\0")
files = [f for f in files if f and os.path.exists(f)]
ignore = []
if os.path.exists(".dockerignore"):
    for p in open(".dockerignore"):
        p = p.strip()
        if p and not p.startswith("#"):
            ignore.append(p.strip("/"))
def ignored(path):
    hit = False
    for p in ignore:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        parts = path.split("/")
        if any(fnmatch.fnmatch("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
            hit = not neg
    return hit
context = set(f for f in files if not ignored(f))

workdir, command = "/", None
for word, rest in build[0]["instructions"]:
    if word == "WORKDIR":
        workdir = os.path.join(workdir, rest)
    elif word == "COPY":
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        *sources, dest = args
        target = dest if dest.startswith("/") else os.path.join(workdir, dest)
        into_dir = dest.endswith("/") or len(sources) > 1
        for source in sources:
            source = os.path.normpath(source)
            # A directory's files keep their place below it (docker copies
            # its contents); a file, or a glob's matches, lands at dest (or
            # in it, when dest is a directory).
            tree = [f for f in context if source == "." or f.startswith(source + "/")]
            if tree:
                pairs = [(f, os.path.join(target, os.path.relpath(f, source))) for f in tree]
            else:
                matched = [f for f in context if fnmatch.fnmatch(f, source)]
                if not matched:
                    sys.exit(f"{dockerfile}: COPY {source}: nothing in the build context matches")
                into = into_dir or len(matched) > 1 or glob.has_magic(source)
                pairs = [(f, os.path.join(target, os.path.basename(f)) if into else target)
                         for f in matched]
            for f, out in pairs:
                out = root + out
                os.makedirs(os.path.dirname(out), exist_ok=True)
                shutil.copy2(f, out)
    elif word == "RUN" and "cargo build" in rest:
        command = rest[rest.index("cargo build"):].split("&&")[0].strip()
if command is None:
    sys.exit(f"{dockerfile}: no cargo build command")
with open(os.path.join(work, "workdir"), "w") as f:
    f.write(root + workdir)
with open(os.path.join(work, "command"), "w") as f:
    f.write(command)
PY

command=$(cat "$work/command")
# The dev profile (see above); offline: the registry is what cargo fetched.
command=${command/ --release/}
echo "== Dockerfile build stage: $command --offline (in its COPYed context)"
cd "$(cat "$work/workdir")"
# shellcheck disable=SC2086
$command --offline
echo "== Dockerfile build stage: ok"
