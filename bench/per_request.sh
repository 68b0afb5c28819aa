#!/usr/bin/env bash
# Where a proxied request's cost goes: Berth, nginx and HAProxy behind bench/origin.cc, small
# keep-alive requests at 64 and 256 connections, and per request: the proxy's CPU (and the
# kernel's share of it), the TCP segments the whole path sent (client -> proxy -> origin and
# back), the pure ACKs among them, and the proxy's syscalls. It answers "could the proxy do
# less?" with what the kernel counts, not with throughput, which moves with the machine.
#
# Same placement as bench/run.sh: each proxy one worker/thread on core 0; wrk (-t 1) and the
# origin on core 1; all on 127.0.0.1; every proxy keeps up to 1024 idle origin connections.
# Segments and pure ACKs are system-wide counters (nstat: TcpOutSegs, TcpExtTCPPureAcks), so
# the machine should be otherwise idle. Syscalls are counted in a second run of each, under
# perf (linux-perf; without it that column says "-"), so tracing does not slow the first.
#
# Usage: bash bench/per_request.sh [--quick]   (builds nothing: run bench/run.sh once first,
# or point BENCH_BUILD_DIR at a Release build with berth and berth-bench-origin)
#   BENCH_DURATION, BENCH_REPS   seconds per wrk run, rounds [5, 3; --quick: 2, 1]
# Writes bench/results/per-request.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_LOG_TAG=per-request
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_args 5 3 2 1 "$@"

bench_binaries
for b in "$BERTH_BIN" "$ORIGIN_BIN"; do [[ -x "$b" ]] || die "$b is missing: build Release first (bash bench/run.sh builds it)"; done
for t in wrk nginx haproxy nstat; do command -v "$t" >/dev/null || die "$t is missing: bash scripts/install-deps.sh --bench"; done
HAVE_PERF=0
perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 && HAVE_PERF=1

PROXY_CORE=0
LOAD_CORE=1
pick_port_base 8 18680 18780 18880
bench_workdir berth-per-request
declare -A PORT=([origin]=$PB [berth]=$((PB + 1)) [nginx]=$((PB + 2)) [haproxy]=$((PB + 3)))

# The configurations bench/run.sh gives its plain contestants (bench/lib.sh writes them).
write_berth_proxy "$WORK/berth.yaml" "[\"127.0.0.1:${PORT[berth]}\"]" $((PB + 4)) "${PORT[origin]}"
write_nginx_proxy "$WORK/nginx" "127.0.0.1:${PORT[nginx]}" "${PORT[origin]}"
write_haproxy_proxy "$WORK/haproxy.cfg" "${PORT[haproxy]}" "${PORT[origin]}"

start_bg origin "$LOAD_CORE" "$ORIGIN_BIN" --host 127.0.0.1 --port "${PORT[origin]}"
start_bg berth "$PROXY_CORE" "$BERTH_BIN" --config "$WORK/berth.yaml"
start_bg nginx "$PROXY_CORE" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
start_bg haproxy "$PROXY_CORE" haproxy -db -f "$WORK/haproxy.cfg"
for name in origin berth nginx haproxy; do
  deadline=$((SECONDS + 20))
  until http_ok "${PORT[$name]}" /small 100; do
    alive "$name" || { show_logs "$name"; die "$name exited during startup"; }
    ((SECONDS < deadline)) || { show_logs "$name"; die "$name does not answer GET /small on 127.0.0.1:${PORT[$name]}"; }
    sleep 0.2
  done
done
log "up: origin ${PORT[origin]}, berth ${PORT[berth]}, nginx ${PORT[nginx]}, haproxy ${PORT[haproxy]}; $DURATION s per run, $REPS round(s), perf: $HAVE_PERF"

RESULTS=$WORK/results.tsv
: >"$RESULTS"
wrk_small() {  # name conns : one wrk run of DURATION s on GET /small into $WORK/wrk.out; prints the requests done
  local reqs
  timeout -k 5 $((DURATION + 30)) taskset -c "$LOAD_CORE" wrk -t 1 -c "$2" -d "${DURATION}s" \
    "http://127.0.0.1:${PORT[$1]}/small" >"$WORK/wrk.out" 2>&1 || true
  read -r _ _ _ reqs _ _ < <(parse_wrk "$WORK/wrk.out")
  ((reqs > 0)) || die "$1 c=$2: wrk completed no request: $(head -c 300 "$WORK/wrk.out")"
  echo "$reqs"
}

# Two wrk runs per proxy, connection count and round: the first measures CPU, segments and
# req/s with nothing attached; the second counts syscalls under perf. They are kept apart
# because an enabled syscall tracepoint makes every syscall slower, which would charge a proxy
# that makes more syscalls (nginx) more CPU per request than it spends untraced.
one_run() {  # name conns round
  local name=$1 c=$2 pid=${PID_OF[$1]} u0 s0 u1 s1 l0 l1 pids perf_pid sys=- rps reqs segs acks
  read -r u0 s0 < <(proc_times "$pid")
  l0=$(core_ticks "$LOAD_CORE")
  nstat -n >/dev/null
  reqs=$(wrk_small "$name" "$c")
  nstat >"$WORK/nstat.out" 2>/dev/null || true
  l1=$(core_ticks "$LOAD_CORE")
  read -r u1 s1 < <(proc_times "$pid")
  read -r rps _ < <(parse_wrk "$WORK/wrk.out")
  segs=$(awk '$1 == "TcpOutSegs" { print $2 }' "$WORK/nstat.out")
  acks=$(awk '$1 == "TcpExtTCPPureAcks" { print $2 }' "$WORK/nstat.out")
  if ((HAVE_PERF)); then
    # perf counts from just before wrk starts to just after it ends; an idle proxy makes next
    # to no syscalls, so the count is the run's.
    pids=$(descendants "$pid" | paste -sd, -)
    perf stat -x, -o "$WORK/perf.out" -e raw_syscalls:sys_enter -p "$pids" -- sleep $((DURATION + 1)) 2>/dev/null &
    perf_pid=$!
    sleep 0.3
    local traced
    traced=$(wrk_small "$name" "$c")
    wait "$perf_pid" || true
    sys=$(awk -F, -v r="$traced" '/raw_syscalls/ { printf "%.2f", $1 / r }' "$WORK/perf.out")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$3" "$rps" \
    "$(awk -v t=$((u1 - u0 + s1 - s0)) -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t * 1e6 / hz / r }')" \
    "$(awk -v s=$((s1 - s0)) -v t=$((u1 - u0 + s1 - s0)) 'BEGIN { printf "%.0f", t ? 100 * s / t : 0 }')" \
    "$(awk -v n="${segs:-0}" -v r="$reqs" 'BEGIN { printf "%.3f", n / r }')|$(awk -v n="${acks:-0}" -v r="$reqs" 'BEGIN { printf "%.3f", n / r }')" \
    "$sys" "$(busy_percent "$l0" "$l1")" >>"$RESULTS"
  log "$name c=$c round $3: $(tail -n 1 "$RESULTS" | cut -f4- | tr '\t' ' ')"
}

for name in berth nginx haproxy; do timeout 30 taskset -c "$LOAD_CORE" wrk -t 1 -c 256 -d 1s "http://127.0.0.1:${PORT[$name]}/small" >/dev/null 2>&1 || true; done
for ((rep = 1; rep <= REPS; rep++)); do
  for c in 64 256; do
    # The proxies' order rotates from round to round.
    order=(berth nginx haproxy)
    for ((i = 0; i < 3; i++)); do one_run "${order[(i + rep - 1) % 3]}" "$c" "$rep"; done
  done
done

OUT=bench/results/per-request.md
med() { awk -F'\t' -v n="$1" -v c="$2" -v col="$3" '$1 == n && $2 == c { split($col, a, "|"); print a['"${4:-1}"'] }' "$RESULTS" | median -; }
{
  echo "# Berth per-request cost"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); $("$BERTH_BIN" --version 2>/dev/null | head -n 1); $(nginx -v 2>&1); $(haproxy -v 2>/dev/null | head -n 1 | cut -d' ' -f1-3)"
  echo "- machine: nproc=$(nproc), kernel $(uname -r)"
  echo "- method: bench/per_request.sh. berth-origin (100 B bodies) and wrk -t 1 on core 1, each proxy one"
  echo "  worker/thread on core 0, keep-alive both sides, $DURATION s per run, $REPS round(s), medians."
  echo "  CPU = the proxy's utime + stime from /proc; kernel share = stime / (utime + stime);"
  echo "  segments and pure ACKs = nstat TcpOutSegs / TcpExtTCPPureAcks over the whole machine"
  echo "  (client, proxy and origin), per request; syscalls = perf raw_syscalls:sys_enter of the proxy,"
  echo "  counted in a second run under perf. Load core busy = how busy core 1 (wrk and the origin) was:"
  echo "  near 100%, the client side, not the proxy, set the pace and req/s says little about the proxy."
  echo
  echo "| conns | proxy | req/s | CPU/req | kernel share | segments/req | pure ACKs/req | syscalls/req | load core busy |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  for c in 64 256; do
    for name in berth nginx haproxy; do
      echo "| $c | $name | $(printf '%.0f' "$(med "$name" "$c" 4)") | $(med "$name" "$c" 5) µs | $(med "$name" "$c" 6)% | $(med "$name" "$c" 7 1) | $(med "$name" "$c" 7 2) | $(med "$name" "$c" 8) | $(med "$name" "$c" 9)% |"
    done
  done
  echo
  echo "Raw rows (name, conns, round, req/s, CPU µs/req, kernel %, segments|pure ACKs per request, syscalls/req, load core busy %):"
  echo
  echo '```'
  cat "$RESULTS"
  echo '```'
} >"$OUT"
cat "$OUT"
log "written to $OUT"
