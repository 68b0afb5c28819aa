#!/usr/bin/env bash
# Berth's TLS front door against nginx and HAProxy on the same OpenSSL, on loopback.
#
#   bench/tls.sh [--quick]
#
# Each contestant terminates TLS on 127.0.0.1 with the same ECDSA P-256 certificate (made by
# this script) and proxies to bench/origin.cc over plain HTTP with keep-alive. One worker or
# thread each, pinned to core 0; wrk (-t 1) and the origin share core 1. Each contestant runs
# twice: with session resumption off (no tickets, no session cache) and with its defaults.
# Workloads:
#   handshake  every request on a new connection (wrk sends "Connection: close") to the
#              instance without resumption: full TLS 1.3 handshakes per second (wrk offers the
#              last session on every reconnect; with resumption off none is accepted)
#   resumed    the same against the default instances: wrk's reconnects resume their session
#   small      keep-alive requests of GET /small (100 B) over TLS
#   64k        keep-alive requests of GET /64k over TLS
#   paced      full handshakes again, at a fixed rate (BENCH_PACED_RATE per second) from
#              bench/tls_paced.cc instead of wrk: a new connection, a full TLS 1.3 handshake and
#              one request each, latency from when the request was due to its last byte
# Rounds interleave the contestants. Prints a markdown report with the median req/s and p99 of
# each, the ratios Berth/nginx and Berth/HAProxy, and PASS/FAIL against the bar (Berth >= 1.0x
# nginx's req/s, p99 no worse), and writes it to bench/results/tls-latest.md.
#
# Why `paced`: in `handshake`, a handshake costs wrk's one thread about as much as it costs the
# server, so the load core is 100% busy and wrk's p99 is mostly its own backlog, which grows
# with the rate the server sustains: a proxy that serves more handshakes per second gets a
# higher p99 from wrk. The handshake bar therefore takes its req/s from `handshake` (wrk, as fast
# as each proxy goes) and its p99 from `paced` (every proxy asked for the same rate). The report
# shows both p99s.
#
# Environment knobs (defaults in brackets):
#   BENCH_SKIP_BUILD=1      skip install-deps and the cmake build [0]
#   BENCH_BUILD_DIR         build directory with berth and berth-bench-origin [build-bench]
#   BENCH_BERTH             the berth binary [$BENCH_BUILD_DIR/berth]
#   BENCH_DURATION, BENCH_REPS   seconds per wrk run, rounds [10, 3; --quick: 3, 1]
#   BENCH_CONNS             wrk connections [64]
#   BENCH_PORT_BASE         first loopback port used (+0..+8) [18400]
#   BENCH_WORKLOADS         which workloads, in order ["handshake paced resumed small 64k"]
#   BENCH_PACED_RATE        full handshakes per second in `paced` [1000]
#   BENCH_KEEP=1            keep the work directory (configs, logs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_LOG_TAG=tls-bench
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_args 10 3 3 1 "$@"
CONNS=${BENCH_CONNS:-64}
bench_binaries
PB=${BENCH_PORT_BASE:-18400}
# An instance is a contestant with its defaults (berth, nginx, haproxy) or with session
# resumption off (berth_full, nginx_full, haproxy_full).
declare -A PORT=([origin]=$PB [berth]=$((PB + 1)) [nginx]=$((PB + 2)) [haproxy]=$((PB + 3))
                 [berth_full]=$((PB + 4)) [nginx_full]=$((PB + 5)) [haproxy_full]=$((PB + 6)))
declare -A ADMIN_PORT=([berth]=$((PB + 7)) [berth_full]=$((PB + 8)))
CONTESTANTS=(berth nginx haproxy)
INSTANCES=(berth nginx haproxy berth_full nginx_full haproxy_full)
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-handshake paced resumed small 64k}"
PACED_RATE=${BENCH_PACED_RATE:-1000}
instance_of() {  # contestant workload -> the instance that runs it
  if [[ "$2" == handshake || "$2" == paced ]]; then echo "$1_full"; else echo "$1"; fi
}
PROXY_CORE=0
LOAD_CORE=1

bench_workdir berth-tls-bench

[[ "${BENCH_SKIP_BUILD:-0}" == 1 ]] || build_release "$BUILD_DIR"
for t in wrk nginx haproxy openssl curl taskset; do
  command -v "$t" >/dev/null || die "$t not found (run: bash scripts/install-deps.sh --bench)"
done
PACED_BIN=$BUILD_DIR/berth-bench-tls_paced
[[ -x "$BERTH_BIN" && -x "$ORIGIN_BIN" && -x "$PACED_BIN" ]] \
  || die "$BERTH_BIN, $ORIGIN_BIN or $PACED_BIN missing (build $BUILD_DIR first)"
ulimit -n 65536 2>/dev/null || true

# ---------------------------------------------------------------- certificate (ECDSA P-256)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench.test" \
  -addext "subjectAltName=DNS:bench.test" -keyout "$WORK/site.key" -out "$WORK/site.crt" 2>/dev/null \
  || die "openssl could not make the certificate"
cat "$WORK/site.crt" "$WORK/site.key" >"$WORK/site.pem"  # HAProxy wants both in one file

# ---------------------------------------------------------------- configurations
# TLS 1.3 suites in Berth's order of preference, given to nginx and HAProxy too, so that all
# three negotiate the same cipher with wrk (the report shows what each negotiated).
SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
full() { [[ "$1" == *_full ]]; }
write_berth() {  # instance
  local tickets=true
  full "$1" && tickets=false
  write_berth_proxy "$WORK/$1.yaml" "[{address: \"127.0.0.1:${PORT[$1]}\", tls: {certificates: [{cert: \"$WORK/site.crt\", key: \"$WORK/site.key\"}], session_tickets: $tickets}}]" \
    "${ADMIN_PORT[$1]}" "${PORT[origin]}"
}

write_nginx() {  # instance
  local resumption=""
  # Without resumption: no tickets and no session cache.
  full "$1" && resumption="        ssl_session_tickets off; ssl_session_cache off;"
  # The TLS 1.3 suite Berth prefers, preferred here too: the same cipher for all.
  write_nginx_proxy "$WORK/$1" "127.0.0.1:${PORT[$1]} ssl" "${PORT[origin]}" "" "\
        ssl_certificate $WORK/site.crt;
        ssl_certificate_key $WORK/site.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites $SUITES;
$resumption"
}

write_haproxy() {  # instance
  local cache="" tickets=""
  if full "$1"; then cache="    tune.ssl.cachesize 0"; tickets=" no-tls-tickets"; fi
  write_haproxy_proxy "$WORK/$1.cfg" "${PORT[$1]}" "${PORT[origin]}" "\
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphersuites $SUITES
$cache" "ssl crt $WORK/site.pem alpn http/1.1$tickets"
}

# ---------------------------------------------------------------- start
answers() {  # name : GET /small over TLS answers 200 with the origin's body
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$WORK/site.crt" \
    --resolve "bench.test:${PORT[$1]}:127.0.0.1" "https://bench.test:${PORT[$1]}/small" 2>/dev/null | grep -qx 200
}
start_bg origin "$LOAD_CORE" "$ORIGIN_BIN" --host 127.0.0.1 --port "${PORT[origin]}"
for name in "${INSTANCES[@]}"; do
  case "$name" in
    berth*) write_berth "$name"; start_bg "$name" "$PROXY_CORE" "$BERTH_BIN" --config "$WORK/$name.yaml" ;;
    nginx*) write_nginx "$name"
      start_bg "$name" "$PROXY_CORE" nginx -p "$WORK/$name" -c "$WORK/$name/nginx.conf" -e "$WORK/$name/error.log" ;;
    haproxy*) write_haproxy "$name"; start_bg "$name" "$PROXY_CORE" haproxy -db -f "$WORK/$name.cfg" ;;
  esac
done
for name in "${INSTANCES[@]}"; do
  deadline=$((SECONDS + 20))
  until answers "$name"; do
    if ((SECONDS >= deadline)) || ! kill -0 "${PID_OF[$name]}" 2>/dev/null; then
      tail -n 20 "$WORK/$name.err" >&2 || true
      die "$name does not answer GET /small over TLS on 127.0.0.1:${PORT[$name]}"
    fi
    sleep 0.2
  done
  # Same protocol, group and certificate for all: what each one negotiated with OpenSSL's client.
  # And whether a second connection resumes the first one's session, and a third the ticket the
  # second one got: a TLS 1.3 client uses each ticket once (wrk does), so a server that sends no
  # new ticket on resumption makes every other handshake a full one.
  # (stdin held open a moment: TLS 1.3 tickets arrive after the handshake).
  facts=$(sleep 0.5 | openssl s_client -connect "127.0.0.1:${PORT[$name]}" -servername bench.test -sess_out "$WORK/$name.sess" \
    2>/dev/null | awk '/^New, /{ p = $0 } /Server Temp Key/{ k = $0 } END { print p " | " k }')
  again="none (no session was given)" third="none (the second connection got no ticket)"
  if [[ -s "$WORK/$name.sess" ]]; then
    again=$(sleep 0.5 | openssl s_client -connect "127.0.0.1:${PORT[$name]}" -servername bench.test \
      -sess_in "$WORK/$name.sess" -sess_out "$WORK/$name.sess2" 2>/dev/null | grep -Eo '^(New|Reused), TLSv1\.[23]' || true)
  fi
  if [[ -s "$WORK/$name.sess2" ]]; then
    third=$(openssl s_client -connect "127.0.0.1:${PORT[$name]}" -servername bench.test \
      -sess_in "$WORK/$name.sess2" </dev/null 2>/dev/null | grep -Eo '^(New|Reused), TLSv1\.[23]' || true)
  fi
  log "$name is up on 127.0.0.1:${PORT[$name]}: $facts | second connection: $again | third: $third"
  echo "- $name: $facts; a second connection offering the first one's session: $again;" \
    "a third offering the ticket the second got: $third" >>"$WORK/negotiated.txt"
  if full "$name" && [[ "$again" == Reused* ]]; then die "$name resumed a session with resumption off"; fi
done

# ---------------------------------------------------------------- runs
RESULTS=$WORK/results.tsv
: >"$RESULTS"
CLK_TCK=$(getconf CLK_TCK)
RAW=bench/results/tls-latest-raw.txt
mkdir -p bench/results
: >"$RAW"
run_one() {  # contestant workload round
  local name=$1 w=$2 rep=$3 f=$WORK/wrk.out path=/small extra=() inst
  inst=$(instance_of "$1" "$2")
  case "$w" in
    handshake|resumed) extra=(-H "Connection: close") ;;
    64k) path=/64k ;;
  esac
  local t0 t1 l0 l1
  t0=$(proc_ticks "${PID_OF[$inst]}")
  l0=$(core_ticks "$LOAD_CORE")
  if [[ "$w" == paced ]]; then
    timeout -k 5 $((DURATION + 30)) taskset -c "$LOAD_CORE" "$PACED_BIN" --port "${PORT[$inst]}" \
      --rate "$PACED_RATE" --duration "$DURATION" >"$f" 2>&1 || true
  else
    timeout -k 5 $((DURATION + 30)) taskset -c "$LOAD_CORE" wrk -t 1 -c "$CONNS" -d "${DURATION}s" --latency \
      "${extra[@]}" "https://127.0.0.1:${PORT[$inst]}$path" >"$f" 2>&1 || true
  fi
  t1=$(proc_ticks "${PID_OF[$inst]}")
  l1=$(core_ticks "$LOAD_CORE")
  { echo "===== $name workload=$w round=$rep"; cat "$f"; } >>"$RAW"
  if [[ "$w" == paced ]]; then
    # req/s: the answered requests over the run's length (the fixed rate when all were answered)
    read -r reqs bad p99 < <(sed -n 's/^RESULT .*answered=\([0-9]*\) .*unexpected=\([0-9]*\) errors=\([0-9]*\) unfinished=\([0-9]*\) .*p99_us=\([0-9-]*\) .*/\1 \2 \3 \4 \5/p' "$f" |
      awk '{ print $1, $2 + $3 + $4, $5 }')
    [[ -n "${reqs:-}" ]] || { reqs=0 bad=1 p99=-1; }
    rps=$(awk -v r="$reqs" -v d="$DURATION" 'BEGIN { printf "%.1f", r / d }')
  else
    read -r rps _ p99 reqs non2xx serr < <(parse_wrk "$f")
    bad=$((non2xx + serr))
  fi
  # The proxy's CPU per request (µs), and how busy the load core (wrk and the origin) was (%):
  # near 100% means the client, not the proxy, set the pace.
  cpu=$(awk -v t=$((t1 - t0)) -v r="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : -1) }')
  load=$(busy_percent "$l0" "$l1")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$w" "$rep" "$rps" "$p99" "$bad" "$cpu" "$load" >>"$RESULTS"
  log "$name $w round $rep: $rps req/s, p99 ${p99} us, $reqs requests, $bad errors, CPU $cpu us/request, load core ${load}% busy"
  kill -0 "${PID_OF[$inst]}" 2>/dev/null || die "$inst died during $w round $rep"
  sleep 0.5
}
log "work directory $WORK; $DURATION s per run, $REPS round(s), $CONNS connections"
for name in "${INSTANCES[@]}"; do  # warm-up
  timeout 10 taskset -c "$LOAD_CORE" wrk -t 1 -c "$CONNS" -d 1s "https://127.0.0.1:${PORT[$name]}/small" >/dev/null 2>&1 || true
done
for ((rep = 1; rep <= REPS; rep++)); do
  for w in "${WORKLOADS[@]}"; do
    for name in "${CONTESTANTS[@]}"; do run_one "$name" "$w" "$rep"; done
  done
done

# ---------------------------------------------------------------- report
REPORT=bench/results/tls-latest.md
value() {  # name workload column(4 req/s, 5 p99, 7 CPU µs/request, 8 load core busy %)
  awk -F'\t' -v n="$1" -v w="$2" -v c="$3" '$1 == n && $2 == w { print $c }' "$RESULTS" | median 0 mean
}
{
  echo "# Berth TLS benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(openssl version)."
  echo "One worker/thread per proxy on core $PROXY_CORE; wrk -t 1 -c $CONNS and bench/origin.cc on core $LOAD_CORE;"
  echo "$DURATION s per run, $REPS round(s), medians. Same ECDSA P-256 certificate for all. \`handshake\`: a new"
  echo "connection per request with session resumption off on every contestant (full handshakes);"
  echo "\`resumed\`: the same with each one's defaults (wrk resumes). Negotiated with \`openssl s_client\`:"
  echo
  cat "$WORK/negotiated.txt"
  echo
  if [[ " ${WORKLOADS[*]} " == *" paced "* ]]; then
    echo "\`paced\`: $PACED_RATE full handshakes per second asked of each (bench/tls_paced.cc: a new connection,"
    echo "a TLS 1.3 handshake without resumption and one request each; latency from when the request was due"
    echo "to its last byte). The \`handshake\` bar takes its req/s from wrk and its p99 from \`paced\`: under wrk"
    echo "the load core is 100% busy and its p99 grows with the rate the proxy sustains (see the CPU table)."
    echo
  fi
  echo "| workload | Berth req/s | nginx req/s | HAProxy req/s | Berth p99 | nginx p99 | HAProxy p99 | Berth/nginx req/s | Berth/HAProxy req/s | Berth/nginx p99 | bar |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  # The paced p99 ratio, for the handshake bar (empty without a paced run).
  paced_pn=""
  if [[ " ${WORKLOADS[*]} " == *" paced "* ]]; then
    paced_pn=$(awk -v b="$(value berth paced 5)" -v n="$(value nginx paced 5)" 'BEGIN { if (b > 0 && n > 0) printf "%.4f", b / n }')
  fi
  for w in "${WORKLOADS[@]}"; do
    br=$(value berth "$w" 4); nr=$(value nginx "$w" 4); hr=$(value haproxy "$w" 4)
    bp=$(value berth "$w" 5); np=$(value nginx "$w" 5); hp=$(value haproxy "$w" 5)
    berrs=$(awk -F'\t' -v w="$w" '$1 == "berth" && $2 == w { s += $6 } END { print s + 0 }' "$RESULTS")
    awk -v w="$w" -v br="$br" -v nr="$nr" -v hr="$hr" -v bp="$bp" -v np="$np" -v hp="$hp" \
        -v paced_pn="$paced_pn" -v berrs="$berrs" 'BEGIN {
      rn = nr > 0 ? br / nr : 0; rh = hr > 0 ? br / hr : 0; pn = np > 0 ? bp / np : 0
      lat = pn; why = ""
      if (w == "handshake" && paced_pn != "") { lat = paced_pn + 0; why = sprintf(" (paced p99 %.3f)", lat) }
      if (w == "paced") ok = berrs == 0 && pn > 0 && pn <= 1.0  # same rate for all: latency and no losses
      else ok = rn >= 1.0 && lat > 0 && lat <= 1.0
      printf "| %s | %.0f | %.0f | %.0f | %.2f ms | %.2f ms | %.2f ms | %.3f | %.3f | %.3f | %s%s |\n",
             w, br, nr, hr, bp / 1000, np / 1000, hp / 1000, rn, rh, pn, (ok ? "PASS" : "FAIL"), why }'
  done
  echo
  echo "CPU per request: each proxy's utime + stime (/proc, with its children; tick 1/$CLK_TCK s) over the"
  echo "run, divided by the requests completed. Load core: how busy core $LOAD_CORE (wrk and the origin) was;"
  echo "near 100% the client, not the proxy, set the pace."
  echo
  echo "| workload | Berth CPU/req | nginx CPU/req | HAProxy CPU/req | Berth/nginx CPU | load core busy (Berth / nginx / HAProxy) |"
  echo "|---|---|---|---|---|---|"
  for w in "${WORKLOADS[@]}"; do
    awk -v w="$w" -v bc="$(value berth "$w" 7)" -v nc="$(value nginx "$w" 7)" -v hc="$(value haproxy "$w" 7)" \
      -v bl="$(value berth "$w" 8)" -v nl="$(value nginx "$w" 8)" -v hl="$(value haproxy "$w" 8)" 'BEGIN {
      printf "| %s | %.1f µs | %.1f µs | %.1f µs | %.3f | %.0f%% / %.0f%% / %.0f%% |\n",
             w, bc, nc, hc, (nc > 0 ? bc / nc : 0), bl, nl, hl }'
  done
  echo
  bad=$(awk -F'\t' '$6 > 0 { printf "%s %s round %s: %s errors\n", $1, $2, $3, $6 }' "$RESULTS")
  if [[ -n "$bad" ]]; then echo "Errors (non-2xx or socket errors):"; echo; echo "$bad" | sed 's/^/- /'; echo; fi
  echo "Raw wrk output: bench/results/tls-latest-raw.txt."
} >"$REPORT"
cat "$REPORT"
