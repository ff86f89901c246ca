#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for SECONDS_PER_TARGET seconds each, one after another.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, all targets)
#
# Fails on the first crash, hang (an input taking over FUZZ_TIMEOUT s) or memory blow-up (RSS
# over FUZZ_RSS_MB, or a single allocation that large); the input is saved under
# fuzz/artifacts/<target>/. CI runs `scripts/fuzz.sh 5` as a smoke run.
#
# Only the stable toolchain is needed: cargo-fuzz's nightly-only flags (sancov passes,
# -Zsanitizer) are unlocked with RUSTC_BOOTSTRAP=1. AddressSanitizer works on stable Linux
# x86_64 (its runtime ships with rust-std); if it does not build here, the script falls back to
# `--sanitizer none` (FUZZ_SANITIZER=none forces that). Builds use `-a` (debug assertions and
# overflow checks on) so that arithmetic overflow is a crash too.
#
# Corpora: the committed seeds are fuzz/corpus/<target>/ (read only); what a run discovers goes
# to fuzz/corpus-work/<target>/ (ignored by git), so that later runs start from it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
rss_mb=${FUZZ_RSS_MB:-2048}
timeout_s=${FUZZ_TIMEOUT:-10}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io (about 2 minutes on 2 cores)" >&2
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

if ! cargo fuzz build -a -s "$sanitizer" --fuzz-dir fuzz; then
    if [ "$sanitizer" = none ]; then
        exit 1
    fi
    echo "fuzz.sh: building with --sanitizer $sanitizer failed; using --sanitizer none" >&2
    sanitizer=none
    cargo fuzz build -a -s none --fuzz-dir fuzz
fi

for target in "${targets[@]}"; do
    work=fuzz/corpus-work/$target
    mkdir -p "$work"
    echo "fuzz.sh: $target for ${seconds}s (sanitizer $sanitizer, rss limit ${rss_mb} MB, timeout ${timeout_s}s)" >&2
    log=fuzz/corpus-work/$target.log
    # Inputs up to 4 KiB by default; the UserSig target needs more to reach the 8 KiB length cap.
    max_len=4096
    if [ "$target" = usersig ]; then
        max_len=9000
    fi
    # The first corpus directory receives new inputs; the seeds are only read.
    status=0
    cargo fuzz run -a -s "$sanitizer" --fuzz-dir fuzz "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
        -timeout="$timeout_s" -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' "$log" >&2 || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz.sh: $target FAILED (exit $status); log: $log, input under fuzz/artifacts/$target/" >&2
        tail -n 60 "$log" >&2
        exit "$status"
    fi
done
echo "fuzz.sh: ${#targets[@]} target(s), ${seconds}s each: no crash, hang or memory blow-up" >&2
