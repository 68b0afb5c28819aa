#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration against the real
# binary, and the Docker suite against a private Docker engine the tests start themselves).
#   scripts/test.sh              normal build in build/
#   scripts/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
#   --build-only                 builds the tests and stops (.ci/run builds the sanitizer suite
#                                this way while the normal suite runs)
set -euo pipefail
cd "$(dirname "$0")/.."
SANITIZE=0 BUILD_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --sanitize) SANITIZE=1 ;;
    --build-only) BUILD_ONLY=1 ;;
    *) echo "test.sh: unknown option $arg (known: --sanitize, --build-only)" >&2; exit 2 ;;
  esac
done
bash scripts/install-deps.sh --docker

BUILD_DIR=build
# Line tables only (-g1): backtraces and sanitizer reports keep file:line, and the test build
# compiles about a quarter faster than with full debug info.
ARGS=(-DBERTH_BENCH=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
if ((SANITIZE)); then
  BUILD_DIR=build-asan
  # -O1, as the sanitizers' own documentation suggests: instrumented code compiles about a third
  # faster than at -O2 (proxy/control/server.cc: 43.8 s user at -O2, 29.8 s at -O1).
  ARGS+=(-DBERTH_SANITIZE=ON "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export BERTH_SANITIZE=1
fi
bash scripts/build.sh "$BUILD_DIR" "${ARGS[@]}"
((BUILD_ONLY)) && exit 0

# Tests open thousands of sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Two at a time: unit tests pair up (each costs about half a second of process start under the
# sanitizers), while integration and Docker tests are RUN_SERIAL (CMakeLists.txt) and run alone.
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -j 2
