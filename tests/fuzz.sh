#!/usr/bin/env bash
# Fuzzes the WebSocket frame parser and the JSON request bodies (fuzz/, issue 14) for a short
# bounded time each: any panic, over-budget allocation, leak, hang or OOM fails the run with
# the reproducer's path. Needs a nightly toolchain; without one it says SKIP and passes.
# Installs cargo-fuzz (pinned) when it is missing.
#
# Usage: bash tests/fuzz.sh
#   TERTULIA_FUZZ_SECONDS    seconds per target (default 45)
#   TERTULIA_FUZZ_PROFILE    dev (default: the shorter build) or release (the faster fuzzer)
#   TERTULIA_FUZZ_SANITIZER  none (default) or address: ASan finds memory errors in unsafe
#                            code (tertulia has none; its C dependencies are not reached by
#                            these targets) and makes libFuzzer's -malloc_limit_mb effective,
#                            at the cost of a slower build and about half the executions/s.
#                            The targets check each input's heap use themselves either way.
#   TERTULIA_FUZZ_CORPUS     a folder to keep what the run finds in (default: a temporary
#                            one; fuzz/corpus/<target> is read, never written)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
TARGETS=(ws_frame json_bodies)
SECONDS_PER_TARGET="${TERTULIA_FUZZ_SECONDS:-45}"
SANITIZER="${TERTULIA_FUZZ_SANITIZER:-none}"
PROFILE="${TERTULIA_FUZZ_PROFILE:-dev}"
# Build flags, the same for `build` and `run` (else `run` builds again). The dev profile
# (unoptimised) takes about 4 CPU-minutes to build from scratch where release takes 10 (with
# 16 codegen units instead of cargo-fuzz's 1), and runs about ten times fewer inputs a
# second: the better trade for a short run in the test command, the worse for a long one.
if [ "$PROFILE" = release ]; then
  # Not `--release`: cargo-fuzz's default is release with debug assertions and overflow
  # checks, which `--release` would turn off.
  FLAGS=(--codegen-units 16 --sanitizer "$SANITIZER")
else
  FLAGS=(--dev --sanitizer "$SANITIZER")
fi
# The server's largest WebSocket frame and JSON body (64 KiB each, src/config.rs).
MAX_LEN=65536
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "SKIP: cargo fuzz (no nightly toolchain)"
  exit 0
fi
started=$(date +%s)
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# The lock file is committed: a build that would change it fails instead.
cp fuzz/Cargo.lock fuzz/Cargo.lock.before
trap 'rm -f fuzz/Cargo.lock.before' EXIT
cargo +nightly fuzz build "${FLAGS[@]}"
if ! cmp -s fuzz/Cargo.lock fuzz/Cargo.lock.before; then
  echo "FAIL: fuzz/Cargo.lock is out of date (the build changed it); commit the new one"
  exit 1
fi
echo "fuzz targets ready in $(($(date +%s) - started)) s ($PROFILE, sanitizer: $SANITIZER)"

work=$(mktemp -d)
trap 'rm -rf "$work"; rm -f fuzz/Cargo.lock.before' EXIT
for target in "${TARGETS[@]}"; do
  found="${TERTULIA_FUZZ_CORPUS:-$work}/$target"
  mkdir -p "$found" "fuzz/artifacts/$target"
  log="$work/$target.log"
  echo "fuzzing $target for $SECONDS_PER_TARGET s"
  # -malloc_limit_mb: one allocation or one input's heap (with a sanitizer's allocator);
  # -rss_limit_mb: the process; -timeout: one input, in seconds (a hang fails).
  if ! cargo +nightly fuzz run "${FLAGS[@]}" "$target" "$found" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len="$MAX_LEN" \
    -rss_limit_mb=512 -malloc_limit_mb=64 -timeout=10 \
    -dict="fuzz/dict/$target.dict" -print_final_stats=1 >"$log" 2>&1; then
    grep -m 1 -A 2 "panicked at" "$log" || true
    grep -E "ERROR: libFuzzer|SUMMARY|Slow unit|out-of-memory|malloc\(" "$log" || true
    reproducer=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -n 1)
    cp "$log" "fuzz/artifacts/$target/failed-run.log"
    echo "(whole log: fuzz/artifacts/$target/failed-run.log)"
    echo "FAIL: fuzz target $target: reproducer ${reproducer:-(none written; see the log)}"
    if [ -n "$reproducer" ]; then
      echo "  replay it: cargo +nightly fuzz run ${FLAGS[*]} $target $reproducer"
    fi
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  final=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  echo "  $target: ${runs:-?} inputs, no failure; last status: $final"
done
echo "fuzzing done in $(($(date +%s) - started)) s, cargo-fuzz install and build included"
