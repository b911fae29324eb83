#!/bin/bash
# Usage: sim/results/run_issue_scenarios.sh build/bin OUT_DIR   (from the repository root; about 10-25 min on 2 vCPUs)
# The scenarios on one build, deterministic, JSON summaries saved whole.
B=$1; OUT=$2
T=data/llm-inference-bench/throughput_all_results.csv
mkdir -p $OUT
run() { name=$1; shift; $B/accelsel-netsim --llm-inference-bench $T --spawn-server --deterministic --jobs 20000 --json "$@" > $OUT/$name.jsonl 2> $OUT/$name.err; }
run default --seed 1
run late --seed 1 --late-hardware "AMD MI300X GPU@0.5"
run drift --seed 1 --drift vllm@0.5x3
run liars1 --seed 1 --liars 10 --liar-factor 3
for s in 2 3; do run plain$s --seed $s; run liars$s --seed $s --liars 10 --liar-factor 3; done
echo done > $OUT/DONE
