#!/usr/bin/env bash
# bottlesync benchmark (not a test): throughput against curl baselines
# measured in the same run, against the local Homebrew stand-in.
#
#   bash loadtest/bench/run.sh
#
# 1. One 2 GiB bottle: `curl | sha256sum`, `curl -o file`, `curl -o file` +
#    fsync, and `bottlesync sync` (with its peak RSS).
# 2. ~2,000 small bottles: `bottlesync sync --concurrency 8` against an
#    `xargs -P 8` curl + sha256sum script and a sequential Python loop
#    (py_loop.py: requests, else urllib; hashlib; one bottle at a time),
#    plus the stand-in's own ceiling: one `curl -Z --parallel-max 8 -L`
#    process over the same bottles to /dev/null (no hashing, no disk).
# 3. planning (CPU and memory, no network): loadtest/bench/plan.sh, run
#    last; it adds its own "Planning" section to the markdown.
# Each measurement runs REPS times (interleaved); the median is reported.
# Prints a table and writes it as markdown to loadtest/bench/RESULTS.md.
#
# Environment knobs (defaults in brackets):
#   REPS [3]             runs of each measurement
#   BIG_SIZE [2GiB]      size of the single bottle
#   SMALL_FORMULAE [312] formulae of the generated catalog (~2,000 bottles)
#   SMALL_SEED [1]       catalog seed
#   BENCH_TMPDIR [$TMPDIR or /tmp]  where the work dir (and the 2 GiB files) go
#   RESULTS_MD [loadtest/bench/RESULTS.md]
#   BENCH_SKIP_BUILD [0] 1: benchmark the release binaries already built
# Takes about 5-8 minutes on a 2-core machine, plus the cargo build.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="bash loadtest/bench/run.sh${*:+ $*}"
for var in REPS BIG_SIZE SMALL_FORMULAE SMALL_SEED BENCH_TMPDIR BENCH_SKIP_BUILD; do
    if [[ -n ${!var:-} ]]; then COMMAND_LINE="$var=${!var} $COMMAND_LINE"; fi
done

REPS=${REPS:-3}
BIG_SIZE=${BIG_SIZE:-2GiB}
SMALL_FORMULAE=${SMALL_FORMULAE:-312}
SMALL_SEED=${SMALL_SEED:-1}
RESULTS_MD=${RESULTS_MD:-$HERE/RESULTS.md}
SMALL_TAGS=arm64_golden_gate,arm64_tahoe,tahoe,arm64_sequoia,sequoia,arm64_sonoma,sonoma,x86_64_linux,arm64_linux
BIG_TAG=arm64_tahoe
TOKEN='QQ=='

source "$HERE/lib.sh"

# ------------------------------------------------------------ 1. one big bottle

log "1. one $BIG_SIZE bottle: starting the stand-in (it hashes the bottle first)"
start_fixture --preset single --size "$BIG_SIZE" --name bigbottle
curl -sSf "$ORIGIN/__standin/bottles" >"$W/big-bottles.json"
read -r BIG_URL BIG_SHA BIG_BYTES < <("${PY[@]}" first-url "$W/big-bottles.json")
BIG_FILE=$W/big-curl.bin

for rep in $(seq 1 "$REPS"); do
    log "round $rep/$REPS"

    settle
    signed=$(signed_url "$BIG_URL")
    measure "$W/out.txt" bash -c 'set -o pipefail; curl -sS "$1" | sha256sum' _ "$signed"
    [[ $RC == 0 ]] || { cat "$W/out.txt" >&2; die "curl | sha256sum failed"; }
    [[ $(cut -d' ' -f1 "$W/out.txt") == "$BIG_SHA" ]] || die "curl | sha256sum: wrong digest"
    record big "curl | sha256sum" "$rep" "$BIG_BYTES" 1 no

    settle
    signed=$(signed_url "$BIG_URL")
    measure "$W/out.txt" curl -sS -f -o "$BIG_FILE" "$signed"
    [[ $RC == 0 && $(file_size "$BIG_FILE") == "$BIG_BYTES" ]] || { cat "$W/out.txt" >&2; die "curl -o failed"; }
    record big "curl -o file" "$rep" "$BIG_BYTES" 1 no
    rm -f "$BIG_FILE"

    settle
    signed=$(signed_url "$BIG_URL")
    measure "$W/out.txt" bash -c 'curl -sS -f -o "$1" "$2" && sync --data "$1"' _ "$BIG_FILE" "$signed"
    [[ $RC == 0 && $(file_size "$BIG_FILE") == "$BIG_BYTES" ]] || { cat "$W/out.txt" >&2; die "curl -o + fsync failed"; }
    record big "curl -o file + fsync" "$rep" "$BIG_BYTES" 1 no
    rm -f "$BIG_FILE"

    settle
    reset_stats
    dest=$W/dest-big-$rep
    measure "$W/bottlesync-big.log" "$BOTTLESYNC" sync --dest "$dest" --api-url "$API" \
        --tags "$BIG_TAG" --progress log
    [[ $RC == 0 ]] || { tail -n 20 "$W/bottlesync-big.log" >&2; die "bottlesync sync exited with $RC"; }
    stored=$(find "$dest" -mindepth 2 -maxdepth 2 -type f -name 'bigbottle-*' -not -path "$dest/bottles/*" -printf '%s\n')
    [[ $stored == "$BIG_BYTES" ]] || die "bottlesync did not store the $BIG_BYTES-byte bottle"
    record big "bottlesync sync" "$rep" "$BIG_BYTES" 1 yes
    BIG_STATS=$(stats_line)
    rm -rf "$dest"
done
NOTES+="2 GiB, bottlesync: $BIG_STATS"$'\n'
stop_fixture
settle

# ------------------------------------------------------------ 2. ~2,000 small bottles

log "2. small bottles: starting the stand-in (--formulae $SMALL_FORMULAE)"
start_fixture --preset generated --formulae "$SMALL_FORMULAE" --seed "$SMALL_SEED" \
    --median-size 64KiB --max-size 1MiB
"$BOTTLESYNC" sync --dest "$W/dry-run-dest" --dry-run --report "$W/plan.json" --api-url "$API" \
    --tags "$SMALL_TAGS" --progress log >"$W/dry-run.log" 2>&1 ||
    { tail -n 20 "$W/dry-run.log" >&2; die "dry run failed"; }
read -r PLAN_BOTTLES PLAN_BYTES < <("${PY[@]}" plan-count "$W/plan.json")
log "plan: $PLAN_BOTTLES bottles ($PLAN_BYTES bytes estimated)"
if ((PLAN_BOTTLES < 1800 || PLAN_BOTTLES > 2200)); then
    log "WARNING: the plan has $PLAN_BOTTLES bottles, not ~2,000: adjust SMALL_FORMULAE"
fi
curl -sSf "$ORIGIN/__standin/bottles" >"$W/small-bottles.json"
read -r LIST_BOTTLES SMALL_BYTES < <("${PY[@]}" baseline-list "$W/small-bottles.json" "$W/plan.json" "$W/list.txt")
[[ $LIST_BOTTLES == "$PLAN_BOTTLES" ]] || die "baseline list has $LIST_BOTTLES bottles, the plan $PLAN_BOTTLES"

# The sequential Python loop: requests if python3 can import it, else urllib.
if python3 -c 'import requests' 2>/dev/null; then
    PY_LOOP_TOOL="sequential Python requests loop + hashlib + mv"
else
    PY_LOOP_TOOL="sequential Python urllib loop + hashlib + mv"
fi
# The stand-in's ceiling: one curl process, 8 transfers at a time, each the
# registry's 307 (with the token; curl drops it on the redirect to the
# storage origin, another port) and the storage GET, body to /dev/null.
awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $1 }' "$W/list.txt" >"$W/ceiling.curlrc"
CEILING_TOOL="stand-in ceiling: curl -Z --parallel-max 8 -L, to /dev/null"


for rep in $(seq 1 "$REPS"); do
    log "round $rep/$REPS"

    settle
    reset_stats
    dest=$W/dest-curl-$rep
    mkdir -p "$dest" "$W/tmp-curl-$rep"
    awk -v d="$dest" -v t="$W/tmp-curl-$rep" '{ print $0, d, t }' "$W/list.txt" >"$W/jobs.txt"
    measure "$W/xargs.log" xargs -P 8 -n 5 -a "$W/jobs.txt" bash "$HERE/fetch_one.sh"
    [[ $RC == 0 ]] || { tail -n 20 "$W/xargs.log" >&2; die "the curl baseline failed ($RC)"; }
    n=$(count_files "$dest" 1)
    [[ $n == "$PLAN_BOTTLES" ]] || die "the curl baseline stored $n of $PLAN_BOTTLES bottles"
    record small "xargs -P 8 curl + sha256sum -c + mv" "$rep" "$SMALL_BYTES" "$PLAN_BOTTLES" no
    CURL_STATS=$(stats_line)
    rm -rf "$dest" "$W/tmp-curl-$rep"

    settle
    reset_stats
    dest=$W/dest-small-$rep
    measure "$W/bottlesync-small.log" "$BOTTLESYNC" sync --dest "$dest" --api-url "$API" \
        --tags "$SMALL_TAGS" --concurrency 8 --progress log
    [[ $RC == 0 ]] || { tail -n 20 "$W/bottlesync-small.log" >&2; die "bottlesync sync exited with $RC"; }
    n=$(count_files "$dest" 2)
    [[ $n == "$PLAN_BOTTLES" ]] || die "bottlesync stored $n of $PLAN_BOTTLES bottles"
    record small "bottlesync sync --concurrency 8" "$rep" "$SMALL_BYTES" "$PLAN_BOTTLES" yes
    SMALL_STATS=$(stats_line)
    rm -rf "$dest"

    settle
    reset_stats
    dest=$W/dest-py-$rep
    mkdir -p "$dest" "$W/tmp-py-$rep"
    measure "$W/py-loop.log" python3 "$HERE/py_loop.py" "$W/list.txt" "$dest" "$W/tmp-py-$rep"
    [[ $RC == 0 ]] || { tail -n 20 "$W/py-loop.log" >&2; die "the Python loop baseline failed ($RC)"; }
    n=$(count_files "$dest" 1)
    [[ $n == "$PLAN_BOTTLES" ]] || die "the Python loop stored $n of $PLAN_BOTTLES bottles"
    record small "$PY_LOOP_TOOL" "$rep" "$SMALL_BYTES" "$PLAN_BOTTLES" no
    PY_STATS=$(stats_line)
    PY_CLIENT=$(sed -n 's/^http client: //p' "$W/py-loop.log")
    rm -rf "$dest" "$W/tmp-py-$rep"

    settle
    reset_stats
    measure "$W/ceiling.log" curl -sS -f -L -Z --parallel-max 8 -H "Authorization: Bearer $TOKEN" -K "$W/ceiling.curlrc"
    [[ $RC == 0 ]] || { tail -n 20 "$W/ceiling.log" >&2; die "the ceiling run (curl -Z) failed ($RC)"; }
    CEILING_STATS=$(stats_line)
    gets=$(stat_value "$CEILING_STATS" storage_gets)
    served=$(stat_value "$CEILING_STATS" bytes_served)
    rejected=$(stat_value "$CEILING_STATS" storage_auth_rejections)
    [[ $gets == "$PLAN_BOTTLES" && $served == "$SMALL_BYTES" && $rejected == 0 ]] ||
        die "the ceiling run: $gets storage GETs, $served bytes, $rejected auth rejections (want $PLAN_BOTTLES, $SMALL_BYTES, 0)"
    record small "$CEILING_TOOL" "$rep" "$SMALL_BYTES" "$PLAN_BOTTLES" no
done
NOTES+="small, curl baseline: $CURL_STATS"$'\n'
NOTES+="small, bottlesync: $SMALL_STATS"$'\n'
NOTES+="small, Python loop ($PY_CLIENT): $PY_STATS"$'\n'
NOTES+="small, stand-in ceiling (curl -Z): $CEILING_STATS"$'\n'
stop_fixture

# ------------------------------------------------------------ report

export META_FORMULAE META_SEED META_TAGS META_PLAN_BOTTLES META_PLAN_BYTES META_NOTES META_PY_CLIENT
META_PY_CLIENT=${PY_CLIENT:-?}
META_COMMAND=$COMMAND_LINE
META_FORMULAE=$SMALL_FORMULAE
META_SEED=$SMALL_SEED
META_TAGS=$SMALL_TAGS
META_PLAN_BOTTLES=$PLAN_BOTTLES
META_PLAN_BYTES=$SMALL_BYTES
META_NOTES=$NOTES
write_meta "$W/meta.json"
"${PY[@]}" report "$RESULTS" "$W/meta.json" "$RESULTS_MD"
# 3. planning: its own script, which appends its section to the fresh markdown.
RESULTS_MD=$RESULTS_MD BENCH_TMPDIR=${BENCH_TMPDIR:-} bash "$HERE/plan.sh" || die "the planning benchmark (plan.sh) failed"
echo
echo "benchmark: ${META_ELAPSED} s (build: ${BUILD_SECONDS} s); markdown written to ${RESULTS_MD#"$ROOT"/}"
