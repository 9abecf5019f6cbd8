#!/bin/bash
# A private PostgreSQL cluster for benchmarks that shows where PostgreSQL's own time goes:
# `pg_stat_statements` loaded (the machine's own server does not load it, and a benchmark
# never restarts or reconfigures that one), the same durability as the default
# (`synchronous_commit = on`, `fsync = on`). Used by docs/benchmarks.md, "PostgreSQL's own
# CPU".
#
#   bash docs/bench/pg-profile.sh start [PORT]    # initdb in $TB/pg (TB: /tmp/tbpg), port 5499
#   bash docs/bench/pg-profile.sh reset DB        # zero the statement statistics of DB
#   bash docs/bench/pg-profile.sh report DB       # time per statement kind since the reset
#   bash docs/bench/pg-profile.sh cpu             # CPU ticks (10 ms) of the cluster's processes
#   bash docs/bench/pg-profile.sh stop
set -euo pipefail
TB=${TB:-/tmp/tbpg}
PORT=${PORT:-5499}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { su postgres -s /bin/sh -c "$1"; }
url() { echo "postgres://postgres@127.0.0.1:$PORT/$1"; }

case "${1:-}" in
  start)
    PORT=${2:-$PORT}
    mkdir -p "$TB" && chown postgres: "$TB"
    as_pg "$bin/initdb -D '$TB/pg' -U postgres -A trust -E UTF8 >'$TB/initdb.log'"
    as_pg "$bin/pg_ctl -D '$TB/pg' -l '$TB/pg.log' -w -o \"-p $PORT -k $TB \
      -c listen_addresses=127.0.0.1 -c max_connections=200 \
      -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all \
      -c track_io_timing=on\" start" >/dev/null
    echo "PostgreSQL (pg_stat_statements) at $(url '')"
    ;;
  reset)
    psql "$(url "$2")" -qc 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
      -c 'SELECT pg_stat_statements_reset()' -c 'SELECT pg_stat_reset_shared($$wal$$)' >/dev/null
    ;;
  report)
    # Execution time per statement (planning is not tracked by default), the share of the
    # whole, and the WAL the cluster wrote and flushed meanwhile.
    psql "$(url "$2")" -P pager=off -c "
      WITH s AS (
        SELECT calls, total_exec_time, rows,
               left(regexp_replace(regexp_replace(query, '\s+', ' ', 'g'),
                                   ' VALUES .*', ' VALUES …'), 110) AS statement
        FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%')
      SELECT sum(calls) AS calls, round(sum(total_exec_time)::numeric, 1) AS total_ms,
             round((1000 * sum(total_exec_time) / sum(calls))::numeric, 1) AS mean_us,
             round((100 * sum(total_exec_time) / sum(sum(total_exec_time)) OVER ())::numeric, 1)
               AS pct,
             sum(rows) AS rows, statement
      FROM s GROUP BY statement ORDER BY sum(total_exec_time) DESC LIMIT 15" \
      -c "SELECT wal_records, pg_size_pretty(wal_bytes) AS wal, wal_write, wal_sync,
                 round(wal_sync_time::numeric, 1) AS sync_ms FROM pg_stat_wal"
    ;;
  cpu)
    t=0
    for p in $(pgrep -f "postgres.*$TB/pg" ; pgrep -P "$(head -1 "$TB/pg/postmaster.pid")"); do
      set -- $(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null || echo 0 0)
      t=$((t + $1 + $2))
    done
    echo "$t"
    ;;
  stop)
    as_pg "$bin/pg_ctl -D '$TB/pg' -m fast -w stop" >/dev/null || true
    rm -rf "$TB/pg"
    ;;
  *)
    sed -n 2,12p "$0"
    exit 2
    ;;
esac
