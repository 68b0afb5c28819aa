# shellcheck shell=bash disable=SC2034  # the globals it sets are for the scripts that source it
# Bookkeeping shared by the benchmark scripts (bench/run.sh, bench/tls.sh, bench/access.sh):
# sourced, not run. Each script sets BENCH_LOG_TAG (the prefix of its log lines) before sourcing
# it, then calls bench_args and bench_workdir.
#
# Globals it defines or uses: QUICK, DURATION, REPS (bench_args); WORK, ALL_PIDS, PID_OF
# (bench_workdir, start_bg); PB (pick_port_base); QUIET_WAIT, QUIET_BUDGET, QUIET_SPENT, NOTES
# (wait_quiet).

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

proc_ticks() {  # pids... -> CPU ticks (utime + stime) used so far by them and their descendants
  local total=0 p q v
  for p in $(for q in "$@"; do descendants "$q"; done); do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
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
