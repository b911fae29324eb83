#!/bin/bash
# Catch-up of a fresh cluster replica, --sync_writes true against false (one nats-server, stream replicas 1): replica a
# takes a backlogged load for DUR seconds (default 12), then each of VARIANTS (default "true false true false") starts
# a fresh replica on an empty folder and times it to its cluster_caught_up line. Stops what it started; removes its
# temp folder. Usage: bench/results/run_catchup_sync.sh BIN_DIR   (BIN_DIR holds accelsel-server, accelsel-loadgen)
set -u
BIN=${1:?usage: bench/results/run_catchup_sync.sh BIN_DIR}
DESCRIPTORS="$(cd "$(dirname "$0")/../../data/descriptors" && pwd)"
W=$(mktemp -d /tmp/catchup.XXXX)
read -r NP MP < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
nats-server -js -a 127.0.0.1 -p "$NP" -m "$MP" -sd "$W/nats" >"$W/nats.log" 2>&1 &
NPID=$!
sleep 1
# start NAME EXTRA...: a replica on its own folder; prints its pid.
start() {
  local n=$1
  shift
  "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$W/$n" --seed_csv= \
    --trainer=false --nats="nats://127.0.0.1:$NP" --replica_id="$n" --descriptors_dir="$DESCRIPTORS" "$@" \
    >"$W/$n.log" 2>&1 &
  echo $!
}
APID=$(start a --sync_writes=false)
for _ in $(seq 100); do grep -q "listening on" "$W/a.log" && break; sleep 0.2; done
ADDR=$(grep -o 'listening on [0-9.]*:[0-9]*' "$W/a.log" | awk '{print $3}')
"$BIN/accelsel-loadgen" --server "$ADDR" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
"$BIN/accelsel-loadgen" --server "$ADDR" --rpc report --concurrency 16 --duration "${DUR:-12}" --json \
  >"$W/load.json" 2>"$W/load.err"
echo "load: $(tail -c 300 "$W/load.json")"
sleep 2
for v in ${VARIANTS:-true false true false}; do
  n=f$RANDOM
  t0=$(date +%s.%N)
  P=$(start "$n" --sync_writes="$v")
  for _ in $(seq 3000); do grep -q cluster_caught_up "$W/$n.log" && break; sleep 0.05; done
  t1=$(date +%s.%N)
  cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$P/stat")
  echo "sync_writes=$v wall=$(echo "$t1 - $t0" | bc) cpu=$cpu $(grep -m1 cluster_caught_up "$W/$n.log")"
  kill "$P"
  wait "$P" 2>/dev/null
done
kill "$APID" "$NPID"
wait "$APID" "$NPID" 2>/dev/null
rm -rf "$W"
