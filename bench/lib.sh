# shellcheck shell=bash disable=SC2034  # the globals it sets are for the scripts that source it
# Bookkeeping and proxy configurations shared by the benchmark scripts (bench/run.sh,
# bench/tls.sh, bench/access.sh, bench/per_request.sh): sourced, not run. Each script sets
# BENCH_LOG_TAG (the prefix of its log lines) before sourcing it, then calls bench_args and
# bench_workdir.
#
# Globals it defines or uses: QUICK, DURATION, REPS (bench_args); BUILD_DIR, BERTH_BIN,
# ORIGIN_BIN (bench_binaries); WORK, ALL_PIDS, PID_OF (bench_workdir, start_bg); PB
# (pick_port_base); QUIET_WAIT, QUIET_BUDGET, QUIET_SPENT, NOTES (wait_quiet); NGINX_NOFILE
# (nginx_common).

# bench_binaries : BUILD_DIR [BENCH_BUILD_DIR or build-bench], BERTH_BIN [BENCH_BERTH or
# BUILD_DIR/berth] and ORIGIN_BIN (BUILD_DIR/berth-bench-origin).
bench_binaries() {
  BUILD_DIR=${BENCH_BUILD_DIR:-build-bench}
  BERTH_BIN=${BENCH_BERTH:-$BUILD_DIR/berth}
  ORIGIN_BIN=$BUILD_DIR/berth-bench-origin
}

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$BENCH_LOG_TAG" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# bench_args full_duration full_reps quick_duration quick_reps "$@" : reads the script's
# arguments (--quick, -h/--help: the script's header comment) and sets QUICK, DURATION and
# REPS (BENCH_DURATION and BENCH_REPS override the defaults).
bench_args() {
  local full_d=$1 full_r=$2 quick_d=$3 quick_r=$4 arg me
  shift 4
  me=$(basename "$0")
  QUICK=0
  for arg in "$@"; do
    case "$arg" in
      --quick) QUICK=1 ;;
      -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
      *) echo "$me: unknown argument: $arg (usage: bench/$me [--quick])" >&2; exit 64 ;;
    esac
  done
  if ((QUICK)); then DURATION=${BENCH_DURATION:-$quick_d}; REPS=${BENCH_REPS:-$quick_r}
  else DURATION=${BENCH_DURATION:-$full_d}; REPS=${BENCH_REPS:-$full_r}; fi
}

# ---------------------------------------------------------------- ports
port_range_free() {  # base span : none of base..base+span-1 is listening on this host
  local used p
  used=$(ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
  for ((p = $1; p < $1 + $2; p++)); do
    grep -qx "$p" <<<"$used" && return 1
  done
  return 0
}

# pick_port_base span base... : sets PB to BENCH_PORT_BASE (which must be free) or to the first
# base whose span of ports is free; exits when there is none.
pick_port_base() {
  local span=$1 base me
  shift
  me=$(basename "$0")
  if [[ -n "${BENCH_PORT_BASE:-}" ]]; then
    PB=$BENCH_PORT_BASE
    port_range_free "$PB" "$span" || { echo "$me: a port in $PB..$((PB + span - 1)) is in use" >&2; exit 1; }
    return 0
  fi
  PB=
  for base in "$@"; do
    if port_range_free "$base" "$span"; then PB=$base; return 0; fi
  done
  echo "$me: no free port range found (set BENCH_PORT_BASE)" >&2
  exit 1
}

# ---------------------------------------------------------------- process bookkeeping
# bench_workdir prefix : makes the work directory WORK (/tmp/prefix.XXXXXX) and, on exit, stops
# every process start_bg started (newest first) and removes WORK (BENCH_KEEP=1 keeps it).
bench_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  ALL_PIDS=()
  declare -g -A PID_OF=()
  trap cleanup EXIT
  trap 'log "interrupted"; exit 130' INT TERM
}

descendants() {  # pid -> pid and all its descendants, one per line
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null || true); do descendants "$c"; done
}

stop_pid() {  # TERM a process we started (and its children), wait up to 5 s, then KILL
  local pid=$1 tree i p
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
  local rc=$? i pids=("${ALL_PIDS[@]}")
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}

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

stop_named() {  # name : stop it, and forget its PID (which the system may give another process)
  local name=$1 i
  [[ -n "${PID_OF[$name]:-}" ]] || return 0
  stop_pid "${PID_OF[$name]}"
  for i in "${!ALL_PIDS[@]}"; do
    [[ "${ALL_PIDS[i]}" == "${PID_OF[$name]}" ]] && unset "ALL_PIDS[i]"
  done
  unset "PID_OF[$name]"
}

alive() { [[ -n "${PID_OF[$1]:-}" ]] && kill -0 "${PID_OF[$1]}" 2>/dev/null; }

show_logs() {
  local f
  for f in "$WORK/$1.out" "$WORK/$1.err"; do
    [[ -s "$f" ]] && { echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
  done
  return 0
}

# http_ok PORT PATH BYTES : one GET answers 200 with exactly BYTES body bytes
http_ok() {
  local out
  out=$(curl -s -o /dev/null --max-time 2 -w '%{http_code} %{size_download}' \
    "http://127.0.0.1:$1$2" 2>/dev/null) || return 1
  [[ "$out" == "200 $3" ]]
}

rss_kb() {  # VmRSS of a PID plus all its descendants (nginx: master + worker), in KiB
  local total=0 p v
  for p in $(descendants "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

proc_times() {  # pids... -> "utime stime": CPU ticks used so far by them and their descendants
  local u=0 s=0 p q a b
  for p in $(for q in "$@"; do descendants "$q"; done); do
    read -r a b < <(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$p/stat" 2>/dev/null || echo "0 0")
    u=$((u + ${a:-0})); s=$((s + ${b:-0}))
  done
  echo "$u $s"
}

proc_ticks() {  # pids... -> CPU ticks (utime + stime) used so far by them and their descendants
  local u s
  read -r u s < <(proc_times "$@")
  echo $((u + s))
}

core_ticks() {  # core -> "busy total": that CPU's busy ticks and all its ticks so far (/proc/stat)
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat
}

busy_percent() {  # "busy total" before, "busy total" after (core_ticks) -> percent busy in between
  local b0 a0 b1 a1
  read -r b0 a0 <<<"$1"
  read -r b1 a1 <<<"$2"
  awk -v b=$((b1 - b0)) -v a=$((a1 - a0)) 'BEGIN { printf "%.0f", (a > 0 ? 100 * b / a : -1) }'
}

# ---------------------------------------------------------------- the build
build_release() {  # build_dir : install the benchmark's packages, build Release into build_dir
  log "installing dependencies (scripts/install-deps.sh --bench)"
  timeout 1800 bash scripts/install-deps.sh --bench
  log "configuring and building Release into $1"
  timeout 600 cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBERTH_TESTS=OFF >/dev/null
  timeout 1800 cmake --build "$1"
}

# The report's "Problems" section (the lines of PROBLEMS, or "none") and, when NOTES has
# lines, its "Measurement notes".
report_problems() {
  echo "## Problems"
  echo
  if [[ -s "$PROBLEMS" ]]; then sed 's/^/- /' "$PROBLEMS"; else echo "none"; fi
  if [[ -s "$NOTES" ]]; then
    echo
    echo "## Measurement notes"
    echo
    sed 's/^/- /' "$NOTES"
  fi
}

# ---------------------------------------------------------------- a quiet machine
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

# Between measurements nothing of ours runs, so CPU use then belongs to other processes
# (builds, tests); wait for it to settle (at most QUIET_WAIT seconds each time, QUIET_BUDGET
# in all, counted in QUIET_SPENT), and note in NOTES when it does not.
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

# ---------------------------------------------------------------- wrk's output
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

# median [empty [even]] : the median of the numbers on stdin; "empty" when there are none [-1];
# of an even count, the lower middle one (even=low) or the mean of the two middle ones
# (even=mean) [low].
median() {
  sort -g | awk -v empty="${1:--1}" -v even="${2:-low}" '{ v[NR] = $1 } END {
    if (NR == 0) print empty
    else if (NR % 2 || even == "low") print v[int((NR + 1) / 2)]
    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- proxy configurations
# Each bench compares Berth, nginx and HAProxy set up alike: one worker/thread, keep-alive to
# the client and to one origin without a practical request limit, and up to 1024 idle origin
# connections per proxy (Berth's default upstream_max_idle_per_endpoint; HAProxy keeps all of
# them), so no proxy closes and reopens origin connections at 256 client connections. The
# scripts differ only in what they add (TLS, logs, health checks), passed in as text.

# The file descriptors nginx may open (worker_rlimit_nofile); bench/run.sh raises it for its
# idle-connection test.
NGINX_NOFILE=${NGINX_NOFILE:-65536}

nginx_common() {  # dir : the top of an nginx.conf (one worker, its pid and error log in dir)
  cat <<EOF
user root;
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile $NGINX_NOFILE;
events {
    worker_connections 20000;
}
EOF
}

nginx_temp_paths() {  # dir : nginx's temp directories inside dir (its defaults may not be writable)
  cat <<EOF
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}

# write_nginx_proxy dir listen origin_port [http-lines] [server-lines] : dir/nginx.conf for
# nginx proxying everything to 127.0.0.1:origin_port. listen: the listen directive's address
# and flags ("127.0.0.1:18001", or "127.0.0.1:18001 ssl"); http-lines go into http {}
# [access_log off;], server-lines into server {} (certificates).
write_nginx_proxy() {
  local dir=$1 listen=$2 origin_port=$3 http_lines=${4:-"    access_log off;"} server_lines=${5:-}
  mkdir -p "$dir"
  {
    nginx_common "$dir"
    cat <<EOF
http {
$http_lines
$(nginx_temp_paths "$dir")
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    upstream origin {
        server 127.0.0.1:$origin_port;
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen $listen backlog=4096;
${server_lines:+$server_lines
}        location / {
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
  } >"$dir/nginx.conf"
}

# write_haproxy_proxy file port origin_port [global-lines] [bind-options] : an HAProxy
# configuration proxying 127.0.0.1:port to 127.0.0.1:origin_port. global-lines go into global
# (TLS defaults), bind-options after the bind address ("ssl crt FILE ...").
write_haproxy_proxy() {
  local file=$1 port=$2 origin_port=$3 global_lines=${4:-} bind_options=${5:-}
  cat >"$file" <<EOF
global
    nbthread 1
    maxconn 20000
    # HAProxy wants 2 fds per maxconn; where 'ulimit -n' cannot go that high (bench/run.sh's
    # idle-memory test needs ~10k client fds), run anyway.
    no strict-limits
${global_lines:+$global_lines
}
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
    bind 127.0.0.1:$port${bind_options:+ $bind_options}
    default_backend be

backend be
    server origin 127.0.0.1:$origin_port
EOF
}

# write_berth_proxy file listeners admin_port origin_port [service-keys] [top-level-lines] : a
# Berth configuration routing everything to 127.0.0.1:origin_port. listeners: the value of
# `listeners:` in flow style; service-keys are appended to the origin service's keys (", health:
# {...}"); top-level-lines are added at the end (access_log: ...).
write_berth_proxy() {
  cat >"$1" <<EOF
listeners: $2
workers: 1
admin: {address: "127.0.0.1:$3"}
routes: [{service: origin}]
services: {origin: {endpoints: ["127.0.0.1:$4"]${5:-}}}
limits: {max_connections_per_worker: 20000}
${6:-}
EOF
}
