#!/usr/bin/env bash
# Fuzzes the three parsers that read untrusted bytes (formula index, SQS
# message body, hash file) with cargo-fuzz/libFuzzer, each for a bounded
# time and under a memory limit, then measures reading a hash file with a
# million entries. Not part of CI (.ci/run): it needs an instrumented build
# and minutes of CPU.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#   FUZZ_TARGETS="index message" scripts/fuzz.sh 30
#   SKIP_BIG_HASH_FILE=1 scripts/fuzz.sh      (fuzzing only)
#
# What libFuzzer finds goes to fuzz/work/<target>/ (not committed) and any
# crash to fuzz/artifacts/<target>/. Keep a crash by copying it into
# fuzz/regressions/<target>/ and giving it an expectation in
# adapters/tests/hostile_input.rs, which replays it in the normal suite.
set -euo pipefail

seconds="${1:-60}"
targets="${FUZZ_TARGETS:-index message hash_file}"
root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bottlesync/target}"
# The fuzz build has other flags (sanitizer, coverage): its own target dir,
# so it never invalidates the normal build.
fuzz_target_dir="${FUZZ_TARGET_DIR:-$(dirname "$CARGO_TARGET_DIR")/fuzz-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $(dirname "$(command -v cargo)")" >&2
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz uses unstable flags (-Zsanitizer); the machine has only a
# stable toolchain, which accepts them with RUSTC_BOOTSTRAP.
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

max_len() {
    case "$1" in
        # Just over SQS's 256 KiB body limit, so the size check is exercised.
        message) echo $((256 * 1024 + 16)) ;;
        *) echo $((1024 * 1024)) ;;
    esac
}

cd "$fuzz"
echo "building fuzz targets ($targets) into $fuzz_target_dir" >&2
cargo fuzz build --codegen-units 16 --target-dir "$fuzz_target_dir" >&2

status=0
summary=()
for target in $targets; do
    mkdir -p "work/$target" "artifacts/$target"
    log="artifacts/$target/last-run.log"
    echo "fuzzing $target for ${seconds}s" >&2
    set +e
    # -rss_limit_mb / -malloc_limit_mb: an input that makes the parser use
    # more than 512 MiB (or allocate it at once) is a finding, like a panic.
    cargo fuzz run --codegen-units 16 --target-dir "$fuzz_target_dir" "$target" \
        "work/$target" "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -malloc_limit_mb=512 \
        -max_len="$(max_len "$target")" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1
    code=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    new=$(grep -o 'stat::new_units_added: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    crashes=$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    line="$target: ${runs} executions in ${seconds}s (${rate}/s), ${new} new inputs, peak RSS ${rss} MB, ${crashes} crash/oom/timeout artifacts, exit ${code}"
    summary+=("$line")
    if [ "$code" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        status=1
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -5 >&2 || true
        echo "  see $fuzz/$log and $fuzz/artifacts/$target/" >&2
    fi
done

if [ -z "${SKIP_BIG_HASH_FILE:-}" ]; then
    # A hash file with a million entries (~230 MB, under the 512 MiB cap):
    # written first, then read by itself under /usr/bin/time.
    cd "$root"
    big="$(mktemp -d)/bottles_hash.json"
    trap 'rm -rf "$(dirname "$big")"' EXIT
    test_bin=$(cargo test -p bottlesync-core --test hostile_input --no-run --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*hostile_input[^"]*"' | head -1 | cut -d'"' -f4)
    BOTTLESYNC_BIG_HASH_FILE="$big" "$test_bin" --ignored --exact write_a_million_entry_hash_file -q >/dev/null
    measured=$(BOTTLESYNC_BIG_HASH_FILE="$big" /usr/bin/time -f 'elapsed %e s, max RSS %M KiB' \
        "$test_bin" --ignored --exact a_hash_file_with_a_million_entries_is_read -q --nocapture 2>&1 \
        | grep -E 'read in|elapsed|test result|panicked')
    summary+=("hash file, 1M entries ($(stat -c %s "$big") bytes): $(echo "$measured" | tr '\n' ' ')")
fi

echo
printf '%s\n' "${summary[@]}"
exit "$status"
