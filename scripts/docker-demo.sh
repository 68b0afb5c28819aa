#!/bin/sh
# Live demo of Berth's Docker discovery: two labelled containers behind Berth, traffic
# alternating between them. Uses the Docker engine at $DOCKER_HOST or /var/run/docker.sock if
# one answers; otherwise (as root) starts a private one with scripts/dockerd-local.sh.
# Everything it started is removed on Ctrl-C or exit.
#
#   scripts/docker-demo.sh            (build first: cmake -S . -B build -G Ninja && cmake --build build)
#
# Environment: BERTH (default build/berth), BERTH_DEMO_PORT (8080), BERTH_DEMO_ADMIN (9901),
# BERTH_DEMO_SECONDS (how long to keep running, default 3600).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
berth=${BERTH:-$root/build/berth}
port=${BERTH_DEMO_PORT:-8080}
admin=${BERTH_DEMO_ADMIN:-9901}
seconds=${BERTH_DEMO_SECONDS:-3600}
work=$(mktemp -d /tmp/berth-demo-XXXXXX)
image=berth-demo:local
engine_dir=""
berth_pid=""
containers="berth-demo-1 berth-demo-2"

say() { printf '%s\n' "$*"; }
die() { say "docker-demo: $*" >&2; exit 1; }

cleanup() {
  trap - EXIT INT TERM
  say ""
  say "cleaning up..."
  [ -n "$berth_pid" ] && kill -TERM "$berth_pid" 2>/dev/null && wait "$berth_pid" 2>/dev/null
  timeout 60 docker rm -f $containers >/dev/null 2>&1
  if [ -n "$engine_dir" ]; then
    "$here/dockerd-local.sh" purge "$engine_dir"
  fi
  rm -rf "$work"
  say "done."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$berth" ] || die "$berth not found; build first (cmake -S . -B build -G Ninja && cmake --build build)"
command -v docker >/dev/null || die "the docker CLI is needed (apt-get install docker.io)"

# 1. An engine: the configured one, or a private one.
engine_ok() { timeout 10 docker version >/dev/null 2>&1; }
if [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ]; then export DOCKER_HOST=unix:///var/run/docker.sock; fi
if [ -n "${DOCKER_HOST:-}" ] && engine_ok; then
  say "using the Docker engine at $DOCKER_HOST"
else
  [ "$(id -u)" = 0 ] || die "no Docker engine reachable, and starting a private one needs root"
  engine_dir="$work/engine"
  say "no Docker engine reachable: starting a private one in $engine_dir"
  unset DOCKER_HOST
  out=$("$here/dockerd-local.sh" start "$engine_dir") || die "could not start dockerd"
  export "$out"
fi
case "$DOCKER_HOST" in
  unix://*) ;;
  *) die "this demo expects a unix:// DOCKER_HOST (got $DOCKER_HOST)";;
esac

# 2. A tiny image and two labelled containers on the host network (127.0.0.1 only).
"$here/dockerd-local.sh" image "$work/image" "$image" || die "could not build the demo image"
timeout 60 docker rm -f $containers >/dev/null 2>&1
n=0
for name in $containers; do
  n=$((n + 1))
  p=$((port + 100 + n))
  timeout 60 docker run -d --pull never --name "$name" --network host --init \
    --label berth.enable=true --label berth.host=demo.localhost --label berth.service=demo \
    --label berth.port=$p \
    --health-cmd "wget -q -O- http://127.0.0.1:$p/ || exit 1" --health-interval 1s --health-retries 1 \
    "$image" sh -c "echo 'hello from $name' > /www/index.html; exec httpd -f -p 127.0.0.1:$p -h /www" >/dev/null \
    || die "docker run $name failed"
  say "started $name on 127.0.0.1:$p"
done

# 3. Berth with Docker discovery.
cat > "$work/berth.yaml" <<YAML
listeners: ["127.0.0.1:$port"]
workers: 1
admin: {address: "127.0.0.1:$admin"}
docker:
  enabled: true
  endpoint: "$DOCKER_HOST"
YAML
"$berth" --config "$work/berth.yaml" 2>"$work/berth.log" &
berth_pid=$!
i=0
until grep -q "event=docker_synced" "$work/berth.log" 2>/dev/null; do
  i=$((i + 1)); [ "$i" -lt 100 ] || { cat "$work/berth.log" >&2; die "berth did not sync with the engine"; }
  kill -0 "$berth_pid" 2>/dev/null || { cat "$work/berth.log" >&2; die "berth exited"; }
  sleep 0.1
done
say "berth is listening on 127.0.0.1:$port (admin 127.0.0.1:$admin); waiting for the health checks..."
i=0
until [ "$(curl -s http://127.0.0.1:$admin/api/routes | grep -o '"address"' | wc -l)" -ge 2 ]; do
  i=$((i + 1)); [ "$i" -lt 150 ] || break
  sleep 0.1
done

say ""
say "Try these (traffic alternates between the two containers):"
say "  curl -H 'Host: demo.localhost' http://127.0.0.1:$port/"
say "  curl http://127.0.0.1:$admin/api/routes"
say "  DOCKER_HOST=$DOCKER_HOST docker stop berth-demo-1    # leaves the rotation at its kill event"
say ""
for k in 1 2 3 4; do
  say "\$ curl -H 'Host: demo.localhost' http://127.0.0.1:$port/"
  curl -s -H 'Host: demo.localhost' "http://127.0.0.1:$port/"
done
say ""
say "Running for ${seconds}s; Ctrl-C to stop and clean up."
i=0
while [ "$i" -lt "$seconds" ] && kill -0 "$berth_pid" 2>/dev/null; do sleep 1; i=$((i + 1)); done
