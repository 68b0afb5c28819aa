#!/usr/bin/env bash
# Route propagation and discovery churn benchmark for Berth's Docker discovery (issue 3, §9).
#
#   bench/propagation.sh            as root; about 5 minutes on a 2-core VM
#
# 1. Builds Release into build-bench/ (cmake -G Ninja -DBERTH_TESTS=OFF).
# 2. Starts a private dockerd (scripts/dockerd-local.sh, vfs, --bridge=none) in a temp dir,
#    imports the tiny busybox image, starts Berth with Docker discovery on that engine.
# 3. Propagation (bench/propagation.cc, `starts`): PROP_COUNT sequential
#    `docker run -d --init --network host` of labelled busybox httpd containers on distinct
#    127.0.0.1 ports (no healthcheck, so routable at start). Per container:
#      internal   = engine `start` event (timeNano, same host clock) -> every Berth worker serves
#                   the snapshot published for it (GET /api/stats workers[].generation, polled
#                   from the moment the bench's own /events subscriber sees the start event);
#      end-to-end = `docker run` returned -> first 200 through Berth for that container's host.
#    Bar: internal p99 < 5 ms.
# 4. Churn on the real engine (`churn`): PROP_CHURN_CYCLES x (docker stop + docker start) with
#    the PROP_COUNT containers known; Berth's CPU (utime+stime from /proc/PID/stat, and the
#    ns-exact schedstat sum over its threads) per container event.
# 5. Churn with 100 and 1,000 containers known via the replayer (bench/discovery_churn.cc: a fake
#    Docker API on a Unix socket, inspect/list answers recorded from the real engine in step 3):
#    CPU per lifecycle event, per event of containers created and removed (layout changes), per
#    ignored health-check exec event, and for one full re-list; and
#    the propagation latency (start -> every worker serves it) with that many containers known.
# 6. Prints a markdown report and writes it to bench/results/propagation.md.
# Everything started (containers, dockerd, Berth, tools) is stopped by PID on exit; the engine
# dir is purged (scripts/dockerd-local.sh purge). Loopback only.
#
# Environment knobs (defaults in brackets):
#   PROP_COUNT           containers started for the propagation measurement [100]
#   PROP_CHURN_CYCLES    docker stop/start cycles on the real engine [50]
#   PROP_REPLAY_N        containers known in the replayer runs [100,1000]
#   PROP_REPLAY_SECONDS  length of each replayer phase [8]
#   PROP_REAL_N          also start real containers up to this many and measure churn with them
#                        on the real engine (e.g. 1000; needs time, RAM and disk) [0 = off]
#   PROP_WORKERS         Berth workers [0 = one per core]
#   PROP_POLL_US         pause between /api/stats polls while waiting for the workers [100]
#   PROP_E2E_PAUSE_US    pause between end-to-end requests through Berth [200]
#   PROP_PORT_BASE       first container port [first free block from 19200]
#   PROP_QUIET_WAIT      seconds to wait for the machine to be quiet before measuring [120]
#   PROP_QUIET_MAX       "quiet" = CPUs busy below this percent [30]
#   PROP_SKIP_BUILD=1    use the existing build-bench/
#   PROP_KEEP=1          keep the temp dir (logs, per-sample TSV)
#   PROP_OUT             report file [bench/results/propagation.md]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CMDLINE="bench/propagation.sh${*:+ $*}"
for arg in "$@"; do
  case "$arg" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "propagation.sh: unknown argument: $arg" >&2; exit 64 ;;
  esac
done

COUNT=${PROP_COUNT:-100}
CHURN_CYCLES=${PROP_CHURN_CYCLES:-50}
REPLAY_N=${PROP_REPLAY_N:-100,1000}
REPLAY_SECONDS=${PROP_REPLAY_SECONDS:-8}
REAL_N=${PROP_REAL_N:-0}
WORKERS=${PROP_WORKERS:-0}
POLL_US=${PROP_POLL_US:-100}
E2E_PAUSE_US=${PROP_E2E_PAUSE_US:-200}
QUIET_WAIT=${PROP_QUIET_WAIT:-120}
QUIET_MAX=${PROP_QUIET_MAX:-30}
OUT=${PROP_OUT:-bench/results/propagation.md}
BUILD_DIR=build-bench
BERTH_BIN=$BUILD_DIR/berth
PROP_TOOL=$BUILD_DIR/berth-bench-propagation
CHURN_TOOL=$BUILD_DIR/berth-bench-discovery_churn
LABEL=benchprop
PREFIX=prop-

log() { printf '[propagation %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root (it starts a private dockerd)"
for c in cmake ninja docker dockerd busybox curl ss timeout; do
  command -v "$c" >/dev/null || die "$c not found (scripts/install-deps.sh; docker.io, busybox-static)"
done
((COUNT >= 1)) || die "PROP_COUNT must be >= 1"

WORK=$(mktemp -d /tmp/berth-prop.XXXXXX)
DK=$WORK/dk
BERTH_PID=
TOOL_PID=

stop_berth() {
  [[ -n "$BERTH_PID" ]] || return 0
  if kill -0 "$BERTH_PID" 2>/dev/null; then
    kill -TERM "$BERTH_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$BERTH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$BERTH_PID" 2>/dev/null && kill -KILL "$BERTH_PID" 2>/dev/null
  fi
  wait "$BERTH_PID" 2>/dev/null || true
  BERTH_PID=
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$TOOL_PID" ]] && kill -0 "$TOOL_PID" 2>/dev/null; then
    kill -TERM "$TOOL_PID" 2>/dev/null || true
    wait "$TOOL_PID" 2>/dev/null || true
  fi
  stop_berth
  if [[ -d "$DK" ]]; then
    log "removing containers and the private dockerd ($DK)"
    timeout 600 scripts/dockerd-local.sh purge "$DK" >/dev/null 2>&1 || log "warning: dockerd-local.sh purge failed"
  fi
  if [[ "${PROP_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
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

# "total idle" jiffies of all CPUs, to compute how busy the machine was over a phase.
cpu_counters() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }' /proc/stat; }
busy_between() {  # "t i" "t i" -> percent of all CPUs busy in between
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); dt = y[1] - x[1]; di = y[2] - x[2];
    printf "%.0f", (dt > 0 ? 100 * (dt - di) / dt : 0) }'
}
cpu_busy_pct() {  # over the next second
  local a
  a=$(cpu_counters)
  sleep 1
  busy_between "$a" "$(cpu_counters)"
}

# Value of key in the first RESULT line of FILE that contains all the given key=value filters.
rv() {  # file key filter...
  local file=$1 key=$2; shift 2
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

# ---- build ----
if [[ "${PROP_SKIP_BUILD:-0}" != 1 ]]; then
  log "building Release into $BUILD_DIR/"
  timeout 1800 cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF >"$WORK/build.log" 2>&1 &&
    timeout 1800 cmake --build "$BUILD_DIR" >>"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; die "build failed"; }
fi
for b in "$BERTH_BIN" "$PROP_TOOL" "$CHURN_TOOL"; do [[ -x "$b" ]] || die "$b missing"; done

# ---- ports ----
MAX_N=$COUNT
((REAL_N > MAX_N)) && MAX_N=$REAL_N
if [[ -n "${PROP_PORT_BASE:-}" ]]; then
  PB=$PROP_PORT_BASE
  ports_free "$PB" $((PB + MAX_N - 1)) || die "a port in $PB..$((PB + MAX_N - 1)) is in use"
else
  PB=
  for base in 19200 21200 23200 25200 27200; do
    if ports_free "$base" $((base + MAX_N - 1)); then PB=$base; break; fi
  done
  [[ -n "$PB" ]] || die "no free port block found (set PROP_PORT_BASE)"
fi

# ---- quiet machine ----
BUSY=$(cpu_busy_pct)
waited=0
while ((BUSY > QUIET_MAX && waited < QUIET_WAIT)); do
  ((waited == 0)) && log "machine is ${BUSY}% busy; waiting up to ${QUIET_WAIT}s for < ${QUIET_MAX}%"
  sleep 4
  waited=$((waited + 5))
  BUSY=$(cpu_busy_pct)
done
BUSY_BEFORE=$BUSY
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine ${BUSY_BEFORE}% busy before measuring (loadavg $LOAD_BEFORE)"

# ---- engine ----
log "starting a private dockerd in $DK"
out=$(timeout 120 scripts/dockerd-local.sh start "$DK") || die "dockerd did not start (log: $DK/log)"
export DOCKER_HOST=${out#DOCKER_HOST=}
SOCK=$DK/docker.sock
timeout 300 scripts/dockerd-local.sh image "$DK" || die "image import failed"
ENGINE_VERSION=$(timeout 10 docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo "?")
STORAGE=$(timeout 10 docker info --format '{{.Driver}}' 2>/dev/null || echo "?")

# ---- Berth ----
cat >"$WORK/berth.yaml" <<EOF
listeners: ["127.0.0.1:0"]
workers: $WORKERS
admin: {address: "127.0.0.1:0"}
docker: {enabled: true, endpoint: "unix://$SOCK", empty_route_grace: 2s, reconnect_max: 1s}
EOF
BERTH_LOG=$WORK/berth.log
"$BERTH_BIN" --config "$WORK/berth.yaml" --log-level info 2>"$BERTH_LOG" &
BERTH_PID=$!
for _ in $(seq 300); do
  grep -q "event=docker_synced" "$BERTH_LOG" 2>/dev/null && break
  kill -0 "$BERTH_PID" 2>/dev/null || { cat "$BERTH_LOG" >&2; die "berth exited"; }
  sleep 0.1
done
grep -q "event=docker_synced" "$BERTH_LOG" || { cat "$BERTH_LOG" >&2; die "berth did not sync with the engine in 30 s"; }
LISTEN=$(sed -n 's/.*event=listening listener=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$BERTH_LOG" | head -1)
ADMIN=$(sed -n 's/.*event=admin_listening address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$BERTH_LOG" | head -1)
BERTH_WORKERS=$(sed -n 's/.* event=ready workers=\([0-9]*\).*/\1/p' "$BERTH_LOG" | head -1)
[[ -n "$LISTEN" && -n "$ADMIN" ]] || die "could not read Berth's ports from its log"
log "berth pid $BERTH_PID: listener 127.0.0.1:$LISTEN, admin 127.0.0.1:$ADMIN, $BERTH_WORKERS workers"

# ---- (a) propagation ----
log "propagation: $COUNT sequential docker run (ports $PB..$((PB + COUNT - 1)))"
MEM_AVAIL0=$(awk '/^MemAvailable/ { print $2 }' /proc/meminfo)
CPU_A0=$(cpu_counters)
STARTS=$WORK/starts.out
rc=0
run_tool 1800 "$PROP_TOOL" starts --docker-host "$DOCKER_HOST" --listen "$LISTEN" --admin "$ADMIN" \
  --berth-log "$BERTH_LOG" --count "$COUNT" --port-base "$PB" --prefix "$PREFIX" --label "$LABEL" \
  --poll-us "$POLL_US" --e2e-pause-us "$E2E_PAUSE_US" --tsv "$WORK/starts.tsv" >"$STARTS" || rc=$?
grep -q "kind=starts" "$STARTS" || die "propagation run failed (rc $rc)"
((rc == 0)) || log "warning: some propagation samples had problems (see the report)"
STARTS_TOTAL_S=$(rv "$STARTS" total_s kind=starts)
BUSY_STARTS=$(busy_between "$CPU_A0" "$(cpu_counters)")
MEM_PER_CONTAINER_MB=$(awk -v a="$MEM_AVAIL0" -v c="$COUNT" '/^MemAvailable/ { printf "%.1f", (a - $2) / 1024 / c }' /proc/meminfo)

# Recorded engine answers for the replayer.
timeout 10 curl -sf --unix-socket "$SOCK" "http://docker/v1.41/containers/${PREFIX}0/json" >"$WORK/inspect.json" ||
  die "could not record an inspect answer"
timeout 10 curl -sf --unix-socket "$SOCK" -G "http://docker/v1.41/containers/json" \
  --data-urlencode "filters={\"label\":[\"$LABEL=1\"]}" >"$WORK/list.json" || die "could not record a list answer"

# ---- (b) churn on the real engine ----
log "churn on the real engine: $CHURN_CYCLES x (docker stop + docker start), $COUNT containers known"
CHURN=$WORK/churn.out
: >"$CHURN"
run_tool 900 "$PROP_TOOL" churn --docker-host "$DOCKER_HOST" --admin "$ADMIN" --berth-pid "$BERTH_PID" \
  --count "$COUNT" --cycles "$CHURN_CYCLES" --prefix "$PREFIX" --label "$LABEL" >>"$CHURN" ||
  log "warning: real-engine churn reported failures"

REAL_BIG_NOTE=""
if ((REAL_N > COUNT)); then
  log "starting containers $COUNT..$((REAL_N - 1)) (8 at a time) for churn with $REAL_N real containers"
  t0=$(date +%s.%N)
  seq "$COUNT" $((REAL_N - 1)) >"$WORK/more-ids"
  run_tool 7200 xargs -a "$WORK/more-ids" -P 8 -I{} sh -c \
    "docker run -d --pull never --init --network host --name $PREFIX{} --label $LABEL=1 --label berth.enable=true \
      --label berth.host=p{}.prop.test --label berth.port=\$(($PB + {})) bb:local \
      httpd -f -p 127.0.0.1:\$(($PB + {})) -h /www >/dev/null" || log "warning: some docker run failed"
  t1=$(date +%s.%N)
  REAL_BIG_NOTE="Starting containers $COUNT..$((REAL_N - 1)) took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') s (8 in parallel)."
  sleep 2
  run_tool 900 "$PROP_TOOL" churn --docker-host "$DOCKER_HOST" --admin "$ADMIN" --berth-pid "$BERTH_PID" \
    --count "$REAL_N" --cycles "$CHURN_CYCLES" --prefix "$PREFIX" --label "$LABEL" >>"$CHURN" ||
    log "warning: real-engine churn ($REAL_N) reported failures"
fi

# Berth's own log for this engine: warnings and errors.
BERTH_WARN=$(grep -cE "level=(warn|error)" "$BERTH_LOG" || true)
BERTH_WARN_KINDS=$(grep -E "level=(warn|error)" "$BERTH_LOG" | sed -n 's/.* level=\([a-z]*\) event=\([^ ]*\).*/\1 \2/p' |
  sort | uniq -c | sort -rn | awk '{ printf "%s%s x %s (%s)", (NR > 1 ? ", " : ""), $3, $1, $2 }' || true)
BERTH_WARN_LINES=$(grep -E "level=(warn|error)" "$BERTH_LOG" | grep -v "event=upstream_error" | head -5 || true)
kill -0 "$BERTH_PID" 2>/dev/null || die "berth died during the run"
stop_berth

# ---- (b) churn with the replayer ----
log "churn with the replayer: N = $REPLAY_N"
REPLAY=$WORK/replay.out
CPU_R0=$(cpu_counters)
rc=0
run_tool 1800 "$CHURN_TOOL" --berth "$BERTH_BIN" --n "$REPLAY_N" --workers "$WORKERS" \
  --phase-seconds "$REPLAY_SECONDS" --inspect-template "$WORK/inspect.json" --list-template "$WORK/list.json" \
  --tmp "$WORK" >"$REPLAY" || rc=$?
((rc == 0)) || log "warning: replayer reported problems (rc $rc)"
BUSY_REPLAY=$(busy_between "$CPU_R0" "$(cpu_counters)")

# ---- report ----
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=$( [[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo " + uncommitted changes" || true)

dist_row() {  # label metric
  local n p50 p99 max
  n=$(rv "$STARTS" n kind=dist "metric=$2"); p50=$(rv "$STARTS" p50 kind=dist "metric=$2")
  p99=$(rv "$STARTS" p99 kind=dist "metric=$2"); max=$(rv "$STARTS" max kind=dist "metric=$2")
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$n" "$p50" "$p99" "$max"
}
IFS=',' read -r -a NS <<<"$REPLAY_N"
bar() {  # metric -> PASS/FAIL text
  local p99 n
  p99=$(rv "$STARTS" p99 kind=dist "metric=$1"); n=$(rv "$STARTS" n kind=dist "metric=$1")
  if [[ -n "$p99" && "$p99" != n/a ]] && awk -v v="$p99" 'BEGIN { exit !(v < 5) }' && ((n >= COUNT)); then
    echo "**PASS** (p99 $p99 ms, $n of $COUNT starts)"
  else
    echo "**FAIL** (p99 ${p99:-n/a} ms, ${n:-0} of $COUNT starts)"
  fi
}
VERDICT_EXACT=$(bar exact_from_berth_receipt_ms)
VERDICT_ARRIVAL=$(bar internal_from_arrival_ms)
VERDICT_REPLAY=$(for n in "${NS[@]}"; do
  p99=$(rv "$REPLAY" p99 kind=replay_latency_berth_receipt "n=$n")
  [[ -n "$p99" ]] || continue
  printf '%sN=%s: ' "${sep3:-}" "$n"; sep3="; "
  if awk -v v="$p99" 'BEGIN { exit !(v < 5) }'; then printf '**PASS** (p99 %s ms)' "$p99"; else printf '**FAIL** (p99 %s ms)' "$p99"; fi
done)
VERDICT_TIMENANO=$(bar internal_ms)

churn_real_row() {  # n
  local f="kind=churn n=$1"
  [[ -n "$(rv "$CHURN" events $f)" ]] || return 0
  printf '| real dockerd | %s | `docker stop` + `docker start` x %s (%s) | %s | %s | %s ms | %s µs | %s µs |\n' \
    "$1" "$(rv "$CHURN" cycles $f)" "$(rv "$CHURN" mix $f | tr ',' ' ')" "$(rv "$CHURN" events $f)" \
    "$(rv "$CHURN" publishes $f)" "$(awk -v u="$(rv "$CHURN" cpu_ticks_us $f)" 'BEGIN { printf "%.0f", u / 1000 }')" \
    "$(rv "$CHURN" per_event_ticks_us $f)" "$(rv "$CHURN" per_event_sched_us $f)"
}
replay_row() {  # n phase label
  local f="kind=replay n=$1 phase=$2"
  [[ -n "$(rv "$REPLAY" events $f)" ]] || return 0
  printf '| replayer | %s | %s | %s | %s | %s ms | %s µs | %s µs |\n' "$1" "$3" "$(rv "$REPLAY" events $f)" \
    "$(rv "$REPLAY" publishes $f)" "$(awk -v u="$(rv "$REPLAY" cpu_ticks_us $f)" 'BEGIN { printf "%.0f", u / 1000 }')" \
    "$(rv "$REPLAY" per_event_ticks_us $f)" "$(rv "$REPLAY" per_event_sched_us $f)"
}
ratio() {  # a b
  awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f", b / a; else printf "n/a" }'
}

N_LO=${NS[0]}
N_HI=${NS[${#NS[@]} - 1]}
life_lo=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_LO" phase=lifecycle)
life_hi=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_HI" phase=lifecycle)
layout_lo=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_LO" phase=layout)
layout_hi=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_HI" phase=layout)
noise_lo=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_LO" phase=noise)
noise_hi=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_HI" phase=noise)
relist_lo=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_LO" phase=relist)
relist_hi=$(rv "$REPLAY" per_event_sched_us kind=replay "n=$N_HI" phase=relist)
growth_life=$(ratio "$life_lo" "$life_hi")
growth_noise=$(ratio "$noise_lo" "$noise_hi")
growth_layout=$(ratio "$layout_lo" "$layout_hi")
growth_relist=$(ratio "$relist_lo" "$relist_hi")
below_lo=$(ratio "$life_lo" "$relist_lo")
below_hi=$(ratio "$life_hi" "$relist_hi")
n_factor=$(ratio "$N_LO" "$N_HI")
if awk -v g="$growth_life" -v f="$n_factor" 'BEGIN { exit !(g != "n/a" && g + 0 < 0.3 * f) }'; then
  CHURN_VERDICT="the per-event cost grows ${growth_life}x for ${n_factor}x the containers: it does not scale with N the way a re-list (${growth_relist}x) does."
else
  CHURN_VERDICT="the per-event cost grows ${growth_life}x for ${n_factor}x the containers, i.e. in proportion to N like a re-list (${growth_relist}x) — O(N) work per event — although one event stays ${below_lo}x (N=$N_LO) and ${below_hi}x (N=$N_HI) cheaper than one re-list."
fi
GAPS=$(for n in "${NS[@]}"; do printf '%s%s µs at N=%s' "${sep:-}" "$(rv "$REPLAY" gap_us kind=replay_pacing "n=$n")" "$n"; sep=", "; done)
WARN_REPLAY=$(for n in "${NS[@]}"; do printf '%s%s at N=%s' "${sep2:-}" "$(rv "$REPLAY" warnings kind=replay_log "n=$n")" "$n"; sep2=", "; done)

{
  echo "# Berth: Docker route propagation and discovery churn"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs (nproc), $CPU_MODEL, $MEM RAM, Linux $(uname -r)"
  echo "- Command: \`$CMDLINE\` (as root, from the repository root)"
  echo "- Berth: $COMMIT$DIRTY, Release build in $BUILD_DIR/, $BERTH_WORKERS workers, log level info"
  echo "- Engine: private dockerd $ENGINE_VERSION, storage $STORAGE, --bridge=none (scripts/dockerd-local.sh);"
  echo "  containers: \`docker run -d --init --network host\` busybox httpd on 127.0.0.1:$PB.., no healthcheck"
  echo "- Machine load (shared machine; includes the benchmark's own processes): CPUs ${BUSY_BEFORE}% busy in the" \
    "second before measuring, ${BUSY_STARTS}% during the propagation run, ${BUSY_REPLAY}% during the replayer runs;" \
    "loadavg $LOAD_BEFORE before, $LOAD_AFTER after"
  echo
  echo "## Route propagation ($COUNT sequential container starts, $(printf '%.0f' "${STARTS_TOTAL_S:-0}") s)"
  echo
  echo "| measurement | n | p50 ms | p99 ms | max ms |"
  echo "|---|---|---|---|---|"
  dist_row "**internal, exact**: Berth receives the \`start\` event → the last worker serves the new snapshot (Berth's clocks: /api/stats generation_event_received_ns, workers[].applied_at_ns)" exact_from_berth_receipt_ms
  dist_row "internal, exact, from the engine's timeNano → the last worker serves it" exact_from_timenano_ms
  dist_row "internal, exact, from a parallel /events subscriber's receipt → the last worker serves it" exact_from_arrival_ms
  dist_row "internal, polled: engine \`start\` event (its timeNano) → every Berth worker serves the new snapshot" internal_ms
  dist_row "internal, polled, from arrival: start event received (by a parallel /events subscriber) → every worker serves it" internal_from_arrival_ms
  dist_row "**end-to-end**: \`docker run\` returned → first 200 through Berth for that host" e2e_ms
  dist_row "context: \`docker run\` returned → the container's port accepts a direct connect (app readiness)" port_ready_ms
  dist_row "internal, lower bound (last /api/stats poll that still showed the old generation)" internal_lower_bound_ms
  dist_row "publication per Berth's log (\`routes_updated\` ts + 1 ms − timeNano; ms resolution, upper bound)" log_published_upper_ms
  dist_row "context: start event received by a plain /events subscriber (receipt − timeNano)" event_delivery_ms
  dist_row "context: one \`GET /containers/ID/json\` on the engine (Berth inspects each started container before publishing)" inspect_rtt_ms
  dist_row "context: start event timeNano − \`docker run\` returned (negative: event first)" start_event_minus_cli_return_ms
  dist_row "context: \`docker run -d\` duration" docker_run_ms
  for n in "${NS[@]}"; do
    f="kind=replay_latency n=$n"
    [[ -n "$(rv "$REPLAY" samples $f)" ]] || continue
    g="kind=replay_latency_berth_receipt n=$n"
    printf '| **internal, exact, replayer with %s containers known**: Berth receives `start` → the last worker serves it | %s | %s | %s | %s |\n' \
      "$n" "$(rv "$REPLAY" samples $g)" "$(rv "$REPLAY" p50 $g)" "$(rv "$REPLAY" p99 $g)" "$(rv "$REPLAY" max $g)"
    printf '| internal, polled, replayer with %s containers known: `start` written to the event stream → every worker serves it | %s | %s | %s | %s |\n' \
      "$n" "$(rv "$REPLAY" samples $f)" "$(rv "$REPLAY" p50 $f)" "$(rv "$REPLAY" p99 $f)" "$(rv "$REPLAY" max $f)"
  done
  echo
  echo "Bar (internal p99 < 5 ms): from the event's arrival at Berth to the last worker serving it, by Berth's own" \
    "clocks (issue 3 §9) $VERDICT_EXACT; the same span measured by polling /api/stats from a parallel subscriber's" \
    "receipt $VERDICT_ARRIVAL; polled from the event's timeNano (includes the engine's own delivery delay)" \
    "$VERDICT_TIMENANO; replayer, exact, ${VERDICT_REPLAY:-n/a}." \
    "Samples with problems: $(rv "$STARTS" problems kind=starts);" \
    "answers before the first 200 (status:answers/samples): $(rv "$STARTS" before_200 kind=starts);" \
    "publications beyond one per start: $(rv "$STARTS" extra_publishes kind=starts)." \
    "Workers' generation polled every ~${POLL_US} µs + one request round trip (mean gap between the bounds:" \
    "$(rv "$STARTS" p50 kind=dist metric=poll_resolution_ms) ms p50)."
  echo
  echo "## Churn cost (Berth's CPU per container event)"
  echo
  echo "| engine | containers known | events | count | publications | Berth CPU (utime+stime) | per event (utime+stime) | per event (schedstat, ns-exact) |"
  echo "|---|---|---|---|---|---|---|---|"
  churn_real_row "$COUNT"
  ((REAL_N > COUNT)) && churn_real_row "$REAL_N"
  for n in "${NS[@]}"; do replay_row "$n" lifecycle "lifecycle: kill(15), die, stop, start per container (closed loop on Berth's inspect)"; done
  for n in "${NS[@]}"; do replay_row "$n" layout "layout changes: create, start, kill(15), die, stop, destroy of a new container (create and destroy re-index the routes)"; done
  for n in "${NS[@]}"; do replay_row "$n" noise "health-check noise: exec_create / exec_start / exec_die (ignored by Berth)"; done
  for n in "${NS[@]}"; do replay_row "$n" relist "one full re-list: stream EOF → reconnect, list, inspect all $n"; done
  echo
  echo "Growth from $N_LO to $N_HI containers known: lifecycle ${growth_life}x, layout changes ${growth_layout}x," \
    "ignored events ${growth_noise}x, full re-list ${growth_relist}x. Verdict: $CHURN_VERDICT" \
    "Creates and removals re-index every route (a full build, in proportion to the containers known);" \
    "every other lifecycle event changes one service."
  echo
  echo "How: utime+stime from /proc/PID/stat (10 ms ticks) and the sum of /proc/PID/task/*/schedstat run" \
    "times over all of Berth's threads, read before and after each phase (after a 300 ms settle); Berth's" \
    "idle CPU (measured for 2-3 s before) is subtracted from the schedstat figures. Real engine: events = the" \
    "container events the engine emitted in the window (counted by a separate /events subscriber). Replayer:" \
    "bench/discovery_churn.cc (its fake engine: bench/fake_docker_engine.h) serves /version, /containers/json, /containers/ID/json (built from answers recorded" \
    "from the real engine above) and streams /events in the engine's format; events are spaced $GAPS" \
    "(3x the control thread's CPU per event measured in a calibration), so each is read and handled on its own."
  [[ -n "$REAL_BIG_NOTE" ]] && { echo; echo "$REAL_BIG_NOTE"; }
  if ((REAL_N <= COUNT)); then
    echo "1,000 real containers were not started: the $COUNT sequential starts above took" \
      "$(printf '%.0f' "${STARTS_TOTAL_S:-0}") s on this machine (vfs) and each running container took about" \
      "$MEM_PER_CONTAINER_MB MB of RAM (MemAvailable drop / $COUNT: shim, tini, httpd, page cache), so 1,000 would need" \
      "about $(awk -v m="$MEM_PER_CONTAINER_MB" 'BEGIN { printf "%.1f", m * 1000 / 1024 }') GiB on a shared machine;" \
      "the replayer stands in for them. PROP_REAL_N=1000 adds a real-engine run with them."
  fi
  echo
  echo "## Berth's log during the real-engine run"
  echo
  echo "$BERTH_WARN warning/error lines${BERTH_WARN_KINDS:+: $BERTH_WARN_KINDS}." \
    "$( [[ "$BERTH_WARN_KINDS" == *upstream_error* ]] && echo "(upstream_error 502s: the end-to-end probe reached a route whose container was not listening yet.)")" \
    "$( [[ -n "$BERTH_WARN_LINES" ]] && echo "Other warnings/errors, first ones:")"
  if [[ -n "$BERTH_WARN_LINES" ]]; then echo; echo '```'; echo "$BERTH_WARN_LINES"; echo '```'; fi
  echo
  echo "Replayer runs: warning/error lines besides the intended \`docker_disconnected\` of the re-list phase: $WARN_REPLAY."
} >"$WORK/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cat "$WORK/report.md"
log "wrote $OUT"
