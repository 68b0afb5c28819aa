#!/usr/bin/env bash
# What Berth's access control costs under load (issue #13, §5), on loopback.
#
#   bench/access.sh [--quick]
#
# One Berth (Release, one worker; the process pinned to core 0, so its background threads too) in front
# of bench/origin.cc, with these routes, chosen by Host:
#   plain.test    nothing but the route
#   policy.test   access: allow 127.0.0.0/8, deny 127.0.0.2/32 and 192.0.2.0/24, a rate limit
#                 far above the load (nothing is refused), and request and response header rules
#   auth.test     access.basic_auth with an htpasswd holding one bcrypt entry (cost
#                 BENCH_BCRYPT_COST)
#   auth10.test   the same with a cost-10 bcrypt entry (the control run)
# The origin and the load generators run on core 1.
#
# 1. Policy cost: wrk -t 1 -c 64 GET /small (100 B) against plain.test and policy.test. Each
#    round runs each route twice for half a run, in the order A B B A (which route is A
#    alternates), so that the machine's drift within a round weighs on both alike. Bar: the
#    median of the rounds' own policy / plain req/s ratios >= 0.95, and no request refused (0 non-2xx, 0 socket errors). For reference (no bar), the same
#    against nginx (one worker, core 0) with the same two servers: plain, and allow/deny +
#    limit_req far above the load + proxy_set_header / add_header / proxy_hide_header.
# 2. bcrypt under load: bench/paced.cc (berth-bench-paced, an open-loop client at a fixed rate:
#    wrk2 is not in Debian) sends GET /small to plain.test at BENCH_PACED_RATE requests/s over 16
#    connections (Berth's threads on both cores for these runs), alone, then while a second paced sender sends 100 requests/s to auth.test,
#    each with a different wrong password (each costs a bcrypt check; every answer must be 401).
#    Interleaved rounds, median p99 of plain.test. Bar: p99 under the flood <= the larger of
#    1.5x p99 alone and p99 alone + half of one hash check (a check run on the worker loop would
#    block it for 100 x check time of every second, so more than 1% of the requests would wait
#    up to a whole check: p99 would rise by about one check time).
#    Control: the same with BENCH_CONTROL_RATE wrong passwords/s against auth10.test, whose
#    checks take tens of milliseconds: on the loop they would push p99 up by that much.
# Prints a markdown report and writes it to bench/results/access-latest.md. Exits non-zero when
# something went wrong (Berth not answering or dying, refused requests, a flood answer other
# than 401); a missed bar is a result, not an error.
#
# Environment knobs (defaults in brackets):
#   BENCH_SKIP_BUILD=1      skip install-deps and the cmake build [0]
#   BENCH_BUILD_DIR         build directory with berth and the bench tools [build-bench]
#   BENCH_BERTH             the berth binary [$BENCH_BUILD_DIR/berth]
#   BENCH_DURATION, BENCH_REPS   seconds per run, rounds [6, 5; --quick: 2, 1] (part 1 runs
#                           each route twice per round for half of BENCH_DURATION each)
#   BENCH_PACED_RATE        requests/s of the fixed-rate client in part 2 [2000]
#   BENCH_FLOOD_RATE        wrong passwords/s in part 2 [100]
#   BENCH_BCRYPT_COST       bcrypt cost of auth.test's entry [5: htpasswd -B's default, and
#                           what Berth's tests use]
#   BENCH_CONTROL_RATE      wrong passwords/s against auth10.test in the control run [5]
#   BENCH_SKIP_NGINX=1      leave out the nginx reference rows [0]
#   BENCH_PORT_BASE         first loopback port used (+0..+3) [first free of 18300, 18320, ...]
#   BENCH_QUIET_WAIT        seconds to wait for other CPU load to settle before each round [60]
#   BENCH_QUIET_BUDGET      all such waiting together [300]
#   BENCH_KEEP=1            keep the work directory (configs, logs)
#   BENCH_LABEL             a line put under the report's title (e.g. what kind of run it was)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_LOG_TAG=access-bench
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_args 6 5 2 1 "$@"
bench_binaries
PACED_BIN=$BUILD_DIR/berth-bench-paced
CRYPT_BIN=$BUILD_DIR/berth-bench-crypt_hash
PACED_RATE=${BENCH_PACED_RATE:-2000}
FLOOD_RATE=${BENCH_FLOOD_RATE:-100}
COST=${BENCH_BCRYPT_COST:-5}
CONTROL_RATE=${BENCH_CONTROL_RATE:-5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-300}
QUIET_SPENT=0
WRK_CONNS=64
PACED_CONNS=16
POLICY_BAR=0.95
PROXY_CORE=0
LOAD_CORE=1

PORT_SPAN=4
pick_port_base "$PORT_SPAN" 18300 18320 18340 18360
declare -A PORT=([berth]=$PB [admin]=$((PB + 1)) [origin]=$((PB + 2)) [nginx]=$((PB + 3)))
SERVERS=(berth)
[[ "${BENCH_SKIP_NGINX:-0}" == 1 ]] || SERVERS+=(nginx)
declare -A SERVER_LABEL=([berth]=Berth [nginx]=nginx)

bench_workdir berth-access-bench
NOTES=$WORK/notes.txt
PROBLEMS=$WORK/problems.txt
: >"$NOTES"
: >"$PROBLEMS"

[[ "${BENCH_SKIP_BUILD:-0}" == 1 ]] || build_release "$BUILD_DIR"
[[ " ${SERVERS[*]} " != *" nginx "* ]] || command -v nginx >/dev/null \
  || die "nginx not found (run: bash scripts/install-deps.sh --bench, or set BENCH_SKIP_NGINX=1)"
for t in wrk curl taskset pgrep ss; do
  command -v "$t" >/dev/null || die "$t not found (run: bash scripts/install-deps.sh --bench)"
done
for b in "$BERTH_BIN" "$ORIGIN_BIN" "$PACED_BIN" "$CRYPT_BIN"; do
  [[ -x "$b" ]] || die "$b missing (build $BUILD_DIR first)"
done
(($(nproc) >= 2)) || die "needs at least 2 cores (Berth on core $PROXY_CORE, load on core $LOAD_CORE)"
ulimit -n 65536 2>/dev/null || true

# ---------------------------------------------------------------- htpasswd files
# With libcrypt, as Berth's tests make them; the tool also times Berth's own check of a wrong
# password against each entry, on Berth's core.
make_htpasswd() {  # file cost : writes "alice:<bcrypt>", prints the check's median time in us
  local out
  out=$(taskset -c "$PROXY_CORE" "$CRYPT_BIN" --password wonderland --cost "$2" --checks 5) \
    || die "berth-bench-crypt_hash failed"
  echo "alice:$(sed -n 's/^HASH //p' <<<"$out")" >"$1"
  sed -n 's/^CHECK_US median=\([0-9]*\).*/\1/p' <<<"$out"
}
CHECK_US=$(make_htpasswd "$WORK/auth.htpasswd" "$COST")
CHECK10_US=$(make_htpasswd "$WORK/auth10.htpasswd" 10)
log "one bcrypt check: ${CHECK_US} us at cost $COST, ${CHECK10_US} us at cost 10"

# ---------------------------------------------------------------- Berth
cat >"$WORK/berth.yaml" <<EOF
listeners: ["127.0.0.1:${PORT[berth]}"]
workers: 1
admin: {address: "127.0.0.1:${PORT[admin]}"}
limits: {max_connections_per_worker: 20000}
services: {origin: {endpoints: ["127.0.0.1:${PORT[origin]}"]}}
routes:
  - {host: plain.test, service: origin}
  - host: policy.test
    service: origin
    access:
      allow: ["127.0.0.0/8"]
      deny: ["127.0.0.2/32", "192.0.2.0/24"]
      rate_limit: {per_second: 1000000, burst: 1000000}
    headers:
      request:
        set: {X-Env: bench}
        add: {X-Team: access}
        remove: [Cookie]
      response:
        set: {X-Policy: "on"}
        remove: [X-Powered-By]
  - {host: auth.test, service: origin, access: {basic_auth: {htpasswd: "$WORK/auth.htpasswd"}}}
  - {host: auth10.test, service: origin, access: {basic_auth: {htpasswd: "$WORK/auth10.htpasswd"}}}
EOF

status_of() {  # host [server [curl args...]] : the status of GET /small on that route [berth]
  local host=$1 server=${2:-berth}
  shift $(($# < 2 ? $# : 2))
  curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Host: $host" "$@" \
    "http://127.0.0.1:${PORT[$server]}/small" 2>/dev/null || true
}

start_bg origin "$LOAD_CORE" "$ORIGIN_BIN" --host 127.0.0.1 --port "${PORT[origin]}"
start_bg berth "$PROXY_CORE" "$BERTH_BIN" --config "$WORK/berth.yaml"
deadline=$((SECONDS + 20))
until [[ "$(status_of plain.test)" == 200 ]]; do
  if ! alive berth || ((SECONDS >= deadline)); then
    show_logs berth
    show_logs origin
    die "Berth does not answer GET /small for plain.test on 127.0.0.1:${PORT[berth]}"
  fi
  sleep 0.2
done
# The rules are really on: a denied source address gets 403, the response rule shows, a
# wrong password gets 401 and the right one 200.
checks="policy $(status_of policy.test), from 127.0.0.2 $(status_of policy.test berth --interface 127.0.0.2)"
checks+=", X-Policy $(curl -s -o /dev/null -D - --max-time 5 -H 'Host: policy.test' \
  "http://127.0.0.1:${PORT[berth]}/small" | tr -d '\r' | sed -n 's/^[Xx]-[Pp]olicy: //p')"
for h in auth.test auth10.test; do
  checks+=", $h $(status_of "$h" berth -u alice:wrong) $(status_of "$h" berth -u alice:wonderland)"
done
log "Berth is up on 127.0.0.1:${PORT[berth]}: $checks"
[[ "$checks" == "policy 200, from 127.0.0.2 403, X-Policy on, auth.test 401 200, auth10.test 401 200" ]] \
  || die "the routes do not behave as configured: $checks"

CLK_TCK=$(getconf CLK_TCK)
# The nginx reference: the same two servers, the policy one with nginx's nearest equivalents.
mkdir -p "$WORK/nginx"
{
  nginx_common "$WORK/nginx"
  cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$WORK/nginx")
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    limit_req_zone \$binary_remote_addr zone=bench:1m rate=1000000r/s;
    upstream origin {
        server 127.0.0.1:${PORT[origin]};
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        server_name plain.test;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        server_name policy.test;
        location / {
            deny 127.0.0.2;
            deny 192.0.2.0/24;
            allow 127.0.0.0/8;
            deny all;
            limit_req zone=bench burst=1000000 nodelay;
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Env bench;
            proxy_set_header X-Team access;
            proxy_set_header Cookie "";
            add_header X-Policy on;
            proxy_hide_header X-Powered-By;
        }
    }
}
EOF
} >"$WORK/nginx/nginx.conf"
if [[ " ${SERVERS[*]} " == *" nginx "* ]]; then
  start_bg nginx "$PROXY_CORE" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
  deadline=$((SECONDS + 20))
  until [[ "$(status_of plain.test nginx)" == 200 ]]; do
    if ! alive nginx || ((SECONDS >= deadline)); then
      show_logs nginx
      die "nginx does not answer GET /small for plain.test on 127.0.0.1:${PORT[nginx]}"
    fi
    sleep 0.2
  done
  checks="policy $(status_of policy.test nginx), from 127.0.0.2 $(status_of policy.test nginx --interface 127.0.0.2)"
  log "nginx is up on 127.0.0.1:${PORT[nginx]}: $checks"
  [[ "$checks" == "policy 200, from 127.0.0.2 403" ]] || die "nginx does not behave as configured: $checks"
fi

RESULTS=$WORK/results.tsv  # part, what, round, then the numbers
: >"$RESULTS"
RAW=$WORK/raw.txt
: >"$RAW"
check_berth() {  # what
  alive berth || { show_logs berth; die "Berth died during $1"; }
}

# ---------------------------------------------------------------- 1. policy cost
wrk_route() {  # server host round seconds
  local server=$1 f=$WORK/wrk.out rps p99 reqs non2xx serr t0 t1 cpu_us secs=$4
  shift
  t0=$(proc_ticks "${PID_OF[$server]}")
  timeout -k 5 $((secs + 30)) taskset -c "$LOAD_CORE" wrk -t 1 -c "$WRK_CONNS" -d "${secs}s" --latency \
    -H "Host: $1" "http://127.0.0.1:${PORT[$server]}/small" >"$f" 2>&1 || true
  { echo "===== wrk $server $1 round $2"; cat "$f"; } >>"$RAW"
  t1=$(proc_ticks "${PID_OF[$server]}")
  read -r rps _ p99 reqs non2xx serr < <(parse_wrk "$f")
  cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n; else print -1 }')
  echo -e "wrk\t$server:$1\t$2\t$rps\t$p99\t$reqs\t$non2xx\t$serr\t$cpu_us" >>"$RESULTS"
  log "$server $1 round $2: $rps req/s, p99 $p99 us, CPU $cpu_us us/request, $reqs requests, non-2xx $non2xx, socket errors $serr"
  ((non2xx == 0 && serr == 0)) || echo "$server $1 round $2: $non2xx non-2xx/3xx, $serr socket errors (of $reqs)" >>"$PROBLEMS"
  [[ "$rps" != 0 ]] || echo "$server $1 round $2: wrk produced no result: $(head -c 300 "$f" | tr '\n' ' ')" >>"$PROBLEMS"
  alive "$server" || { show_logs "$server"; die "$server died during the $1 run"; }
  sleep 0.5
}

# ---------------------------------------------------------------- 2. bcrypt under load
# paced host what round [flood_host flood_rate] : the fixed-rate client against plain.test,
# alone or while the paced sender sends wrong passwords to flood_host.
paced() {
  local what=$1 rep=$2 flood_host=${3:-} flood_rate=${4:-} line flood="-" p99 fl
  # Berth's threads (the worker and libuv's pool, which runs the password checks) may use both
  # cores here: pinned to one core, a check off the loop still takes CPU time from the worker.
  taskset -a -p -c "$PROXY_CORE,$LOAD_CORE" "${PID_OF[berth]}" >/dev/null
  if [[ -n "$flood_host" ]]; then
    # From a second before the measured run to a second after it.
    start_bg flood "$LOAD_CORE" "$PACED_BIN" --port "${PORT[berth]}" --host-header "$flood_host" \
      --rate "$flood_rate" --duration $((DURATION + 2)) --conns 8 --expect 401 --wrong-password alice
    sleep 1
  fi
  line=$(timeout -k 5 $((DURATION + 30)) taskset -c "$LOAD_CORE" "$PACED_BIN" --port "${PORT[berth]}" \
    --host-header plain.test --rate "$PACED_RATE" --duration "$DURATION" --conns "$PACED_CONNS" --expect 200 || true)
  if [[ -n "$flood_host" ]]; then
    wait "${PID_OF[flood]}" 2>/dev/null || true
    stop_named flood
    flood=$(cat "$WORK/flood.out")
    echo "$what round $rep, flood: ${flood:-no output}" >>"$RAW"
    [[ "$flood" == *" unexpected=0 errors=0 unfinished=0 "* ]] \
      || echo "$what round $rep: not every wrong password was answered 401: ${flood:-no output}" >>"$PROBLEMS"
  fi
  echo "$what round $rep, plain.test: ${line:-no output}" >>"$RAW"
  [[ "$line" == *" unexpected=0 errors=0 unfinished=0 "* ]] \
    || echo "$what round $rep: plain.test: ${line:-no output}" >>"$PROBLEMS"
  p99=$(sed -n 's/.* p99_us=\([0-9-]*\).*/\1/p' <<<"$line")
  fl=$(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' <<<"$flood")
  echo -e "paced\t$what\t$rep\t${p99:--1}\t${fl:--}" >>"$RESULTS"
  log "$what round $rep: plain.test p99 ${p99:-?} us; flood answers: ${fl:--}"
  check_berth "the $what run"
  taskset -a -p -c "$PROXY_CORE" "${PID_OF[berth]}" >/dev/null
  sleep 0.5
}

HALF_RUN=$(((DURATION + 1) / 2))
log "work directory $WORK; $DURATION s per run, $REPS round(s)"
for server in "${SERVERS[@]}"; do  # warm-up
  for h in plain.test policy.test; do
    timeout 10 taskset -c "$LOAD_CORE" wrk -t 1 -c "$WRK_CONNS" -d 1s -H "Host: $h" \
      "http://127.0.0.1:${PORT[$server]}/small" >/dev/null 2>&1 || true
  done
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= REPS; rep++)); do
  wait_quiet "round $rep"
  log "round $rep of $REPS"
  if ((rep % 2)); then order=(plain.test policy.test); else order=(policy.test plain.test); fi
  # A B B A, each half a run: measured, one 6-s run after the other let the machine's drift
  # move single rounds' ratios from 0.75 to 1.02 (bench/results/access-latest.md at 630025c).
  for server in "${SERVERS[@]}"; do
    for h in "${order[@]}" "${order[1]}" "${order[0]}"; do wrk_route "$server" "$h" "$rep" "$HALF_RUN"; done
  done
  # An unmeasured second of paced load first: the first paced run after the wrk runs was slow
  # whichever kind it was (p99 several times the second's, measured), which would favour
  # whichever run goes second.
  taskset -a -p -c "$PROXY_CORE,$LOAD_CORE" "${PID_OF[berth]}" >/dev/null
  timeout -k 5 30 taskset -c "$LOAD_CORE" "$PACED_BIN" --port "${PORT[berth]}" --host-header plain.test \
    --rate "$PACED_RATE" --duration 2 --conns "$PACED_CONNS" --expect 200 >/dev/null 2>&1 || true
  if ((rep % 2)); then
    paced alone "$rep"
    paced flood "$rep" auth.test "$FLOOD_RATE"
  else
    paced flood "$rep" auth.test "$FLOOD_RATE"
    paced alone "$rep"
  fi
done
wait_quiet "the control run"
paced control 1 auth10.test "$CONTROL_RATE"

# ---------------------------------------------------------------- report
value() {  # part what column -> the median over the rounds
  awk -F'\t' -v p="$1" -v w="$2" -v c="$3" '$1 == p && $2 == w { print $c }' "$RESULTS" | median -1 mean
}
sum() {  # part what column -> the sum over the rounds
  awk -F'\t' -v p="$1" -v w="$2" -v c="$3" '$1 == p && $2 == w { s += $c } END { print s + 0 }' "$RESULTS"
}
P99_ALONE=$(value paced alone 4)
P99_FLOOD=$(value paced flood 4)
P99_CONTROL=$(value paced control 4)
ratio() {  # server column -> policy / plain of the medians
  awk -v a="$(value wrk "$1:policy.test" "$2")" -v b="$(value wrk "$1:plain.test" "$2")" \
    'BEGIN { if (a <= 0 || b <= 0) print "n/a"; else printf "%.3fx", a / b }'
}
paired() {  # server column -> the median over rounds of policy / plain within the round (summed over its A B B A)
  awk -F'\t' -v s="$1" -v c="$2" '$1 == "wrk" && $2 == s ":plain.test" { b[$3] += $c }
    $1 == "wrk" && $2 == s ":policy.test" { a[$3] += $c }
    END { for (r in a) if (a[r] > 0 && b[r] > 0) printf "%.6f\n", a[r] / b[r] }' "$RESULTS" | median -1 mean
}
ms() { awk -v u="$1" 'BEGIN { if (u < 0) print "n/a"; else printf "%.3f ms", u / 1000 }'; }
# The bar reads the rounds' own ratios (the two routes measured back to back), so that the
# machine's drift between rounds cancels out.
POLICY_VERDICT=$(awk -v r="$(paired berth 4)" -v bar="$POLICY_BAR" 'BEGIN {
  if (r <= 0) { print "n/a"; exit }
  printf "%.3fx %s\n", r, (r >= bar ? "PASS" : "FAIL") }')
# The flood bar: flat relative to p99 alone, or less than half a hash check above it.
FLOOD_VERDICT=$(awk -v a="$P99_ALONE" -v f="$P99_FLOOD" -v c="$CHECK_US" 'BEGIN {
  if (a <= 0 || f <= 0) { print "n/a"; exit }
  limit = (1.5 * a > a + c / 2 ? 1.5 * a : a + c / 2)
  printf "ratio %.2fx, %+.3f ms (limit %.3f ms): %s\n", f / a, (f - a) / 1000, limit / 1000, (f <= limit ? "PASS" : "FAIL") }')
CONTROL_NOTE=$(awk -v a="$P99_ALONE" -v f="$P99_CONTROL" -v c="$CHECK10_US" 'BEGIN {
  if (a <= 0 || f <= 0) { print "n/a"; exit }
  printf "ratio %.2fx, %+.3f ms; one cost-10 check takes %.1f ms, so checks on the loop would add about that much\n",
    f / a, (f - a) / 1000, c / 1000 }')
BERTH_V=$( (timeout 5 "$BERTH_BIN" --version 2>&1 || true) | sed -n 1p)

REPORT=$WORK/report.md
{
  echo "# Berth access control under load"
  echo
  [[ -z "${BENCH_LABEL:-}" ]] || { echo "**$BENCH_LABEL**"; echo; }
  ((QUICK == 0)) || { echo "A --quick run: runs this short show that the pipeline works, not where Berth stands."; echo; }
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); Berth ${BERTH_V:-?} (git $(git rev-parse --short HEAD 2>/dev/null || echo unknown), Release); $( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $1, $2 }')"
  echo "- machine: nproc=$(nproc), $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); load average before: $LOAD_BEFORE"
  echo "- method: one Berth, one worker, the process (and so its background threads) pinned to core $PROXY_CORE; bench/origin.cc and"
  echo "  the load on core $LOAD_CORE; $REPS interleaved round(s)$( ((QUICK)) && echo ' (--quick)'), medians; part 1: each route twice per"
  echo "  round for $HALF_RUN s, in the order A B B A; part 2: $DURATION s per run."
  echo
  echo "## 1. Allow list + rate limit + header rules vs the plain route"
  echo
  echo "wrk -t 1 -c $WRK_CONNS, GET /small (100 B). policy.test: allow 127.0.0.0/8, deny 127.0.0.2/32 and 192.0.2.0/24,"
  echo "rate_limit 1,000,000/s (burst 1,000,000, key client_ip), request set/add/remove and response set/remove"
  echo "(nginx: the same allow/deny, limit_req at 1,000,000 r/s with burst 1,000,000 nodelay, proxy_set_header x3,"
  echo "add_header, proxy_hide_header)."
  echo
  echo "| server | route | req/s | p99 | CPU/req | non-2xx | socket errors |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for server in "${SERVERS[@]}"; do
    for h in plain.test policy.test; do
      w=$server:$h
      printf '| %s | %s | %.0f | %s | %.2f µs | %s | %s |\n' "${SERVER_LABEL[$server]}" "$h" "$(value wrk "$w" 4)" \
        "$(ms "$(value wrk "$w" 5)")" "$(value wrk "$w" 9)" "$(sum wrk "$w" 7)" "$(sum wrk "$w" 8)"
    done
  done
  echo
  echo "Bar: the median over rounds of each round's policy / plain req/s ≥ $POLICY_BAR, and nothing refused:"
  echo "$POLICY_VERDICT."
  for server in "${SERVERS[@]}"; do
    echo "${SERVER_LABEL[$server]}, policy / plain: req/s $(ratio "$server" 4) (of the medians; median of the rounds'"
    echo "ratios $(awk -v r="$(paired "$server" 4)" 'BEGIN { printf "%.3fx", r }')), CPU per request $(ratio "$server" 9)."
  done
  echo "CPU/req: the server's utime + stime (/proc, all threads; nginx: master + worker; tick 1/$CLK_TCK s) over the"
  echo "run, per request; less disturbed than req/s by other work on the machine. nginx rows are a reference (no bar)."
  echo
  echo "## 2. bcrypt checks under load"
  echo
  echo "plain.test p99 measured by berth-bench-paced (bench/paced.cc: $PACED_RATE requests/s at a fixed rate over $PACED_CONNS"
  echo "keep-alive connections, latency from each request's scheduled time), alone and while a second paced sender sends"
  echo "$FLOOD_RATE requests/s to auth.test, each with a different wrong password (bcrypt cost $COST; one check of"
  echo "Berth's on core $PROXY_CORE: $(ms "$CHECK_US")). Berth checks passwords on background threads at idle priority, not on the worker loop;"
  echo "for these runs Berth's threads may use both cores (part 1 pins them to core $PROXY_CORE)."
  echo
  echo "| run | plain.test p99 | flood answers (status:count, summed over the flood's run) |"
  echo "|---|---:|---|"
  echo "| alone | $(ms "$P99_ALONE") | - |"
  echo "| $FLOOD_RATE wrong passwords/s, cost $COST | $(ms "$P99_FLOOD") | $(awk -F'\t' '$1 == "paced" && $2 == "flood" { printf "%s%s", sep, $5; sep = "; " }' "$RESULTS") |"
  echo "| control: $CONTROL_RATE wrong passwords/s, cost 10 | $(ms "$P99_CONTROL") | $(awk -F'\t' '$1 == "paced" && $2 == "control" { print $5 }' "$RESULTS") |"
  echo
  echo "Bar: p99 under the flood ≤ the larger of 1.5x p99 alone and p99 alone + half a check: $FLOOD_VERDICT."
  echo "A check on the worker loop would block it $FLOOD_RATE x $(ms "$CHECK_US") of every second, so more than 1% of"
  echo "requests would wait up to a whole check and p99 would rise by about one check time."
  echo "Control (cost 10, one check $(ms "$CHECK10_US")): $CONTROL_NOTE."
  echo
  report_problems
  echo
  echo "## Raw"
  echo
  echo '```'
  grep -E '^=====|round|Requests/sec|^ +99%' "$RAW" || true
  echo '```'
} >"$REPORT"

mkdir -p bench/results
cp "$REPORT" bench/results/access-latest.md
cat "$REPORT"
log "report written to bench/results/access-latest.md"
[[ -s "$PROBLEMS" ]] && { log "there were problems (see the report)"; exit 1; }
exit 0
