#!/usr/bin/env bash
# shellcheck disable=SC2154  # ADDR_*, MET_*, PID_* are set by printf -v (start_server, start_accel)
# What the decision stream costs (issue 20, docs/SCALE.md "Capacity"): two cluster replicas on one nats-server
# (stream replicas 1); a closed-loop SelectAccelerator load on replica a, every request a new context, with
# --decision_log=true (each answer logged and published to the decision stream, which replica b applies) against
# =false (neither). CPU per select of a (serving and publishing), b (applying the other replica's decisions) and the
# nats-server, from /proc/PID/stat over the load and until b's applied counter is steady. The modes alternate
# (ROUNDS times true, false), each on fresh servers and folders, so that the host's drift shows as spread.
# Usage: bench/cluster_decision_cost.sh BIN_DIR [SECONDS=10] [ROUNDS=2]   (about 1.5 min a round; run alone)
set -euo pipefail

BIN="$(cd "${1:?usage: cluster_decision_cost.sh BIN_DIR [SECONDS] [ROUNDS]}" && pwd)"
SECS="${2:-10}"
ROUNDS="${3:-2}"
CONC=16
WORK="$(mktemp -d /tmp/accelsel-decision-cost.XXXXXX)"
NATS_BIN="$(command -v nats-server)" || { echo "cluster_decision_cost: nats-server is not installed"; exit 1; }
DESCRIPTORS="$(cd "$(dirname "$0")/../data/descriptors" && pwd)"

# shellcheck source=bench/servers.sh
source "$(dirname "$0")/servers.sh"   # PIDS, cleanup on exit (TERM by PID, rm -rf $WORK)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -s --max-time 5 "http://$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }

# start_accel NAME DIR EXTRA...: a cluster replica on free ports (start_server); also sets MET_<NAME>.
start_accel() {
  local name="$1" dir="$2"; shift 2
  start_server "$name" "$dir/$name.log" "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$dir/$name" --seed_csv= --trainer=false --sync_writes=false --descriptors_dir="$DESCRIPTORS" \
    --replica_id="$name" "$@"
  printf -v "MET_$name" '%s' "$(grep -o 'metrics on [0-9.]*:[0-9]*' "$dir/$name.log" | head -1 | awk '{print $3}')"
}

# steady URL KEY: waits until the metric KEY stops changing (three equal reads 0.5 s apart, at most 60 s).
steady() {
  local last="" same=0 v
  for _ in $(seq 1 120); do
    v="$(metric "$1" "$2")"
    if [ "$v" = "$last" ]; then same=$((same + 1)); else same=0; fi
    [ "$same" -ge 3 ] && return 0
    last="$v"
    sleep 0.5
  done
}

# round MODE: fresh nats-server and replicas with --decision_log=MODE; prints one JSON line.
round() {
  local mode="$1" dir="$WORK/$1-$RANDOM" np mp nats a0 b0 n0 a1 b1 n1 selects
  mkdir -p "$dir"
  read -r np mp < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
  "$NATS_BIN" -js -a 127.0.0.1 -p "$np" -m "$mp" -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
  nats=$!
  PIDS+=("$nats")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$mp/varz" >/dev/null 2>&1 && break; sleep 0.1; done
  start_accel a "$dir" --nats="nats://127.0.0.1:$np" --decision_log="$mode"
  start_accel b "$dir" --nats="nats://127.0.0.1:$np" --decision_log="$mode"
  "$BIN/accelsel-loadgen" --server "$ADDR_a" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
  steady "$MET_b" accelsel_runs_stored
  a0="$(ticks "$PID_a")"; b0="$(ticks "$PID_b")"; n0="$(ticks "$nats")"
  "$BIN/accelsel-loadgen" --server "$ADDR_a" --rpc select --contexts unique --concurrency "$CONC" --warmup 0 \
    --duration "$SECS" --json >"$dir/load.json" 2>"$dir/load.err"
  if [ "$mode" = true ]; then steady "$MET_b" accelsel_cluster_decisions_applied_total; fi
  a1="$(ticks "$PID_a")"; b1="$(ticks "$PID_b")"; n1="$(ticks "$nats")"
  selects="$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["ok"])' \
    "$dir/load.json")"
  python3 - "$mode" "$selects" "$SECS" "$(getconf CLK_TCK)" "$a0" "$a1" "$b0" "$b1" "$n0" "$n1" \
    "$(metric "$MET_a" accelsel_cluster_decisions_published_total)" \
    "$(metric "$MET_b" accelsel_cluster_decisions_applied_total)" <<'PYEOF'
import json, sys
mode, selects, secs, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
a0, a1, b0, b1, n0, n1 = (float(x) for x in sys.argv[5:11])
us = lambda t0, t1: round((t1 - t0) / hz / max(selects, 1) * 1e6, 1)
num = lambda s: int(float(s)) if s else 0
print(json.dumps({"decision_log": mode, "selects": selects, "selects_per_s": round(selects / secs),
                  "a_us_per_select": us(a0, a1), "b_us_per_select": us(b0, b1), "nats_us_per_select": us(n0, n1),
                  "published": num(sys.argv[11]), "applied_by_b": num(sys.argv[12])}))
PYEOF
  kill -TERM "$PID_a" "$PID_b"; wait "$PID_a" "$PID_b" 2>/dev/null || true
  kill -TERM "$nats"; wait "$nats" 2>/dev/null || true
}

for _ in $(seq 1 "$ROUNDS"); do
  round true
  round false
done
