#!/bin/bash
# Starts the bench server (release build) on core 1 with the bench flags, on database $1 and
# port $2 (8097), and writes its PID to $TB/server.pid (TB: /tmp/tb17). Used by
# docs/benchmarks.md, "Presence by subscription (issue 17)".
DB=$1; PORT=${2:-8097}; TB=${TB:-/tmp/tb17}
cd "$(dirname "$0")/../.."
ulimit -n 20000
RUST_LOG=warn setsid taskset -c 1 target/release/tertulia --database-url "$DB" --bind 127.0.0.1:$PORT --workers 1 \
  --login-attempts 1000000 --ws-rate-per-sec 1000000 --ws-rate-burst 1000000 --ws-max-conns-per-user 100000 \
  > "$TB/server.log" 2>&1 < /dev/null &
echo $! > "$TB/server.pid"
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
cat "$TB/server.pid"
