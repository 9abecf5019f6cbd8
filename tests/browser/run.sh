#!/usr/bin/env bash
# Tertulia's browser tests: the protocol client (web/js/client.js) against the real server
# under Node, then the Playwright scenarios in Debian's headless Chromium with real WebRTC.
# Each test file gets its own server (random port, fresh database) and runs alone, under
# `timeout`, one after another (two cores). Usage: bash tests/browser/run.sh [file-filter]
set -uo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

# Debian's Chromium (never a downloaded browser build: see shared/BROWSER-TESTS.md).
command -v chromium >/dev/null || { apt-get update && apt-get install -y --no-install-recommends chromium; }
command -v node >/dev/null || { apt-get update && apt-get install -y --no-install-recommends nodejs npm; }
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --loglevel=error || exit 1

# The debug build: the other test stages have built it already, and deps are optimised.
(cd "$ROOT" && cargo build --locked --bin tertulia) || exit 1
export TERTULIA_BIN="$ROOT/target/debug/tertulia"

rm -rf artifacts && mkdir -p artifacts
passed=0
failed=0
failed_files=()
for file in client/*.test.js scenarios/*.test.js; do
  [ -n "${1:-}" ] && [[ "$file" != *"$1"* ]] && continue
  printf '\n--- %s\n' "$file"
  log="artifacts/$(basename "$file" .test.js).log"
  timeout -k 10 120 node --test --test-reporter=spec --test-concurrency=1 "$file" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$status" -ne 0 ]; then
    # A timeout or crash may leave no summary: count the file as one failure at least.
    [ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
    failed_files+=("$file (exit $status)")
  fi
done

printf '\n'
for f in "${failed_files[@]}"; do echo "FAILED: $f"; done
echo "browser: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "${#failed_files[@]}" -eq 0 ]
