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
. lib/tally.sh
for file in client/*.test.js scenarios/*.test.js; do
  [ -n "${1:-}" ] && [[ "$file" != *"$1"* ]] && continue
  printf '\n--- %s\n' "$file"
  # Real WebRTC on a shared two-core machine: a file that fails gets one more try on a fresh
  # server, said on a visible RETRY line (the failed try's log is kept beside it).
  log="artifacts/$(basename "$file" .test.js).log"
  for attempt in 1 2; do
    status=0
    if [ -n "${TERTULIA_BROWSER_PG_SERVER:-}" ]; then
      # `tests/pg.sh --browser`: every try on a fresh PostgreSQL database of its own (the
      # tests' databases are dropped by pg.sh at the end, by their name).
      db="tertulia_t_browser_$$_$attempt"
      psql "$TERTULIA_BROWSER_PG_SERVER/postgres" -qc "CREATE DATABASE $db" >/dev/null || exit 1
      export TERTULIA_BROWSER_DATABASE_URL="$TERTULIA_BROWSER_PG_SERVER/$db"
    fi
    node_test "$file" "$log" 120 || status=$?
    [ "$status" -eq 0 ] && break
    [ "$attempt" -eq 1 ] && cp "$log" "${log%.log}.try1.log" && echo "RETRY: $file failed (exit $status); once more"
  done
  tally "$file" "$log" "$status"
done
report browser
