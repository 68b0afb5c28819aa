#!/usr/bin/env bash
# Installs what Berth needs to build, test and benchmark, from Debian packages only.
# Idempotent and quiet when everything is already there.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config
  libuv1-dev node-llhttp libssl-dev libyaml-cpp-dev prometheus-cpp-dev catch2 nlohmann-json3-dev
  libcrypt-dev
  # RE2: linear-time regular expressions for route matchers and path rewrites (no backtracking
  # blow-up on hostile paths).
  libre2-dev
  curl procps
  # The system CA store upstream TLS verifies against when a service names no 'ca'.
  ca-certificates
  # The package test: cpack's shlibdeps, the maintainer scripts' tools, systemd-analyze, man,
  # python3 for its stand-in of systemd's notify socket, and logrotate to read the rotation file.
  dpkg-dev adduser passwd systemd man-db python3 logrotate
)
if [[ "${1:-}" == "--bench" || "${BERTH_BENCH_DEPS:-0}" == 1 ]]; then
  PKGS+=(wrk nginx-light haproxy util-linux)
fi
if [[ "${1:-}" == "--docker" || "${BERTH_DOCKER_DEPS:-0}" == 1 ]]; then
  # The test suite's real parts: a Docker engine, and for the observability tests a Prometheus
  # server (and promtool), an rsyslog receiver and a headless browser (with a font to draw text).
  # etcd (server and etcdctl) for the registry tests: many hosts on one etcd cluster.
  PKGS+=(docker.io busybox-static docker-compose prometheus rsyslog chromium fonts-dejavu-core etcd-server etcd-client)
  # ip (network namespaces, veths, a bridge) for the many-hosts test's lab (scripts/netns-lab.sh).
  PKGS+=(iproute2)
  # pebble (an ACME server and its test DNS) for the automatic HTTPS tests.
  PKGS+=(pebble)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Keep package post-install scripts from starting services (nginx, haproxy, docker):
  # Berth's scripts start what they need themselves, on loopback, and stop it again.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    $SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    made_policy=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if ((made_policy)); then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
