#!/bin/bash
# accelsel-netsim against three clustered replicas: three nats-servers with JetStream in one cluster and three
# accelsel-server replicas on them (docs/SCALE.md), each started with the flags netsim gives its --spawn-server child
# (sim/server_process.cc, sim/netsim.cc) plus the cluster flags; netsim plays against all three (round_robin).
#
# Usage (from the repository root):
#   sim/netsim_cluster.sh [NETSIM FLAGS...]
#   e.g. sim/netsim_cluster.sh --llm-inference-bench data/llm-inference-bench/throughput_all_results.csv \
#          --deterministic --seed 1 --json
# The script adds --server 127.0.0.1:G1,127.0.0.1:G2,127.0.0.1:G3; do not pass --server or --spawn-server.
# Netsim's stdout is this script's stdout; its exit status is this script's (1 when the cluster does not come up).
#
# Environment:
#   BUILD=build                  build folder holding bin/accelsel-server, bin/accelsel-netsim, bin/accelsel
#   NATS_SERVER=nats-server      the nats-server binary
#   NETSIM_CLUSTER_LOGS=DIR      copy the replicas' and nats-servers' logs there before the temp folder is removed
#   NETSIM_CLUSTER_TMP=DIR       parent of the temp folder (default $TMPDIR or /tmp)
#   REPLICA_FLAGS="..."          more accelsel-server flags for every replica (after the ones below, so they win)
#
# Replica flags, as netsim's spawned server: --sync_writes=false, --shutdown_grace=2s, --metrics_listen=,
# --descriptors_dir (netsim's --descriptors), --seed=<netsim's --seed>. With --deterministic netsim's spawned server
# gets --trainer=false; a cluster needs a trainer to hold the lease (Retrain on any replica runs on the trainer), so
# the replicas get --trainer=true with every automatic trigger off (timer, count, growth, drift): only netsim's
# Retrain calls train, except the trainer's one "initial" model when the store first holds runs and none serves
# (server/model_manager.cc TrainerLoop; it cannot be turned off by a flag). Free-running: --retrain_interval and
# --retrain_min_new_runs from --server-retrain-interval / --server-retrain-min-new-runs (default 10s, 1000).
# Cluster flags: --nats (all three), --nats_stream_replicas=3, --replica_id=rI, --seed_csv= .
# Everything started here is stopped by its PID (SIGTERM, SIGKILL after 15 s) and the temp folder removed on exit.
set -u

BUILD=${BUILD:-build}
NATS_SERVER=${NATS_SERVER:-nats-server}
SERVER_BIN=$BUILD/bin/accelsel-server
NETSIM_BIN=$BUILD/bin/accelsel-netsim
CLI_BIN=$BUILD/bin/accelsel
REPLICAS=3

for b in "$SERVER_BIN" "$NETSIM_BIN" "$CLI_BIN"; do
  [ -x "$b" ] || { echo "netsim_cluster: $b is not executable (BUILD=$BUILD)" >&2; exit 1; }
done
command -v "$NATS_SERVER" >/dev/null || { echo "netsim_cluster: $NATS_SERVER not found" >&2; exit 1; }

# The netsim flags that shape the replicas' flags.
seed=1 deterministic=0 descriptors=data/descriptors
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  a=${args[i]} next=${args[i + 1]:-}
  case $a in
    --server | --server=* | --spawn-server) echo "netsim_cluster: $a is set by this script" >&2; exit 2 ;;
    --deterministic) deterministic=1 ;;
    --seed) seed=$next ;;
    --seed=*) seed=${a#*=} ;;
    --descriptors) descriptors=$next ;;
    --descriptors=*) descriptors=${a#*=} ;;
    --server-retrain-interval | --server-retrain-min-new-runs)
      echo "netsim_cluster: $a is for --spawn-server; give the replicas --$(echo "${a#--server-}" | tr - _) through REPLICA_FLAGS" >&2
      exit 2 ;;
  esac
done

tmp_parent=${NETSIM_CLUSTER_TMP:-${TMPDIR:-/tmp}}
root=$(mktemp -d "$tmp_parent/accelsel-netsim-cluster-XXXXXX") || exit 1
nats_pids=() replica_pids=()

stop_pid() {  # SIGTERM, then SIGKILL after 15 s; only our own children
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

cleanup() {
  local pid
  for pid in "${replica_pids[@]}"; do stop_pid "$pid"; done
  for pid in "${nats_pids[@]}"; do stop_pid "$pid"; done
  if [ -n "${NETSIM_CLUSTER_LOGS:-}" ]; then
    mkdir -p "$NETSIM_CLUSTER_LOGS"
    for ((i = 0; i < REPLICAS; i++)); do
      cp "$root/r$i/server.log" "$NETSIM_CLUSTER_LOGS/replica-r$i.log" 2>/dev/null
      cp "$root/nats-$i/nats-server.log" "$NETSIM_CLUSTER_LOGS/nats-$i.log" 2>/dev/null
    done
  fi
  rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, distinct from each other: the kernel's choice for a socket bound to port 0.
read -ra ports < <(python3 -c '
import socket
socks = []
for _ in range(3 * '"$REPLICAS"'):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))')
[ ${#ports[@]} -eq $((3 * REPLICAS)) ] || { echo "netsim_cluster: no free ports" >&2; exit 1; }
client_ports=("${ports[@]:0:REPLICAS}")
route_ports=("${ports[@]:REPLICAS:REPLICAS}")
grpc_ports=("${ports[@]:2*REPLICAS:REPLICAS}")

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Three nats-servers in one cluster, as tests/cluster/cluster_faults_test.cc starts them.
nats_urls=()
for ((i = 0; i < REPLICAS; i++)); do nats_urls+=("nats://127.0.0.1:${client_ports[i]}"); done
for ((i = 0; i < REPLICAS; i++)); do
  routes=()
  for ((j = 0; j < REPLICAS; j++)); do [ $j -ne $i ] && routes+=("nats://127.0.0.1:${route_ports[j]}"); done
  mkdir -p "$root/nats-$i"
  "$NATS_SERVER" -js -a 127.0.0.1 -p "${client_ports[i]}" -sd "$root/nats-$i/jetstream" -l "$root/nats-$i/nats-server.log" \
    -n "nats-$i" --cluster_name accelsel --cluster "nats://127.0.0.1:${route_ports[i]}" \
    --routes "$(IFS=,; echo "${routes[*]}")" &
  nats_pids+=($!)
done
for ((i = 0; i < REPLICAS; i++)); do
  for _ in $(seq 200); do accepts "${client_ports[i]}" && break; sleep 0.1; done
  accepts "${client_ports[i]}" || { echo "netsim_cluster: nats-$i does not accept on ${client_ports[i]}" >&2; exit 1; }
done

replica_flags=(--metrics_listen= --descriptors_dir="$descriptors" --shutdown_grace=2s --sync_writes=false
  --seed="$seed" --nats="$(IFS=,; echo "${nats_urls[*]}")" --nats_stream_replicas=3 --seed_csv= --trainer=true)
if [ $deterministic -eq 1 ]; then
  replica_flags+=(--retrain_interval=0 --retrain_min_new_runs=0 --retrain_growth=0 --drift_factor=0)
else  # netsim's defaults for its spawned server in free-running mode
  replica_flags+=(--retrain_interval=10s --retrain_min_new_runs=1000)
fi
# shellcheck disable=SC2206
replica_flags+=(${REPLICA_FLAGS:-})

start_replica() {
  local i=$1
  mkdir -p "$root/r$i"
  "$SERVER_BIN" --listen="127.0.0.1:${grpc_ports[i]}" --data_dir="$root/r$i/data" --replica_id="r$i" \
    "${replica_flags[@]}" >>"$root/r$i/server.log" 2>&1 &
  replica_pids[i]=$!
}

# A replica that exits at start (JetStream still electing its leaders right after the servers came up) is started
# again, up to 10 times; each must say SERVING within 60 s.
for ((i = 0; i < REPLICAS; i++)); do start_replica $i; done
for ((i = 0; i < REPLICAS; i++)); do
  starts=1 serving=0
  for _ in $(seq 600); do
    if "$CLI_BIN" health --server "127.0.0.1:${grpc_ports[i]}" --deadline_ms 1000 >/dev/null 2>&1; then serving=1; break; fi
    if ! kill -0 "${replica_pids[i]}" 2>/dev/null; then
      wait "${replica_pids[i]}" 2>/dev/null
      [ $starts -ge 10 ] && break
      sleep 1; start_replica $i; starts=$((starts + 1))
    fi
    sleep 0.1
  done
  if [ $serving -ne 1 ]; then
    echo "netsim_cluster: replica r$i (127.0.0.1:${grpc_ports[i]}) not SERVING after $starts start(s); log tail:" >&2
    tail -n 20 "$root/r$i/server.log" >&2
    exit 1
  fi
done
# Retrain on a replica needs a trainer: wait until one holds the lease.
for _ in $(seq 300); do
  grep -q cluster_trainer_elected "$root"/r*/server.log 2>/dev/null && break
  sleep 0.1
done
grep -l cluster_trainer_elected "$root"/r*/server.log >/dev/null 2>&1 ||
  { echo "netsim_cluster: no replica took the trainer lease within 30 s" >&2; exit 1; }
echo "netsim_cluster: 3 nats-servers, replicas r0-r2 SERVING on" \
  "$(for p in "${grpc_ports[@]}"; do printf '127.0.0.1:%s ' "$p"; done)(trainer:" \
  "$(grep -l cluster_trainer_elected "$root"/r*/server.log | xargs -n1 dirname | xargs -n1 basename | tr '\n' ' '))" >&2

servers=$(for p in "${grpc_ports[@]}"; do printf '127.0.0.1:%s,' "$p"; done)
"$NETSIM_BIN" "$@" --server "${servers%,}"
rc=$?
for ((i = 0; i < REPLICAS; i++)); do  # errors the replicas logged, for the caller's record
  grep -oE '"level":"(error|warn[a-z]*)","event":"[^"]*"' "$root/r$i/server.log" 2>/dev/null | sort | uniq -c | sort -rn |
    sed "s/^/netsim_cluster: r$i log: /" >&2
done
exit $rc
