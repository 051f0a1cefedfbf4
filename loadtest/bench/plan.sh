#!/usr/bin/env bash
# bottlesync planning benchmark (not a test): the CPU time and memory of
# planning a run, network excluded, against a serde_json baseline measured
# in the same process on the same input (issue 6, benchmark 3: a 7,000-formula
# index, 9 tags, a ledger of 60,000 stored bottles; goal < 1 s CPU, < 256 MiB).
#
#   bash loadtest/bench/plan.sh
#
# 1. `bottlesync-plan-input` writes the input: the stand-in's formula.json of
#    a generated catalog padded to ~30 MB (the real index's size), a
#    schema-1 bottles_hash.json of 60,000 bottles (90% of the index's
#    bottles plus older versions), and meta.json.
# 2. `cargo bench -p bottlesync-planner --bench plan` (planner/benches/plan.rs)
#    loads both files, then PLAN_REPS times, interleaved: the baseline
#    (`serde_json::Value` parse of formula.json) and one planning run
#    (parse_index, MirrorRecord::parse + stored set, plan, message bodies).
#    Medians of user+sys CPU (getrusage), wall time, peak RSS per phase.
# Prints the figures and writes a "Planning" section into RESULTS_MD
# (replacing the previous one; the rest of the file is kept).
#
# Environment knobs (defaults in brackets):
#   PLAN_REPS [5]          measured runs of each
#   PLAN_FORMULAE [7000]   formulae in the index
#   PLAN_STORED [60000]    bottles in bottles_hash.json
#   PLAN_SEED [1]          catalog seed
#   PLAN_INDEX_MB [30]     formula.json is padded to this many MB
#   BENCH_TMPDIR [$TMPDIR or /tmp]  where the input files go (~50 MB)
#   RESULTS_MD [loadtest/bench/RESULTS.md]
#   BENCH_SKIP_BUILD [0]   1: use the binaries already built
# Takes well under a minute on a 2-core machine, plus the cargo build.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="bash loadtest/bench/plan.sh${*:+ $*}"
for var in PLAN_REPS PLAN_FORMULAE PLAN_STORED PLAN_SEED PLAN_INDEX_MB BENCH_SKIP_BUILD; do
    if [[ -n ${!var:-} ]]; then COMMAND_LINE="$var=${!var} $COMMAND_LINE"; fi
done

PLAN_REPS=${PLAN_REPS:-5}
PLAN_FORMULAE=${PLAN_FORMULAE:-7000}
PLAN_STORED=${PLAN_STORED:-60000}
PLAN_SEED=${PLAN_SEED:-1}
PLAN_INDEX_MB=${PLAN_INDEX_MB:-30}
RESULTS_MD=${RESULTS_MD:-$HERE/RESULTS.md}

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}
INPUT_BIN=$CARGO_TARGET_DIR/release/bottlesync-plan-input

log() { printf '[plan %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 is required"

W=''
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $W && -d $W ]]; then rm -rf "$W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------ build

# The bench executable cargo built last (its name carries a hash).
bench_executable() {
    (cd "$ROOT" && cargo bench -p bottlesync-planner --bench plan --no-run --message-format=json 2>/dev/null) |
        python3 -c 'import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "plan" and m.get("executable"):
        print(m["executable"])'
}

build_started=$EPOCHREALTIME
if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then
    BENCH_BIN=$(find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name 'plan-*' \
        -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2-)
    BUILD_NOTE="skipped (BENCH_SKIP_BUILD=1)"
else
    log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release --quiet -p bottlesync-loadtest --bin bottlesync-plan-input) ||
        die "cargo build of bottlesync-plan-input failed"
    (cd "$ROOT" && cargo bench --quiet -p bottlesync-planner --bench plan --no-run) ||
        die "cargo bench --no-run failed"
    BENCH_BIN=$(bench_executable | tail -n 1)
    BUILD_NOTE="built from this tree"
fi
BUILD_SECONDS=$(awk -v a="$build_started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
[[ -n ${BENCH_BIN:-} && -x $BENCH_BIN ]] || die "the bench executable is missing (cargo bench -p bottlesync-planner --bench plan --no-run)"
[[ -x $INPUT_BIN ]] || die "$INPUT_BIN is missing"

W=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bottlesync-plan.XXXXXX")
# Private copies: another build in the shared target dir cannot swap them mid-run.
mkdir -p "$W/bin" "$W/input"
cp "$INPUT_BIN" "$W/bin/bottlesync-plan-input"
cp "$BENCH_BIN" "$W/bin/plan-bench"

# ------------------------------------------------------------ input

log "writing the input ($PLAN_FORMULAE formulae, $PLAN_STORED stored bottles, ~$PLAN_INDEX_MB MB index)"
"$W/bin/bottlesync-plan-input" --out "$W/input" --formulae "$PLAN_FORMULAE" --seed "$PLAN_SEED" \
    --stored "$PLAN_STORED" --index-mb "$PLAN_INDEX_MB" >"$W/input.log" 2>&1 ||
    { tail -n 20 "$W/input.log" >&2; die "bottlesync-plan-input failed"; }

# ------------------------------------------------------------ measure

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring ($PLAN_REPS interleaved runs), load average $LOAD_BEFORE"
if awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    log "WARNING: the machine is busy (load $LOAD_BEFORE on $(nproc) CPUs): CPU times are inflated, the ratio less so"
fi
"$W/bin/plan-bench" "$W/input" --reps "$PLAN_REPS" --json "$W/summary.json" | tee "$W/bench.out"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------ report

export META_DATE META_NPROC META_CPU META_MEM META_KERNEL META_LOAD_BEFORE META_LOAD_AFTER
export META_GIT META_COMMAND META_BUILD_NOTE META_SEED
META_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
META_NPROC=$(nproc)
META_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
META_MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
META_KERNEL=$(uname -r)
META_LOAD_BEFORE=$LOAD_BEFORE
META_LOAD_AFTER=$LOAD_AFTER
META_GIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    META_GIT+=" (with uncommitted changes)"
fi
META_COMMAND=$COMMAND_LINE
META_BUILD_NOTE="$BUILD_NOTE, ${BUILD_SECONDS} s"
META_SEED=$PLAN_SEED

python3 - "$W/summary.json" "$W/input/meta.json" "$RESULTS_MD" <<'PY'
import json, os, re, sys

s = json.load(open(sys.argv[1]))
m = json.load(open(sys.argv[2]))
md_path = sys.argv[3]
e = {k[5:].lower(): v for k, v in os.environ.items() if k.startswith("META_")}

def ms(x):
    return f"{x:.0f}"

def mib(x):
    return "?" if x is None else f"{x:.1f}"

runs = ", ".join(ms(x) for x in s["cpu_runs_ms"])
base_runs = ", ".join(ms(x) for x in s["baseline_cpu_runs_ms"])
goal = lambda ok: "met" if ok else "**missed**"
lines = [
    "<!-- planning: begin (written by loadtest/bench/plan.sh; run.sh rewrites the file, then runs plan.sh) -->",
    "## Planning (issue 6, benchmark 3)",
    "",
    f"- date: {e['date']}; machine: nproc={e['nproc']}, CPU: {e['cpu']}, RAM: {e['mem']}, kernel {e['kernel']}",
    f"- load average before / after: {e['load_before']} / {e['load_after']} (shared machine: absolute times are inflated, the ratio is the figure)",
    f"- git: {e['git']}; binaries: {e['build_note']}",
    f"- command: `{e['command']}`",
    f"- input (`bottlesync-plan-input --formulae {m['formulae']} --seed {e['seed']} --stored {m['stored']}`): "
    f"formula.json {m['index_bytes'] / 1e6:.1f} MB, {m['formulae']} formulae, {m['index_bottles']} bottles "
    f"({', '.join(f'{t} {n}' for t, n in sorted(m['bottles_per_tag'].items(), key=lambda kv: -kv[1]))}); "
    f"bottles_hash.json {m['hash_file_bytes'] / 1e6:.1f} MB, {m['stored']} bottles "
    f"({m['stored_matching_index']} in the index, {m['stored_older_versions']} older versions); tags `{s['tags']}`",
    f"- plan: {s['jobs']} bottles to fetch, {s['already_mirrored']} already mirrored, {s['skipped_disabled']} disabled formulae skipped; "
    f"{s['jobs']} message bodies ({s['body_bytes'] / 1e6:.1f} MB)",
    "",
    f"Median of {s['reps']} interleaved runs in one process, inputs already in memory; CPU = user+sys (getrusage); "
    "peak RSS = VmHWM of a fresh process that loads the inputs and runs the phase once (the loaded inputs and the process itself, "
    f"{s['fresh_rss_loaded_mib']:.0f} MiB, included); heap added = peak bytes allocated during the phase above the loaded inputs (counting allocator).",
    "",
    "| phase | CPU ms | wall ms | runs (CPU ms) | peak RSS MiB | heap added MiB |",
    "|---|---|---|---|---|---|",
    f"| baseline: `serde_json::from_slice::<Value>` of formula.json | {ms(s['baseline_cpu_ms'])} | {ms(s['baseline_wall_ms'])} | {base_runs} | {mib(s['baseline_fresh_peak_rss_mib'])} | {s['baseline_heap_delta_mib']:.1f} |",
    f"| planning: parse_index + MirrorRecord::parse + per-tag files + plan_for_clients + message bodies | {ms(s['cpu_ms'])} | {ms(s['wall_ms'])} | {runs} | {mib(s['peak_rss_mib'])} | {s['heap_delta_mib']:.1f} |",
    "",
    f"- planning stages (CPU ms, median): parse_index {ms(s['stage_index_ms'])}, bottles_hash.json + stored set {ms(s['stage_ledger_ms'])}, "
    f"{s.get('packages_files', 0)} per-tag API files ({s.get('packages_files_bytes', 0) / 1e6:.1f} MB) parsed {ms(s.get('stage_packages_ms', 0))}, "
    f"plan {ms(s['stage_plan_ms'])}, message bodies {ms(s['stage_messages_ms'])}",
    f"- one cold planning run in the fresh process: {ms(s['fresh_cpu_ms'])} ms CPU, {ms(s['fresh_wall_ms'])} ms wall (page faults of a new heap included)",
    f"- ratio planning / baseline (CPU): **{s['ratio']:.2f}x** against the Value parse of formula.json; "
    f"{s['ratio_both']:.2f}x against the Value parse of both files ({ms(s['baseline_both_cpu_ms'])} ms)",
    f"- goal (< 1 s CPU, < 256 MiB): CPU {goal(s['goal_cpu_met'])}, memory {goal(s['goal_memory_met'])}",
    "- profile a planning run: `valgrind --tool=callgrind PLAN_BENCH_EXE DIR --probe planning` (the exe from `cargo bench -p bottlesync-planner --bench plan --no-run`, DIR from `bottlesync-plan-input --out DIR`)",
    "- not measured (network): fetching formula.jws.json and one per-tag file per tag (9 requests more than before issue 11), reading the ledger from the store or DynamoDB, manifest sizing, queued marks, SendMessageBatch",
    "<!-- planning: end -->",
]
section = "\n".join(lines) + "\n"
try:
    text = open(md_path).read()
except FileNotFoundError:
    text = "# bottlesync benchmark results\n"
pattern = re.compile(r"<!-- planning: begin.*?<!-- planning: end -->\n?", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section
with open(md_path, "w") as f:
    f.write(text)
PY
echo
echo "planning benchmark: section written to ${RESULTS_MD#"$ROOT"/}"
