#!/usr/bin/env bash
# Per-call breakdown of server CPU for SelectAccelerator: runs accelsel-server (and accelsel-nullserver for the
# gRPC floor) under valgrind --tool=callgrind on a prepared store, drives CALLS selects through accelsel-loadgen and
# prints instructions per call by part (inclusive counts, so nested parts are also inside their callers).
# Instruction counts do not depend on what else the machine runs, unlike times on a shared machine.
# Usage: bench/profile_select.sh BIN_DIR [RUNS=5000] [SECONDS=20]
set -euo pipefail
BIN="$(cd "${1:?usage: profile_select.sh BIN_DIR}" && pwd)"
RUNS="${2:-5000}"
SECS="${3:-20}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/accelsel-profile.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
cd "$ROOT"

# start LOG CMD...: sets ADDR and PID.
start() {
  local log="$1"; shift
  "$@" >"$log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  ADDR=""
  for _ in $(seq 1 1200); do
    ADDR="$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | head -1 | awk '{print $3}')" || true
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "profile: server did not start"; cat "$log"; exit 1
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

echo "preparing a store: $RUNS runs, 32 strategies, a trained model"
start "$WORK/prep.log" "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen= --data_dir="$WORK/db" --trainer=false --trainer_nice=0
"$BIN/accelsel-loadgen" --server "$ADDR" --rpc prepare --candidates 32 --prepare_runs "$RUNS" >/dev/null
stop "$PID"

profile() {
  local name="$1"; shift
  # Collection starts after start-up (store scan, model load), so the counts are the load's alone.
  start "$WORK/$name.log" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/$name.cg" "$@"
  callgrind_control -i on "$PID" >/dev/null
  "$BIN/accelsel-loadgen" --server "$ADDR" --rpc select --contexts unique --candidates 32 --concurrency 4 \
    --warmup 0 --duration "$SECS" --json >"$WORK/$name.json"
  stop "$PID"
}
profile real "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen= --data_dir="$WORK/db" --trainer=false --trainer_nice=0
profile null "$BIN/accelsel-nullserver" --listen=127.0.0.1:0 --mode=null
/usr/bin/python3 "$ROOT/bench/callgrind_breakdown.py" "$WORK"
rm -rf "$WORK/db"
echo "callgrind files kept in $WORK"
