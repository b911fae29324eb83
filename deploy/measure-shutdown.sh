#!/usr/bin/env bash
# Measures how long accelsel-server takes to exit after SIGTERM, sent DELAY seconds after a start on an empty
# store seeded with the bundled table (so the first training usually runs at that moment). Prints one line per
# delay; the figures back the grace periods in docs/OPERATIONS.md and deploy/kubernetes/statefulset.yaml.
#
# Usage: deploy/measure-shutdown.sh [BIN_DIR] [DELAY...]     (defaults: build/bin, delays 3 6 12)
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${1:-${src}/build/bin}"
shift || true
delays=("$@")
[[ ${#delays[@]} -gt 0 ]] || delays=(3 6 12)
work="$(mktemp -d "${TMPDIR:-/tmp}/accelsel-shutdown.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

for delay in "${delays[@]}"; do
  rm -rf "${work}/data"
  "${bin_dir}/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="${work}/data" \
    --descriptors_dir="${src}/data/descriptors" \
    --seed_csv="${src}/data/llm-inference-bench/throughput_all_results.csv" >"${work}/out" 2>&1 &
  pid=$!
  sleep "${delay}"
  start_ns=$(date +%s%N)
  kill -TERM "${pid}"
  rc=0
  wait "${pid}" || rc=$?
  end_ns=$(date +%s%N)
  printf 'SIGTERM %5s s after start: exit %d after %.1f s\n' "${delay}" "${rc}" \
    "$(echo "(${end_ns} - ${start_ns}) / 1000000000" | bc -l)"
done
