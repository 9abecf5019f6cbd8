#!/usr/bin/env bash
# Runs every test Tertulia has, installing what it needs first (on a fresh machine too):
# formatting and lints, the diesel CLI checks, Rust unit and integration tests, and the
# browser tests in headless Chromium. Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DIESEL_CLI_VERSION=2.3.14
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# SQLite and PostgreSQL, both client libraries built from source (no libpq-dev needed).
# A marker file says the installed CLI has PostgreSQL: older installs were SQLite only.
DIESEL_CLI_MARK="$HOME/.cargo/.tertulia-diesel-cli-$DIESEL_CLI_VERSION-sqlite-postgres"
if ! diesel --version 2>/dev/null | grep -q "$DIESEL_CLI_VERSION" || [ ! -e "$DIESEL_CLI_MARK" ]; then
  step "installing diesel_cli $DIESEL_CLI_VERSION (SQLite and PostgreSQL, bundled)"
  cargo install diesel_cli --version "$DIESEL_CLI_VERSION" --locked --force \
    --no-default-features --features sqlite-bundled,postgres-bundled
  touch "$DIESEL_CLI_MARK"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (unit + integration, including the diesel CLI checks)"
TERTULIA_REQUIRE_DIESEL_CLI=1 cargo test --locked --all-targets

if ! command -v redis-server >/dev/null 2>&1; then
  step "installing Debian's redis-server (the several-node tests start Redis servers of their own)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
fi

step "the API and WebSocket suite again on PostgreSQL, with the several-node tests (a private cluster when none answers)"
TERTULIA_REQUIRE_DIESEL_CLI=1 bash tests/pg.sh

step "the protocol's integration tests again over the HTTP transport (SSE + POST)"
TERTULIA_TEST_TRANSPORT=http cargo test --locked --test api -- ws_ sessions:: conversations::

step "schemathesis against /api/openapi.json (every response documented, no 5xx)"
bash tests/schemathesis/run.sh

step "Autobahn|Testsuite against the WebSocket echo route (SKIP without Python 2.7)"
bash tests/autobahn/run.sh

step "calls across real networks (coturn, network namespaces, headless Chromium)"
bash tests/browser/net/run.sh

step "cargo fuzz (WebSocket frames and JSON bodies, bounded; SKIP without nightly)"
bash tests/fuzz.sh

if [ -x tests/browser/run.sh ]; then
  step "browser tests (headless Chromium)"
  bash tests/browser/run.sh
  step "the chat scenario again, its server on PostgreSQL"
  bash tests/pg.sh --browser 03-chat
  step "two browsers on two nodes over Redis (PostgreSQL)"
  bash tests/pg.sh --browser 25-two-nodes
fi
