# Shared by the benchmarks that run bottlesync against the stand-in
# (run.sh, speed.sh); sourced, not run. Expects HERE and ROOT; provides
# the release build (BENCH_SKIP_BUILD), a private work dir W with copies
# of the binaries, cleanup on exit (the stand-in, and any PIDs added to
# EXTRA_PIDS), and the measurement helpers (measure, record: RESULTS is
# one TSV line per run: case, tool, rep, seconds, bytes, bottles, peak RSS
# KiB, CPU s).

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}
BOTTLESYNC=$CARGO_TARGET_DIR/release/bottlesync
FIXTURE=$CARGO_TARGET_DIR/release/bottlesync-fixture
PY=(python3 "$HERE/benchlib.py")

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------ cleanup

W=''
FIXTURE_PID=''
EXTRA_PIDS=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "$FIXTURE_PID" "${EXTRA_PIDS[@]}"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n $W && -d $W ]]; then
        rm -rf "$W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------ tools

for tool in curl sha256sum python3 xargs awk sync; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
TIME_BIN=''
if [[ -x /usr/bin/time ]]; then
    TIME_BIN=/usr/bin/time
elif command -v apt-get >/dev/null; then
    log "installing GNU time (apt-get install -y time)"
    if apt-get install -y time >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y time >/dev/null 2>&1; }; then
        TIME_BIN=/usr/bin/time
    fi
fi
[[ -n $TIME_BIN ]] || log "GNU time unavailable: peak RSS by polling /proc/PID/status VmHWM, no CPU times"

# ------------------------------------------------------------ build

build_started=$EPOCHREALTIME
if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then
    log "BENCH_SKIP_BUILD=1: using the release binaries already in $CARGO_TARGET_DIR/release"
    BUILD_NOTE="skipped (BENCH_SKIP_BUILD=1; binaries built $(date -u -r "$BOTTLESYNC" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?'))"
else
    log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release --quiet --bin bottlesync) ||
        die "cargo build failed (BENCH_SKIP_BUILD=1 benchmarks the binaries already built)"
    (cd "$ROOT" && cargo build --release --quiet -p bottlesync-loadtest --bin bottlesync-fixture) ||
        die "cargo build of the stand-in failed"
    BUILD_NOTE="built from this tree"
fi
BUILD_SECONDS=$(awk -v a="$build_started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
[[ -x $BOTTLESYNC && -x $FIXTURE ]] || die "binaries missing after the build"

BENCH_STARTED=$EPOCHREALTIME
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
W=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bottlesync-bench.XXXXXX")
# Private copies: another build in the shared target dir cannot swap them mid-run.
mkdir -p "$W/bin"
cp "$BOTTLESYNC" "$FIXTURE" "$W/bin/"
BOTTLESYNC=$W/bin/bottlesync
FIXTURE=$W/bin/bottlesync-fixture
RESULTS=$W/results.tsv
: >"$RESULTS"
NOTES=''
log "work dir $W ($(df -T "$W" | awk 'NR == 2 { print $2 }')), load average $LOAD_BEFORE"
if awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    log "WARNING: the machine is busy (load $LOAD_BEFORE on $(nproc) CPUs): numbers will be noisy"
fi

# ------------------------------------------------------------ helpers

# start_fixture ARGS...: runs the stand-in, sets API and ORIGIN.
start_fixture() {
    # Created here: the background job opens them a moment later, and a
    # failed read of a missing file would end the script (set -e) while
    # the stand-in is still starting.
    : >"$W/fixture.out"
    : >"$W/fixture.err"
    "$FIXTURE" "$@" >"$W/fixture.out" 2>"$W/fixture.err" &
    FIXTURE_PID=$!
    API=''
    for _ in $(seq 1 1200); do
        API=$(sed -n 's/^API_URL=//p' "$W/fixture.out")
        [[ -n $API ]] && break
        kill -0 "$FIXTURE_PID" 2>/dev/null || { cat "$W/fixture.err" >&2; die "the stand-in exited"; }
        sleep 0.1
    done
    [[ -n $API ]] || die "the stand-in did not start within 120 s"
    ORIGIN=${API%/api}
}

stop_fixture() {
    kill -TERM "$FIXTURE_PID" 2>/dev/null || true
    wait "$FIXTURE_PID" 2>/dev/null || true
    FIXTURE_PID=''
}

reset_stats() { curl -sSf -X POST "$ORIGIN/__standin/reset" >/dev/null; }

stats_line() {
    curl -sSf "$ORIGIN/__standin/stats" >"$W/stats.json"
    "${PY[@]}" stats-summary "$W/stats.json"
}

# Lets the previous measurement's writeback and deletions settle.
settle() {
    sync
    sleep 1
}

signed_url() {
    local url
    url=$(curl -sS -o /dev/null -w '%{redirect_url}' -H "Authorization: Bearer $TOKEN" "$1")
    [[ -n $url ]] || die "no redirect from $1"
    printf '%s\n' "$url"
}

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# measure OUTFILE CMD...: runs CMD with stdout+stderr to OUTFILE; sets
# SECS (wall clock), RSS_KB (peak RSS, largest process), CPU (user+sys
# of the command and its children) and RC.
measure() {
    local out=$1 started
    shift
    RSS_KB='-' CPU='-' RC=0
    started=$EPOCHREALTIME
    if [[ -n $TIME_BIN ]]; then
        "$TIME_BIN" -f '%M %U %S' -o "$W/time.out" "$@" >"$out" 2>&1 || RC=$?
        SECS=$(seconds_since "$started")
        read -r RSS_KB user sys < <(tail -n 1 "$W/time.out")
        CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    else
        "$@" >"$out" 2>&1 &
        local pid=$! hwm=0 v
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n $v ]] && ((v > hwm)) && hwm=$v
            sleep 0.05
        done
        wait "$pid" || RC=$?
        SECS=$(seconds_since "$started")
        RSS_KB=$hwm
    fi
}

# record CASE TOOL REP BYTES BOTTLES SHOW_RSS
record() {
    local rss='-'
    [[ $6 == yes ]] && rss=$RSS_KB
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$SECS" "$4" "$5" "$rss" "$CPU" >>"$RESULTS"
    log "  $2 #$3: $SECS s$([[ $6 == yes ]] && echo ", peak RSS $((RSS_KB / 1024)) MiB")"
}

file_size() { stat -c %s "$1"; }

# count_files DIR DEPTH: bottles stored at that depth (a mirror's dated
# folder at 2; not its flat bottles/ copies, not its .bottlesync/ state).
count_files() {
    find "$1" -mindepth "$2" -maxdepth "$2" -type f -not -path '*/.bottlesync/*' \
        -not -path "$1/bottles/*" -name '*.tar.gz' | wc -l
}

# stat_value LINE NAME: a counter from a stats_line output.
stat_value() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# write_meta FILE: the run's context (META_COMMAND and any other META_*
# the caller set, plus the machine, load, git revision and timings) as JSON.
write_meta() {
    export META_DATE META_NPROC META_CPU META_MEM META_KERNEL META_FS META_LOAD_BEFORE META_LOAD_AFTER
    export META_GIT META_COMMAND META_ELAPSED META_BUILD META_BUILD_NOTE META_REPS
    META_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    META_NPROC=$(nproc)
    META_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    META_MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    META_KERNEL=$(uname -r)
    META_FS=$(df -T "$W" | awk 'NR == 2 { print $2 " on " $1 }')
    META_LOAD_BEFORE=$LOAD_BEFORE
    META_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    META_GIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        META_GIT+=" (with uncommitted changes)"
    fi
    META_ELAPSED=$(awk -v a="$BENCH_STARTED" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
    META_BUILD=$BUILD_SECONDS
    META_BUILD_NOTE=$BUILD_NOTE
    META_REPS=$REPS
    python3 -c 'import json, os, sys
json.dump({k[5:].lower(): v for k, v in os.environ.items() if k.startswith("META_")}, open(sys.argv[1], "w"), indent=1)' "$1"
}
