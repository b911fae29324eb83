#!/usr/bin/env bash
# CI smoke test of the offline evaluator on public data: LLM-Inference-Bench framework selection (10-fold, the
# product's import mapping) and one ASlib scenario (QBF-2011, else the smallest present). Fails unless accelsel beats the single best
# strategy on both and is no worse than the plain baseline xgb_plain (one XGBoost regression, library defaults). The full set is eval/run_eval.sh (make eval), published in docs/EVALUATION.md.
# Usage: eval/smoke.sh BIN_DIR SHARED_DATA_DIR
set -euo pipefail
BIN_DIR=${1:?usage: smoke.sh BIN_DIR SHARED_DATA_DIR}
DATA_DIR=${2:?usage: smoke.sh BIN_DIR SHARED_DATA_DIR}
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

"$BIN_DIR/accelsel-eval" --llm-inference-bench "$REPO_DIR/data/llm-inference-bench/throughput_all_results.csv" \
  --descriptors "$REPO_DIR/data/descriptors" --json > "$OUT/llm.json"
scenario=""
if [ -f "$DATA_DIR/aslib/QBF-2011/algorithm_runs.arff" ]; then
  scenario="$DATA_DIR/aslib/QBF-2011/"
elif [ -d "$DATA_DIR/aslib" ]; then
  scenario=$(for d in "$DATA_DIR"/aslib/*/; do
               [ -f "$d/algorithm_runs.arff" ] && echo "$(stat -c %s "$d/algorithm_runs.arff") $d"
             done | sort -n | head -1 | cut -d' ' -f2-)
fi
if [ -n "$scenario" ]; then
  "$BIN_DIR/accelsel-eval" --aslib "$scenario" --json > "$OUT/aslib.json"
fi

python3 - "$OUT" "$scenario" <<'PY'
import json, os, sys
out, scenario = sys.argv[1], sys.argv[2]
llm = json.load(open(os.path.join(out, "llm.json")))
a, sbs, plain = llm["selectors"]["accelsel"], llm["selectors"]["sbs"], llm["selectors"]["xgb_plain"]
print("LLM-Inference-Bench 10-fold: accelsel slowdown %.4f top1 %.3f | xgb_plain slowdown %.4f top1 %.3f"
      " | sbs slowdown %.4f top1 %.3f"
      % (a["slowdown_geomean"], a["top1"], plain["slowdown_geomean"], plain["top1"], sbs["slowdown_geomean"],
         sbs["top1"]))
ok = a["slowdown_geomean"] < sbs["slowdown_geomean"] and a["slowdown_geomean"] <= plain["slowdown_geomean"]
if scenario:
    s = json.load(open(os.path.join(out, "aslib.json")))
    gap = s["selectors"]["accelsel"]["remaining_gap"]
    plain_gap = s["selectors"]["xgb_plain"]["remaining_gap"]
    print("ASlib %s: accelsel remaining_gap %.3f, xgb_plain %.3f (1 = single best)"
          % (os.path.basename(scenario.rstrip("/")), gap, plain_gap))
    ok = ok and gap < 1 and gap <= plain_gap
print("eval smoke: 1 passed, 0 failed" if ok else "eval smoke: 0 passed, 1 failed")
sys.exit(0 if ok else 1)
PY
