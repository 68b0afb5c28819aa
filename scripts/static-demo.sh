#!/usr/bin/env bash
# Without Docker: installs what is missing, builds, and runs Berth with the shipped example config in front of a
# demo origin on 127.0.0.1:8081. Prints the curl line to try; Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_TARGETS="berth berth-test-origin" bash scripts/build.sh build

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 0' INT TERM

./build/berth-test-origin --port 8081 --name demo-origin > /tmp/berth-demo-origin.out 2>&1 &
pids+=($!)
./build/berth --check-config config/berth.example.yaml
./build/berth --config config/berth.example.yaml 2> >(tee /tmp/berth-demo.log >&2) &
pids+=($!)

for _ in $(seq 100); do
  grep -q "event=ready" /tmp/berth-demo.log 2>/dev/null && break
  sleep 0.1
done
grep -q "event=ready" /tmp/berth-demo.log || { echo "berth did not start" >&2; exit 1; }

echo
echo "Berth is serving on 127.0.0.1:8080 (admin on 127.0.0.1:9901). Try:"
echo "  curl -i -H 'Host: demo.localhost' http://127.0.0.1:8080/hello"
echo "  curl -s http://127.0.0.1:9901/api/routes"
echo
echo "First request through Berth:"
curl -si -H 'Host: demo.localhost' http://127.0.0.1:8080/hello
echo
echo "Ctrl-C to stop."
wait "${pids[1]}"
