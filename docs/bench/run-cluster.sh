#!/bin/bash
# Starts a bench cluster (issue 18): a redis-server of its own on port $REDIS_PORT (6390) and
# $2 (2) Tertulia nodes on the PostgreSQL database $1, ports $BASE_PORT (8097), 8098, … (release build,
# the bench flags of run-server.sh, node-1, node-2, … on core 1 as run-server.sh's server),
# PIDs in $TB/redis.pid and $TB/node-N.pid (TB: /tmp/tb18). Prints two lines for
# tertulia-bench: the --url list and the --server-pid list. `run-cluster.sh stop` stops it
# all (SIGTERM: every connection gets 1001). For the several-node figures of docs/benchmarks.md.
TB=${TB:-/tmp/tb18}; REDIS_PORT=${REDIS_PORT:-6390}; BIN=${TERTULIA_BIN:-target/release/tertulia}
BASE_PORT=${BASE_PORT:-8097}
cd "$(dirname "$0")/../.."
mkdir -p "$TB"
if [ "$1" = stop ]; then
  for f in "$TB"/node-*.pid "$TB"/redis.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f"); kill "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$f"
  done
  exit 0
fi
DB=$1; NODES=${2:-2}
ulimit -n 20000
setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TB" \
  > "$TB/redis.log" 2>&1 < /dev/null &
echo $! > "$TB/redis.pid"
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
URLS=(); PIDS=()
for n in $(seq 1 "$NODES"); do
  PORT=$((BASE_PORT - 1 + n))
  RUST_LOG=warn setsid taskset -c 1 "$BIN" serve --database-url "$DB" --bind 127.0.0.1:$PORT --workers 1 \
    --broker redis://127.0.0.1:$REDIS_PORT --node-id node-$n \
    --login-attempts 1000000 --ws-rate-per-sec 1000000 --ws-rate-burst 1000000 --ws-max-conns-per-user 100000 \
    > "$TB/node-$n.log" 2>&1 < /dev/null &
  echo $! > "$TB/node-$n.pid"
  # One at a time: the first start of a version migrates the database.
  for _ in $(seq 1 300); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.1; done
  URLS+=("http://127.0.0.1:$PORT"); PIDS+=("$(cat "$TB/node-$n.pid")")
done
(IFS=,; echo "${URLS[*]}"; echo "${PIDS[*]}")
