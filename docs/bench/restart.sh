#!/bin/bash
# Restarts the bench server of run-server.sh: SIGTERM (every connection gets 1001), wait
# for it to exit, start it again on the same database ($1) and port ($2).
TB=${TB:-/tmp/tb17}
OLD=$(cat "$TB/server.pid")
kill "$OLD"
# Exited once gone or a zombie: its sockets closed when it exited, and a zombie waits only
# for its parent to reap it (on the bench machine PID 1 took 1.2 s to, and the port was free
# all that time).
while kill -0 "$OLD" 2>/dev/null && [ "$(cut -d' ' -f3 /proc/"$OLD"/stat 2>/dev/null)" != Z ]; do
  sleep 0.02
done
bash "$(dirname "$0")/run-server.sh" "$1" "${2:-8097}" > /dev/null
