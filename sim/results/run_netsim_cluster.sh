#!/bin/bash
# Usage: sim/results/run_netsim_cluster.sh BUILD_DIR OUT_DIR [SEEDS...]   (from the repository root; about 4 min a seed
# on 2 vCPUs). Issue 20: the closed-loop simulator against one spawned server and against three clustered replicas
# (sim/netsim_cluster.sh), --deterministic, the default scenario (1,000 nodes, 20,000 jobs), seeds 1-3 unless given.
# BUILD_DIR holds bin/accelsel-server, bin/accelsel-netsim and bin/accelsel. Each run is under the shared build lock
# (flock -o: the servers a run starts do not inherit the lock).
B=$1; OUT=$2; shift 2
SEEDS=${*:-1 2 3}
T=data/llm-inference-bench/throughput_all_results.csv
LOCK=/tmp/accelsel-build.lock
mkdir -p "$OUT"
for s in $SEEDS; do
  flock -o $LOCK "$B/bin/accelsel-netsim" --llm-inference-bench $T --deterministic --seed "$s" --json --spawn-server \
    > "$OUT/single-$s.jsonl" 2> "$OUT/single-$s.err"
  echo "single seed $s rc=$?" >> "$OUT/STATUS"
  BUILD=$B NETSIM_CLUSTER_LOGS=$OUT/cluster-$s-logs flock -o $LOCK sim/netsim_cluster.sh --llm-inference-bench $T \
    --deterministic --seed "$s" --json > "$OUT/cluster-$s.jsonl" 2> "$OUT/cluster-$s.err"
  echo "cluster seed $s rc=$?" >> "$OUT/STATUS"
done
echo "all done" >> "$OUT/STATUS"
