#!/usr/bin/env bash
# Builds the Debian package: configure + build (Release) + `cpack -G DEB` in a build directory of
# its own, so the package never carries a test or sanitizer build.
#   scripts/package.sh [BUILD_DIR]        (default build-pkg/; prints the path of the .deb)
# BERTH_PACKAGE_BINARY=/path/to/berth packages that binary instead of building one (the package
# test reuses the test build's binary to stay fast).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(realpath -m "${1:-$src/build-pkg}")"

args=(-S "$src" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr
      -DBERTH_PACKAGE=ON -DBERTH_TESTS=OFF -DBERTH_BENCH=OFF
      "-DBERTH_PACKAGE_BINARY=${BERTH_PACKAGE_BINARY:-}")
mkdir -p "$build_dir"
cmake "${args[@]}" >"$build_dir/configure.log" 2>&1 || { cat "$build_dir/configure.log" >&2; exit 1; }
if [[ -z "${BERTH_PACKAGE_BINARY:-}" ]]; then
  cmake --build "$build_dir" --target berth
fi
rm -f "$build_dir"/berth_*.deb
(cd "$build_dir" && cpack -G DEB >cpack.log 2>&1) || { cat "$build_dir/cpack.log" >&2; exit 1; }
deb=$(ls "$build_dir"/berth_*_*.deb)
echo "$deb"
