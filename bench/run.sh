#!/usr/bin/env bash
# Berth benchmark: Berth vs nginx vs HAProxy (and the origin directly) on loopback; Berth runs
# three times: as a plain proxy, as "Berth+hc" with an active health check and outlier detection
# on the origin service, and as "Berth+obs" with the JSON access log to a file and /metrics
# scraped every second; nginx also runs twice, plain and as "nginx+log" with an equivalent JSON
# access_log to a file.
#
#   bench/run.sh [--quick]
#
# Builds Release into build-bench/ and starts two origins on core 1: bench/origin.cc
# ("berth-origin") and an nginx serving static files ("nginx"). Every proxy (one worker/thread,
# keep-alive to the origin, no access logs) runs once per origin, pinned to core 0, and wrk
# (-t 1, on core 1) drives each in interleaved rounds; the proxy's CPU time (utime + stime
# from /proc/PID/stat) per completed request is measured around every run. Then measures idle
# memory per keep-alive connection with bench/idle_conns.cc (behind berth-origin only). Prints
# a markdown report with ratios and PASS/FAIL against Berth's bars (a missed bar is a result,
# not an error) and writes it to bench/results/latest.md (raw wrk output goes to
# bench/results/latest-raw.txt). See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   BENCH_SKIP_BERTH=1     leave Berth and Berth+hc out (development only) [0]
#   BENCH_SKIP_BUILD=1     skip install-deps and the cmake build [0]
#   BENCH_BUILD_DIR        build directory [build-bench]
#   BENCH_TOOLS_DIR        where berth-bench-origin / -idle_conns live [$BENCH_BUILD_DIR]
#   BENCH_BERTH            the berth binary [$BENCH_BUILD_DIR/berth]
#   BENCH_DURATION, BENCH_REPS   seconds per wrk run, repetitions [10, 3; --quick: 3, 1]; a
#                          proxy runs twice per scenario and round, for DURATION / 2 s each
#                          (rounded up: wrk takes whole seconds)
#   BENCH_IDLE_CONNS       idle connections for the memory test [10000]
#   BENCH_PORT_BASE        first loopback port used (needs +0..+21) [first free of 18480,
#                          18580, ..., 18980]
#   BENCH_QUIET_WAIT       seconds to wait for other CPU load to settle before each round [300]
#   BENCH_QUIET_BUDGET     total seconds all such waiting may take; after that, no more
#                          waiting or repeating [1200]
#   BENCH_FOREIGN_MAX      a wrk run during which other processes used more than this percent
#                          of the CPUs is repeated [5] ...
#   BENCH_RETRIES          ... at most this many times [2]
#   BENCH_KEEP=1           keep the temporary work directory (configs, logs)
#   BENCH_ORIGINS          origins to run, a subset of "bo ngx" [bo ngx]
#   BENCH_CONTESTANTS      proxies to run, a subset of "berth berth_hc berth_obs nginx nginx_log
#                          haproxy" [all]; the origin always runs. Bars need their contestants.
#   BENCH_SKIP_MEMORY=1    skip the idle-memory test [0]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_LOG_TAG=bench
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_args 10 3 3 1 "$@"
CONNS_LIST=(64 256)
BODIES=(small 64k)
# Two origins, each behind every contestant: bo = bench/origin.cc, ngx = nginx serving static
# files. Both answer GET /small and GET /64k; the small bodies differ in size.
read -r -a ORIGINS <<<"${BENCH_ORIGINS:-bo ngx}"
declare -A ORIGIN_LABEL=([bo]="berth-origin" [ngx]="nginx")
declare -A BODY_BYTES=([bo/small]=100 [bo/64k]=65536 [ngx/small]=5 [ngx/64k]=65536)
body_label() {  # origin body
  case "$2" in small) echo "small (${BODY_BYTES[$1/small]} B)" ;; 64k) echo "64 KiB" ;; esac
}
bench_binaries
TOOLS_DIR=${BENCH_TOOLS_DIR:-$BUILD_DIR}
SKIP_BERTH=${BENCH_SKIP_BERTH:-0}
IDLE_N=${BENCH_IDLE_CONNS:-10000}
QUIET_WAIT=${BENCH_QUIET_WAIT:-300}

PORT_SPAN=22
pick_port_base "$PORT_SPAN" 18480 18580 18680 18780 18880 18980
# An instance is "contestant@origin": origin@bo and origin@ngx are the origins themselves,
# berth@ngx is Berth in front of the nginx origin, and so on. All of them run at once (idle
# but for the one being measured), so rounds can interleave both origins.
declare -A PORT=([origin@bo]=$PB [origin@ngx]=$((PB + 1))
                 [berth@bo]=$((PB + 2)) [berth@ngx]=$((PB + 3))
                 [berth_hc@bo]=$((PB + 4)) [berth_hc@ngx]=$((PB + 5))
                 [nginx@bo]=$((PB + 6)) [nginx@ngx]=$((PB + 7))
                 [haproxy@bo]=$((PB + 8)) [haproxy@ngx]=$((PB + 9))
                 [berth_obs@bo]=$((PB + 14)) [berth_obs@ngx]=$((PB + 15))
                 [nginx_log@bo]=$((PB + 16)) [nginx_log@ngx]=$((PB + 17)))
declare -A ADMIN_PORT=([berth@bo]=$((PB + 10)) [berth@ngx]=$((PB + 11))
                       [berth_hc@bo]=$((PB + 12)) [berth_hc@ngx]=$((PB + 13))
                       [berth_obs@bo]=$((PB + 18)) [berth_obs@ngx]=$((PB + 19)))
PROXY_CORE=0
LOAD_CORE=1

# ---------------------------------------------------------------- process bookkeeping
bench_workdir berth-bench

wait_answers() {  # instance timeout_s : wait until /small and /64k answer correctly
  local name=$1 port=${PORT[$1]} o=${1#*@} deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    alive "$name" || return 1
    if http_ok "$port" /small "${BODY_BYTES[$o/small]}" && http_ok "$port" /64k "${BODY_BYTES[$o/64k]}"; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------- 1. deps and build
[[ "${BENCH_SKIP_BUILD:-0}" == 1 ]] || build_release "$BUILD_DIR"
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
NGINX_NOFILE=$NOFILE
((NGINX_NOFILE > 200000)) && NGINX_NOFILE=200000

# The nginx origin: static files from the run's temp dir, /small (5 bytes) and /64k (65536
# bytes), keep-alive without a practical request limit, no access log. One worker, started on
# core 1 with bench/origin.cc's core.
NGX_ORIGIN_DIR=$WORK/origin@ngx
mkdir -p "$NGX_ORIGIN_DIR/www"
printf 'hello' >"$NGX_ORIGIN_DIR/www/small"
head -c 65536 /dev/zero | tr '\0' 'b' >"$NGX_ORIGIN_DIR/www/64k"
{
  nginx_common "$NGX_ORIGIN_DIR"
  cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$NGX_ORIGIN_DIR")
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:${PORT[origin@ngx]} backlog=4096;
        root $NGX_ORIGIN_DIR/www;
        location / {
        }
    }
}
EOF
} >"$NGX_ORIGIN_DIR/nginx.conf"

# Berth, and Berth+hc: the same plus an active health check of the origin every second (GET
# /small: bench/origin.cc answers 404 on /) and outlier detection with its default settings.
# Berth+obs: the Berth configuration plus the JSON access log to a file in the work directory
# (and /metrics scraped every second while it runs, see start_scraper).
write_berth_config() {  # instance extra-service-keys [extra top-level yaml]
  write_berth_proxy "$WORK/$1.yaml" "[\"127.0.0.1:${PORT[$1]}\"]" "${ADMIN_PORT[$1]}" "${PORT[origin@${1#*@}]}" "$2" "${3:-}"
}

# nginx+log: nginx with a JSON access log to a file carrying the fields Berth's JSON log has
# (where nginx has them), buffered as an operator would run it (64 KiB, flushed every second;
# Berth writes its log in batches too).
nginx_access_log() {  # instance
  if [[ "${1%@*}" != nginx_log ]]; then echo "    access_log off;"; return; fi
  cat <<EOF
    log_format berth_json escape=json '{"time":"\$time_iso8601","request_id":"\$request_id",'
        '"client":"\$remote_addr:\$remote_port","method":"\$request_method","host":"\$host",'
        '"path":"\$uri","query":"\$args","protocol":"\$server_protocol","status":\$status,'
        '"bytes_in":\$request_length,"bytes_out":\$bytes_sent,"duration_ms":\$request_time,'
        '"instance":"\$upstream_addr","connect_ms":"\$upstream_connect_time",'
        '"first_byte_ms":"\$upstream_header_time","user_agent":"\$http_user_agent",'
        '"referer":"\$http_referer"}';
    access_log $WORK/$1/access.log berth_json buffer=64k flush=1s;
EOF
}

write_nginx_proxy_config() {  # instance
  write_nginx_proxy "$WORK/$1" "127.0.0.1:${PORT[$1]}" "${PORT[origin@${1#*@}]}" "$(nginx_access_log "$1")"
}

write_haproxy_config() {  # instance
  write_haproxy_proxy "$WORK/$1.cfg" "${PORT[$1]}" "${PORT[origin@${1#*@}]}"
}

nginx_check() {  # dir
  nginx -t -p "$1" -c "$1/nginx.conf" -e "$1/error.log" >/dev/null 2>"$1/nginx-t.err" \
    || { cat "$1/nginx-t.err" >&2; die "nginx config test failed for $1/nginx.conf"; }
}
nginx_check "$NGX_ORIGIN_DIR"
for o in "${ORIGINS[@]}"; do
  write_berth_config "berth@$o" ""
  write_berth_config "berth_hc@$o" ", health: {path: /small, interval: 1s}, outlier: {}"
  write_berth_config "berth_obs@$o" "" "access_log: {format: json, path: \"$WORK/berth_obs@$o.access.log\"}"
  write_nginx_proxy_config "nginx@$o"
  nginx_check "$WORK/nginx@$o"
  write_nginx_proxy_config "nginx_log@$o"
  nginx_check "$WORK/nginx_log@$o"
  write_haproxy_config "haproxy@$o"
  haproxy -c -f "$WORK/haproxy@$o.cfg" >"$WORK/haproxy@$o-c.out" 2>&1 \
    || { cat "$WORK/haproxy@$o-c.out" >&2; die "haproxy config check failed ($WORK/haproxy@$o.cfg)"; }
done

# ---------------------------------------------------------------- contestants
CONTESTANTS=(origin)
BERTHS=()
[[ "$SKIP_BERTH" == 1 ]] || BERTHS=(berth berth_hc berth_obs)
CONTESTANTS+=("${BERTHS[@]}" nginx nginx_log haproxy)
if [[ -n "${BENCH_CONTESTANTS:-}" ]]; then
  kept=(origin)
  for name in "${CONTESTANTS[@]:1}"; do
    [[ " $BENCH_CONTESTANTS " == *" $name "* ]] && kept+=("$name")
  done
  CONTESTANTS=("${kept[@]}")
  kept=()
  for name in "${BERTHS[@]}"; do [[ " $BENCH_CONTESTANTS " == *" $name "* ]] && kept+=("$name"); done
  BERTHS=("${kept[@]}")
fi
PROXIES=("${CONTESTANTS[@]:1}")
has_contestant() { [[ " ${CONTESTANTS[*]} " == *" $1 "* ]]; }
declare -A LABEL=([origin]="origin (direct)" [berth]="Berth" [berth_hc]="Berth+hc" [berth_obs]="Berth+obs"
                  [nginx]="nginx" [nginx_log]="nginx+log" [haproxy]="HAProxy")

mkdir -p "$WORK/wrk"
port_range_free "$PB" "$PORT_SPAN" || die "a port in $PB..$((PB + PORT_SPAN - 1)) is now in use (set BENCH_PORT_BASE)"

NOTES=$WORK/notes.txt
: >"$NOTES"
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-1200}  # all waiting for quiet together, seconds
QUIET_SPENT=0
start_origin() {  # origin id (bo, ngx)
  local name=origin@$1
  case "$1" in
    bo) start_bg "$name" "$LOAD_CORE" "$ORIGIN_BIN" --host 127.0.0.1 --port "${PORT[$name]}" ;;
    ngx) start_bg "$name" "$LOAD_CORE" nginx -p "$WORK/$name" -c "$WORK/$name/nginx.conf" -e "$WORK/$name/error.log" ;;
  esac
  if ! wait_answers "$name" 10; then
    show_logs "$name"
    [[ -f "$WORK/$name/error.log" ]] && tail -n 20 "$WORK/$name/error.log" >&2
    die "the ${ORIGIN_LABEL[$1]} origin does not answer GET /small and GET /64k correctly on 127.0.0.1:${PORT[$name]}"
  fi
}

start_proxy() {  # instance (proxy@origin)
  local name=$1 deadline
  case "${name%@*}" in
    berth|berth_hc|berth_obs)
      start_bg "$name" "$PROXY_CORE" "$BERTH_BIN" --config "$WORK/$name.yaml"
      deadline=$((SECONDS + 20))
      until grep -q 'event=ready' "$WORK/$name.err" 2>/dev/null; do
        if ! alive "$name"; then show_logs "$name"; die "$name exited during startup"; fi
        ((SECONDS < deadline)) || { show_logs "$name"; die "$name did not log event=ready within 20 s"; }
        sleep 0.1
      done
      ;;
    nginx|nginx_log)
      start_bg "$name" "$PROXY_CORE" nginx -p "$WORK/$name" -c "$WORK/$name/nginx.conf" -e "$WORK/$name/error.log"
      ;;
    haproxy)
      start_bg "$name" "$PROXY_CORE" haproxy -db -f "$WORK/$name.cfg"
      ;;
  esac
  if ! wait_answers "$name" 15; then
    show_logs "$name"
    [[ -f "$WORK/$name/error.log" ]] && tail -n 20 "$WORK/$name/error.log" >&2
    die "$name does not answer GET /small and GET /64k correctly on 127.0.0.1:${PORT[$name]}"
  fi
  if [[ "${name%@*}" == berth_hc ]] && [[ "$(origin_health "$name")" != healthy ]]; then
    show_logs "$name"
    die "$name: the origin's active health check is not on and passing: $(admin_get "$name" /api/routes)"
  fi
  if [[ "${name%@*}" == berth_obs ]]; then
    admin_get "$name" /metrics | grep -q '^berth_requests_total' \
      || { show_logs "$name"; die "$name: /metrics has no berth_requests_total"; }
    start_scraper "$name"
  fi
}

# A Berth+obs instance is scraped every second, as Prometheus would, for as long as it runs.
start_scraper() {  # instance
  start_bg "scrape_$1" "$LOAD_CORE" bash -c \
    "while :; do curl -s -o /dev/null --max-time 2 http://127.0.0.1:${ADMIN_PORT[$1]}/metrics; sleep 1; done"
}

# Where an instance's access log is (empty: it has none).
access_log_of() {  # instance
  case "${1%@*}" in
    berth_obs) echo "$WORK/$1.access.log" ;;
    nginx_log) echo "$WORK/$1/access.log" ;;
  esac
}

admin_get() {  # instance path : a Berth instance's admin API answer
  curl -s --max-time 2 "http://127.0.0.1:${ADMIN_PORT[$1]}$2" 2>/dev/null || true
}
origin_health() {  # instance : the probe state of the origin in a Berth+hc instance's route table
  admin_get "$1" /api/routes | sed -n 's/.*"health":"\([a-z]*\)".*/\1/p'
}

# ---------------------------------------------------------------- 2-4. throughput / latency
RESULTS=$WORK/results.tsv
HALVES=$WORK/halves.tsv
: >"$RESULTS"
: >"$HALVES"
PROBLEMS=$WORK/problems.txt
: >"$PROBLEMS"
RAW=$WORK/raw.txt
: >"$RAW"

sys_ticks() {  # -> "busy total": user+nice+system ticks and all ticks, summed over all CPUs
  awk '/^cpu / { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
CLK_TCK=$(getconf CLK_TCK)
RETRIES=${BENCH_RETRIES:-2}
FOREIGN_MAX=${BENCH_FOREIGN_MAX:-5}

# One wrk run against an instance (contestant@origin). Sets CONT_TICKS to the CPU ticks
# (utime + stime) the contestant used during the run (a proxy: its process and children, nginx
# master + worker; origin@*: the origin itself), and FOREIGN to the share (percent of all CPUs)
# of user+system CPU time used by processes other than wrk, the origin and the contestant.
FOREIGN=0
CONT_TICKS=0
wrk_once() {  # instance conns body file (runs for RUN_SECS seconds)
  local name=$1 c=$2 body=$3 f=$4 o=${1#*@} org0 org1 cont0 cont1 sys0 sys1 wrk_t org_t
  local TIMEFORMAT='%3U %3S'
  local origin_pid=${PID_OF[origin@$o]} cont_pid=${PID_OF[$1]}
  org0=$(proc_ticks "$origin_pid")
  cont0=$(proc_ticks "$cont_pid")
  sys0=$(sys_ticks)
  { time timeout -k 5 $((DURATION + 30)) taskset -c "$LOAD_CORE" \
      wrk -t 1 -c "$c" -d "${RUN_SECS}s" --latency "http://127.0.0.1:${PORT[$name]}/$body" >"$f" 2>&1; } \
    2>"$WORK/wrk.time" || true
  sys1=$(sys_ticks)
  cont1=$(proc_ticks "$cont_pid")
  org1=$(proc_ticks "$origin_pid")
  CONT_TICKS=$((cont1 - cont0))
  org_t=$((org1 - org0))
  [[ "$name" == origin@* ]] && org_t=0  # the contestant is the origin: count it once
  wrk_t=$(awk -v hz="$CLK_TCK" '{ printf "%d", ($1 + $2) * hz }' "$WORK/wrk.time" 2>/dev/null || echo 0)
  FOREIGN=$(awk -v a="$sys0" -v b="$sys1" -v ours=$((CONT_TICKS + org_t)) -v w="${wrk_t:-0}" 'BEGIN {
    split(a, x, " "); split(b, y, " "); total = y[2] - x[2]
    f = (total > 0 ? 100 * (y[1] - x[1] - ours - w) / total : 0)
    printf "%d", (f < 0 ? 0 : f + 0.5) }')
}

# results.tsv columns: 1 contestant, 2 origin, 3 conns, 4 body, 5 round, 6 req/s, 7 p50 us,
# 8 p99 us, 9 requests, 10 non-2xx, 11 socket errors, 12 status, 13 contestant CPU ticks,
# 14 contestant CPU us per request (-1 when unknown). halves.tsv: the same, one row per half
# run of a proxy (see the rounds below), merged into results.tsv by merge_halves.
run_wrk() {  # instance conns body round [half: a|b] : a run of DURATION s, or of HALF_SECS
  local name=$1 c=$2 body=$3 rep=$4 half=${5:-} f try cn=${1%@*} o=${1#*@} out=$RESULTS
  local who="${LABEL[$cn]} [origin: ${ORIGIN_LABEL[$o]}]"
  local what="$who c=$c $body round $rep${half:+ (half $half)}"
  RUN_SECS=$DURATION
  if [[ -n "$half" ]]; then RUN_SECS=$HALF_SECS out=$HALVES; fi
  f="$WORK/wrk/${cn}_${o}_${c}_${body}_${rep}${half}.txt"
  if ! alive "$name"; then
    echo "$who died before the $c conns / $body run (round $rep)" >>"$PROBLEMS"
    echo -e "$cn\t$o\t$c\t$body\t$rep\t0\t-1\t-1\t0\t0\t0\tdead\t0\t-1" >>"$out"
    return 0
  fi
  local alog
  alog=$(access_log_of "$name")
  for ((try = 0; ; try++)); do
    [[ -z "$alog" ]] || : >"$alog"  # both open it O_APPEND: keeps the disk from filling
    wrk_once "$name" "$c" "$body" "$f"
    ((FOREIGN <= FOREIGN_MAX)) && break
    if ((try >= RETRIES || QUIET_SPENT >= QUIET_BUDGET)); then
      echo "$what: other processes used ${FOREIGN}% of the CPUs during the run (kept after $try repetition(s))" >>"$NOTES"
      break
    fi
    log "$what: other processes used ${FOREIGN}% of the CPUs; repeating the run"
    wait_quiet "repeating $what"
  done
  local rps p50 p99 reqs non2xx serr cpu_us
  read -r rps p50 p99 reqs non2xx serr < <(parse_wrk "$f")
  cpu_us=$(awk -v t="$CONT_TICKS" -v hz="$CLK_TCK" -v n="$reqs" \
    'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n; else print -1 }')
  { echo "===== $cn origin=${ORIGIN_LABEL[$o]} conns=$c body=$body round=$rep${half:+ half=$half} (${RUN_SECS} s; other CPU use ${FOREIGN}%; contestant CPU ${CONT_TICKS} ticks of 1/${CLK_TCK} s, ${cpu_us} us/request)"
    cat "$f"; } >>"$RAW"
  echo -e "$cn\t$o\t$c\t$body\t$rep\t$rps\t$p50\t$p99\t$reqs\t$non2xx\t$serr\tok\t$CONT_TICKS\t$cpu_us" >>"$out"
  log "$(printf '%-8s %-3s c=%-3s %-5s round %d%-2s: %8.0f req/s  p50 %6s us  p99 %6s us  cpu %7s us/req  non-2xx %s  sock-err %s  other-cpu %s%%' \
    "$cn" "$o" "$c" "$body" "$rep" "$half" "$rps" "$p50" "$p99" "$cpu_us" "$non2xx" "$serr" "$FOREIGN")"
  if [[ -n "$alog" ]]; then  # the log must hold one line per request (wrk's count may lag)
    sleep 1.2
    local lines
    lines=$(wc -l <"$alog")
    log "$what: access log has $lines lines for $reqs requests"
    ((lines >= reqs)) || echo "$what: access log has $lines lines for $reqs requests" >>"$PROBLEMS"
  fi
  if ((non2xx > 0)); then echo "$what: $non2xx non-2xx/3xx responses (of $reqs)" >>"$PROBLEMS"; fi
  if ((serr > 0)); then echo "$what: socket errors: $(grep 'Socket errors' "$f" | sed 's/^ *//')" >>"$PROBLEMS"; fi
  if [[ "$rps" == 0 ]]; then echo "$what: wrk produced no result: $(head -c 300 "$f" | tr '\n' ' ')" >>"$PROBLEMS"; fi
  if ! alive "$name"; then echo "$who died during the c=$c $body run (round $rep)" >>"$PROBLEMS"; fi
  sleep 0.5
  return 0
}

log "work directory $WORK; $DURATION s per run, $REPS round(s), origins: ${ORIGINS[*]}, contestants: ${CONTESTANTS[*]}"
for o in "${ORIGINS[@]}"; do
  start_origin "$o"
  log "origin ${ORIGIN_LABEL[$o]} is up on 127.0.0.1:${PORT[origin@$o]}"
done
for o in "${ORIGINS[@]}"; do
  for name in "${PROXIES[@]}"; do
    start_proxy "$name@$o"
    log "$name (origin ${ORIGIN_LABEL[$o]}) is up on 127.0.0.1:${PORT[$name@$o]}"
  done
done

log "warm-up (1 s per origin, contestant and body)"
for o in "${ORIGINS[@]}"; do
  for name in "${CONTESTANTS[@]}"; do
    for body in "${BODIES[@]}"; do
      timeout -k 5 30 taskset -c "$LOAD_CORE" wrk -t 1 -c 64 -d 1s "http://127.0.0.1:${PORT[$name@$o]}/$body" >/dev/null 2>&1 || true
    done
  done
done

# Each round runs every origin x conns x body scenario, and within a scenario every
# contestant back to back, so slow drifts of the machine hit all contestants alike. The origin
# goes first in each scenario; the proxies' order rotates from scenario to scenario and from
# round to round (rotation_order), so no proxy always runs in the same place. With a fixed
# order, Berth (first after the origin) measured far below Berth+hc and Berth+obs, which run
# the same data path right after it, in several rounds of the first scenario after the quiet
# wait (e.g. 37.7k against 55.6k req/s), and never far above.
#
# Within a scenario each proxy runs twice, for half the run each, in the order and then in its
# reverse (A B C C B A): the midpoints of every proxy's two halves coincide, so a drift of the
# machine that is linear over the scenario weighs on every proxy alike, whatever its place, and
# on every ratio between two proxies. A proxy's figures for the round combine its halves
# (merge_halves). In the run of 2026-12-04 (aba4785, one 5-s run per proxy and round), Berth+obs
# measured 0.87x Berth's req/s on 64 KiB bodies, where its access log costs about 1 µs (the
# difference on small bodies) of some 40 µs per request, and Berth+hc, the same data path as
# Berth, 0.91x; that spread was the machine, not the proxies.
# The proxies in the order for scenario $1 (0-based, in run order) of round $2 (1-based): the
# list rotated by the scenario's index plus the round's share of a turn, so each proxy takes
# different places in the rounds of one scenario and every place equally often over a run.
rotation_order() {
  local n=${#PROXIES[@]} step off i
  ((n > 0)) || return 0
  step=$(( n / REPS )); ((step >= 1)) || step=1
  off=$(( ($1 + ($2 - 1) * step) % n ))
  for ((i = 0; i < n; i++)); do echo "${PROXIES[(off + i) % n]}"; done
}
# One results.tsv row for contestant $1 (origin $2, conns $3, body $4, round $5) from its two
# half rows: requests and CPU ticks summed, req/s = all requests over the two halves' time, p50
# and p99 the mean of the halves', errors summed; the status is the first half's that is not ok.
merge_halves() {  # contestant origin conns body round
  awk -F'\t' -v OFS='\t' -v n="$1" -v o="$2" -v c="$3" -v b="$4" -v r="$5" -v hz="$CLK_TCK" '
    $1 == n && $2 == o && $3 == c && $4 == b && $5 == r {
      k++; reqs += $9; if ($6 > 0) secs += $9 / $6; p50 += $7; p99 += $8; non2xx += $10; serr += $11
      ticks += $13; if ($12 != "ok" && st == "") st = $12; if ($7 < 0 || $8 < 0) lat_bad = 1
    }
    END {
      if (k == 0) exit
      rps = secs > 0 ? reqs / secs : 0
      print n, o, c, b, r, sprintf("%.2f", rps), (lat_bad ? -1 : p50 / k), (lat_bad ? -1 : p99 / k), reqs,
            non2xx, serr, (st == "" ? "ok" : st), ticks, (reqs > 0 ? sprintf("%.3f", ticks / hz * 1e6 / reqs) : -1)
    }' "$HALVES" >>"$RESULTS"
}
HALF_SECS=$(((DURATION + 1) / 2))  # wrk takes whole seconds: half the run, rounded up
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= REPS; rep++)); do
  wait_quiet "round $rep"
  log "round $rep of $REPS"
  scenario=0
  for o in "${ORIGINS[@]}"; do
    for c in "${CONNS_LIST[@]}"; do
      for body in "${BODIES[@]}"; do
        mapfile -t ORDER < <(rotation_order "$scenario" "$rep")
        run_wrk "origin@$o" "$c" "$body" "$rep"
        for name in "${ORDER[@]}"; do run_wrk "$name@$o" "$c" "$body" "$rep" a; done
        for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do run_wrk "${ORDER[i]}@$o" "$c" "$body" "$rep" b; done
        for name in "${ORDER[@]}"; do merge_halves "$name" "$o" "$c" "$body" "$rep"; done
        scenario=$((scenario + 1))
      done
    done
  done
done

if has_contestant berth_hc; then
  for o in "${ORIGINS[@]}"; do
    HC_STATE="origin health $(origin_health "berth_hc@$o"), outlier_ejections $(admin_get "berth_hc@$o" /api/stats |
      sed -n 's/.*"outlier_ejections":\([0-9]*\).*/\1/p')"
    log "Berth+hc (origin ${ORIGIN_LABEL[$o]}) after the rounds: $HC_STATE"
    [[ "$HC_STATE" == "origin health healthy, outlier_ejections 0" ]] \
      || echo "Berth+hc (origin ${ORIGIN_LABEL[$o]}) after the rounds: $HC_STATE (expected healthy, 0)" >>"$PROBLEMS"
  done
fi
for o in "${ORIGINS[@]}"; do
  for name in "${PROXIES[@]}"; do stop_named "$name@$o"; stop_named "scrape_$name@$o"; done
done
stop_named origin@ngx

# ---------------------------------------------------------------- 5. idle memory
MEMORY=$WORK/memory.tsv
: >"$MEMORY"
# Once per proxy, behind berth-origin only: what an idle client connection costs does not
# depend on the origin behind it (one request each, then nothing).
MEMORY_PROXIES=()
if [[ "${BENCH_SKIP_MEMORY:-0}" != 1 && " ${ORIGINS[*]} " == *" bo "* ]]; then
  for pname in "${PROXIES[@]}"; do
    [[ "$pname" == berth_obs || "$pname" == nginx_log ]] || MEMORY_PROXIES+=("$pname")
  done
fi
for pname in "${MEMORY_PROXIES[@]}"; do
  name=$pname@bo
  wait_quiet "the idle-memory test of $pname"
  log "idle memory: $pname with $IDLE_N keep-alive connections"
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
    alive "$name" || status="failed: $pname died while holding the connections"
  fi
  stop_named idle
  held=$(sed -n 's/^DONE held=\([0-9]*\) closed_by_peer=\([0-9]*\)/\1 \2/p' "$WORK/idle.out")
  if [[ "$status" == ok && -n "$held" && "${held#* }" != 0 ]]; then
    status="warning: ${held#* } connections closed by $pname during the measurement"
  fi
  [[ "$status" == ok ]] || echo "idle memory, $pname: $status" >>"$PROBLEMS"
  echo -e "$pname\t$before\t$after\t$status" >>"$MEMORY"
  log "$pname: RSS ${before} KiB -> ${after} KiB ($status)"
  stop_named "$name"
done

# ---------------------------------------------------------------- 6. report
stat_of() {  # contestant origin conns body column -> median over the rounds
  awk -F'\t' -v n="$1" -v o="$2" -v c="$3" -v b="$4" -v col="$5" \
    '$1 == n && $2 == o && $3 == c && $4 == b { print $col }' "$RESULTS" | median
}
sum_of() {  # contestant origin conns body column -> sum over the rounds
  awk -F'\t' -v n="$1" -v o="$2" -v c="$3" -v b="$4" -v col="$5" \
    '$1 == n && $2 == o && $3 == c && $4 == b { s += $col } END { print s + 0 }' "$RESULTS"
}
COL_RPS=6 COL_P50=7 COL_P99=8 COL_CPU=14
fmt_lat() { awk -v u="$1" 'BEGIN { if (u < 0) print "n/a"; else printf "%.3f ms", u / 1000 }'; }
fmt_cpu() { awk -v u="$1" 'BEGIN { if (u < 0) print "n/a"; else printf "%.2f µs", u }'; }
fmt_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a <= 0 || b <= 0) print "n/a"; else printf "%.2fx", a / b }'; }
ratio_of() {  # subject other origin conns body column -> subject/other of the medians, or n/a
  awk -v a="$(stat_of "$1" "$3" "$4" "$5" "$6")" -v b="$(stat_of "$2" "$3" "$4" "$5" "$6")" \
    'BEGIN { if (a <= 0 || b <= 0) print "n/a"; else printf "%.4f\n", a / b }'
}
verdict() {  # value op(ge|le) bar printf-format -> "<value> PASS|FAIL" (the exact value is compared)
  awk -v v="$1" -v op="$2" -v bar="$3" -v fmt="$4" 'BEGIN {
    if (v == "n/a" || v == "") { print "n/a"; exit }
    ok = (op == "ge" ? v + 0 >= bar + 0 : v + 0 <= bar + 0)
    printf fmt " %s\n", v, (ok ? "PASS" : "FAIL") }'
}

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

# Idle memory per connection of a proxy, in bytes, or n/a.
mem_per_conn() {  # proxy
  awk -F'\t' -v n="$1" -v conns="$IDLE_N" '$1 == n {
    if ($4 == "ok") printf "%.0f\n", ($3 - $2) * 1024 / conns; else print "n/a"; found = 1 }
    END { if (!found) print "n/a" }' "$MEMORY"
}

REPORT=$WORK/report.md
{
  echo "# Berth benchmark results"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: nproc=$NPROC, CPU: $CPU_MODEL, kernel $(uname -r)"
  echo "- versions: Berth $BERTH_V (git $GIT_REV, Release); nginx $NGINX_V; HAProxy $HAPROXY_V; $WRK_V"
  echo "- method: proxies pinned to core $PROXY_CORE (one worker/thread each, keep-alive to the origin, no access log);"
  echo "  the origin and wrk (-t 1) pinned to core $LOAD_CORE; all on 127.0.0.1. Two origins, each behind every"
  echo "  contestant: berth-origin (bench/origin.cc; /small = ${BODY_BYTES[bo/small]} B, /64k = 65536 B) and nginx"
  echo "  (one worker, static files, sendfile; /small = ${BODY_BYTES[ngx/small]} B, /64k = 65536 B)."
  echo "  Berth+hc: the Berth configuration plus an active health check of the origin (GET /small every 1 s)"
  echo "  and outlier detection at its defaults."
  echo "  ${DURATION} s per run, $REPS interleaved round(s)$( ((QUICK)) && echo ' (--quick)'); values are medians over the rounds."
  echo "  Within a scenario the origin runs first ($DURATION s), then each proxy twice for $HALF_SECS s, in an order"
  echo "  and then its reverse (A B C C B A), so a drift that is linear over the scenario weighs on all alike;"
  echo "  the order rotates from scenario to scenario and round to round (the raw output names each run in"
  echo "  the order it ran). A proxy's round: requests and CPU summed over its halves, req/s = requests over"
  echo "  their time, p50 and p99 the mean of the halves'."
  echo "  CPU/req = the contestant's utime + stime (/proc/PID/stat; nginx: master + worker; origin rows:"
  echo "  the origin itself) during the wrk run, divided by the requests wrk completed (tick = 1/$CLK_TCK s)."
  echo "  errors = non-2xx/3xx responses + socket errors reported by wrk, summed over the rounds."
  echo "- load average before the measurements: $LOAD_BEFORE; ulimit -n: $NOFILE"
  echo
  echo "## Throughput, latency and CPU per request"
  for o in "${ORIGINS[@]}"; do
    echo
    echo "### origin: ${ORIGIN_LABEL[$o]}"
    echo
    echo "| conns | body | contestant | req/s | p50 | p99 | CPU/req | errors |"
    echo "|---:|---|---|---:|---:|---:|---:|---:|"
    for c in "${CONNS_LIST[@]}"; do
      for body in "${BODIES[@]}"; do
        for name in "${CONTESTANTS[@]}"; do
          rps=$(stat_of "$name" "$o" "$c" "$body" $COL_RPS)
          p50=$(stat_of "$name" "$o" "$c" "$body" $COL_P50)
          p99=$(stat_of "$name" "$o" "$c" "$body" $COL_P99)
          cpu=$(stat_of "$name" "$o" "$c" "$body" $COL_CPU)
          errs=$(( $(sum_of "$name" "$o" "$c" "$body" 10) + $(sum_of "$name" "$o" "$c" "$body" 11) ))
          printf '| %s | %s | %s | %.0f | %s | %s | %s | %s |\n' "$c" "$(body_label "$o" "$body")" \
            "${LABEL[$name]}" "$rps" "$(fmt_lat "$p50")" "$(fmt_lat "$p99")" "$(fmt_cpu "$cpu")" "$errs"
        done
      done
    done
  done
  echo
  echo "## Ratios (Berth, Berth+hc or Berth+obs / other; req/s higher is better, p99 and CPU/req lower are better)"
  for o in "${ORIGINS[@]}"; do
    echo
    echo "### origin: ${ORIGIN_LABEL[$o]}"
    echo
    for c in "${CONNS_LIST[@]}"; do
      for body in "${BODIES[@]}"; do
        for subject in berth berth_hc berth_obs; do
          has_contestant "$subject" || continue
          others=(nginx haproxy)
          [[ "$subject" == berth_hc ]] && others+=(berth)
          [[ "$subject" == berth_obs ]] && others=(berth nginx_log)
          line="- $c conns, $(body_label "$o" "$body"):"
          for other in "${others[@]}"; do
            r1=n/a; r2=n/a; r3=n/a
            if [[ "$SKIP_BERTH" != 1 ]]; then
              r1=$(fmt_ratio "$(stat_of "$subject" "$o" "$c" "$body" $COL_RPS)" "$(stat_of "$other" "$o" "$c" "$body" $COL_RPS)")
              r2=$(fmt_ratio "$(stat_of "$subject" "$o" "$c" "$body" $COL_P99)" "$(stat_of "$other" "$o" "$c" "$body" $COL_P99)")
              r3=$(fmt_ratio "$(stat_of "$subject" "$o" "$c" "$body" $COL_CPU)" "$(stat_of "$other" "$o" "$c" "$body" $COL_CPU)")
            fi
            line+=" ${LABEL[$subject]}/${LABEL[$other]} req/s $r1, p99 $r2, CPU/req $r3;"
          done
          echo "${line%;}"
        done
      done
    done
  done
  echo
  echo "## Bars (Berth / nginx, each origin; the exact ratio of the medians is compared)"
  echo
  echo "| bar | origin | conns | body | Berth | Berth+hc |"
  echo "|---|---|---:|---|---|---|"
  n_pass=0 n_pass_hc=0 n_bars=0
  bar_row() {  # text origin conns body column op bar
    local cells=() subject v
    for subject in berth berth_hc; do
      v=n/a
      [[ "$SKIP_BERTH" == 1 ]] || v=$(ratio_of "$subject" nginx "$2" "$3" "$4" "$5")
      cells+=("$(verdict "$v" "$6" "$7" '%.3fx')")
    done
    [[ "${cells[0]}" == *PASS ]] && n_pass=$((n_pass + 1))
    [[ "${cells[1]}" == *PASS ]] && n_pass_hc=$((n_pass_hc + 1))
    n_bars=$((n_bars + 1))
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "${ORIGIN_LABEL[$2]}" "$3" "$(body_label "$2" "$4")" \
      "${cells[0]}" "${cells[1]}"
  }
  for o in "${ORIGINS[@]}"; do
    for c in "${CONNS_LIST[@]}"; do bar_row "req/s ≥ 1.15x" "$o" "$c" small $COL_RPS ge 1.15; done
    for c in "${CONNS_LIST[@]}"; do bar_row "req/s ≥ 1.00x" "$o" "$c" 64k $COL_RPS ge 1.0; done
    for c in "${CONNS_LIST[@]}"; do
      for body in "${BODIES[@]}"; do bar_row "p99 ≤ 1.00x" "$o" "$c" "$body" $COL_P99 le 1.0; done
    done
    for c in "${CONNS_LIST[@]}"; do bar_row "CPU/req ≤ 0.85x" "$o" "$c" small $COL_CPU le 0.85; done
  done
  mem_cells=()
  for subject in berth berth_hc; do
    v=n/a
    [[ "$SKIP_BERTH" == 1 ]] || v=$(mem_per_conn "$subject")
    if ((IDLE_N != 10000)) && [[ "$v" != n/a ]]; then
      mem_cells+=("$v B (bar is for 10,000 connections, measured $IDLE_N)")
    else
      mem_cells+=("$(verdict "$v" le 512 '%.0f B')")
    fi
  done
  [[ "${mem_cells[0]}" == *PASS ]] && n_pass=$((n_pass + 1))
  [[ "${mem_cells[1]}" == *PASS ]] && n_pass_hc=$((n_pass_hc + 1))
  n_bars=$((n_bars + 1))
  echo "| idle memory ≤ 512 B/conn (absolute) | berth-origin | $IDLE_N idle | - | ${mem_cells[0]} | ${mem_cells[1]} |"
  echo
  echo "Berth met $n_pass of $n_bars bars, Berth+hc $n_pass_hc of $n_bars$( ((QUICK)) && echo ' (a --quick run: too short and too few rounds to settle a bar)')."
  echo
  echo "## Observability bars (Berth+obs: JSON access log to a file, /metrics scraped every second)"
  echo
  echo "| origin | conns | body | Berth+obs / Berth req/s ≥ 0.95x | Berth+obs / nginx+log req/s ≥ 1.00x |"
  echo "|---|---:|---|---|---|"
  n_obs=0 n_obs_pass=0
  for o in "${ORIGINS[@]}"; do
    for c in "${CONNS_LIST[@]}"; do
      for body in "${BODIES[@]}"; do
        v1=$(verdict "$(ratio_of berth_obs berth "$o" "$c" "$body" $COL_RPS)" ge 0.95 '%.3fx')
        v2=$(verdict "$(ratio_of berth_obs nginx_log "$o" "$c" "$body" $COL_RPS)" ge 1.0 '%.3fx')
        for v in "$v1" "$v2"; do
          n_obs=$((n_obs + 1))
          [[ "$v" == *PASS ]] && n_obs_pass=$((n_obs_pass + 1))
        done
        printf '| %s | %s | %s | %s | %s |\n' "${ORIGIN_LABEL[$o]}" "$c" "$(body_label "$o" "$body")" "$v1" "$v2"
      done
    done
  done
  echo
  echo "Berth+obs met $n_obs_pass of $n_obs observability bars."
  echo
  echo "## Idle memory ($IDLE_N keep-alive connections, each after one GET /small; origin: berth-origin)"
  echo
  echo "| proxy | RSS before | RSS after | bytes/conn | note |"
  echo "|---|---:|---:|---:|---|"
  while IFS=$'\t' read -r name before after status; do
    printf '| %s | %s KiB | %s KiB | %s | %s |\n' "${LABEL[$name]}" "$before" "$after" "$(mem_per_conn "$name")" "$status"
  done <"$MEMORY"
  echo
  echo "RSS = VmRSS from /proc/PID/status (nginx: master + worker); bytes/conn = (after - before) / $IDLE_N."
  for name in "${BERTHS[@]}"; do
    for o in "${ORIGINS[@]}"; do
      inst=$name@$o
      [[ -s "$WORK/$inst.err" ]] && cat "$WORK/$inst.err" >>"$WORK/$inst.all.err"
      [[ -s "$WORK/$inst.all.err" ]] || continue
      nerr=$(grep -cE 'level=(error|warn)' "$WORK/$inst.all.err" || true)
      if ((nerr > 0)); then
        echo
        echo "${LABEL[$name]} (origin ${ORIGIN_LABEL[$o]}) logged $nerr warning/error line(s) on stderr; first ones:"
        echo
        grep -m 5 -E 'level=(error|warn)' "$WORK/$inst.all.err" | sed 's/^/    /'
      fi
    done
  done
  echo
  report_problems
} >"$REPORT"

mkdir -p bench/results
cp "$REPORT" bench/results/latest.md
cp "$RAW" bench/results/latest-raw.txt
cat "$REPORT"
log "report written to bench/results/latest.md (raw wrk output: bench/results/latest-raw.txt)"
[[ -s "$PROBLEMS" ]] && { log "there were problems (see the report)"; exit 1; }
exit 0
