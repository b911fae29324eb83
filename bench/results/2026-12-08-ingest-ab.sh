#!/usr/bin/env bash
# Used for bench/results/2026-12-08-ingest-off-the-writer.md: the two servers are copies of build/bin/accelsel-server
# of each tree at /tmp/prof/server-old and /tmp/prof/server-new. Run alone on the machine.
# A/B: per round, a fresh server of each binary, 64 backlogged streams for 5 s; prints runs/s (loadgen), runs stored
# during the measured window, writer-thread and whole-server CPU µs per stored run.
set -euo pipefail
BIN=/work/main/build/bin
WORK=$(mktemp -d /tmp/abw.XXXX)
source /work/main/bench/servers.sh
runs_stored() { curl -s "http://$1/metrics" | awk '/^accelsel_runs_stored /{print $2}'; }
for round in 1 2 3; do
  for which in old new; do
    [ $((round % 2)) = 0 ] && { [ $which = old ] && which=new || which=old; }
    rm -rf $WORK/d
    start_server s$which$round /tmp/prof/ab-$which-$round.log /tmp/prof/server-$which --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir=$WORK/d --retrain_min_new_runs=0 --retrain_growth=0 --retrain_interval=0
    v=PID_s$which$round; pid=${!v}; a=ADDR_s$which$round; addr=${!a}
    maddr=$(grep -o "metrics on [0-9.]*:[0-9]*" /tmp/prof/ab-$which-$round.log | head -1 | awk "{print \$3}")
    $BIN/accelsel-loadgen --server $addr --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
    $BIN/accelsel-loadgen --server $addr --rpc report --concurrency 64 --warmup 0 --duration 2 --max_unacked 4096 --json >/dev/null
    n0=$(runs_stored $maddr); while sleep 0.5; do m=$(runs_stored $maddr); [ "$m" = "$n0" ] && break; n0=$m; done
    declare -A t0=(); for t in /proc/$pid/task/*; do t0[$(basename $t)]=$(awk '{print $14+$15}' $t/stat); done
    all0=$(awk '{print $14+$15}' /proc/$pid/stat); w0=$(date +%s.%N)
    out=$($BIN/accelsel-loadgen --server $addr --rpc report --concurrency 64 --warmup 0 --duration 5 --max_unacked 4096 --json | tail -1)
    n1=$(runs_stored $maddr); while sleep 0.5; do m=$(runs_stored $maddr); [ "$m" = "$n1" ] && break; n1=$m; done
    all1=$(awk '{print $14+$15}' /proc/$pid/stat); w1=$(date +%s.%N)
    best=0; second=0; for t in /proc/$pid/task/*; do id=$(basename $t); d=$(( $(awk "{print \$14+\$15}" $t/stat 2>/dev/null || echo 0) - ${t0[$id]:-0} )); if [ $d -gt $best ]; then second=$best; best=$d; elif [ $d -gt $second ]; then second=$d; fi; done
    qps=$(echo "$out" | grep -o '"qps":[0-9.]*' | cut -d: -f2)
    python3 -c "n=$n1-$n0; print('round $round $which qps=%s stored=%d busiest_thread=%.2f second_thread=%.2f server=%.2f us/run wall=%.1fs' % ('$qps', n, $best*1e4/n, $second*1e4/n, ($all1-$all0)*1e4/n, $w1-$w0))"
    kill -TERM $pid; wait $pid 2>/dev/null || true
  done
done
