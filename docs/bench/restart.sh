#!/bin/bash
# Restarts the bench server of run-server.sh: SIGTERM (every connection gets 1001), wait
# for it to exit, start it again on the same database ($1) and port ($2).
TB=${TB:-/tmp/tb17}
OLD=$(cat "$TB/server.pid")
kill "$OLD"
while kill -0 "$OLD" 2>/dev/null; do sleep 0.05; done
bash "$(dirname "$0")/run-server.sh" "$1" "${2:-8097}" > /dev/null
