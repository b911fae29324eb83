#!/usr/bin/env bash
# Used for bench/results/2026-12-08-ingest-off-the-writer.md: the two servers are copies of build/bin/accelsel-server
# of each tree at /tmp/prof/server-old and /tmp/prof/server-new. Run alone on the machine.
# Catch-up A/B: one stream filled once (SECONDS of backlogged load through replica a), then fresh replicas of the old
# and the new binary, alternately, catch up from it on empty folders. Prints runs/s and replica CPU per run.
set -euo pipefail
BIN=/work/main/build/bin; SECS=${1:-10}; ROUNDS=${2:-3}
OUT=/tmp/prof/cu; rm -rf $OUT; mkdir -p $OUT
WORK="$(mktemp -d /tmp/cuab.XXXXXX)"
DESCRIPTORS=/work/main/data/descriptors
source /work/main/bench/servers.sh
read -r NATS_PORT MONITOR_PORT < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$MONITOR_PORT" -sd "$WORK/nats" >"$OUT/nats.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$MONITOR_PORT/healthz" >/dev/null && break; sleep 0.1; done
replica_cmd() {
  REPLICA=("$2" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/$1" --seed_csv=
    --trainer=false --sync_writes=false --descriptors_dir="$DESCRIPTORS" --nats="nats://127.0.0.1:$NATS_PORT"
    --replica_id="$1")
}
replica_cmd a /tmp/prof/server-new
start_server a "$OUT/a.log" "${REPLICA[@]}"
$BIN/accelsel-loadgen --server "$ADDR_a" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
$BIN/accelsel-loadgen --server "$ADDR_a" --rpc report --concurrency 16 --duration "$SECS" --json >"$OUT/load.json" 2>"$OUT/load.err"
kill -TERM "$PID_a"; wait "$PID_a" 2>/dev/null || true
for round in $(seq 1 $ROUNDS); do
  for which in old new; do
    [ $((round % 2)) = 0 ] && { [ $which = old ] && which=new || which=old; }
    name=fresh-$which-$round
    replica_cmd $name /tmp/prof/server-$which
    "${REPLICA[@]}" >"$OUT/$name.log" 2>&1 &
    FRESH=$!; PIDS+=("$FRESH")
    for _ in $(seq 1 6000); do
      grep -q cluster_caught_up "$OUT/$name.log" && break
      kill -0 "$FRESH" 2>/dev/null || { echo "fresh replica exited; see $OUT/$name.log"; exit 1; }
      sleep 0.05
    done
    CPU_S="$(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$FRESH/stat")"
    kill -TERM "$FRESH"; wait "$FRESH" 2>/dev/null || true
    rm -rf "$WORK/$name"
    python3 - "$OUT/$name.log" "$CPU_S" "$which" "$round" <<'PYEOF'
import json, sys
line = next(json.loads(l) for l in open(sys.argv[1]) if '"cluster_caught_up"' in l)
runs, secs, cpu = line["applied_sequence"], line["seconds"], float(sys.argv[2])
print(f"round {sys.argv[4]} {sys.argv[3]}: {runs} runs in {secs:.2f} s = {runs / secs:,.0f} runs/s; CPU {cpu / runs * 1e6:.1f} us/run")
PYEOF
  done
done
