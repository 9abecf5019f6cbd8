#!/usr/bin/env bash
# Runs the API and WebSocket integration suite on PostgreSQL (TERTULIA_TEST_DATABASE=postgres:
# every test on a database of its own, created and dropped by tests/api/helpers.rs).
#
# The server: TERTULIA_TEST_PG_URL when set; otherwise the one answering on 127.0.0.1:5432
# (TERTULIA_PG_PORT to probe another port); when nothing answers there, Debian's `postgresql`
# is installed if missing and a private cluster is started (initdb in a temporary directory,
# as the `postgres` user, trust auth, on a free port) and stopped at the end.
#
# Usage: bash tests/pg.sh [cargo test filter and arguments]
#        bash tests/pg.sh --browser [browser test file filter, default 03-chat]
#   e.g. bash tests/pg.sh ws_chat      TERTULIA_PG_PORT=5499 bash tests/pg.sh themes
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

probe_port=${TERTULIA_PG_PORT:-5432}
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

private_dir=""
stop_private() {
  if [ -n "$private_dir" ]; then
    su postgres -s /bin/sh -c "pg_ctl -D '$private_dir/data' -m fast -w stop" >/dev/null 2>&1 || true
    rm -rf "$private_dir"
  fi
}
trap stop_private EXIT

start_private() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "==> installing Debian's postgresql (for a private test cluster)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  export PATH="$bin:$PATH"
  local port=$((20000 + RANDOM % 20000))
  while answers "$port"; do port=$((20000 + RANDOM % 20000)); done
  private_dir=$(mktemp -d /tmp/tertulia-pg.XXXXXX)
  chown postgres: "$private_dir"
  echo "==> private PostgreSQL cluster in $private_dir on port $port"
  su postgres -s /bin/sh -c "initdb -D '$private_dir/data' -U postgres -A trust -E UTF8 >'$private_dir/initdb.log'"
  su postgres -s /bin/sh -c "pg_ctl -D '$private_dir/data' -l '$private_dir/server.log' -w \
    -o \"-p $port -k $private_dir -c listen_addresses=127.0.0.1 -c max_connections=200\" start" >/dev/null
  TERTULIA_TEST_PG_URL="postgres://postgres@127.0.0.1:$port"
}

if [ -z "${TERTULIA_TEST_PG_URL:-}" ]; then
  if answers "$probe_port"; then
    TERTULIA_TEST_PG_URL="postgres://postgres@127.0.0.1:$probe_port"
  else
    echo "==> nothing answers on 127.0.0.1:$probe_port"
    start_private
  fi
fi
export TERTULIA_TEST_DATABASE=postgres TERTULIA_TEST_PG_URL
echo "==> tests on PostgreSQL at $TERTULIA_TEST_PG_URL"

status=0
if [ "${1:-}" = "--browser" ]; then
  # One browser scenario file (e.g. 03-chat) with its server on a fresh PostgreSQL database
  # (tests/browser/run.sh makes one for each try: TERTULIA_BROWSER_PG_SERVER).
  TERTULIA_BROWSER_PG_SERVER="$TERTULIA_TEST_PG_URL" bash tests/browser/run.sh "${2:-03-chat}" \
    || status=$?
else
  cargo test --locked --test api "$@" || status=$?
fi

# Databases of tests that ended without dropping theirs (a panic before the app existed).
left=$(psql "$TERTULIA_TEST_PG_URL/postgres" -Atc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'tertulia\_t\_%'" 2>/dev/null || true)
for db in $left; do
  psql "$TERTULIA_TEST_PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
done
exit $status
