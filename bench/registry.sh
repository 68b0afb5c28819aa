#!/usr/bin/env bash
# Benchmark of Berth's etcd registry (issue 14, §4): propagation across hosts and a front door
# at scale.
#
#   bench/registry.sh            as root; about 10 minutes on a 2-core VM
#
# 1. Builds Release into build-bench/ (cmake -G Ninja -DBERTH_TESTS=OFF -DBERTH_BENCH=ON).
# 2. Starts one etcd member (Debian etcd-server) on 127.0.0.1 in a temp dir.
# 3. Propagation: a private dockerd (scripts/dockerd-local.sh, vfs, --bridge=none), a sidecar
#    Berth on it (Docker discovery, registry.role sidecar, advertise_address 127.0.0.1) and a
#    front door Berth (registry.role front). bench/propagation.cc `starts` runs REG_COUNT
#    sequential `docker run -d --init --network host` of labelled busybox httpd containers on
#    distinct 127.0.0.1 ports and measures `docker run` returned -> first 200 through the front
#    door (bar: p99 < 100 ms), and the split by each Berth's own clocks (/api/stats): the
#    sidecar's local propagation (engine event read -> its workers serve it), the hop sidecar ->
#    etcd -> front door (engine event read by the sidecar -> watch message read by the front
#    door), and the front door's own share (watch message read -> its workers serve it).
# 4. Scale (bench/registry_scale.cc): for each HOSTSxPER_HOST of REG_SCALE, that many keys are
#    written into etcd as HOSTS sidecars would (a lease per host, one transaction per host), a
#    fresh front door is started, and the tool measures: start -> a complete table (every
#    instance listed, not ejected, in /api/routes; time by the front door's own applied_at_ns), RSS
#    (/proc/PID/status VmRSS) with those keys and with none, and REG_CHANGES single-key changes
#    (put of a new instance, then its delete, in turn): put sent -> every worker serves it,
#    and the front door's own share (watch message read -> last worker applied), p50/p99; then
#    the same changes unpolled, for the front door's CPU per change (utime+stime; schedstat).
#    For comparison, REG_ETCDCTL_SAMPLE single puts with etcdctl (one process each) are timed.
#    Where a change's time goes: `registry_scale codec` times, in process, the front door's
#    registry table applying one changed value, and for comparison the whole set built from the
#    keys (build_registry_set, and of that the JSON decoding of the values) at each size; with REG_CALLGRIND=HOSTSxPER_HOST, a front door on that many keys
#    runs under valgrind --tool=callgrind, instrumented only while REG_CALLGRIND_CHANGES changes
#    are applied, and the report lists the inclusive instruction counts of the functions on the
#    change path (callgrind_annotate).
# 5. Prints a markdown report and writes it to bench/results/registry.md.
# Everything started (etcd, dockerd and its containers, the Berths, the tools) is stopped by PID
# on exit; the temp dir and the engine dir are removed. Loopback only.
#
# Environment knobs (defaults in brackets):
#   REG_COUNT            containers started for the propagation measurement [100]
#   REG_SCALE            HOSTSxPER_HOST key sets for the scale runs [10x50 100x50]
#   REG_CHANGES          single-key changes per scale run (each phase) [200]
#   REG_SERVICE_HOSTS    the changes again with each service spanning that many hosts [10; 0 = skip]
#   REG_WORKERS          workers of each Berth [0 = one per core]
#   REG_POLL_US          pause between /api/stats polls [100 propagation, 200 changes]
#   REG_E2E_PAUSE_US     pause between end-to-end requests through the front door [200]
#   REG_ETCDCTL_SAMPLE   etcdctl puts timed for comparison with the gateway [20; 0 = skip]
#   REG_CALLGRIND        HOSTSxPER_HOST for a callgrind profile of changes, e.g. 20x50 [off]
#   REG_CALLGRIND_CHANGES  changes applied while profiling [10]
#   REG_CALLGRIND_SERVICE_HOSTS  the profiled keys with each service spanning that many hosts [0 = all]
#   REG_PORT_BASE        first container port [first free block from 19400]
#   REG_ETCD_PORT        etcd client port (peer port = +1) [first free of 23379, 23479, ...]
#   REG_SKIP_PROPAGATION=1, REG_SKIP_SCALE=1   leave a part out (development)
#   BENCH_SKIP_BUILD=1   use the existing build-bench/
#   REG_KEEP=1           keep the temp dir (configs, logs, raw tool output)
#   REG_OUT              report file [bench/results/registry.md]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CMDLINE="bench/registry.sh${*:+ $*}"
for arg in "$@"; do
  case "$arg" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "registry.sh: unknown argument: $arg" >&2; exit 64 ;;
  esac
done
KNOBS=$(env | grep -E '^(REG_|BENCH_SKIP_BUILD)' | sort | tr '\n' ' ' || true)

COUNT=${REG_COUNT:-100}
SCALE=${REG_SCALE:-10x50 100x50}
SERVICE_HOSTS=${REG_SERVICE_HOSTS:-10}
CHANGES=${REG_CHANGES:-200}
WORKERS=${REG_WORKERS:-0}
POLL_US=${REG_POLL_US:-100}
E2E_PAUSE_US=${REG_E2E_PAUSE_US:-200}
ETCDCTL_SAMPLE=${REG_ETCDCTL_SAMPLE:-20}
OUT=${REG_OUT:-bench/results/registry.md}
BUILD_DIR=build-bench
BERTH_BIN=$BUILD_DIR/berth
PROP_TOOL=$BUILD_DIR/berth-bench-propagation
SCALE_TOOL=$BUILD_DIR/berth-bench-registry_scale
LABEL=benchreg
PREFIX=reg-
SCALE_PREFIX=/berth/scale

log() { printf '[registry %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root (it starts a private dockerd)"
for c in cmake ninja etcd curl ss timeout; do command -v "$c" >/dev/null || die "$c not found"; done
if [[ "${REG_SKIP_PROPAGATION:-0}" != 1 ]]; then
  for c in docker dockerd busybox; do command -v "$c" >/dev/null || die "$c not found (docker.io, busybox-static)"; done
fi

WORK=$(mktemp -d /tmp/berth-reg.XXXXXX)
DK=$WORK/dk
ETCD_PID=
SIDECAR_PID=
FRONT_PID=
TOOL_PID=

stop_pid() {  # pid [tenths of a second before SIGKILL]
  local pid=$1 wait=${2:-100}
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$wait"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$TOOL_PID" ]] && kill -0 "$TOOL_PID" 2>/dev/null; then
    kill -TERM "$TOOL_PID" 2>/dev/null || true
    wait "$TOOL_PID" 2>/dev/null || true
  fi
  stop_pid "$FRONT_PID"
  stop_pid "$SIDECAR_PID"
  if [[ -d "$DK" ]]; then
    log "removing containers and the private dockerd ($DK)"
    timeout 600 scripts/dockerd-local.sh purge "$DK" >/dev/null 2>&1 || log "warning: dockerd-local.sh purge failed"
  fi
  stop_pid "$ETCD_PID"
  if [[ "${REG_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a bounded tool in the background so that the trap can stop it by PID.
run_tool() {  # seconds, command...
  local secs=$1; shift
  timeout -k 10 "$secs" "$@" &
  TOOL_PID=$!
  local rc=0
  wait "$TOOL_PID" || rc=$?
  TOOL_PID=
  return "$rc"
}

cpu_counters() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }' /proc/stat; }
busy_between() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); dt = y[1] - x[1]; di = y[2] - x[2];
    printf "%.0f", (dt > 0 ? 100 * (dt - di) / dt : 0) }'
}

# Value of key in the first RESULT line of FILE that contains all the given key=value filters.
rv() {  # file key filter...
  local file=$1 key=$2; shift 2
  [[ -f "$file" ]] || return 0
  awk -v key="$key" -v filters="$*" '
    $1 == "RESULT" {
      n = split(filters, f, " "); ok = 1
      for (i = 1; i <= n; i++) if (index(" " $0 " ", " " f[i] " ") == 0) ok = 0
      if (!ok) next
      for (i = 2; i <= NF; i++) if (index($i, key "=") == 1) { print substr($i, length(key) + 2); exit }
    }' "$file"
}

ports_free() {  # first last
  local used
  used=$(ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
  awk -v lo="$1" -v hi="$2" '$1 >= lo && $1 <= hi { found = 1 } END { exit found ? 1 : 0 }' <<<"$used"
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo "?"; }

# ---- build ----
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building Release into $BUILD_DIR/"
  timeout 1800 cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF -DBERTH_BENCH=ON \
    >"$WORK/build.log" 2>&1 &&
    timeout 1800 cmake --build "$BUILD_DIR" >>"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "build failed"; }
fi
for b in "$BERTH_BIN" "$PROP_TOOL" "$SCALE_TOOL"; do [[ -x "$b" ]] || die "$b missing"; done

# ---- ports ----
if [[ -n "${REG_ETCD_PORT:-}" ]]; then
  EP=$REG_ETCD_PORT
  ports_free "$EP" $((EP + 1)) || die "port $EP or $((EP + 1)) is in use"
else
  EP=
  for p in 23379 23479 23579 23679; do ports_free "$p" $((p + 1)) && { EP=$p; break; }; done
  [[ -n "$EP" ]] || die "no free etcd ports (set REG_ETCD_PORT)"
fi
if [[ -n "${REG_PORT_BASE:-}" ]]; then
  PB=$REG_PORT_BASE
  ports_free "$PB" $((PB + COUNT - 1)) || die "a port in $PB..$((PB + COUNT - 1)) is in use"
else
  PB=
  for base in 19400 21400 23400 25400 27400; do
    if ports_free "$base" $((base + COUNT - 1)); then PB=$base; break; fi
  done
  [[ -n "$PB" ]] || die "no free port block found (set REG_PORT_BASE)"
fi

A0=$(cpu_counters); sleep 1; BUSY_BEFORE=$(busy_between "$A0" "$(cpu_counters)")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine ${BUSY_BEFORE}% busy before measuring (loadavg $LOAD_BEFORE)"

# ---- etcd ----
log "starting etcd on 127.0.0.1:$EP"
etcd --name m1 --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$EP" --advertise-client-urls "http://127.0.0.1:$EP" \
  --listen-peer-urls "http://127.0.0.1:$((EP + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((EP + 1))" \
  --initial-cluster "m1=http://127.0.0.1:$((EP + 1))" --initial-cluster-token berth-bench \
  --initial-cluster-state new >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do
  curl -sf -m 2 "http://127.0.0.1:$EP/health" 2>/dev/null | grep -q '"health":"true"' && break
  kill -0 "$ETCD_PID" 2>/dev/null || { tail -20 "$WORK/etcd.log" >&2; die "etcd exited"; }
  sleep 0.2
done
curl -sf -m 2 "http://127.0.0.1:$EP/health" | grep -q '"health":"true"' || die "etcd not healthy in 20 s"
ETCD_VERSION=$(etcd --version 2>/dev/null | awk '/etcd Version/ { print $3 }')
ETCD_DIR_FS=$(df -T "$WORK" | awk 'NR == 2 { print $2 }')

# Starts a Berth with config $1, log $2; sets STARTED_PID, STARTED_NS, and waits for log line $3.
start_berth() {  # config log needle
  STARTED_NS=$(date +%s%N)
  "$BERTH_BIN" --config "$1" --log-level info 2>"$2" &
  STARTED_PID=$!
  for _ in $(seq 600); do
    grep -q "$3" "$2" 2>/dev/null && return 0
    kill -0 "$STARTED_PID" 2>/dev/null || { cat "$2" >&2; die "berth ($1) exited"; }
    sleep 0.05
  done
  cat "$2" >&2
  die "berth ($1) did not log $3 in 30 s"
}
port_of() { sed -n "s/.*event=$2 [a-z]*=127\.0\.0\.1:\([0-9]*\).*/\1/p" "$1" | head -1; }

# ---- part 1: propagation ----
STARTS=$WORK/starts.out
if [[ "${REG_SKIP_PROPAGATION:-0}" != 1 ]]; then
  log "starting a private dockerd in $DK"
  out=$(timeout 120 scripts/dockerd-local.sh start "$DK") || die "dockerd did not start (log: $DK/log)"
  export DOCKER_HOST=${out#DOCKER_HOST=}
  SOCK=$DK/docker.sock
  timeout 300 scripts/dockerd-local.sh image "$DK" >/dev/null || die "image import failed"
  ENGINE_VERSION=$(timeout 10 docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo "?")

  cat >"$WORK/sidecar.yaml" <<EOF
listeners: ["127.0.0.1:0"]
workers: $WORKERS
admin: {address: "127.0.0.1:0"}
docker: {enabled: true, endpoint: "unix://$SOCK", empty_route_grace: 2s, reconnect_max: 1s}
registry: {etcd: ["http://127.0.0.1:$EP"], role: sidecar, host_id: bench-host, advertise_address: 127.0.0.1, lease_ttl: 10s}
EOF
  cat >"$WORK/front.yaml" <<EOF
listeners: ["127.0.0.1:0"]
workers: $WORKERS
admin: {address: "127.0.0.1:0"}
registry: {etcd: ["http://127.0.0.1:$EP"], role: front}
EOF
  start_berth "$WORK/sidecar.yaml" "$WORK/sidecar.log" "event=docker_synced"
  SIDECAR_PID=$STARTED_PID
  start_berth "$WORK/front.yaml" "$WORK/front.log" "event=registry_synced"
  FRONT_PID=$STARTED_PID
  S_ADMIN=$(port_of "$WORK/sidecar.log" admin_listening)
  F_ADMIN=$(port_of "$WORK/front.log" admin_listening)
  F_LISTEN=$(port_of "$WORK/front.log" listening)
  WORKERS_F=$(sed -n 's/.* event=ready workers=\([0-9]*\).*/\1/p' "$WORK/front.log" | head -1)
  [[ -n "$S_ADMIN" && -n "$F_ADMIN" && -n "$F_LISTEN" ]] || die "could not read the Berths' ports from their logs"
  log "sidecar pid $SIDECAR_PID (admin :$S_ADMIN), front door pid $FRONT_PID (listener :$F_LISTEN, admin :$F_ADMIN)"

  log "propagation: $COUNT sequential docker run (ports $PB..$((PB + COUNT - 1))) -> first 200 through the front door"
  CPU_P0=$(cpu_counters)
  rc=0
  run_tool 1800 "$PROP_TOOL" starts --docker-host "$DOCKER_HOST" --listen "$F_LISTEN" --admin "$S_ADMIN" \
    --front-admin "$F_ADMIN" --berth-log "$WORK/sidecar.log" --count "$COUNT" --port-base "$PB" --prefix "$PREFIX" \
    --label "$LABEL" --poll-us "$POLL_US" --e2e-pause-us "$E2E_PAUSE_US" --tsv "$WORK/starts.tsv" >"$STARTS" || rc=$?
  grep -q "kind=starts" "$STARTS" || die "propagation run failed (rc $rc)"
  ((rc == 0)) || log "warning: some propagation samples had problems (see the report)"
  BUSY_PROP=$(busy_between "$CPU_P0" "$(cpu_counters)")
  PUBLISHED_KEYS=$(timeout 10 curl -sf -X POST "http://127.0.0.1:$EP/v3/kv/range" \
    -d "{\"key\":\"$(printf '/berth/v1/instances/' | base64)\",\"range_end\":\"$(printf '/berth/v1/instances0' | base64)\",\"count_only\":true}" |
    sed -n 's/.*"count":"\([0-9]*\)".*/\1/p')
  SIDECAR_WARN=$(grep -cE "level=(warn|error)" "$WORK/sidecar.log" || true)
  FRONT_WARN=$(grep -cE "level=(warn|error)" "$WORK/front.log" || true)
  WARN_KINDS=$(cat "$WORK/sidecar.log" "$WORK/front.log" | grep -E "level=(warn|error)" |
    sed -n 's/.* level=\([a-z]*\) event=\([^ ]*\).*/\2/p' | sort | uniq -c | sort -rn | awk '{ printf "%s%s x %s", (NR > 1 ? ", " : ""), $2, $1 }' || true)
  kill -0 "$SIDECAR_PID" 2>/dev/null || die "the sidecar died during the run"
  kill -0 "$FRONT_PID" 2>/dev/null || die "the front door died during the run"
  stop_pid "$FRONT_PID"; FRONT_PID=
  stop_pid "$SIDECAR_PID"; SIDECAR_PID=
  log "removing the containers and the private dockerd"
  timeout 600 scripts/dockerd-local.sh purge "$DK" >/dev/null 2>&1 || log "warning: dockerd-local.sh purge failed"
fi

# ---- part 2: scale ----
SC=$WORK/scale.out
: >"$SC"
if [[ "${REG_SKIP_SCALE:-0}" != 1 ]]; then
  cat >"$WORK/front-scale.yaml" <<EOF
listeners: ["127.0.0.1:0"]
workers: $WORKERS
admin: {address: "127.0.0.1:0"}
registry: {etcd: ["http://127.0.0.1:$EP"], role: front, prefix: $SCALE_PREFIX}
EOF
  scale_run() {  # hosts per_host [service_hosts: G instances per service; results tagged kind=g...]
    local h=$1 p=$2 n=$(($1 * $2)) g=${3:-0} f_admin tag="" name
    name=front-$n; ((g > 0)) && tag=g && name=front-$n-g$g
    log "scale: $h hosts x $p instances = $n keys$( ((g > 0)) && echo ", $g instances per service")"
    run_tool 300 "$SCALE_TOOL" clear --etcd "$EP" --prefix "$SCALE_PREFIX" --leases "$WORK/leases" >>"$SC" || die "clear failed"
    if ((n > 0)); then
      run_tool 600 "$SCALE_TOOL" load --etcd "$EP" --hosts "$h" --per-host "$p" --prefix "$SCALE_PREFIX" --ttl 900 \
        --service-hosts "$g" --leases "$WORK/leases" | sed "s/^RESULT kind=/RESULT kind=$tag/" >>"$SC" || die "load failed"
    fi
    sleep 1
    start_berth "$WORK/front-scale.yaml" "$WORK/$name.log" "event=registry_synced"
    FRONT_PID=$STARTED_PID
    f_admin=$(port_of "$WORK/$name.log" admin_listening)
    run_tool 120 "$SCALE_TOOL" ready --admin "$f_admin" --pid "$FRONT_PID" --expect "$n" --start-ns "$STARTED_NS" \
      | sed "s/^RESULT kind=ready /RESULT kind=${tag}ready known=$n /" >>"$SC" || log "warning: front door not ready with $n instances"
    sleep 2
    echo "RESULT kind=${tag}rss known=$n settled_rss_kb=$(rss_kb "$FRONT_PID")" >>"$SC"
    if ((n > 0)); then
      run_tool 900 "$SCALE_TOOL" changes --etcd "$EP" --admin "$f_admin" --pid "$FRONT_PID" --count "$CHANGES" \
        --prefix "$SCALE_PREFIX" --known "$n" --poll-us "${REG_POLL_US:-200}" | sed "s/^RESULT kind=/RESULT kind=$tag/" >>"$SC" ||
        log "warning: changes with $n keys reported problems"
    fi
    grep -E "level=(warn|error)" "$WORK/$name.log" | head -3 >&2 || true
    echo "RESULT kind=${tag}frontlog known=$n warnings=$(grep -cE "level=(warn|error)" "$WORK/$name.log" || true)" >>"$SC"
    kill -0 "$FRONT_PID" 2>/dev/null || die "the front door died with $n keys"
    stop_pid "$FRONT_PID"; FRONT_PID=
  }
  scale_run 0 0
  for spec in $SCALE; do scale_run "${spec%x*}" "${spec#*x}"; done
  # The same changes with every service spanning REG_SERVICE_HOSTS hosts: the changed service's
  # size stays the same while the table grows.
  if ((SERVICE_HOSTS > 0)); then
    for spec in $SCALE; do scale_run "${spec%x*}" "${spec#*x}" "$SERVICE_HOSTS"; done
  fi
  for spec in $SCALE; do
    run_tool 300 "$SCALE_TOOL" codec --hosts "${spec%x*}" --per-host "${spec#*x}" --prefix "$SCALE_PREFIX" >>"$SC" ||
      log "warning: codec timing failed for $spec"
  done

  # Optional: a callgrind profile of the front door while it applies changes.
  CG_SPEC=${REG_CALLGRIND:-}
  CG_FUNCS="RegistryWatch::on_watch_message RegistryTable::put decode_instance RegistryTable::next RegistryTable::decide_all Server::on_discovered Server::build_runtime HealthRegistry::update Server::publish MetricsExporter::on_snapshot HealthChecker::update observe_changed_services Server::observe_changes record_changes Worker::apply_mailbox"
  if [[ -n "$CG_SPEC" ]] && command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
    cg_n=$(( ${CG_SPEC%x*} * ${CG_SPEC#*x} ))
    log "callgrind: a front door on $cg_n keys, ${REG_CALLGRIND_CHANGES:-10} changes instrumented"
    run_tool 300 "$SCALE_TOOL" clear --etcd "$EP" --prefix "$SCALE_PREFIX" --leases "$WORK/leases" >/dev/null || die "clear failed"
    run_tool 600 "$SCALE_TOOL" load --etcd "$EP" --hosts "${CG_SPEC%x*}" --per-host "${CG_SPEC#*x}" --prefix "$SCALE_PREFIX" \
      --ttl 900 --service-hosts "${REG_CALLGRIND_SERVICE_HOSTS:-0}" --leases "$WORK/leases" >/dev/null || die "load failed"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
      "$BERTH_BIN" --config "$WORK/front-scale.yaml" --log-level info 2>"$WORK/front-cg.log" &
    FRONT_PID=$!
    for _ in $(seq 1200); do
      grep -q "event=registry_synced" "$WORK/front-cg.log" 2>/dev/null && break
      kill -0 "$FRONT_PID" 2>/dev/null || break
      sleep 0.1
    done
    if grep -q "event=registry_synced" "$WORK/front-cg.log"; then
      sleep 2
      cg_admin=$(port_of "$WORK/front-cg.log" admin_listening)
      timeout 30 callgrind_control -i on "$FRONT_PID" >/dev/null
      run_tool 900 "$SCALE_TOOL" changes --etcd "$EP" --admin "$cg_admin" --pid "$FRONT_PID" \
        --count "${REG_CALLGRIND_CHANGES:-10}" --prefix "$SCALE_PREFIX" --known "$cg_n" --gap-ms 2000 --poll-us 20000 \
        | sed 's/^RESULT kind=change_/RESULT kind=cg_change_/' >>"$SC" || log "warning: changes under callgrind reported problems"
      timeout 30 callgrind_control -i off "$FRONT_PID" >/dev/null
      CG_LOST=$(grep -c "event=registry_lost" "$WORK/front-cg.log" || true)
      CG_ROUTES=$(grep -c "event=routes_updated" "$WORK/front-cg.log" || true)
      stop_pid "$FRONT_PID" 600; FRONT_PID=
      if [[ -s "$WORK/callgrind.out" ]]; then
        callgrind_annotate --inclusive=yes --threshold=100 "$WORK/callgrind.out" >"$WORK/callgrind.txt" 2>/dev/null || true
        CG_TOTAL=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$WORK/callgrind.txt")
        for fn in $CG_FUNCS; do
          ir=$(awk -v re="::${fn}(\\[abi:cxx11\\])?\\(" '$0 ~ re && !/_Function_handler|lambda/ { gsub(",", "", $1); print $1; exit }' \
            "$WORK/callgrind.txt")
          echo "RESULT kind=callgrind fn=$fn ir=${ir:-0}"
        done >>"$SC"
      fi
    else
      log "warning: the front door under callgrind did not sync"
      stop_pid "$FRONT_PID" 600; FRONT_PID=
    fi
  fi
  run_tool 300 "$SCALE_TOOL" clear --etcd "$EP" --prefix "$SCALE_PREFIX" --leases "$WORK/leases" >/dev/null || true

  # etcdctl for comparison: one process per put.
  if ((ETCDCTL_SAMPLE > 0)) && command -v etcdctl >/dev/null; then
    t0=$(date +%s%N)
    for i in $(seq "$ETCDCTL_SAMPLE"); do
      ETCDCTL_API=3 timeout 10 etcdctl --endpoints "http://127.0.0.1:$EP" put "/berth/etcdctl-sample/$i" v >/dev/null || die "etcdctl put failed"
    done
    t1=$(date +%s%N)
    ETCDCTL_MS=$(awk -v a="$t0" -v b="$t1" -v n="$ETCDCTL_SAMPLE" 'BEGIN { printf "%.1f", (b - a) / 1e6 / n }')
    ETCDCTL_API=3 timeout 10 etcdctl --endpoints "http://127.0.0.1:$EP" del --prefix /berth/etcdctl-sample/ >/dev/null || true
  fi
fi

# ---- report ----
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=$( [[ -n "$(git status --porcelain -- . ':!bench/results' 2>/dev/null)" ]] && echo " + uncommitted changes" || true)

WORKERS_TEXT="$WORKERS workers"
[[ "$WORKERS" == 0 ]] && WORKERS_TEXT="$(nproc) workers (workers: 0 = one per core)"
dist_row() {  # label metric
  local f="kind=dist metric=$2"
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$(rv "$STARTS" n $f)" "$(rv "$STARTS" p50 $f)" "$(rv "$STARTS" p99 $f)" "$(rv "$STARTS" max $f)"
}
mb() { awk -v k="$1" 'BEGIN { if (k + 0 > 0) printf "%.1f", k / 1024; else printf "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f", b / a; else printf "n/a" }'; }

{
  echo "# Berth: etcd registry — propagation across hosts and a front door at scale"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs (nproc), $CPU_MODEL, $MEM RAM, Linux $(uname -r); shared with other work"
  echo "- Command: \`$CMDLINE\` (as root, from the repository root)${KNOBS:+; environment: \`$KNOBS\`}"
  echo "- Berth: $COMMIT$DIRTY, Release build in $BUILD_DIR/, $WORKERS_TEXT per Berth, log level info"
  echo "- etcd: one member, etcd $ETCD_VERSION (Debian etcd-server), data dir on $ETCD_DIR_FS, defaults (fsync on), 127.0.0.1:$EP"
  echo "- Machine load: CPUs ${BUSY_BEFORE}% busy in the second before measuring${BUSY_PROP:+, ${BUSY_PROP}% during the propagation run, the benchmark processes included}; loadavg $LOAD_BEFORE before, $LOAD_AFTER after"
  echo
  if [[ -s "$STARTS" ]]; then
    e2e_p99=$(rv "$STARTS" p99 kind=dist metric=e2e_ms)
    e2e_n=$(rv "$STARTS" n kind=dist metric=e2e_ms)
    if [[ -n "$e2e_p99" ]] && awk -v v="$e2e_p99" 'BEGIN { exit !(v < 100) }' && ((e2e_n >= COUNT)); then
      VERDICT="**PASS** (p99 $e2e_p99 ms, $e2e_n of $COUNT starts)"
    else
      VERDICT="**FAIL** (p99 ${e2e_p99:-n/a} ms, ${e2e_n:-0} of $COUNT starts)"
    fi
    echo "## 1. Propagation: \`docker run\` on a sidecar's host → first 200 through the front door"
    echo
    echo "$COUNT sequential \`docker run -d --init --network host\` (busybox httpd on 127.0.0.1:$PB.., no healthcheck;" \
      "engine: private dockerd ${ENGINE_VERSION:-?}, vfs, --bridge=none) on the sidecar's engine;" \
      "$(printf '%.0f' "$(rv "$STARTS" total_s kind=starts)") s in all. Sidecar: Docker discovery + \`registry.role: sidecar\`" \
      "(\`advertise_address: 127.0.0.1\`, lease 10 s); front door: \`registry.role: front\`; both on the one etcd member."
    echo
    echo "| measurement | n | p50 ms | p99 ms | max ms |"
    echo "|---|---|---|---|---|"
    dist_row "**end to end**: \`docker run\` returned → first 200 through the front door" e2e_ms
    dist_row "end to end from \`docker run\` begun → first 200 through the front door" e2e_from_cmd_begin_ms
    dist_row "for reference: \`docker run\` returned → a direct connect to the container's port works" port_ready_ms
    dist_row "for reference: the engine's \`start\` event (timeNano) − \`docker run\` returned" start_event_minus_cli_return_ms
    dist_row "**split 1, sidecar local** (exact, its clocks): sidecar reads the \`start\` event → its last worker serves it" exact_from_berth_receipt_ms
    dist_row "**split 2, sidecar → etcd → front door** (exact): sidecar reads the \`start\` event → front door reads the watch message (inspect, one txn, etcd commit, watch delivery)" front_receipt_from_sidecar_receipt_ms
    dist_row "**split 3, front door's own** (exact): front door reads the watch message → its last worker serves it" front_exact_from_front_receipt_ms
    dist_row "total internal (exact): engine \`start\` event (timeNano) → the front door's last worker serves it" front_exact_from_timenano_ms
    dist_row "total internal, polled: engine \`start\` event → every front-door worker seen serving it (/api/stats)" front_internal_ms
    dist_row "sidecar local, polled: engine \`start\` event → every sidecar worker seen serving it" internal_ms
    dist_row "engine event delivery to a plain /events subscriber" event_delivery_ms
    dist_row "\`GET /containers/ID/json\` round trip (the inspect the sidecar does per start)" inspect_rtt_ms
    echo
    echo "Bar (issue 14 §4: p99 < 100 ms, end to end): $VERDICT." \
      "Samples with problems: $(rv "$STARTS" problems kind=starts); answers before the first 200" \
      "(status:answers/samples): $(rv "$STARTS" before_200 kind=starts); sidecar generations beyond one per start:" \
      "$(rv "$STARTS" extra_publishes kind=starts). Keys the sidecar had in etcd at the end: ${PUBLISHED_KEYS:-?}." \
      "Warnings/errors in the two Berths' logs: sidecar $SIDECAR_WARN, front door $FRONT_WARN${WARN_KINDS:+ ($WARN_KINDS)}."
    echo "End to end is polled: a request through the front door every ${E2E_PAUSE_US} µs (plus its round trip) from" \
      "\`docker run\` returning. The exact splits use each Berth's /api/stats (generation_event_received_ns and" \
      "workers[].applied_at_ns, CLOCK_REALTIME, same host); a sample counts where the generation seen was the one for" \
      "that start alone."
    echo
  fi
  if [[ -s "$SC" ]]; then
    echo "## 2. A front door at scale (simulated hosts)"
    echo
    echo "\`bench/registry_scale.cc\` writes HOSTS × 50 keys into etcd as HOSTS sidecars would: a lease per host (TTL 900 s)," \
      "one transaction per host with its 50 puts, values from Berth's own encoder; container c of each host serves" \
      "service s<c> (host s<c>.scale.test), so there are 50 services whatever the number of hosts, each with one" \
      "instance per host. A fresh front door (prefix $SCALE_PREFIX) is started on the keys."
    echo
    echo "| keys (hosts × per host) | load into etcd | start → table received (range reply read) | start → complete table served (last worker) | RSS at ready | RSS settled (2 s later) | RSS after the changes |"
    echo "|---|---|---|---|---|---|---|"
    for spec in "0x0" $SCALE; do
      h=${spec%x*}; p=${spec#*x}; n=$((h * p))
      load=$(rv "$SC" seconds kind=load "hosts=$h" "per_host=$p")
      printf '| %s (%s × %s) | %s | %s ms | %s ms | %s MiB | %s MiB | %s |\n' "$n" "$h" "$p" \
        "$( [[ -n "$load" ]] && echo "$load s ($(rv "$SC" requests kind=load "hosts=$h" "per_host=$p") requests)" || echo "—")" \
        "$(rv "$SC" to_received_ms kind=ready "known=$n")" "$(rv "$SC" to_applied_ms kind=ready "known=$n")" \
        "$(mb "$(rv "$SC" rss_kb kind=ready "known=$n")")" "$(mb "$(rv "$SC" settled_rss_kb kind=rss "known=$n")")" \
        "$(r=$(rv "$SC" rss_kb kind=change_cpu "known=$n"); [[ -n "$r" ]] && echo "$(mb "$r") MiB" || echo "—")"
    done
    rss0=$(rv "$SC" settled_rss_kb kind=rss known=0)
    echo
    for spec in $SCALE; do
      h=${spec%x*}; p=${spec#*x}; n=$((h * p))
      rssn=$(rv "$SC" settled_rss_kb kind=rss "known=$n")
      [[ -n "$rssn" && -n "$rss0" ]] && echo "- $n instances: RSS $(mb "$rssn") MiB vs $(mb "$rss0") MiB with none:" \
        "$(awk -v a="$rss0" -v b="$rssn" -v n="$n" 'BEGIN { printf "+%.1f MiB, %.1f KiB per instance", (b - a) / 1024, (b - a) / n }')."
    done
    echo
    change_table() {  # result tag ("" or g)
      local t=$1
      echo "| keys | front door's own: watch message read → last worker serves it, p50 / p99 / max ms | put sent → last worker serves it, p50 / p99 ms | put sent → watch message read, p50 / p99 ms | CPU per change, utime+stime (ticks) | CPU per change, schedstat (idle subtracted) | of which the control thread | generations / changes | gap between changes |"
      echo "|---|---|---|---|---|---|---|---|---|"
      for spec in $SCALE; do
        h=${spec%x*}; p=${spec#*x}; n=$((h * p))
        q() { rv "$SC" "$1" "kind=${t}change_dist" "known=$n" "metric=$2"; }
        c() { rv "$SC" "$1" "kind=${t}change_cpu" "known=$n"; }
        printf '| %s | %s / %s / %s (n=%s) | %s / %s | %s / %s | %s µs | %s µs | %s µs | %s / %s | %s ms |\n' "$n" \
          "$(q p50 received_to_applied_ms)" "$(q p99 received_to_applied_ms)" "$(q max received_to_applied_ms)" "$(q n received_to_applied_ms)" \
          "$(q p50 sent_to_applied_ms)" "$(q p99 sent_to_applied_ms)" "$(q p50 sent_to_received_ms)" "$(q p99 sent_to_received_ms)" \
          "$(c per_change_ticks_us)" "$(c per_change_sched_us)" "$(c per_change_main_thread_us)" "$(c generations)" "$(c changes)" "$(c gap_ms)"
      done
      echo
      set -- $SCALE
      lo=$(( ${1%x*} * ${1#*x} )); hi_spec=${!#}; hi=$(( ${hi_spec%x*} * ${hi_spec#*x} ))
      own_lo=$(rv "$SC" p50 "kind=${t}change_dist" "known=$lo" metric=received_to_applied_ms)
      own_hi=$(rv "$SC" p50 "kind=${t}change_dist" "known=$hi" metric=received_to_applied_ms)
      cpu_lo=$(rv "$SC" per_change_sched_us "kind=${t}change_cpu" "known=$lo")
      cpu_hi=$(rv "$SC" per_change_sched_us "kind=${t}change_cpu" "known=$hi")
      g_own=$(ratio "$own_lo" "$own_hi"); g_cpu=$(ratio "$cpu_lo" "$cpu_hi"); g_n=$(ratio "$lo" "$hi")
      if awk -v g="$g_cpu" 'BEGIN { exit !(g != "n/a" && g + 0 < 1.5) }'; then
        FLAT="flat: CPU per change ${g_cpu}x and apply time ${g_own}x (p50) for ${g_n}x the instances."
      else
        FLAT="**not flat**: for ${g_n}x the instances ($lo → $hi), CPU per change grows ${g_cpu}x and the front door's own apply time ${g_own}x (p50)."
      fi
      echo "Per-change cost from $lo to $hi instances: $FLAT (Flat here means less than 1.5x the CPU for the larger table.)"
    }
    echo "### Cost of one instance change ($CHANGES changes per size: put of a new instance of s0, then its delete, in turn)"
    echo
    echo "Every service has an instance on every host, so the changed service s0 grows with the number of hosts:"
    echo
    change_table ""
    if ((SERVICE_HOSTS > 0)); then
      echo
      echo "The same with each service spanning $SERVICE_HOSTS hosts (\`load --service-hosts $SERVICE_HOSTS\`): s0 has $SERVICE_HOSTS instances at every size, and the number of services grows with the table:"
      echo
      change_table g
    fi
    echo
    echo "### Where the time of a change goes"
    echo
    echo "For every watch message that changes its table, the front door's registry table (\`RegistryTable\`: each" \
      "value decoded once, accepted keys grouped by service) makes only the services of the changed keys again and" \
      "hands the other services and the route list over as the same objects. The server then copies only those" \
      "services (health state, LB table), the metrics keep the other services' instance names, and the event" \
      "journal looks only at the instances that came or went (\`observe_changed_services\`). So a change costs" \
      "what the service it touches holds, not the table: here one instance per host, 10 at 500 keys and 100 at" \
      "5,000. The table's part, timed in process on the same keys (\`berth-bench-registry_scale codec\`, thread" \
      "CPU time, median of 20), next to the whole set built from scratch (what a resync or a moved host + path costs):"
    echo
    echo "| keys | registry table, one value changed (put + next) | the whole set from scratch | of which decoding the JSON values | CPU per change measured above | table's part / CPU per change | front door's idle CPU |"
    echo "|---|---|---|---|---|---|---|"
    for spec in $SCALE; do
      n=$(( ${spec%x*} * ${spec#*x} ))
      b=$(rv "$SC" build_cached_ms_p50 kind=codec "keys=$n"); cpu=$(rv "$SC" per_change_sched_us kind=change_cpu "known=$n")
      printf '| %s | %s ms | %s ms | %s ms | %s µs | %s | %s µs/s |\n' "$n" "$b" \
        "$(rv "$SC" build_set_ms_p50 kind=codec "keys=$n")" \
        "$(rv "$SC" decode_values_ms_p50 kind=codec "keys=$n")" "$cpu" \
        "$(awk -v b="$b" -v c="$cpu" 'BEGIN { if (b + 0 > 0 && c + 0 > 0) printf "%.0f %%", 100 * b * 1000 / c; else printf "n/a" }')" \
        "$(rv "$SC" idle_us_per_s kind=change_cpu "known=$n")"
    done
    if [[ -n "${CG_TOTAL:-}" ]]; then
      echo
      echo "callgrind (\`REG_CALLGRIND=$CG_SPEC\`: $cg_n keys; instrumentation on only around" \
        "$(rv "$SC" changes kind=cg_change_cpu) + $(rv "$SC" n kind=cg_change_dist metric=received_to_applied_ms) changes;" \
        "${CG_ROUTES} generations in the front door's log, ${CG_LOST} \`registry_lost\` (under valgrind a busy control loop" \
        "can miss etcd call timeouts; a resync is a range plus a whole build), total $CG_TOTAL instructions (the admin" \
        "polls of the measurement included):"
      echo
      echo "| function (inclusive) | instructions | share |"
      echo "|---|---|---|"
      for fn in $CG_FUNCS; do
        ir=$(rv "$SC" ir kind=callgrind "fn=$fn")
        printf '| `%s` | %s | %s |\n' "$fn" "$ir" "$(awk -v a="$ir" -v t="$CG_TOTAL" 'BEGIN { if (t > 0) printf "%.1f %%", 100 * a / t }')"
      done
    fi
    echo
    echo "How: the tool sends each change on a keep-alive connection to the gateway, then polls the front door's" \
      "/api/stats every ${REG_POLL_US:-200} µs until every worker serves the next generation; \"front door's own\" is" \
      "applied_at_ns (last worker) − generation_event_received_ns (watch message read), both the front door's" \
      "CLOCK_REALTIME. CPU: the same changes again, unpolled, the gap apart (3x the p99 above, at least 10 ms);" \
      "utime+stime (10 ms ticks) and the sum of /proc/PID/task/*/schedstat over all threads before and after," \
      "idle rate (2 s before) subtracted; \"control thread\" = the main thread's schedstat share."
    if [[ -n "${ETCDCTL_MS:-}" ]]; then
      echo
      echo "Writing keys: $ETCDCTL_SAMPLE sequential \`etcdctl put\` (a process each) took $ETCDCTL_MS ms per key here, i.e." \
        "about $(awk -v m="$ETCDCTL_MS" 'BEGIN { printf "%.0f", m * 5000 / 1000 }') s for 5,000 keys; the gateway with one" \
        "transaction of 50 puts per host wrote them in the \"load into etcd\" time above."
    fi
    echo
    echo "Front-door log warnings/errors per run: $(for spec in 0x0 $SCALE; do n=$(( ${spec%x*} * ${spec#*x} )); printf '%s keys: %s; ' "$n" "$(rv "$SC" warnings kind=frontlog "known=$n")"; done)"
  fi
} >"$WORK/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cp "$SC" "$WORK/raw.txt" 2>/dev/null || true
cat "$WORK/report.md"
log "wrote $OUT"
