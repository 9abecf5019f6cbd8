#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document (/api/openapi.json) with schemathesis:
# every response must be documented (status, content type and body schema), no request may
# cause a 5xx, invalid input must be refused, and a method a route does not serve must be a
# 405 with `Allow`. Installs schemathesis (pinned) in its own virtualenv, starts the debug
# server on a free port with a fresh database, an admin and two users, and exits non-zero on
# any failure. Usage: bash tests/schemathesis/run.sh [schemathesis run options]
# (SCHEMATHESIS_SEED=N for another seed, SCHEMATHESIS_EXAMPLES=N for more or fewer cases)
set -euo pipefail
cd "$(dirname "$0")/../.."
# Any arguments go to both schemathesis runs (e.g. `--report har` to see every request).
EXTRA=("$@")

SCHEMATHESIS_VERSION=4.32.5
# Fixed, so a run is reproducible; change it to explore further.
SEED=${SCHEMATHESIS_SEED:-20261204}
# Cases per operation and phase: about 45 s of fuzzing here, well under 3 minutes on 2 busy
# cores (200 takes about 70 s and found nothing more).
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-100}
VENV=target/schemathesis-venv
BIN=target/debug/tertulia
ADMIN=st-admin
ADMIN_PASSWORD='schemathesis admin password'

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's own python3 keeps venv (ensurepip) in a package of its own.
    rm -rf "$VENV"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
PY="$VENV/bin/python"
cargo build --locked --quiet --bin tertulia

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

DB="$WORK/tertulia.db"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

echo "$ADMIN_PASSWORD" | RUST_LOG=warn "$BIN" admin create --nickname "$ADMIN" --database-url "$DB" >/dev/null
# Logins are rate limited per IP: every case comes from 127.0.0.1.
RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --bind "127.0.0.1:$PORT" --database-url "$DB" \
  --web-dir web --login-attempts 1000000 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Waits for the server, registers two plain users (2 and 3: targets for the admin routes) and
# logs the admin in twice: one session per run below. Prints the two tokens.
TOKENS=$("$PY" - "$BASE" "$ADMIN" "$ADMIN_PASSWORD" <<'PY'
import json, sys, time, urllib.error, urllib.request

base, admin, password = sys.argv[1:]

def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.load(res)

for _ in range(300):
    try:
        call("/healthz")
        break
    except (urllib.error.URLError, ConnectionError):
        time.sleep(0.1)
else:
    sys.exit("the server did not start")
# schemathesis.toml aims the admin's kicks at user 2 and deletions at user 3.
for want, nickname in [(2, "st-user"), (3, "st-doomed")]:
    user = call("/api/register", {"nickname": nickname, "password": "schemathesis user password",
                                  "themes": ["Tecnologia"], "capabilities": ["text"]})
    if user["id"] != want:
        sys.exit(f"{nickname} is user {user['id']}, not {want}: fix schemathesis.toml")
print(call("/api/login", {"nickname": admin, "password": password})["token"],
      call("/api/login", {"nickname": admin, "password": password})["token"])
PY
)
read -r TOKEN SPARE_TOKEN <<<"$TOKENS"

# One worker: with two, Python 3.11.7's `ast.parse` (which hypothesis calls to describe its
# filters) fails now and then across threads ("AST constructor recursion depth mismatch").
run() {
  local token=$1
  shift
  TOKEN="$token" "$VENV/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml \
    run "$BASE/api/openapi.json" \
    --seed "$SEED" --max-examples "$EXAMPLES" --workers 1 \
    --generation-database none --no-color "$@" "${EXTRA[@]}"
}

status=0
# Logging out ends the very session it is called with: in the main run it would turn every
# later case into a 401 that tests nothing, so it runs last, alone, with a session of its own.
echo "==> schemathesis: every operation but logout, as the admin"
run "$TOKEN" --exclude-path /api/logout || status=1
echo "==> schemathesis: logout, last, with a second session"
run "$SPARE_TOKEN" --include-path /api/logout || status=1

if grep -q "panicked" "$WORK/server.log"; then
  echo "the server panicked:" >&2
  grep -A5 "panicked" "$WORK/server.log" >&2
  status=1
fi
exit "$status"
