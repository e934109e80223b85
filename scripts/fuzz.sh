#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60) and fails if any target crashes
# (panic, timeout, out-of-memory). Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Works on stable rustc: RUSTC_BOOTSTRAP=1 lets it accept the -Z flags cargo-fuzz passes.
# Seeds (committed) are in fuzz/seeds/<target>; the growing corpus (fuzz/corpus/<target>) and
# crash artifacts (fuzz/artifacts/<target>) are git-ignored. Every crash found must become a
# regression test: copy the artifact to crates/<crate>/tests/data/hostile/ and feed it from a
# crates/*/tests/hostile_*.rs test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=(ber envelope mime stream mbox msg pst keyring)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: run scripts/install-fuzz.sh" >&2
    exit 2
fi

export RUSTC_BOOTSTRAP=1
# No sanitizer (the code under test is safe Rust; aws-lc is not instrumented anyway) and debug
# assertions on, so integer overflow panics. One job: the machine is shared.
BUILD_FLAGS=(--sanitizer none --debug-assertions --release)
# FUZZ_JOBS=N runs N workers per target (libFuzzer then logs to fuzz/fuzz-<n>.log).
PARALLEL=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    PARALLEL=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi

# Builds every target once (a build failure fails the script).
cargo fuzz build "${BUILD_FLAGS[@]}"

failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
    # -rss_limit_mb / -malloc_limit_mb: an allocation beyond 512 MiB is a crash (unbounded
    # allocation); -timeout: one input taking over 10 s is a hang.
    if ! cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=1024 \
        -malloc_limit_mb=512 "${PARALLEL[@]}" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" 2>"artifacts/$t.log"; then
        echo "!! $t crashed; see fuzz/artifacts/$t.log and fuzz/artifacts/$t/" >&2
        tail -40 "artifacts/$t.log" >&2
        failed+=("$t")
    else
        grep -E '^stat::(number_of_executed_units|peak_rss_mb)|Done [0-9]+ runs' "artifacts/$t.log" || true
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
echo "no crashes in: ${TARGETS[*]}"
