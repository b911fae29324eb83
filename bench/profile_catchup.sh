#!/usr/bin/env bash
# shellcheck disable=SC2154  # ADDR_* and PID_* are set by start_server (bench/servers.sh)
# Where a new cluster replica's catch-up time goes (issue 20, "A new replica catches up ..."): one nats-server
# (stream replicas 1), replica a takes a backlogged ReportRun load for SECONDS, then a fresh replica on an empty
# --data_dir catches up under perf (software clock, all its threads) until its cluster_caught_up line. Prints the
# catch-up rate, the replica's CPU per run, and its CPU by thread (RocksDB's background threads are named
# rocksdb:*; the NATS client's and the applier are not, so they show by thread id) and, for the busiest thread, by
# library and by symbol. Both replicas run with --sync_writes=false, as a replica applying the stream does.
# Usage: bench/profile_catchup.sh BIN_DIR [SECONDS=15] [OUT_DIR]   (about a minute; run alone on a shared host)
set -euo pipefail

BIN="$(cd "${1:?usage: profile_catchup.sh BIN_DIR [SECONDS] [OUT_DIR]}" && pwd)"
SECS="${2:-15}"
OUT="${3:-$(mktemp -d /tmp/accelsel-catchup-prof.XXXXXX)}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/accelsel-catchup-data.XXXXXX)"
HZ=999
command -v perf >/dev/null || { echo "profile_catchup: perf not installed"; exit 1; }
NATS_BIN="$(command -v nats-server)" || { echo "profile_catchup: nats-server is not installed"; exit 1; }
DESCRIPTORS="$(cd "$(dirname "$0")/../data/descriptors" && pwd)"

# shellcheck source=bench/servers.sh
source "$(dirname "$0")/servers.sh"

read -r NATS_PORT MONITOR_PORT < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
"$NATS_BIN" -js -a 127.0.0.1 -p "$NATS_PORT" -m "$MONITOR_PORT" -sd "$WORK/nats" >"$OUT/nats.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$MONITOR_PORT/healthz" >/dev/null && break
  sleep 0.1
done

# replica NAME: a cluster replica on its own folder, no trainer.
replica() {
  start_server "$1" "$OUT/$1.log" "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$WORK/$1" --seed_csv= --trainer=false --sync_writes=false --descriptors_dir="$DESCRIPTORS" \
    --nats="nats://127.0.0.1:$NATS_PORT" --replica_id="$1"
}

replica a
"$BIN/accelsel-loadgen" --server "$ADDR_a" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
"$BIN/accelsel-loadgen" --server "$ADDR_a" --rpc report --concurrency 16 --duration "$SECS" --json \
  >"$OUT/load.json" 2>"$OUT/load.err"

# The fresh replica is started by hand (start_server waits for SERVING's "listening" line, i.e. the end of the
# catch-up), and perf attaches to it at once.
"$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/fresh" --seed_csv= \
  --trainer=false --sync_writes=false --descriptors_dir="$DESCRIPTORS" --nats="nats://127.0.0.1:$NATS_PORT" \
  --replica_id=fresh >"$OUT/fresh.log" 2>&1 &
FRESH=$!
PIDS+=("$FRESH")
perf record -F "$HZ" -e cpu-clock -s -p "$FRESH" -o "$OUT/perf.data" >"$OUT/perf.log" 2>&1 &
PERF=$!
for _ in $(seq 1 6000); do
  grep -q cluster_caught_up "$OUT/fresh.log" && break
  kill -0 "$FRESH" 2>/dev/null || { echo "profile_catchup: the fresh replica exited; see $OUT/fresh.log"; exit 1; }
  sleep 0.05
done
kill -INT "$PERF"
wait "$PERF" || true
CPU_S="$(awk '{print ($14 + $15) / 100}' "/proc/$FRESH/stat")"

python3 - "$OUT/fresh.log" "$CPU_S" <<'PYEOF'
import json, sys
line = next(json.loads(l) for l in open(sys.argv[1]) if '"cluster_caught_up"' in l)
runs, secs, cpu = line["applied_sequence"], line["seconds"], float(sys.argv[2])
print(f"profile_catchup: {runs} runs caught up in {secs:.1f} s = {runs / secs:,.0f} runs/s; "
      f"replica CPU {cpu:.1f} s = {cpu / runs * 1e6:.1f} us per run (start-up included)")
PYEOF
report() { perf report -i "$OUT/perf.data" --no-children --stdio "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
echo "CPU by thread:"
report -s pid,comm | head -8
BUSIEST="$(report -s pid | head -1 | grep -o '[0-9]*:' | head -1 | tr -d :)"
echo "thread $BUSIEST by library:"
report --tid "$BUSIEST" -s dso | head -8
echo "thread $BUSIEST by symbol:"
report --tid "$BUSIEST" -s symbol | head -25 | cut -c1-120
echo "profile_catchup: perf data and logs in $OUT"
