#!/usr/bin/env bash
# The networks of the namespace tests, made of Linux network namespaces only (the machine's
# own interfaces, routes and sysctls are never touched). Usage: netns.sh up|down
#
#   tertulia-a  10.213.1.2 ──veth── 10.213.1.1 ┐
#                                             tertulia-r  10.213.9.1 (lo): Tertulia + coturn
#   tertulia-b  10.213.2.2 ──veth── 10.213.2.1 ┘
#
# tertulia-r hosts the services and does not forward (ip_forward 0), so the two browser
# namespaces each reach 10.213.9.1 but not each other. A test that wants a direct path adds
# routes and turns forwarding on in tertulia-r (see lib/netns.js). 10.213.0.0/16 is used
# only inside these namespaces.
set -euo pipefail

NS_R=tertulia-r
NS_A=tertulia-a
NS_B=tertulia-b

down() {
  # Tolerates leftovers of a killed run as well as a clean state.
  for ns in "$NS_A" "$NS_B" "$NS_R"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

up() {
  down
  for ns in "$NS_R" "$NS_A" "$NS_B"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip -n "$NS_R" addr add 10.213.9.1/32 dev lo
  ip netns exec "$NS_R" sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'
  local side ns n
  for side in a b; do
    ns="tertulia-$side"
    n=$([ "$side" = a ] && echo 1 || echo 2)
    ip -n "$ns" link add eth0 type veth peer name "r$side" netns "$NS_R"
    ip -n "$ns" addr add "10.213.$n.2/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$NS_R" addr add "10.213.$n.1/24" dev "r$side"
    ip -n "$NS_R" link set "r$side" up
    ip -n "$ns" route add 10.213.9.0/24 via "10.213.$n.1"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
