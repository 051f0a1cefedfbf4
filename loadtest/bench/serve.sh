#!/usr/bin/env bash
# `bottlesync serve` benchmark (not a test), issue 12: the server over a
# directory mirror against nginx (Debian package, with README's config:
# contrib/nginx/bottlesync-mirror.conf) serving the same directory on the
# same machine, in one run:
#
#   bash loadtest/bench/serve.sh
#
# (a) one big bottle (BIG_SIZE, random bytes) fetched by `curl -o /dev/null`
#     from each server, REPS interleaved rounds: median MB/s, serve/nginx;
# (b) SMALL_COUNT small bottles (SMALL_SIZE bytes each) fetched by one
#     `curl --parallel --parallel-max CLIENTS --parallel-immediate` process
#     (CLIENTS keep-alive connections, reused across transfers) to
#     /dev/null, REPS interleaved rounds: median requests/s, serve/nginx
#     (and, informational, serve with BOTTLESYNC_LOG=warn: no access log);
# (c) RSS_CLIENTS curls at once of one RSS_SIZE bottle from a fresh serve
#     process: its peak RSS (VmHWM of /proc/PID/status), goal < 64 MiB
#     (and the same load on nginx, for the aggregate rate);
# (d) REPLAY_CLIENTS brew installs at once (bottlesync-brew-replay: brew's
#     requests per bottle: HEAD, abandoned GET, full GET checked against
#     its sha256, manifest GET with `Authorization: Bearer QQ==`) against
#     serve over a real mirror made by `bottlesync sync` from the stand-in
#     (`--preset brew-mirror`): errors (must be 0) and total time.
# The big and small bottles are written into the same mirror's bottles/.
# Prints the figures and writes a "Serving" section into RESULTS_MD between
# `<!-- serve: begin -->` and `<!-- serve: end -->` (the rest is kept).
#
# Environment knobs (defaults in brackets):
#   REPS [3]              rounds of (a) and (b)
#   BIG_SIZE [1GiB]       (a)'s bottle
#   SMALL_COUNT [2000]    (b)'s bottles
#   SMALL_SIZE [20000]    bytes of each small bottle
#   CLIENTS [32]          (b)'s concurrent keep-alive connections
#   RSS_CLIENTS [64]      (c)'s concurrent downloads
#   RSS_SIZE [256MiB]     (c)'s bottle
#   REPLAY_CLIENTS [200]  (d)'s concurrent brew installs
#   BENCH_TMPDIR [$TMPDIR or /tmp]  where the work dir (the mirror) goes
#   RESULTS_MD [loadtest/bench/RESULTS.md]
#   BENCH_SKIP_BUILD [0]  1: benchmark the release binaries already built
# Needs nginx (`apt-get install -y nginx`; run here as its own config in
# the work dir, nothing of the system's nginx is used), curl, python3.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="bash loadtest/bench/serve.sh${*:+ $*}"
for var in REPS BIG_SIZE SMALL_COUNT SMALL_SIZE CLIENTS RSS_CLIENTS RSS_SIZE REPLAY_CLIENTS BENCH_TMPDIR BENCH_SKIP_BUILD; do
    if [[ -n ${!var:-} ]]; then COMMAND_LINE="$var=${!var} $COMMAND_LINE"; fi
done

REPS=${REPS:-3}
BIG_SIZE=${BIG_SIZE:-1GiB}
SMALL_COUNT=${SMALL_COUNT:-2000}
SMALL_SIZE=${SMALL_SIZE:-20000}
CLIENTS=${CLIENTS:-32}
RSS_CLIENTS=${RSS_CLIENTS:-64}
RSS_SIZE=${RSS_SIZE:-256MiB}
REPLAY_CLIENTS=${REPLAY_CLIENTS:-200}
RESULTS_MD=${RESULTS_MD:-$HERE/RESULTS.md}
REPLAY_TAGS=arm64_tahoe,tahoe,x86_64_linux

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}
BIN=$CARGO_TARGET_DIR/release

log() { printf '[serve-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------ cleanup

W=''
PIDS=()
stop_pid() {
    local pid=$1
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n $W && -d $W ]]; then rm -rf "$W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------ tools

for tool in curl python3 awk nginx head; do
    command -v "$tool" >/dev/null || die "$tool is required (nginx: apt-get install -y nginx)"
done
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
CURL_VERSION=$(curl --version | head -n 1 | cut -d' ' -f1-2)

# ------------------------------------------------------------ build

build_started=$EPOCHREALTIME
if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then
    log "BENCH_SKIP_BUILD=1: using the release binaries already in $BIN"
    BUILD_NOTE="skipped (BENCH_SKIP_BUILD=1; bottlesync built $(date -u -r "$BIN/bottlesync" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?'))"
else
    log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release --quiet -p bottlesync --bin bottlesync \
        -p bottlesync-loadtest --bin bottlesync-fixture --bin bottlesync-brew-replay) ||
        die "cargo build failed (BENCH_SKIP_BUILD=1 benchmarks the binaries already built)"
    BUILD_NOTE="built from this tree"
fi
BUILD_SECONDS=$(awk -v a="$build_started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
for b in bottlesync bottlesync-fixture bottlesync-brew-replay; do
    [[ -x $BIN/$b ]] || die "$BIN/$b missing"
done

BENCH_STARTED=$EPOCHREALTIME
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
W=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bottlesync-serve-bench.XXXXXX")
# nginx's workers may run as another user (nobody when started as root):
# the mirror must be readable by them.
chmod 755 "$W"
# Private copies: another build in the shared target dir cannot swap them mid-run.
mkdir -p "$W/bin"
cp "$BIN/bottlesync" "$BIN/bottlesync-fixture" "$BIN/bottlesync-brew-replay" "$W/bin/"
BOTTLESYNC=$W/bin/bottlesync
MIRROR=$W/mirror
RESULTS=$W/results.tsv
: >"$RESULTS"
log "work dir $W ($(df -T "$W" | awk 'NR == 2 { print $2 }')), load average $LOAD_BEFORE"
if awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    log "WARNING: the machine is busy (load $LOAD_BEFORE on $(nproc) CPUs): numbers will be noisy"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_http() {
    local url=$1 pid=$2 what=$3
    for _ in $(seq 1 300); do
        curl -sS -f -o /dev/null "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited (see $W/*.err)"
        sleep 0.1
    done
    die "$what did not answer $url within 30 s"
}

vm_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# ------------------------------------------------------------ the mirror

log "mirror: bottlesync sync from the stand-in (--preset brew-mirror, tags $REPLAY_TAGS)"
"$W/bin/bottlesync-fixture" --preset brew-mirror >"$W/fixture.out" 2>"$W/fixture.err" &
FIXTURE_PID=$!
PIDS+=("$FIXTURE_PID")
API=''
for _ in $(seq 1 300); do
    API=$(sed -n 's/^API_URL=//p' "$W/fixture.out")
    [[ -n $API ]] && break
    kill -0 "$FIXTURE_PID" 2>/dev/null || { cat "$W/fixture.err" >&2; die "the stand-in exited"; }
    sleep 0.1
done
[[ -n $API ]] || die "the stand-in did not start within 30 s"
"$BOTTLESYNC" sync --dest "$MIRROR" --api-url "$API" --tags "$REPLAY_TAGS" --progress log \
    >"$W/sync.log" 2>&1 || { tail -n 20 "$W/sync.log" >&2; die "bottlesync sync failed"; }
stop_pid "$FIXTURE_PID"
SYNCED_BOTTLES=$(find "$MIRROR/bottles" -maxdepth 1 -type f -name '*.tar.gz' | wc -l)

log "mirror: writing the $BIG_SIZE and $RSS_SIZE bottles and $SMALL_COUNT x $SMALL_SIZE B bottles into bottles/"
BIG_NAME=benchbig--1.0.arm64_tahoe.bottle.tar.gz
RSS_NAME=benchrss--1.0.arm64_tahoe.bottle.tar.gz
head -c "$BIG_SIZE" /dev/urandom >"$MIRROR/bottles/$BIG_NAME"
head -c "$RSS_SIZE" /dev/urandom >"$MIRROR/bottles/$RSS_NAME"
BIG_BYTES=$(stat -c %s "$MIRROR/bottles/$BIG_NAME")
RSS_BYTES=$(stat -c %s "$MIRROR/bottles/$RSS_NAME")
python3 - "$MIRROR/bottles" "$SMALL_COUNT" "$SMALL_SIZE" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, f"benchsmall{i:05d}--1.0.arm64_tahoe.bottle.tar.gz"), "wb") as f:
        f.write(os.urandom(size))
PY
# nginx's workers run as nobody when started by root: the files must be
# world-readable (bottlesync writes its files 0600 or 0644 by umask).
chmod -R a+rX "$MIRROR"
sync

# ------------------------------------------------------------ servers

SERVE_PID=''
SERVE_PORT=''
start_serve() {
    SERVE_PORT=$(free_port)
    # Access log on (one line per request, the default), to a file, like nginx's.
    "$BOTTLESYNC" serve --root "$MIRROR" --listen "127.0.0.1:$SERVE_PORT" \
        >"$W/serve-$1.log" 2>"$W/serve-$1.err" &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    wait_http "http://127.0.0.1:$SERVE_PORT/healthz" "$SERVE_PID" "bottlesync serve"
}

NGINX_PORT=$(free_port)
mkdir -p "$W/nginx"
cat >"$W/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log $W/nginx/access.log;
    client_body_temp_path $W/nginx/client_body;
    proxy_temp_path $W/nginx/proxy;
    fastcgi_temp_path $W/nginx/fastcgi;
    uwsgi_temp_path $W/nginx/uwsgi;
    scgi_temp_path $W/nginx/scgi;
    # The server block README shows: contrib/nginx/bottlesync-mirror.conf
    # (sendfile, tcp_nopush, types, disable_symlinks) is the tested config.
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $MIRROR;
        include $ROOT/contrib/nginx/bottlesync-mirror.conf;
    }
}
EOF
nginx -p "$W/nginx" -e "$W/nginx/error.log" -c "$W/nginx/nginx.conf" >"$W/nginx/stdout" 2>"$W/nginx/stderr" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$NGINX_PORT/bottles/benchsmall00000--1.0.arm64_tahoe.bottle.tar.gz" "$NGINX_PID" "nginx" 2>/dev/null ||
    die "nginx did not start"
NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | wc -l)
start_serve main
# For (b) only: the same server without its access log, to show that log's share.
QUIET_PORT=$(free_port)
BOTTLESYNC_LOG=warn "$BOTTLESYNC" serve --root "$MIRROR" --listen "127.0.0.1:$QUIET_PORT" \
    >"$W/serve-quiet.log" 2>"$W/serve-quiet.err" &
QUIET_PID=$!
PIDS+=("$QUIET_PID")
wait_http "http://127.0.0.1:$QUIET_PORT/healthz" "$QUIET_PID" "bottlesync serve (BOTTLESYNC_LOG=warn)"
log "bottlesync serve on :$SERVE_PORT (pid $SERVE_PID), nginx $NGINX_VERSION on :$NGINX_PORT ($NGINX_WORKERS workers)"

url_of() { # SERVER PATH
    case $1 in
        serve) echo "http://127.0.0.1:$SERVE_PORT$2" ;;
        serve-quiet) echo "http://127.0.0.1:$QUIET_PORT$2" ;;
        *) echo "http://127.0.0.1:$NGINX_PORT$2" ;;
    esac
}

# Each server in turn, the order alternating per round.
order() { if (($1 % 2)); then echo "serve nginx"; else echo "nginx serve"; fi; }

# ------------------------------------------------------------ (a) one big bottle

log "(a) one $BIG_SIZE bottle, curl -o /dev/null"
for rep in $(seq 1 "$REPS"); do
    for server in $(order "$rep"); do
        out=$(curl -sS -f -o /dev/null -w '%{size_download} %{time_total}' "$(url_of "$server" "/bottles/$BIG_NAME")") ||
            die "(a) curl from $server failed"
        read -r got secs <<<"$out"
        [[ $got == "$BIG_BYTES" ]] || die "(a) $server sent $got of $BIG_BYTES bytes"
        printf 'big\t%s\t%s\t%s\t%s\n' "$server" "$rep" "$secs" "$BIG_BYTES" >>"$RESULTS"
        log "  $server #$rep: $secs s"
    done
done

# ------------------------------------------------------------ (b) small bottles

log "(b) $SMALL_COUNT x $SMALL_SIZE B bottles, curl --parallel-max $CLIENTS, keep-alive"
for server in serve serve-quiet nginx; do
    for i in $(seq 0 $((SMALL_COUNT - 1))); do
        printf 'url = "%s"\noutput = "/dev/null"\n' \
            "$(url_of "$server" "/bottles/benchsmall$(printf %05d "$i")--1.0.arm64_tahoe.bottle.tar.gz")"
    done >"$W/small-$server.curlrc"
done
for rep in $(seq 1 "$REPS"); do
    for server in $(order "$rep") serve-quiet; do
        started=$EPOCHREALTIME
        curl -sS -Z --parallel-max "$CLIENTS" --parallel-immediate \
            -w '%{http_code} %{size_download} %{num_connects}\n' -K "$W/small-$server.curlrc" \
            >"$W/small.out" 2>"$W/small.err" || { cat "$W/small.err" >&2; die "(b) curl -Z against $server failed"; }
        secs=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
        read -r ok bytes conns < <(awk -v size="$SMALL_SIZE" \
            '$1 == 200 && $2 == size { ok++ } { bytes += $2; conns += $3 } END { print ok + 0, bytes + 0, conns + 0 }' "$W/small.out")
        [[ $ok == "$SMALL_COUNT" ]] || die "(b) $server: $ok of $SMALL_COUNT answers were 200 with $SMALL_SIZE bytes"
        printf 'small\t%s\t%s\t%s\t%s\t%s\n' "$server" "$rep" "$secs" "$bytes" "$conns" >>"$RESULTS"
        log "  $server #$rep: $secs s, $conns connections"
    done
done
SERVE_HWM_AB=$(vm_hwm_kib "$SERVE_PID")
stop_pid "$SERVE_PID"
stop_pid "$QUIET_PID"

# ------------------------------------------------------------ (c) peak RSS

# many_downloads SERVER: RSS_CLIENTS curls of the RSS bottle at once; prints
# seconds; dies if one fails or comes up short. Polls VmHWM of WATCH_PID.
many_downloads() {
    local url pids=() started pid failed=0
    url=$(url_of "$1" "/bottles/$RSS_NAME")
    started=$EPOCHREALTIME
    for i in $(seq 1 "$RSS_CLIENTS"); do
        curl -sS -f -o /dev/null -w '%{size_download}\n' "$url" >"$W/many-$i.out" 2>"$W/many-$i.err" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }'
    ((failed == 0)) || die "(c) $failed of $RSS_CLIENTS downloads from $1 failed"
    [[ $(cat "$W"/many-*.out | awk -v s="$RSS_BYTES" '$1 == s' | wc -l) == "$RSS_CLIENTS" ]] ||
        die "(c) a download from $1 came up short"
}

log "(c) $RSS_CLIENTS downloads at once of the $RSS_SIZE bottle, fresh serve process"
start_serve rss
HWM_BEFORE=$(vm_hwm_kib "$SERVE_PID")
RSS_SERVE_SECS=$(many_downloads serve)
RSS_HWM=$(vm_hwm_kib "$SERVE_PID")
log "  serve: $RSS_SERVE_SECS s, VmHWM $RSS_HWM KiB (at start $HWM_BEFORE KiB)"
NGINX_HWM=0
RSS_NGINX_SECS=$(many_downloads nginx)
for pid in $(pgrep -P "$NGINX_PID"); do
    NGINX_HWM=$((NGINX_HWM + $(vm_hwm_kib "$pid")))
done
log "  nginx: $RSS_NGINX_SECS s, workers' VmHWM summed $NGINX_HWM KiB"

# ------------------------------------------------------------ (d) brew replay

log "(d) $REPLAY_CLIENTS brew installs at once against serve (same fresh process)"
REPLAY_RC=0
"$W/bin/bottlesync-brew-replay" --base "http://127.0.0.1:$SERVE_PORT" --clients "$REPLAY_CLIENTS" \
    --tags "$REPLAY_TAGS" >"$W/replay.out" 2>"$W/replay.err" || REPLAY_RC=$?
REPLAY_LINE=$(tail -n 1 "$W/replay.out")
REPLAY_PROBLEMS=$(sort "$W/replay.err" | uniq -c | sort -rn | head -n 5)
log "  $REPLAY_LINE (exit $REPLAY_RC)"
[[ -z $REPLAY_PROBLEMS ]] || log "  problems: $REPLAY_PROBLEMS"
SERVE_HWM_CD=$(vm_hwm_kib "$SERVE_PID")
SERVE_ERRORS=$(grep -c -E 'WARN|ERROR' "$W/serve-rss.err" || true)
stop_pid "$SERVE_PID"
stop_pid "$NGINX_PID"

# ------------------------------------------------------------ report

export META_DATE META_NPROC META_CPU META_MEM META_KERNEL META_FS META_LOAD_BEFORE META_LOAD_AFTER META_GIT
META_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
META_NPROC=$(nproc)
META_CPU=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
META_MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
META_KERNEL=$(uname -r)
META_FS=$(df -T "$W" | awk 'NR == 2 { print $2 " on " $1 }')
META_LOAD_BEFORE=$LOAD_BEFORE
META_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
META_GIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
export BUILD_NOTE BUILD_SECONDS COMMAND_LINE NGINX_VERSION NGINX_WORKERS CURL_VERSION REPS BIG_SIZE BIG_BYTES \
    SMALL_COUNT SMALL_SIZE CLIENTS RSS_CLIENTS RSS_SIZE RSS_BYTES RSS_SERVE_SECS RSS_NGINX_SECS RSS_HWM \
    HWM_BEFORE NGINX_HWM SERVE_HWM_AB SERVE_HWM_CD REPLAY_CLIENTS REPLAY_TAGS REPLAY_LINE REPLAY_RC \
    REPLAY_PROBLEMS SYNCED_BOTTLES SERVE_ERRORS
ELAPSED=$(awk -v a="$BENCH_STARTED" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
export ELAPSED
python3 "$HERE/serve_report.py" "$RESULTS" "$RESULTS_MD"
[[ $REPLAY_RC == 0 ]] || die "(d) the brew replay had errors (exit $REPLAY_RC)"
