#!/usr/bin/env bash
# Issue 13's speed benchmark (not a test): bottlesync against curl, aria2c
# and the stand-in's ceiling, measured side by side in one run against the
# local Homebrew stand-in (bottlesync-fixture).
#
#   bash loadtest/bench/speed.sh
#
# 1. big: one BIG_SIZE bottle into a directory, no rate cap:
#    `bottlesync sync` vs `curl -o file` (goal >= 0.9x).
# 2. capped: the same bottle, the stand-in capping each storage connection
#    at CONN_RATE MB/s (PUT /__standin/conn_rate, the fixture's --conn-rate):
#    bottlesync (segmented) vs `curl -o` on one stream (goal >= 3.5x) and vs
#    `aria2c -x4 -s4 --checksum=sha-256=HEX` (goal >= 1.0x). aria2c gets the
#    signed storage URL (resolved beforehand, as fetch_one.sh does: it cannot
#    carry the registry's Bearer token across the 307); the stand-in's
#    counters say how many GETs (ranged) it made.
# 3. small: ~2,000 small bottles: `bottlesync sync --concurrency N` vs
#    `aria2c -jN -i LIST` with `checksum=sha-256=...` per entry (signed URLs
#    resolved beforehand, untimed; the time is stated) (goal >= 1.5x), and
#    vs the stand-in's ceiling, `curl -Z` as run.sh runs it (goal >= 0.25x).
# 4. s3: the BIG_SIZE bottle into S3 on moto_server: MB/s and peak RSS (run
#    before 3, on the stand-in of 1 and 2).
# Peak RSS of bottlesync on the big bottle (goal < 96 MiB) comes from 1/2.
# bottlesync runs with `--segment-size SEGMENT_SIZE --connections-per-bottle
# CONNECTIONS` where its `sync --help` lists them; a build without them runs
# without, and the figures say "(segmented download not in this build)".
# Each measurement runs REPS times, interleaved; medians are reported. Writes
# the "speed" section of loadtest/bench/RESULTS.md between
# `<!-- speed: begin -->` and `<!-- speed: end -->` (the rest is kept).
#
# Environment knobs (defaults in brackets):
#   REPS [3]                 runs of each measurement
#   BIG_SIZE [2GiB]          size of the single bottle (sections 1, 2, 4)
#   CONN_RATE [50]           MB/s per storage connection in section 2
#   SEGMENT_SIZE [64MiB]     bottlesync --segment-size
#   CONNECTIONS [4]          bottlesync --connections-per-bottle
#   SMALL_FORMULAE [312]     formulae of the generated catalog (~2,000 bottles)
#   SMALL_SEED [1]           catalog seed
#   SMALL_CONCURRENCY [16]   bottlesync --concurrency, aria2c -j, curl --parallel-max
#   SECTIONS [big capped small s3]  which sections to run
#   BASELINE_BOTTLESYNC []   another bottlesync binary (e.g. main before a
#                            change) measured alongside in sections 1, 2, 4
#   MOTO_SERVER [$BOTTLESYNC_MOTO_SERVER or .venv/bin/moto_server]
#   BENCH_TMPDIR [$TMPDIR or /tmp]  where the work dir (and the big files) go
#   RESULTS_MD [loadtest/bench/RESULTS.md]
#   BENCH_SKIP_BUILD [0]     1: benchmark the release binaries already built
# With REPS=3 and 2 GiB: about 12 minutes on a 2-core machine (one capped
# curl stream alone is 43 s a run), plus the cargo build.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="bash loadtest/bench/speed.sh${*:+ $*}"
for var in REPS BIG_SIZE CONN_RATE SEGMENT_SIZE CONNECTIONS SMALL_FORMULAE SMALL_SEED \
    SMALL_CONCURRENCY SECTIONS BASELINE_BOTTLESYNC BENCH_TMPDIR BENCH_SKIP_BUILD; do
    if [[ -n ${!var:-} ]]; then COMMAND_LINE="$var='${!var}' $COMMAND_LINE"; fi
done

REPS=${REPS:-3}
BIG_SIZE=${BIG_SIZE:-2GiB}
CONN_RATE=${CONN_RATE:-50}
SEGMENT_SIZE=${SEGMENT_SIZE:-64MiB}
CONNECTIONS=${CONNECTIONS:-4}
SMALL_FORMULAE=${SMALL_FORMULAE:-312}
SMALL_SEED=${SMALL_SEED:-1}
SMALL_CONCURRENCY=${SMALL_CONCURRENCY:-16}
SECTIONS=${SECTIONS:-big capped small s3}
RESULTS_MD=${RESULTS_MD:-$HERE/RESULTS.md}
MOTO_SERVER=${MOTO_SERVER:-${BOTTLESYNC_MOTO_SERVER:-$ROOT/.venv/bin/moto_server}}
SMALL_TAGS=arm64_golden_gate,arm64_tahoe,tahoe,arm64_sequoia,sequoia,arm64_sonoma,sonoma,x86_64_linux,arm64_linux
BIG_TAG=arm64_tahoe
TOKEN='QQ=='

source "$HERE/lib.sh"

command -v aria2c >/dev/null || die "aria2c is required (Debian: apt-get install aria2)"
if [[ -n ${BASELINE_BOTTLESYNC:-} ]]; then
    [[ -x $BASELINE_BOTTLESYNC ]] || die "BASELINE_BOTTLESYNC=$BASELINE_BOTTLESYNC is not an executable"
    cp "$BASELINE_BOTTLESYNC" "$W/bin/bottlesync-baseline"
    BASELINE_BOTTLESYNC=$W/bin/bottlesync-baseline
fi
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

# segment_args BINARY: the segmented-download flags if BINARY's sync has them.
segment_args() {
    local help
    help=$("$1" sync --help 2>&1)
    if grep -q -- '--segment-size' <<<"$help" && grep -q -- '--connections-per-bottle' <<<"$help"; then
        printf '%s\n' --segment-size "$SEGMENT_SIZE" --connections-per-bottle "$CONNECTIONS"
    fi
}
mapfile -t SEG_ARGS < <(segment_args "$BOTTLESYNC")
if ((${#SEG_ARGS[@]})); then
    SEG_NOTE="--segment-size $SEGMENT_SIZE --connections-per-bottle $CONNECTIONS"
else
    SEG_NOTE="(segmented download not in this build)"
    log "bottlesync sync has no --segment-size/--connections-per-bottle: running without them"
fi
BASE_SEG_ARGS=()
BASE_SEG_NOTE=''
if [[ -n ${BASELINE_BOTTLESYNC:-} ]]; then
    mapfile -t BASE_SEG_ARGS < <(segment_args "$BASELINE_BOTTLESYNC")
    ((${#BASE_SEG_ARGS[@]})) && BASE_SEG_NOTE="--segment-size $SEGMENT_SIZE --connections-per-bottle $CONNECTIONS" ||
        BASE_SEG_NOTE="(segmented download not in this build)"
fi

# Tool labels by role (the report's rows); the TSV's tool column is the role.
LABELS=$W/labels.tsv
: >"$LABELS"
label() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$LABELS"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

set_conn_rate() { # BYTES_PER_SEC or null
    curl -sSf -X PUT -H 'Content-Type: application/json' \
        --data "{\"bytes_per_sec\": $1}" "$ORIGIN/__standin/conn_rate" >/dev/null
}

# bottlesync_big CASE ROLE REP BINARY ARGS...: syncs the big bottle into a
# fresh directory (or the --dest given in ARGS), checks it, records it.
bottlesync_big() {
    local case=$1 role=$2 rep=$3 bin=$4 dest=$W/dest-big
    shift 4
    settle
    reset_stats
    measure "$W/bottlesync-$case.log" "$bin" sync --dest "$dest" --api-url "$API" \
        --tags "$BIG_TAG" --progress log "$@"
    [[ $RC == 0 ]] || { tail -n 20 "$W/bottlesync-$case.log" >&2; die "bottlesync sync ($case, $role) exited with $RC"; }
    local stored
    stored=$(find "$dest" -mindepth 2 -maxdepth 2 -type f -name 'bigbottle-*' -not -path "$dest/bottles/*" -printf '%s\n')
    [[ $stored == "$BIG_BYTES" ]] || die "bottlesync ($case, $role) did not store the $BIG_BYTES-byte bottle"
    record "$case" "$role" "$rep" "$BIG_BYTES" 1 yes
    NOTES+="$case, $role: $(stats_line)"$'\n'
    rm -rf "$dest"
}

# curl_big CASE REP: `curl -o file` of the big bottle's signed URL.
curl_big() {
    local file=$W/big-curl.bin signed
    settle
    signed=$(signed_url "$BIG_URL")
    measure "$W/out.txt" curl -sS -f -o "$file" "$signed"
    [[ $RC == 0 && $(file_size "$file") == "$BIG_BYTES" ]] || { cat "$W/out.txt" >&2; die "curl -o failed"; }
    record "$1" curl "$2" "$BIG_BYTES" 1 no
    rm -f "$file"
}

if section big || section capped || section s3; then
    log "one $BIG_SIZE bottle: starting the stand-in (it hashes the bottle first)"
    start_fixture --preset single --size "$BIG_SIZE" --name bigbottle
    curl -sSf "$ORIGIN/__standin/bottles" >"$W/big-bottles.json"
    read -r BIG_URL BIG_SHA BIG_BYTES < <("${PY[@]}" first-url "$W/big-bottles.json")
    BIG_NAME=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["mirror_file_name"])' "$W/big-bottles.json")
fi

# ------------------------------------------------------------ 1. big, no cap

if section big; then
    log "1. $BIG_SIZE bottle into a directory, no rate cap"
    label big curl "curl -o file"
    label big bottlesync "bottlesync sync $SEG_NOTE"
    [[ -n ${BASELINE_BOTTLESYNC:-} ]] && label big baseline "BASELINE_BOTTLESYNC sync $BASE_SEG_NOTE"
    for rep in $(seq 1 "$REPS"); do
        log "round $rep/$REPS"
        curl_big big "$rep"
        bottlesync_big big bottlesync "$rep" "$BOTTLESYNC" "${SEG_ARGS[@]}"
        if [[ -n ${BASELINE_BOTTLESYNC:-} ]]; then
            bottlesync_big big baseline "$rep" "$BASELINE_BOTTLESYNC" "${BASE_SEG_ARGS[@]}"
        fi
    done
fi

# ------------------------------------------------------------ 2. big, capped

if section capped; then
    CONN_RATE_BPS=$(awk -v r="$CONN_RATE" 'BEGIN { printf "%.0f", r * 1e6 }')
    log "2. $BIG_SIZE bottle, each storage connection capped at $CONN_RATE MB/s"
    set_conn_rate "$CONN_RATE_BPS"
    label capped curl "curl -o file (one stream)"
    label capped aria2c "aria2c -x4 -s4 --checksum=sha-256=HEX (signed URL)"
    label capped bottlesync "bottlesync sync $SEG_NOTE"
    [[ -n ${BASELINE_BOTTLESYNC:-} ]] && label capped baseline "BASELINE_BOTTLESYNC sync $BASE_SEG_NOTE"
    for rep in $(seq 1 "$REPS"); do
        log "round $rep/$REPS"
        curl_big capped "$rep"

        settle
        reset_stats
        dest=$W/dest-aria2c
        signed=$(signed_url "$BIG_URL")
        measure "$W/aria2c.log" aria2c -x4 -s4 "--checksum=sha-256=$BIG_SHA" -d "$dest" -o "$BIG_NAME" \
            --console-log-level=warn --summary-interval=0 "$signed"
        [[ $RC == 0 && $(file_size "$dest/$BIG_NAME") == "$BIG_BYTES" ]] ||
            { tail -n 20 "$W/aria2c.log" >&2; die "aria2c -x4 -s4 failed ($RC)"; }
        record capped aria2c "$rep" "$BIG_BYTES" 1 yes
        ARIA_STATS=$(stats_line)
        NOTES+="capped, aria2c: $ARIA_STATS"$'\n'
        gets=$(stat_value "$ARIA_STATS" storage_gets)
        ((gets >= 4)) || log "WARNING: aria2c -x4 -s4 made $gets storage GETs, fewer than 4 connections"
        rm -rf "$dest"

        bottlesync_big capped bottlesync "$rep" "$BOTTLESYNC" "${SEG_ARGS[@]}"
        if [[ -n ${BASELINE_BOTTLESYNC:-} ]]; then
            bottlesync_big capped baseline "$rep" "$BASELINE_BOTTLESYNC" "${BASE_SEG_ARGS[@]}"
        fi
    done
    set_conn_rate null
fi

# ------------------------------------------------------------ 4. s3 (moto)

if section s3; then
    if [[ ! -x $MOTO_SERVER ]]; then
        log "no moto_server at $MOTO_SERVER (MOTO_SERVER, BOTTLESYNC_MOTO_SERVER): skipping the S3 section"
        NOTES+="s3: skipped, no moto_server at $MOTO_SERVER"$'\n'
    else
        log "4. $BIG_SIZE bottle into S3 on moto_server"
        label s3 bottlesync "bottlesync sync --dest s3://bench/mirror $SEG_NOTE"
        [[ -n ${BASELINE_BOTTLESYNC:-} ]] && label s3 baseline "BASELINE_BOTTLESYNC sync --dest s3://bench/mirror $BASE_SEG_NOTE"
        # run_s3 ROLE REP BINARY ARGS...: a fresh moto_server (it keeps
        # objects in memory), the bucket, one sync, the object checked.
        run_s3() {
            local role=$1 rep=$2 bin=$3 port moto_pid
            shift 3
            port=$(free_port)
            "$MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$W/moto.log" 2>&1 &
            moto_pid=$!
            EXTRA_PIDS+=("$moto_pid")
            for _ in $(seq 1 100); do
                curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
                kill -0 "$moto_pid" 2>/dev/null || { cat "$W/moto.log" >&2; die "moto_server exited"; }
                sleep 0.2
            done
            curl -sSf -X PUT "http://127.0.0.1:$port/bench" >/dev/null || die "creating the moto bucket failed"
            settle
            reset_stats
            measure "$W/bottlesync-s3.log" env AWS_ENDPOINT_URL="http://127.0.0.1:$port" \
                AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
                AWS_EC2_METADATA_DISABLED=true \
                "$bin" sync --dest s3://bench/mirror --api-url "$API" --tags "$BIG_TAG" --progress log "$@"
            [[ $RC == 0 ]] || { tail -n 20 "$W/bottlesync-s3.log" >&2; die "bottlesync sync to S3 ($role) exited with $RC"; }
            # The object in the dated folder, at its full size.
            curl -sSf "http://127.0.0.1:$port/bench?list-type=2&prefix=mirror/" >"$W/s3-list.xml" ||
                die "listing the moto bucket failed"
            python3 - "$W/s3-list.xml" "$BIG_NAME" "$BIG_BYTES" <<'PYEOF' ||
import sys, xml.etree.ElementTree as ET
path, name, size = sys.argv[1:]
sizes = [
    next(c.text for c in o if c.tag.endswith("Size"))
    for o in ET.parse(path).getroot()
    if o.tag.endswith("Contents")
    and any(c.tag.endswith("Key") and c.text.endswith("/" + name) for c in o)
]
sys.exit(0 if size in sizes else f"{name}: sizes {sizes}")
PYEOF
                die "bottlesync ($role) did not store the $BIG_BYTES-byte bottle in S3"
            record s3 "$role" "$rep" "$BIG_BYTES" 1 yes
            NOTES+="s3, $role: $(stats_line)"$'\n'
            kill -TERM "$moto_pid" 2>/dev/null || true
            wait "$moto_pid" 2>/dev/null || true
        }
        for rep in $(seq 1 "$REPS"); do
            log "round $rep/$REPS"
            run_s3 bottlesync "$rep" "$BOTTLESYNC" "${SEG_ARGS[@]}"
            if [[ -n ${BASELINE_BOTTLESYNC:-} ]]; then
                run_s3 baseline "$rep" "$BASELINE_BOTTLESYNC" "${BASE_SEG_ARGS[@]}"
            fi
        done
    fi
fi

if [[ -n $FIXTURE_PID ]]; then
    stop_fixture
    settle
fi

# ------------------------------------------------------------ 3. small bottles

RESOLVE_SECS=''
PLAN_BOTTLES=''
SMALL_BYTES=''
if section small; then
    log "3. small bottles: starting the stand-in (--formulae $SMALL_FORMULAE)"
    start_fixture --preset generated --formulae "$SMALL_FORMULAE" --seed "$SMALL_SEED" \
        --median-size 64KiB --max-size 1MiB
    "$BOTTLESYNC" sync --dest "$W/dry-run-dest" --dry-run --report "$W/plan.json" --api-url "$API" \
        --tags "$SMALL_TAGS" --progress log >"$W/dry-run.log" 2>&1 ||
        { tail -n 20 "$W/dry-run.log" >&2; die "dry run failed"; }
    read -r PLAN_BOTTLES _ < <("${PY[@]}" plan-count "$W/plan.json")
    curl -sSf "$ORIGIN/__standin/bottles" >"$W/small-bottles.json"
    read -r LIST_BOTTLES SMALL_BYTES < <("${PY[@]}" baseline-list "$W/small-bottles.json" "$W/plan.json" "$W/list.txt")
    [[ $LIST_BOTTLES == "$PLAN_BOTTLES" ]] || die "baseline list has $LIST_BOTTLES bottles, the plan $PLAN_BOTTLES"
    log "plan: $PLAN_BOTTLES bottles, $SMALL_BYTES bytes"
    # The registry hops of every bottle in one curl process (for aria2c),
    # and the ceiling's config, as run.sh has it.
    awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $1 }' "$W/list.txt" >"$W/ceiling.curlrc"
    label small bottlesync "bottlesync sync --concurrency $SMALL_CONCURRENCY"
    label small aria2c "aria2c -j$SMALL_CONCURRENCY -i LIST, checksum=sha-256 per entry (signed URLs)"
    label small ceiling "stand-in ceiling: curl -Z --parallel-max $SMALL_CONCURRENCY -L, to /dev/null"
        resolve_times=()
    for rep in $(seq 1 "$REPS"); do
        log "round $rep/$REPS"

        settle
        reset_stats
        dest=$W/dest-small
        measure "$W/bottlesync-small.log" "$BOTTLESYNC" sync --dest "$dest" --api-url "$API" \
            --tags "$SMALL_TAGS" --concurrency "$SMALL_CONCURRENCY" --progress log
        [[ $RC == 0 ]] || { tail -n 20 "$W/bottlesync-small.log" >&2; die "bottlesync sync exited with $RC"; }
        n=$(count_files "$dest" 2)
        [[ $n == "$PLAN_BOTTLES" ]] || die "bottlesync stored $n of $PLAN_BOTTLES bottles"
        record small bottlesync "$rep" "$SMALL_BYTES" "$PLAN_BOTTLES" yes
        SMALL_STATS=$(stats_line)
        rm -rf "$dest"

        # aria2c: the signed URLs first (untimed: aria2c cannot carry the
        # token across the 307), then one aria2c over the list.
        settle
        started=$EPOCHREALTIME
        curl -sS -Z --parallel-max "$SMALL_CONCURRENCY" -H "Authorization: Bearer $TOKEN" \
            -w '%{url} %{redirect_url}\n' -K "$W/ceiling.curlrc" >"$W/signed.txt" 2>"$W/resolve.log" ||
            { tail -n 20 "$W/resolve.log" >&2; die "resolving the signed URLs failed"; }
        resolve_times+=("$(seconds_since "$started")")
        python3 - "$W/list.txt" "$W/signed.txt" "$W/aria2c.list" <<'PYEOF' || die "building the aria2c input file failed"
import sys
signed = dict(line.split() for line in open(sys.argv[2]) if len(line.split()) == 2)
with open(sys.argv[3], "w") as out:
    for url, sha, name in (line.split() for line in open(sys.argv[1])):
        if url not in signed:
            sys.exit(f"no signed URL for {url}")
        out.write(f"{signed[url]}\n  out={name}\n  checksum=sha-256={sha}\n")
PYEOF
        reset_stats
        dest=$W/dest-aria2c
        measure "$W/aria2c-small.log" aria2c "-j$SMALL_CONCURRENCY" -i "$W/aria2c.list" -d "$dest" \
            --console-log-level=warn --summary-interval=0
        [[ $RC == 0 ]] || { tail -n 20 "$W/aria2c-small.log" >&2; die "aria2c -i failed ($RC)"; }
        n=$(count_files "$dest" 1)
        [[ $n == "$PLAN_BOTTLES" ]] || die "aria2c stored $n of $PLAN_BOTTLES bottles"
        record small aria2c "$rep" "$SMALL_BYTES" "$PLAN_BOTTLES" yes
        ARIA_SMALL_STATS=$(stats_line)
        rm -rf "$dest"

        settle
        reset_stats
        measure "$W/ceiling.log" curl -sS -f -L -Z --parallel-max "$SMALL_CONCURRENCY" \
            -H "Authorization: Bearer $TOKEN" -K "$W/ceiling.curlrc"
        [[ $RC == 0 ]] || { tail -n 20 "$W/ceiling.log" >&2; die "the ceiling run (curl -Z) failed ($RC)"; }
        CEILING_STATS=$(stats_line)
        gets=$(stat_value "$CEILING_STATS" storage_gets)
        served=$(stat_value "$CEILING_STATS" bytes_served)
        [[ $gets == "$PLAN_BOTTLES" && $served == "$SMALL_BYTES" ]] ||
            die "the ceiling run: $gets storage GETs, $served bytes (want $PLAN_BOTTLES, $SMALL_BYTES)"
        record small ceiling "$rep" "$SMALL_BYTES" "$PLAN_BOTTLES" no
    done
    RESOLVE_SECS=$(printf '%s\n' "${resolve_times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    NOTES+="small, bottlesync: $SMALL_STATS"$'\n'
    NOTES+="small, aria2c: $ARIA_SMALL_STATS"$'\n'
    NOTES+="small, stand-in ceiling: $CEILING_STATS"$'\n'
    stop_fixture
fi

# ------------------------------------------------------------ report

export META_BIG_SIZE META_CONN_RATE META_SEG_NOTE META_SMALL_FORMULAE META_SMALL_SEED META_SMALL_CONCURRENCY
export META_PLAN_BOTTLES META_PLAN_BYTES META_RESOLVE_SECS META_NOTES META_SECTIONS
META_COMMAND=$COMMAND_LINE
META_BIG_SIZE=$BIG_SIZE
META_CONN_RATE=$CONN_RATE
META_SEG_NOTE=$SEG_NOTE
META_SMALL_FORMULAE=$SMALL_FORMULAE
META_SMALL_SEED=$SMALL_SEED
META_SMALL_CONCURRENCY=$SMALL_CONCURRENCY
META_PLAN_BOTTLES=$PLAN_BOTTLES
META_PLAN_BYTES=$SMALL_BYTES
META_RESOLVE_SECS=$RESOLVE_SECS
META_NOTES=$NOTES
META_SECTIONS=$SECTIONS
write_meta "$W/meta.json"
python3 "$HERE/speed_report.py" "$RESULTS" "$LABELS" "$W/meta.json" "$RESULTS_MD"
echo
echo "speed benchmark: ${META_ELAPSED} s (build: ${BUILD_SECONDS} s); section written to ${RESULTS_MD#"$ROOT"/}"
