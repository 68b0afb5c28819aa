#!/usr/bin/env bash
# The README's run command: installs what is missing (Docker engine and busybox included), builds
# Berth, and runs the live Docker demo: two labelled containers behind Berth, traffic alternating
# between them. A private Docker engine is started if none is reachable. Ctrl-C cleans up
# everything it started. (scripts/static-demo.sh shows Berth with a static config, no Docker.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --docker
BUILD_TARGETS="berth" bash scripts/build.sh build
exec sh scripts/docker-demo.sh
