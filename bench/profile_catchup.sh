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

# replica_cmd NAME: the command line of a cluster replica on its own folder, no trainer (in REPLICA).
replica_cmd() {
  REPLICA=("$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/$1" --seed_csv=
    --trainer=false --sync_writes=false --descriptors_dir="$DESCRIPTORS" --nats="nats://127.0.0.1:$NATS_PORT"
    --replica_id="$1")
}

replica_cmd a
start_server a "$OUT/a.log" "${REPLICA[@]}"
"$BIN/accelsel-loadgen" --server "$ADDR_a" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
"$BIN/accelsel-loadgen" --server "$ADDR_a" --rpc report --concurrency 16 --duration "$SECS" --json \
  >"$OUT/load.json" 2>"$OUT/load.err"

# The fresh replica runs under perf from its first instruction (perf -p would miss the threads it starts after
# attaching, the applier among them); start_server is not used, since it waits for SERVING's "listening" line, i.e.
# the end of the catch-up. Stopping the replica ends the recording.
replica_cmd fresh
perf record -F "$HZ" -e cpu-clock -s -o "$OUT/perf.data" -- "${REPLICA[@]}" >"$OUT/fresh.log" 2>&1 &
PERF=$!
PIDS+=("$PERF")
FRESH=""
for _ in $(seq 1 100); do
  FRESH="$(pgrep -P "$PERF" || true)"
  [ -n "$FRESH" ] && break
  sleep 0.05
done
[ -n "$FRESH" ] || { echo "profile_catchup: perf did not start the replica; see $OUT/fresh.log"; exit 1; }
for _ in $(seq 1 6000); do
  grep -q cluster_caught_up "$OUT/fresh.log" && break
  kill -0 "$FRESH" 2>/dev/null || { echo "profile_catchup: the fresh replica exited; see $OUT/fresh.log"; exit 1; }
  sleep 0.05
done
CPU_S="$(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$FRESH/stat")"
kill -TERM "$FRESH"
wait "$PERF" || true

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
BUSIEST="$(report -s pid | head -1 | grep -o '[0-9]*:' | head -1)"
# By thread and library/symbol, kept to the busiest thread's rows (perf's --tid would also drop the library
# mappings, which the process's first thread recorded); shares of the whole replica's CPU.
echo "thread ${BUSIEST%:} by library:"
report -s pid,dso | grep " ${BUSIEST}" | head -8
echo "thread ${BUSIEST%:} by symbol:"
report -s pid,sym | grep " ${BUSIEST}" | head -25 | cut -c1-140
echo "profile_catchup: perf data and logs in $OUT"
