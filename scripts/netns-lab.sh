#!/bin/sh
# A small lab of network namespaces for the many-hosts test (root only). Every address lives
# inside namespaces made here; the root namespace gets no interface and no address.
#
#   netns-lab.sh up TAG N          TAG-core: lo + bridge br0 10.213.0.1/24;
#                                  TAG-h1..TAG-hN: lo + eth0 10.213.0.(10+i)/24, a veth to br0
#   netns-lab.sh link TAG I up|down   set host I's link (both ends of its veth) up or down
#   netns-lab.sh down TAG          delete every namespace named TAG-* (their veths and bridge go
#                                  with them); processes still inside are listed, never signalled
#
# TAG should be unique per run (e.g. berth-<pid>).
set -u

die() { echo "netns-lab: $*" >&2; exit 1; }

cmd=${1:-}; tag=${2:-}
[ -n "$cmd" ] && [ -n "$tag" ] || die "usage: $0 up TAG N | link TAG I up|down | down TAG"
case "$tag" in *[!A-Za-z0-9_.-]*) die "TAG may hold only letters, digits, _ . -";; esac

up() {
  n=${1:-3}
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v ip >/dev/null || die "ip not found (apt-get install iproute2)"
  core="$tag-core"
  ip netns add "$core" || die "ip netns add $core failed"
  ip -n "$core" link set lo up || die "lo up in $core failed"
  ip -n "$core" link add br0 type bridge || die "bridge in $core failed"
  ip -n "$core" addr add 10.213.0.1/24 dev br0 || die "address of br0 failed"
  ip -n "$core" link set br0 up || die "br0 up failed"
  i=1
  while [ "$i" -le "$n" ]; do
    h="$tag-h$i"
    ip netns add "$h" || die "ip netns add $h failed"
    ip -n "$h" link set lo up || die "lo up in $h failed"
    # Created inside the core namespace, its peer straight into the host's: never in the root one.
    ip -n "$core" link add "v$i" type veth peer name eth0 netns "$h" || die "veth for $h failed"
    ip -n "$core" link set "v$i" master br0 up || die "v$i up failed"
    ip -n "$h" addr add "10.213.0.$((10 + i))/24" dev eth0 || die "address of $h failed"
    ip -n "$h" link set eth0 up || die "eth0 up in $h failed"
    i=$((i + 1))
  done
  # Until the bridge forwards (no STP, so at once; wait for the ports to leave "disabled").
  n_try=0
  while ip -n "$core" -br link show master br0 | grep -qv ' UP '; do
    n_try=$((n_try + 1)); [ "$n_try" -lt 50 ] || die "bridge ports did not come up"; sleep 0.1
  done
  echo "core=$core"
}

link() {
  i=${1:-}; state=${2:-}
  case "$state" in up|down) ;; *) die "link TAG I up|down";; esac
  ip -n "$tag-h$i" link set eth0 "$state" || die "eth0 $state in $tag-h$i failed"
  ip -n "$tag-core" link set "v$i" "$state" || die "v$i $state failed"
}

down() {
  rc=0
  for ns in $(ip netns list | awk '{print $1}' | grep "^$tag-"); do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -z "$pids" ] || echo "netns-lab: processes still in $ns: $pids" >&2
    ip netns del "$ns" || rc=1
  done
  return $rc
}

case "$cmd" in
  up) up "${3:-3}" ;;
  link) link "${3:-}" "${4:-}" ;;
  down) down ;;
  *) die "unknown command $cmd" ;;
esac
