#!/usr/bin/env bash
# Smoke check of the node's engine on its test models (issue 17; the numbers are in node/README.md): llama-bench on
# the smallest model, F16 and Q4_0 weights each with an f16 and a q8_0 K cache, then one short run of every other
# model file make_models.py made, to show each loads and generates. Holds the shared build lock while it measures,
# so nobody's build runs beside it (and it disturbs no one's benchmark).
#
# Usage: node/smoke_bench.sh [ENGINE_DIR]      (default build/node-engine, or $NODE_ENGINE_DIR)
# Environment: NODE_ENGINE_LOCK (default /tmp/accelsel-build.lock; empty for none), SMOKE_REPS (default 5).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
engine_dir="${1:-${NODE_ENGINE_DIR:-${repo_root}/build/node-engine}}"
lock="${NODE_ENGINE_LOCK-/tmp/accelsel-build.lock}"
reps="${SMOKE_REPS:-5}"
bench="${engine_dir}/build/bin/llama-bench"
models="${engine_dir}/models"

[[ -x "${bench}" ]] || {
  echo "smoke_bench: no ${bench}; run make node-engine" >&2
  exit 1
}
[[ -f "${models}/llama-30m.F16.gguf" ]] || {
  echo "smoke_bench: no models in ${models}; run make node-models" >&2
  exit 1
}

if [[ -n "${lock}" ]]; then
  exec 9>"${lock}"
  if ! flock -n 9; then
    echo "smoke_bench: waiting for ${lock} (another build or benchmark holds it)"
    flock 9
  fi
fi

echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), llama.cpp $(git -C "${engine_dir}/llama.cpp" rev-parse --short=12 HEAD)"
echo "# smallest model: prompt 64 and generation 16 tokens, 2 threads, ${reps} repetitions"
"${bench}" -m "${models}/llama-30m.F16.gguf" -m "${models}/llama-30m.Q4_0.gguf" \
  -p 64 -n 16 -t 2 -ctk f16,q8_0 -r "${reps}" -o md

echo "# every other model file: one repetition of prompt 32 and generation 8 tokens, 2 threads"
others=()
for f in "${models}"/*.gguf; do
  case "${f##*/}" in llama-30m.F16.gguf | llama-30m.Q4_0.gguf) continue ;; esac
  others+=(-m "${f}")
done
"${bench}" "${others[@]}" -p 32 -n 8 -t 2 -r 1 -o md
