#!/usr/bin/env bash
# Calls across real networks: coturn for real (credentials from /api/ice-servers accepted,
# expired and forged ones refused), then two headless Chromiums in two Linux network
# namespaces that cannot reach each other (see netns.sh): a call through the TURN relay
# over UDP and over TCP only, a direct call that loses its path and recovers through the
# relay by ICE restart, the connection check page. Needs root for the namespaces; where
# they are not permitted the namespace files print SKIP and the rest still runs.
# Usage: bash tests/browser/net/run.sh [file-filter]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(cd ../.. && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

need=()
command -v turnserver >/dev/null || need+=(coturn)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs npm)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" || exit 1
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --loglevel=error || exit 1
(cd "$ROOT" && cargo build --locked --bin tertulia) || exit 1
export TERTULIA_BIN="$ROOT/target/debug/tertulia"

netns_ok=1
probe="tertulia-probe-$$"
if ip netns add "$probe" 2>/dev/null; then
  ip netns del "$probe"
else
  netns_ok=0
fi
trap 'bash net/netns.sh down' EXIT

mkdir -p artifacts
. lib/tally.sh
for file in net/*.test.js; do
  [ -n "${1:-}" ] && [[ "$file" != *"$1"* ]] && continue
  printf '\n--- %s\n' "$file"
  log="artifacts/net-$(basename "$file" .test.js).log"
  if [[ "$file" == *-ns-* ]]; then
    if [ "$netns_ok" -eq 0 ]; then
      echo "SKIP: $file (network namespaces not available)"
      continue
    fi
    # Fresh namespaces for every file; the driver runs beside the services in tertulia-r.
    bash net/netns.sh up || { failed_files+=("$file (netns setup)"); continue; }
    run_node_test "$file" "$log" 240 ip netns exec tertulia-r
    bash net/netns.sh down
  else
    run_node_test "$file" "$log" 120
  fi
done
report net
