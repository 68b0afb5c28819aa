#!/bin/sh
# A private Docker engine for tests and the demo (root only; see ../shared/docker-api-notes.md).
#
#   dockerd-local.sh start DIR [dockerd args...]  start dockerd with everything under DIR; prints
#                                                 DOCKER_HOST=unix://DIR/docker.sock when it answers
#   dockerd-local.sh image DIR [TAG]              import a tiny busybox image (default bb:local) into
#                                                 DIR's engine, or into $DOCKER_HOST when set
#   dockerd-local.sh stop DIR                     remove its containers, stop it, unmount DIR's mounts
#   dockerd-local.sh purge DIR                    stop, then delete DIR
#
# The engine runs with --bridge=none --iptables=false and vfs storage: host networking only, no
# NAT rules touched. Only the dockerd whose PID is in DIR/pid is ever signalled.
set -u

die() { echo "dockerd-local: $*" >&2; exit 1; }

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|image|stop|purge DIR [...]"
shift 2
sock="$dir/docker.sock"

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -f "$1" ] && cat "$1" 2>/dev/null; }
ping_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -sf --max-time 2 --unix-socket "$sock" http://docker/_ping >/dev/null 2>&1
  else
    DOCKER_HOST="unix://$sock" timeout 5 docker version >/dev/null 2>&1
  fi
}

# Waits (at most $2 tenths of a second) until PID $1 is gone.
wait_gone() {
  n=0
  while alive "$1" && [ "$n" -lt "$2" ]; do sleep 0.1; n=$((n + 1)); done
  ! alive "$1"
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root to start a private dockerd"
  command -v dockerd >/dev/null || die "dockerd not found (apt-get install docker.io)"
  mkdir -p "$dir/root" "$dir/exec"
  old=$(pid_of "$dir/pid")
  if alive "$old" && ping_ok; then echo "DOCKER_HOST=unix://$sock"; return 0; fi
  # A containerd left by a killed dockerd must be gone before a new dockerd starts (notes §1).
  wait_gone "$(pid_of "$dir/exec/containerd/containerd.pid")" 300 || die "old containerd still running"
  setsid dockerd --storage-driver=vfs --data-root="$dir/root" --exec-root="$dir/exec" \
    -H "unix://$sock" --pidfile="$dir/pid" --bridge=none --iptables=false --ip-masq=false "$@" \
    >>"$dir/log" 2>&1 </dev/null &
  n=0
  until ping_ok; do
    n=$((n + 1))
    [ "$n" -lt 600 ] || { tail -20 "$dir/log" >&2; die "dockerd did not answer within 60 s (log: $dir/log)"; }
    alive "$(pid_of "$dir/pid")" || [ "$n" -lt 50 ] || { tail -20 "$dir/log" >&2; die "dockerd exited (log: $dir/log)"; }
    sleep 0.1
  done
  echo "DOCKER_HOST=unix://$sock"
}

image() {
  tag=${1:-bb:local}
  # Into the private engine, unless DOCKER_HOST names another one (the demo uses that).
  export DOCKER_HOST="${DOCKER_HOST:-unix://$sock}"
  mkdir -p "$dir"
  if timeout 30 docker image inspect "$tag" >/dev/null 2>&1; then return 0; fi
  bb=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
  rootfs="$dir/rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/www/cgi-bin" "$rootfs/tmp" "$rootfs/etc"
  cp "$bb" "$rootfs/bin/busybox"
  for a in sh httpd echo sleep cat wget rm kill true false mv ls test [ printf seq date env grep sed head; do
    ln -sf busybox "$rootfs/bin/$a"
  done
  echo hello > "$rootfs/www/index.html"
  # /cgi-bin/slow?N answers after N seconds (default 2) with the container's index.html.
  cat > "$rootfs/www/cgi-bin/slow" <<'CGI'
#!/bin/sh
sleep "${QUERY_STRING:-2}"
printf 'Content-Type: text/plain\r\n\r\n'
printf 'slow '
cat /www/index.html
CGI
  chmod 755 "$rootfs/www/cgi-bin/slow"
  tar -C "$rootfs" -c . | timeout 120 docker import - "$tag" >/dev/null || die "docker import failed"
  rm -rf "$rootfs"
}

stop() {
  pid=$(pid_of "$dir/pid")
  if alive "$pid"; then
    export DOCKER_HOST="unix://$sock"
    ids=$(timeout 30 docker ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 120 docker rm -f $ids >/dev/null 2>&1
    kill -TERM "$pid" 2>/dev/null
    wait_gone "$pid" 300 || { kill -KILL "$pid" 2>/dev/null; wait_gone "$pid" 50; }
  fi
  wait_gone "$(pid_of "$dir/exec/containerd/containerd.pid")" 100
  # Unmount what the engine left under DIR, deepest first.
  grep " $dir/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  return 0
}

case "$cmd" in
  start) start "$@" ;;
  image) image "$@" ;;
  stop) stop ;;
  purge) stop; rm -rf "$dir" ;;
  *) die "unknown command $cmd" ;;
esac
