#!/usr/bin/env bash
# Runs every offline evaluation published in docs/EVALUATION.md and writes one JSON line per run.
# Usage: eval/run_eval.sh BIN_DIR SHARED_DATA_DIR [OUT_DIR]
#   BIN_DIR          folder with accelsel-eval (e.g. build/bin)
#   SHARED_DATA_DIR  folder with llm-inference-bench/ and aslib/ (ASlib is read from there, never copied)
#   OUT_DIR          where results go (default: eval-results)
set -euo pipefail
BIN_DIR=${1:?usage: run_eval.sh BIN_DIR SHARED_DATA_DIR [OUT_DIR]}
DATA_DIR=${2:?usage: run_eval.sh BIN_DIR SHARED_DATA_DIR [OUT_DIR]}
OUT_DIR=${3:-eval-results}
EVAL="$BIN_DIR/accelsel-eval"
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT_DIR"

# LLM-Inference-Bench: the copy vendored in the repo unless the shared folder has one.
BENCH="$DATA_DIR/llm-inference-bench/throughput_all_results.csv"
[ -f "$BENCH" ] || BENCH="$REPO_DIR/data/llm-inference-bench/throughput_all_results.csv"
TASK_COLS="Hardware,Num of Hardware,Model,Input Output Length,Batch Size"

run() {  # run NAME ARGS...
  local name=$1; shift
  local start=$SECONDS
  "$EVAL" "$@" --json > "$OUT_DIR/$name.json"
  echo "$name ($((SECONDS - start)) s): $(cat "$OUT_DIR/$name.json" | head -c 400)..."
}

start_all=$SECONDS
run llm-product-10fold --llm-inference-bench "$BENCH" --descriptors "$REPO_DIR/data/descriptors"
run llm-product-lomo --llm-inference-bench "$BENCH" --descriptors "$REPO_DIR/data/descriptors" --group-col Model
run llm-product-loho --llm-inference-bench "$BENCH" --descriptors "$REPO_DIR/data/descriptors" --group-col Hardware
run llm-csv-10fold --csv "$BENCH" --task-cols "$TASK_COLS" --strategy-cols Framework --target-col Latency
run llm-csv-lomo --csv "$BENCH" --task-cols "$TASK_COLS" --strategy-cols Framework --target-col Latency --group-col Model
run llm-csv-loho --csv "$BENCH" --task-cols "$TASK_COLS" --strategy-cols Framework --target-col Latency --group-col Hardware
if [ -d "$DATA_DIR/aslib" ]; then
  for scenario in "$DATA_DIR"/aslib/*/; do
    [ -f "$scenario/algorithm_runs.arff" ] || continue
    run "aslib-$(basename "$scenario")" --aslib "$scenario"
  done
else
  echo "no $DATA_DIR/aslib: ASlib scenarios skipped"
fi
echo "all evaluations: $((SECONDS - start_all)) s; results in $OUT_DIR/"
