#!/usr/bin/env bash
# Berth benchmark: Berth vs nginx vs HAProxy (and the origin directly) on loopback; Berth runs
# twice: as a plain proxy, and as "Berth+hc" with an active health check and outlier detection
# on the origin service.
#
#   bench/run.sh [--quick]
#
# Builds Release into build-bench/, starts bench/origin.cc on core 1, each proxy (one
# worker/thread, keep-alive to the origin, no access logs) on core 0, and drives them with wrk
# (-t 1, on core 1). Then measures idle memory per keep-alive connection with
# bench/idle_conns.cc. Prints a markdown report and writes it to bench/results/latest.md
# (raw wrk output goes to bench/results/latest-raw.txt). See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   BENCH_SKIP_BERTH=1     leave Berth and Berth+hc out (development only) [0]
#   BENCH_SKIP_BUILD=1     skip install-deps and the cmake build [0]
#   BENCH_BUILD_DIR        build directory [build-bench]
#   BENCH_TOOLS_DIR        where berth-bench-origin / -idle_conns live [$BENCH_BUILD_DIR]
#   BENCH_BERTH            the berth binary [$BENCH_BUILD_DIR/berth]
#   BENCH_DURATION, BENCH_REPS   seconds per wrk run, repetitions [10, 3; --quick: 3, 1]
#   BENCH_IDLE_CONNS       idle connections for the memory test [10000]
#   BENCH_PORT_BASE        first loopback port used (needs +0..+11) [first free of 18480,
#                          18580, ..., 18980]
#   BENCH_QUIET_WAIT       seconds to wait for other CPU load to settle before each round [300]
#   BENCH_QUIET_BUDGET     total seconds all such waiting may take; after that, no more
#                          waiting or repeating [1200]
#   BENCH_FOREIGN_MAX      a wrk run during which other processes used more than this percent
#                          of the CPUs is repeated [5] ...
#   BENCH_RETRIES          ... at most this many times [2]
#   BENCH_KEEP=1           keep the temporary work directory (configs, logs)
set -euo pipefail

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument: $arg (usage: bench/run.sh [--quick])" >&2; exit 64 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if ((QUICK)); then DURATION=${BENCH_DURATION:-3}; REPS=${BENCH_REPS:-1}
else DURATION=${BENCH_DURATION:-10}; REPS=${BENCH_REPS:-3}; fi
CONNS_LIST=(64 256)
BODIES=(small 64k)
declare -A BODY_BYTES=([small]=100 [64k]=65536)
BUILD_DIR=${BENCH_BUILD_DIR:-build-bench}
TOOLS_DIR=${BENCH_TOOLS_DIR:-$BUILD_DIR}
BERTH_BIN=${BENCH_BERTH:-$BUILD_DIR/berth}
SKIP_BERTH=${BENCH_SKIP_BERTH:-0}
IDLE_N=${BENCH_IDLE_CONNS:-10000}
QUIET_WAIT=${BENCH_QUIET_WAIT:-300}

port_range_free() {  # base: none of base..base+11 is listening on this host
  local used
  used=$(ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
  for ((p = $1; p <= $1 + 11; p++)); do
    grep -qx "$p" <<<"$used" && return 1
  done
  return 0
}
if [[ -n "${BENCH_PORT_BASE:-}" ]]; then
  PB=$BENCH_PORT_BASE
  port_range_free "$PB" || { echo "run.sh: a port in $PB..$((PB + 11)) is in use" >&2; exit 1; }
else
  PB=
  for base in 18480 18580 18680 18780 18880 18980; do
    if port_range_free "$base"; then PB=$base; break; fi
  done
  [[ -n "$PB" ]] || { echo "run.sh: no free port range found (set BENCH_PORT_BASE)" >&2; exit 1; }
fi
ORIGIN_PORT=$PB
declare -A PORT=([origin]=$PB [berth]=$((PB + 1)) [nginx]=$((PB + 2)) [haproxy]=$((PB + 3))
                 [berth_hc]=$((PB + 4)))
declare -A ADMIN_PORT=([berth]=$((PB + 11)) [berth_hc]=$((PB + 10)))
PROXY_CORE=0
LOAD_CORE=1

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- process bookkeeping
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
declare -a ALL_PIDS=()
declare -A PID_OF=()

descendants() {  # pid -> pid and all its descendants, one per line
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null || true); do descendants "$c"; done
}

stop_pid() {  # TERM a process we started (and its children), wait up to 5 s, then KILL
  local pid=$1 tree i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  tree=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  for p in $tree; do kill -KILL "$p" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#ALL_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${ALL_PIDS[i]}"; done
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

start_bg() {  # name core cmd... : start pinned to core, record its PID as PID_OF[name]
  local name=$1 core=$2
  shift 2
  local f
  for f in out err; do  # keep earlier runs' output in $name.all.$f
    [[ -e "$WORK/$name.$f" ]] && cat "$WORK/$name.$f" >>"$WORK/$name.all.$f"
  done
  taskset -c "$core" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
  PID_OF[$name]=$!
  ALL_PIDS+=("$!")
}

stop_named() {
  local name=$1
  [[ -n "${PID_OF[$name]:-}" ]] || return 0
  stop_pid "${PID_OF[$name]}"
  unset "PID_OF[$name]"
}

alive() { [[ -n "${PID_OF[$1]:-}" ]] && kill -0 "${PID_OF[$1]}" 2>/dev/null; }

# http_ok PORT PATH BYTES : one GET answers 200 with exactly BYTES body bytes
http_ok() {
  local out
  out=$(curl -s -o /dev/null --max-time 2 -w '%{http_code} %{size_download}' \
    "http://127.0.0.1:$1$2" 2>/dev/null) || return 1
  [[ "$out" == "200 $3" ]]
}

wait_answers() {  # name port timeout_s : wait until /small and /64k answer correctly
  local name=$1 port=$2 deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    alive "$name" || return 1
    if http_ok "$port" /small 100 && http_ok "$port" /64k 65536; then return 0; fi
    sleep 0.2
  done
  return 1
}

show_logs() {
  local f
  for f in "$WORK/$1.out" "$WORK/$1.err"; do
    [[ -s "$f" ]] && { echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
  done
  return 0
}

# ---------------------------------------------------------------- 1. deps and build
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "installing dependencies (scripts/install-deps.sh --bench)"
  timeout 1800 bash scripts/install-deps.sh --bench
  log "configuring and building Release into $BUILD_DIR"
  timeout 600 cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF >/dev/null
  timeout 1800 cmake --build "$BUILD_DIR"
fi
for t in wrk nginx haproxy taskset curl pgrep; do
  command -v "$t" >/dev/null || die "$t not found (run: bash scripts/install-deps.sh --bench)"
done
ORIGIN_BIN=$TOOLS_DIR/berth-bench-origin
IDLE_BIN=$TOOLS_DIR/berth-bench-idle_conns
[[ -x "$ORIGIN_BIN" && -x "$IDLE_BIN" ]] || die "bench tools not found in $TOOLS_DIR"
if [[ "$SKIP_BERTH" != 1 ]]; then
  [[ -x "$BERTH_BIN" ]] || die "berth binary not found at $BERTH_BIN (did the build fail?)"
fi
NPROC=$(nproc)
((NPROC >= 2)) || die "needs at least 2 cores (proxies on core $PROXY_CORE, load on core $LOAD_CORE)"

# ---------------------------------------------------------------- file descriptors
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if ((NOFILE < 200000)); then
  log "note: could not raise 'ulimit -n' to 200000 (hard limit $(ulimit -Hn)); using $NOFILE"
fi
((NOFILE >= IDLE_N + 200)) || die "ulimit -n is $NOFILE, too low for $IDLE_N idle connections"

# ---------------------------------------------------------------- configs
mkdir -p "$WORK/nginx" "$WORK/wrk"
# Berth, and Berth+hc: the same plus an active health check of the origin every second (GET
# /small: the origin answers 404 on /) and outlier detection with its default settings.
write_berth_config() {  # name extra-service-keys
  cat >"$WORK/$1.yaml" <<EOF
listeners: ["127.0.0.1:${PORT[$1]}"]
workers: 1
admin: {address: "127.0.0.1:${ADMIN_PORT[$1]}"}
routes: [{service: origin}]
services: {origin: {endpoints: ["127.0.0.1:$ORIGIN_PORT"]$2}}
limits: {max_connections_per_worker: 20000}
EOF
}
write_berth_config berth ""
write_berth_config berth_hc ", health: {path: /small, interval: 1s}, outlier: {}"

NGINX_NOFILE=$NOFILE
((NGINX_NOFILE > 200000)) && NGINX_NOFILE=200000
cat >"$WORK/nginx/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
master_process on;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_rlimit_nofile $NGINX_NOFILE;
events {
    worker_connections 20000;
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Room for a whole 64 KiB response in memory (the default 8 x 4k would spill
            # to proxy_temp_path whenever the client is slower than the origin).
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
        }
    }
}
EOF

cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 20000
    # HAProxy wants 2 fds per maxconn; where 'ulimit -n' cannot go that high, run anyway
    # (the idle-memory test needs ~10k client fds plus a few to the origin).
    no strict-limits

defaults
    mode http
    maxconn 20000
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 10s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always

frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend be

backend be
    http-reuse always
    server origin 127.0.0.1:$ORIGIN_PORT
EOF

nginx -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >/dev/null 2>"$WORK/nginx-t.err" \
  || { cat "$WORK/nginx-t.err" >&2; die "nginx config test failed"; }
haproxy -c -f "$WORK/haproxy.cfg" >"$WORK/haproxy-c.out" 2>&1 \
  || { cat "$WORK/haproxy-c.out" >&2; die "haproxy config check failed"; }

# ---------------------------------------------------------------- contestants
CONTESTANTS=(origin)
BERTHS=()
[[ "$SKIP_BERTH" == 1 ]] || BERTHS=(berth berth_hc)
CONTESTANTS+=("${BERTHS[@]}" nginx haproxy)
PROXIES=("${CONTESTANTS[@]:1}")
declare -A LABEL=([origin]="origin (direct)" [berth]="Berth" [berth_hc]="Berth+hc" [nginx]="nginx"
                  [haproxy]="HAProxy")

port_range_free "$PB" || die "a port in $PB..$((PB + 11)) is now in use (set BENCH_PORT_BASE)"

# CPU busy percentage of the whole machine over $1 seconds (from /proc/stat).
cpu_busy() {
  local a b
  a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  sleep "$1"
  b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    busy = y[1] - x[1]; total = busy + y[2] - x[2];
    printf "%d\n", (total > 0 ? 100 * busy / total + 0.5 : 0) }'
}
NOTES=$WORK/notes.txt
: >"$NOTES"
# Between measurements nothing of ours runs, so CPU use then belongs to other processes
# (builds, tests); wait for it to settle, and note it when it does not.
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-1200}  # all waiting for quiet together, seconds
QUIET_SPENT=0
wait_quiet() {  # what
  local t0=$SECONDS left deadline busy
  left=$((QUIET_BUDGET - QUIET_SPENT))
  ((left > QUIET_WAIT)) && left=$QUIET_WAIT
  deadline=$((SECONDS + left))
  while :; do
    busy=$(cpu_busy 1)
    ((busy <= 10)) && { QUIET_SPENT=$((QUIET_SPENT + SECONDS - t0)); return 0; }
    if ((SECONDS >= deadline)); then
      QUIET_SPENT=$((QUIET_SPENT + SECONDS - t0))
      echo "other processes kept the CPU ${busy}% busy before $1 (waited $((SECONDS - t0)) s)" >>"$NOTES"
      log "warning: machine still ${busy}% busy before $1; measuring anyway"
      return 0
    fi
    log "machine is ${busy}% busy with other work; waiting before $1"
    sleep 4
  done
}

start_origin() {
  start_bg origin "$LOAD_CORE" "$ORIGIN_BIN" --host 127.0.0.1 --port "$ORIGIN_PORT"
  wait_answers origin "$ORIGIN_PORT" 10 || { show_logs origin; die "origin does not answer on :$ORIGIN_PORT"; }
}

start_proxy() {  # name
  local name=$1 deadline
  case "$name" in
    berth|berth_hc)
      start_bg "$name" "$PROXY_CORE" "$BERTH_BIN" --config "$WORK/$name.yaml"
      deadline=$((SECONDS + 20))
      until grep -q 'event=ready' "$WORK/$name.err" 2>/dev/null; do
        if ! alive "$name"; then show_logs "$name"; die "$name exited during startup"; fi
        ((SECONDS < deadline)) || { show_logs "$name"; die "$name did not log event=ready within 20 s"; }
        sleep 0.1
      done
      ;;
    nginx)
      start_bg nginx "$PROXY_CORE" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
      ;;
    haproxy)
      start_bg haproxy "$PROXY_CORE" haproxy -db -f "$WORK/haproxy.cfg"
      ;;
  esac
  if ! wait_answers "$name" "${PORT[$name]}" 15; then
    show_logs "$name"
    [[ "$name" == nginx ]] && tail -n 20 "$WORK/nginx/error.log" >&2
    die "$name does not answer GET /small and GET /64k correctly on 127.0.0.1:${PORT[$name]}"
  fi
  if [[ "$name" == berth_hc ]] && [[ "$(origin_health)" != healthy ]]; then
    show_logs "$name"
    die "berth_hc: the origin's active health check is not on and passing: $(admin_get berth_hc /api/routes)"
  fi
}

admin_get() {  # name path : a Berth contestant's admin API answer
  curl -s --max-time 2 "http://127.0.0.1:${ADMIN_PORT[$1]}$2" 2>/dev/null || true
}
origin_health() {  # the probe state of the origin in Berth+hc's route table
  admin_get berth_hc /api/routes | sed -n 's/.*"health":"\([a-z]*\)".*/\1/p'
}

rss_kb() {  # VmRSS of a PID plus all its descendants (nginx: master + worker), in KiB
  local total=0 p v
  for p in $(descendants "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# ---------------------------------------------------------------- 2-4. throughput / latency
# parse_wrk FILE -> "rps p50_us p99_us requests non2xx socket_errors"
parse_wrk() {
  awk '
    function us(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n; if (u == "ms") return n * 1000
      if (u == "s") return n * 1000000; if (u == "m") return n * 60000000
      return -1
    }
    /^ +50%/ { p50 = us($2) }
    /^ +99%/ { p99 = us($2) }
    /requests in/ { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(",", ""); serr = $4 + $6 + $8 + $10 }
    END {
      if (rps == "") { rps = 0; p50 = -1; p99 = -1 }
      printf "%s %s %s %s %d %d\n", rps, (p50 == "" ? -1 : p50), (p99 == "" ? -1 : p99),
             (reqs == "" ? 0 : reqs), non2xx, serr
    }' "$1"
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
PROBLEMS=$WORK/problems.txt
: >"$PROBLEMS"
RAW=$WORK/raw.txt
: >"$RAW"

proc_ticks() {  # pids... -> CPU ticks (utime + stime) used so far by them and their descendants
  local total=0 p v
  for p in $(for q in "$@"; do descendants "$q"; done); do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
sys_ticks() {  # -> "busy total": user+nice+system ticks and all ticks, summed over all CPUs
  awk '/^cpu / { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
CLK_TCK=$(getconf CLK_TCK)
RETRIES=${BENCH_RETRIES:-2}
FOREIGN_MAX=${BENCH_FOREIGN_MAX:-5}

# One wrk run. Sets FOREIGN to the share (percent of all CPUs) of user+system CPU time used
# during the run by processes other than wrk, the origin and the contestant.
FOREIGN=0
wrk_once() {  # name conns body file
  local name=$1 c=$2 body=$3 f=$4 ours0 ours1 sys0 sys1 wrk_t TIMEFORMAT='%3U %3S'
  local pids=("${PID_OF[origin]}")
  [[ "$name" == origin ]] || pids+=("${PID_OF[$name]}")
  ours0=$(proc_ticks "${pids[@]}")
  sys0=$(sys_ticks)
  { time timeout -k 5 $((DURATION + 30)) taskset -c "$LOAD_CORE" \
      wrk -t 1 -c "$c" -d "${DURATION}s" --latency "http://127.0.0.1:${PORT[$name]}/$body" >"$f" 2>&1; } \
    2>"$WORK/wrk.time" || true
  sys1=$(sys_ticks)
  ours1=$(proc_ticks "${pids[@]}")
  wrk_t=$(awk -v hz="$CLK_TCK" '{ printf "%d", ($1 + $2) * hz }' "$WORK/wrk.time" 2>/dev/null || echo 0)
  FOREIGN=$(awk -v a="$sys0" -v b="$sys1" -v ours=$((ours1 - ours0)) -v w="${wrk_t:-0}" 'BEGIN {
    split(a, x, " "); split(b, y, " "); total = y[2] - x[2]
    f = (total > 0 ? 100 * (y[1] - x[1] - ours - w) / total : 0)
    printf "%d", (f < 0 ? 0 : f + 0.5) }')
}

run_wrk() {  # name conns body rep
  local name=$1 c=$2 body=$3 rep=$4 f try
  f="$WORK/wrk/${name}_${c}_${body}_${rep}.txt"
  if ! alive "$name"; then
    echo "$name died before the $c conns / $body run (round $rep)" >>"$PROBLEMS"
    echo -e "$name\t$c\t$body\t$rep\t0\t-1\t-1\t0\t0\t0\tdead" >>"$RESULTS"
    return 0
  fi
  for ((try = 0; ; try++)); do
    wrk_once "$name" "$c" "$body" "$f"
    ((FOREIGN <= FOREIGN_MAX)) && break
    if ((try >= RETRIES || QUIET_SPENT >= QUIET_BUDGET)); then
      echo "$name c=$c $body round $rep: other processes used ${FOREIGN}% of the CPUs during the run (kept after $try repetition(s))" >>"$NOTES"
      break
    fi
    log "$name c=$c $body round $rep: other processes used ${FOREIGN}% of the CPUs; repeating the run"
    wait_quiet "repeating $name c=$c $body round $rep"
  done
  { echo "===== $name conns=$c body=$body round=$rep (other CPU use ${FOREIGN}%)"; cat "$f"; } >>"$RAW"
  local rps p50 p99 reqs non2xx serr
  read -r rps p50 p99 reqs non2xx serr < <(parse_wrk "$f")
  echo -e "$name\t$c\t$body\t$rep\t$rps\t$p50\t$p99\t$reqs\t$non2xx\t$serr\tok" >>"$RESULTS"
  log "$(printf '%-8s c=%-3s %-5s round %d: %8.0f req/s  p50 %6s us  p99 %6s us  non-2xx %s  sock-err %s  other-cpu %s%%' \
    "$name" "$c" "$body" "$rep" "$rps" "$p50" "$p99" "$non2xx" "$serr" "$FOREIGN")"
  if ((non2xx > 0)); then echo "$name c=$c $body round $rep: $non2xx non-2xx/3xx responses (of $reqs)" >>"$PROBLEMS"; fi
  if ((serr > 0)); then echo "$name c=$c $body round $rep: socket errors: $(grep 'Socket errors' "$f" | sed 's/^ *//')" >>"$PROBLEMS"; fi
  if [[ "$rps" == 0 ]]; then echo "$name c=$c $body round $rep: wrk produced no result: $(head -c 300 "$f" | tr '\n' ' ')" >>"$PROBLEMS"; fi
  if ! alive "$name"; then echo "$name died during the c=$c $body run (round $rep)" >>"$PROBLEMS"; fi
  sleep 0.5
  return 0
}

log "work directory $WORK; $DURATION s per run, $REPS round(s), contestants: ${CONTESTANTS[*]}"
start_origin
for name in "${PROXIES[@]}"; do start_proxy "$name"; log "$name is up on 127.0.0.1:${PORT[$name]}"; done

log "warm-up (1 s per contestant and body)"
for name in "${CONTESTANTS[@]}"; do
  for body in "${BODIES[@]}"; do
    timeout -k 5 30 taskset -c "$LOAD_CORE" wrk -t 1 -c 64 -d 1s "http://127.0.0.1:${PORT[$name]}/$body" >/dev/null 2>&1 || true
  done
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= REPS; rep++)); do
  wait_quiet "round $rep"
  log "round $rep of $REPS"
  for c in "${CONNS_LIST[@]}"; do
    for body in "${BODIES[@]}"; do
      for name in "${CONTESTANTS[@]}"; do
        run_wrk "$name" "$c" "$body" "$rep"
      done
    done
  done
done

if [[ "$SKIP_BERTH" != 1 ]]; then
  HC_STATE="origin health $(origin_health), outlier_ejections $(admin_get berth_hc /api/stats |
    sed -n 's/.*"outlier_ejections":\([0-9]*\).*/\1/p')"
  log "Berth+hc after the rounds: $HC_STATE"
  [[ "$HC_STATE" == "origin health healthy, outlier_ejections 0" ]] \
    || echo "Berth+hc after the rounds: $HC_STATE (expected healthy, 0)" >>"$PROBLEMS"
fi
for name in "${PROXIES[@]}"; do stop_named "$name"; done

# ---------------------------------------------------------------- 5. idle memory
MEMORY=$WORK/memory.tsv
: >"$MEMORY"
for name in "${PROXIES[@]}"; do
  wait_quiet "the idle-memory test of $name"
  log "idle memory: $name with $IDLE_N keep-alive connections"
  start_proxy "$name"
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:${PORT[$name]}/small" || true
  sleep 1
  before=$(rss_kb "${PID_OF[$name]}")
  start_bg idle "$LOAD_CORE" "$IDLE_BIN" --host 127.0.0.1 --port "${PORT[$name]}" --conns "$IDLE_N" \
    --hold 120 --timeout 90 --concurrency 256
  deadline=$((SECONDS + 100))
  status=ok
  until grep -q '^READY' "$WORK/idle.out" 2>/dev/null; do
    if ! alive idle; then status="failed: $(grep -h '' "$WORK/idle.out" "$WORK/idle.err" | tail -n 1)"; break; fi
    if ((SECONDS >= deadline)); then status="failed: not READY within 100 s"; break; fi
    sleep 0.2
  done
  after=$before
  if [[ "$status" == ok ]]; then
    sleep 2
    after=$(rss_kb "${PID_OF[$name]}")
    alive "$name" || status="failed: $name died while holding the connections"
  fi
  stop_named idle
  held=$(sed -n 's/^DONE held=\([0-9]*\) closed_by_peer=\([0-9]*\)/\1 \2/p' "$WORK/idle.out")
  if [[ "$status" == ok && -n "$held" && "${held#* }" != 0 ]]; then
    status="warning: ${held#* } connections closed by $name during the measurement"
  fi
  [[ "$status" == ok ]] || echo "idle memory, $name: $status" >>"$PROBLEMS"
  echo -e "$name\t$before\t$after\t$status" >>"$MEMORY"
  log "$name: RSS ${before} KiB -> ${after} KiB ($status)"
  stop_named "$name"
done

# ---------------------------------------------------------------- 6. report
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print -1; else print v[int((NR + 1) / 2)] }'; }
stat_of() {  # name conns body column -> median over the rounds
  awk -F'\t' -v n="$1" -v c="$2" -v b="$3" -v col="$4" '$1 == n && $2 == c && $3 == b { print $col }' "$RESULTS" | median
}
sum_of() {
  awk -F'\t' -v n="$1" -v c="$2" -v b="$3" -v col="$4" '$1 == n && $2 == c && $3 == b { s += $col } END { print s + 0 }' "$RESULTS"
}
fmt_lat() { awk -v u="$1" 'BEGIN { if (u < 0) print "n/a"; else printf "%.3f ms", u / 1000 }'; }
fmt_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a <= 0 || b <= 0) print "n/a"; else printf "%.2fx", a / b }'; }

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NGINX_V=$(nginx -v 2>&1 | sed 's/^nginx version: nginx\///')
# (no `head` in these pipelines: with pipefail an early-closing reader is a SIGPIPE failure)
HAPROXY_V=$( (haproxy -v 2>/dev/null || true) | awk 'NR == 1 { print $3 }')
WRK_V=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $1, $2 }')
BERTH_V=n/a
if [[ "$SKIP_BERTH" != 1 ]]; then
  BERTH_V=$( (timeout 5 "$BERTH_BIN" --version 2>&1 || true) | sed -n 1p)
  [[ -n "$BERTH_V" ]] || BERTH_V="(no --version output)"
fi
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")

REPORT=$WORK/report.md
{
  echo "# Berth benchmark results"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: nproc=$NPROC, CPU: $CPU_MODEL, kernel $(uname -r)"
  echo "- versions: Berth $BERTH_V (git $GIT_REV, Release); nginx $NGINX_V; HAProxy $HAPROXY_V; $WRK_V"
  echo "- method: proxies pinned to core $PROXY_CORE (one worker/thread each, keep-alive to the origin, no access log);"
  echo "  origin (berth-bench-origin) and wrk (-t 1) pinned to core $LOAD_CORE; all on 127.0.0.1."
  echo "  Berth+hc: the Berth configuration plus an active health check of the origin (GET /small every 1 s)"
  echo "  and outlier detection at its defaults."
  echo "  ${DURATION} s per run, $REPS interleaved round(s)$( ((QUICK)) && echo ' (--quick)'); values are medians over the rounds."
  echo "  errors = non-2xx/3xx responses + socket errors reported by wrk, summed over the rounds."
  echo "- load average before the measurements: $LOAD_BEFORE; ulimit -n: $NOFILE"
  echo
  echo "## Throughput and latency"
  echo
  echo "| contestant | conns | body | req/s | p50 | p99 | errors |"
  echo "|---|---:|---|---:|---:|---:|---:|"
  for c in "${CONNS_LIST[@]}"; do
    for body in "${BODIES[@]}"; do
      for name in "${CONTESTANTS[@]}"; do
        rps=$(stat_of "$name" "$c" "$body" 5)
        p50=$(stat_of "$name" "$c" "$body" 6)
        p99=$(stat_of "$name" "$c" "$body" 7)
        errs=$(( $(sum_of "$name" "$c" "$body" 9) + $(sum_of "$name" "$c" "$body" 10) ))
        printf '| %s | %s | %s | %.0f | %s | %s | %s |\n' "${LABEL[$name]}" "$c" "$body" "$rps" \
          "$(fmt_lat "$p50")" "$(fmt_lat "$p99")" "$errs"
      done
    done
  done
  echo
  echo "## Ratios (Berth or Berth+hc / other; req/s higher is better, p99 lower is better)"
  echo
  for c in "${CONNS_LIST[@]}"; do
    for body in "${BODIES[@]}"; do
      for subject in berth berth_hc; do
        others=(nginx haproxy)
        [[ "$subject" == berth_hc ]] && others+=(berth)
        line="- $c conns, $body:"
        for other in "${others[@]}"; do
          if [[ "$SKIP_BERTH" == 1 ]]; then r1=n/a; r2=n/a
          else
            r1=$(fmt_ratio "$(stat_of "$subject" "$c" "$body" 5)" "$(stat_of "$other" "$c" "$body" 5)")
            r2=$(fmt_ratio "$(stat_of "$subject" "$c" "$body" 7)" "$(stat_of "$other" "$c" "$body" 7)")
          fi
          line+=" ${LABEL[$subject]}/${LABEL[$other]} req/s $r1, p99 $r2;"
        done
        echo "${line%;}"
      done
    done
  done
  echo
  echo "## Idle memory ($IDLE_N keep-alive connections, each after one GET /small)"
  echo
  echo "| proxy | RSS before | RSS after | bytes/conn | note |"
  echo "|---|---:|---:|---:|---|"
  while IFS=$'\t' read -r name before after status; do
    per=$(awk -v a="$after" -v b="$before" -v n="$IDLE_N" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
    [[ "$status" == ok ]] || per="n/a"
    printf '| %s | %s KiB | %s KiB | %s | %s |\n' "${LABEL[$name]}" "$before" "$after" "$per" "$status"
  done <"$MEMORY"
  echo
  echo "RSS = VmRSS from /proc/PID/status (nginx: master + worker); bytes/conn = (after - before) / $IDLE_N."
  for name in "${BERTHS[@]}"; do
    [[ -s "$WORK/$name.err" ]] || continue
    cat "$WORK/$name.err" >>"$WORK/$name.all.err"
    nerr=$(grep -cE 'level=(error|warn)' "$WORK/$name.all.err" || true)
    if ((nerr > 0)); then
      echo
      echo "${LABEL[$name]} logged $nerr warning/error line(s) on stderr; first ones:"
      echo
      grep -m 5 -E 'level=(error|warn)' "$WORK/$name.all.err" | sed 's/^/    /'
    fi
  done
  echo
  echo "## Problems"
  echo
  if [[ -s "$PROBLEMS" ]]; then sed 's/^/- /' "$PROBLEMS"; else echo "none"; fi
  if [[ -s "$NOTES" ]]; then
    echo
    echo "## Measurement notes"
    echo
    sed 's/^/- /' "$NOTES"
  fi
} >"$REPORT"

mkdir -p bench/results
cp "$REPORT" bench/results/latest.md
cp "$RAW" bench/results/latest-raw.txt
cat "$REPORT"
log "report written to bench/results/latest.md (raw wrk output: bench/results/latest-raw.txt)"
[[ -s "$PROBLEMS" ]] && { log "there were problems (see the report)"; exit 1; }
exit 0
