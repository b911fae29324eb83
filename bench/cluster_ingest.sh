#!/usr/bin/env bash
# shellcheck disable=SC2154  # PID_*, ADDR_*, MET_* are set by printf -v (start_nats, start_accel)
# Cluster-mode ingest cost (issue 20, "Bench, same run"): ReportRun through one accelsel-server in single-process mode
# against the same through cluster-mode replicas on NATS JetStream, in one run on one machine, with the CPU each side
# spends per run (utime + stime deltas from /proc/PID/stat over each measured interval), and the catch-up rate of a
# new replica against the stream's own consumer rate. Stops exactly the processes it started; removes its temp dirs.
#
# Usage: bench/cluster_ingest.sh BIN_DIR   (e.g. build/bin; needs nats-server and libnats-dev's cc -lnats)
# Cases: single (no --nats); c1 (one replica, one nats-server, stream replicas 1); r3x1, r3x2, r3x3 (three clustered
# nats-servers, stream replicas 3, with 1, 2, 3 replicas; the load balances over the replicas' list). Each case runs a
# backlogged closed loop (CI_CONCURRENCY streams, default 16, --max_unacked 4096, CI_SECONDS measured, default 15)
# and an open loop at CI_OPEN_RATE reports/s (default 2000, CI_OPEN_SECONDS, default 5) for the latency when not
# saturated. Then, with the stream holding N runs: an ordered consumer (a 40-line cnats program compiled here, the
# same subscription and per-message metadata parse the replica's applier uses, nothing applied) reads the whole
# stream; and a fresh replica on an empty --data_dir catches up (time to its cluster_caught_up log line, i.e.
# health SERVING, and to its applied sequence = the stream's last; runs_missing = N - its runs_stored).
# CPU per run = ΔCPU / Δruns_stored over the interval from just before the loadgen starts (warm-up included) to the
# moment every replica has applied everything (runs_stored equal and steady), so apply is counted in full.
# Measurements take CI_LOCK (default /tmp/accelsel-build.lock, "" = none) per case with flock, so they do not overlap
# other compiles on a shared machine; servers never inherit the lock's descriptor.
# Environment: BENCH_OUT (folder for the raw results, default a new temp folder that is kept).
set -euo pipefail

BIN_SRC="$(cd "${1:?usage: cluster_ingest.sh BIN_DIR}" && pwd)"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS="${CI_SECONDS:-15}"
CONC="${CI_CONCURRENCY:-16}"
RATE="${CI_OPEN_RATE:-2000}"
OPEN_SECS="${CI_OPEN_SECONDS:-5}"
LOCK="${CI_LOCK-/tmp/accelsel-build.lock}"
CASES="${CI_CASES:-single c1 r3}"   # which sections run: single, c1, r3 (r3 includes the catch-up)
OUT="${BENCH_OUT:-$(mktemp -d /tmp/accelsel-cluster-bench.XXXXXX)}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/accelsel-cluster-data.XXXXXX)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
NATS_BIN="$(command -v nats-server)" || { echo "cluster_ingest: nats-server is not installed"; exit 1; }
cd "$ROOT"

# shellcheck source=bench/servers.sh
source "$ROOT/bench/servers.sh"   # PIDS, cleanup on exit (TERM by PID, rm -rf $WORK)

# The binaries are copied, so that a rebuild by someone else during the run does not mix two builds.
BIN="$WORK/bin"
mkdir -p "$BIN"
cp "$BIN_SRC/accelsel-server" "$BIN_SRC/accelsel-loadgen" "$BIN/"
HZ="$(getconf CLK_TCK)"

LOCKFD=""
lock_begin() {
  [ -n "$LOCK" ] || return 0
  exec {LOCKFD}>>"$LOCK"
  flock "$LOCKFD"
}
lock_end() {
  [ -n "$LOCKFD" ] || return 0
  flock -u "$LOCKFD"
  exec {LOCKFD}>&-
  LOCKFD=""
}
# nolock CMD...: runs CMD without the lock's descriptor.
nolock() { if [ -n "$LOCKFD" ]; then "$@" {LOCKFD}>&-; else "$@"; fi; }
# spawn LOG CMD...: starts CMD in the background without the lock's descriptor; sets SPAWNED to its PID.
spawn() {
  local log="$1"; shift
  # Not through nolock: a backgrounded function would be a subshell, and $! its PID, not the server's.
  if [ -n "$LOCKFD" ]; then "$@" >"$log" 2>&1 {LOCKFD}>&- & else "$@" >"$log" 2>&1 & fi
  SPAWNED=$!
  PIDS+=("$SPAWNED")
}
# stop PID...: TERM and wait (the servers.sh cleanup does the same for whatever is left on exit).
stop() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

free_ports() { "$PY" -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"; }

# start_nats NAME PORT MONPORT EXTRA...: a JetStream nats-server on 127.0.0.1; sets PID_<NAME>.
start_nats() {
  local name="$1" port="$2" mon="$3"; shift 3
  mkdir -p "$WORK/$name"
  spawn "$OUT/$name.log" "$NATS_BIN" -js -a 127.0.0.1 -p "$port" -m "$mon" -sd "$WORK/$name" "$@"
  printf -v "PID_$name" '%s' "$SPAWNED"
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$mon/varz" >/dev/null 2>&1 && return 0
    kill -0 "$SPAWNED" 2>/dev/null || { echo "cluster_ingest: $name exited:"; cat "$OUT/$name.log"; exit 1; }
    sleep 0.1
  done
  echo "cluster_ingest: $name did not start"; cat "$OUT/$name.log"; exit 1
}
# wait_js_leader MONPORT: until the JetStream meta group of a clustered nats-server has a leader.
wait_js_leader() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$1/jsz" 2>/dev/null | grep -q '"leader": *"[^"]' && return 0
    sleep 0.1
  done
  echo "cluster_ingest: no JetStream meta leader"; exit 1
}

# start_accel NAME EXTRA...: an accelsel-server on free ports; sets ADDR_<NAME>, MET_<NAME>, PID_<NAME>.
start_accel() {
  local name="$1"; shift
  mkdir -p "$WORK/$name"
  spawn "$OUT/$name.log" "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$WORK/$name/data" --seed_csv= --trainer=false "$@"
  local pid="$SPAWNED" line=""
  for _ in $(seq 1 600); do
    line="$(grep -m1 'listening on' "$OUT/$name.log" 2>/dev/null)" || true
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "cluster_ingest: $name exited:"; cat "$OUT/$name.log"; exit 1; }
    sleep 0.1
  done
  [ -n "$line" ] || { echo "cluster_ingest: $name did not start"; exit 1; }
  printf -v "ADDR_$name" '%s' "$(grep -o 'listening on [0-9.]*:[0-9]*' <<<"$line" | awk '{print $3}')"
  printf -v "MET_$name" '%s' "$(grep -o 'metrics on [0-9.]*:[0-9]*' <<<"$line" | awk '{print $3}')"
  printf -v "PID_$name" '%s' "$pid"
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -s --max-time 5 "http://$1/metrics" | awk -v k="$2" '$1 == k {print $2}'; }
stored() { metric "$1" accelsel_runs_stored; }
# position MET: a replica's stream position (accelsel_cluster_applied_sequence), or its runs_stored in single mode.
position() {
  local m
  m="$(curl -s --max-time 5 "http://$1/metrics")"
  awk '$1 == "accelsel_cluster_applied_sequence" {print $2; f = 1} END {if (!f) exit 1}' <<<"$m" ||
    awk '$1 == "accelsel_runs_stored" {print $2}' <<<"$m"
}
# settled MET...: waits until every replica is at the same position, unchanged for 0.5 s (all applied); prints the
# first replica's runs_stored. (Positions, not runs_stored: a replica that skipped messages never reaches the others'
# count, see cluster_messages_lost_to_retention in its log.)
settled() {
  local prev="" cur m
  for _ in $(seq 1 600); do
    cur=""
    for m in "$@"; do cur="$cur $(position "$m")"; done
    if [ "$cur" = "$prev" ] && [ "$(tr ' ' '\n' <<<"$cur" | sed '/^$/d' | sort -u | wc -l)" = 1 ]; then
      stored "$1"; return 0
    fi
    prev="$cur"
    sleep 0.5
  done
  echo "cluster_ingest: replicas did not converge:$cur" >&2; exit 1
}

# measure CASE KIND "ACCEL_PIDS" "NATS_PIDS" "METRICS" LOADGEN-ARGS...: one load under the lock; writes OUT/CASE-KIND.json
# with the loadgen's figures, the runs every replica stored, wall seconds and each process's CPU seconds.
measure() {
  local case="$1" kind="$2" apids="$3" npids="$4" mets="$5"; shift 5
  local p a0="" n0="" a1="" n1="" r0 r1 w0 w1
  lock_begin
  # shellcheck disable=SC2086
  r0="$(settled $mets)"
  w0="$(date +%s.%N)"
  for p in $apids; do a0="$a0 $(ticks "$p")"; done
  for p in $npids; do n0="$n0 $(ticks "$p")"; done
  nolock "$BIN/accelsel-loadgen" --json "$@" >"$OUT/$case-$kind.raw" 2>"$OUT/$case-$kind.err" || {
    lock_end; echo "cluster_ingest: loadgen $case-$kind failed:"; tail -5 "$OUT/$case-$kind.err"; exit 1; }
  # shellcheck disable=SC2086
  r1="$(settled $mets)"
  w1="$(date +%s.%N)"
  for p in $apids; do a1="$a1 $(ticks "$p")"; done
  for p in $npids; do n1="$n1 $(ticks "$p")"; done
  lock_end
  "$PY" - "$OUT/$case-$kind.raw" "$case" "$kind" "$r0" "$r1" "$w0" "$w1" "$a0" "$a1" "$n0" "$n1" "$HZ" \
    >"$OUT/$case-$kind.json" <<'PYEOF'
import json, sys
a = sys.argv
r = json.loads(open(a[1]).read().strip().splitlines()[-1])
hz = float(a[12])
d = lambda x, y: [(float(j) - float(i)) / hz for i, j in zip(x.split(), y.split())]
r.update(case=a[2], kind=a[3], runs=int(a[5]) - int(a[4]), wall_s=float(a[7]) - float(a[6]),
         accel_cpu_s=d(a[8], a[9]), nats_cpu_s=d(a[10], a[11]))
print(json.dumps(r))
PYEOF
  "$PY" - "$OUT/$case-$kind.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
k = r["runs"] / 1000.0
print("  %-6s %-6s %8.0f runs/s  p50 %8.2f ms  p99 %8.2f ms  runs %7d  accelsel s/1k runs %s  nats s/1k runs %s" % (
    r["case"], r["kind"], r["qps"], r["p50_ms"], r["p99_ms"], r["runs"],
    " ".join("%.3f" % (c / k) for c in r["accel_cpu_s"]), " ".join("%.3f" % (c / k) for c in r["nats_cpu_s"]) or "-"))
PYEOF
}

# run_case CASE "ACCEL NAMES" "NATS PIDS": registers the strategies on every replica, then the closed and open loads.
run_case() {
  local case="$1" names="$2" npids="$3" n servers="" apids="" mets="" v
  for n in $names; do
    v="ADDR_$n"; servers="${servers:+$servers,}${!v}"
    "$BIN/accelsel-loadgen" --server "${!v}" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
    v="PID_$n"; apids="$apids ${!v}"
    v="MET_$n"; mets="$mets ${!v}"
  done
  measure "$case" closed "$apids" "$npids" "$mets" --server "$servers" --rpc report --concurrency "$CONC" \
    --max_unacked 4096 --warmup 1 --duration "$SECS"
  measure "$case" open "$apids" "$npids" "$mets" --server "$servers" --rpc report --concurrency "$CONC" \
    --max_unacked 4096 --warmup 1 --duration "$OPEN_SECS" --rate "$RATE"
}

echo "cluster_ingest: $(nproc) CPUs, closed loop $CONC streams x ${SECS}s, open loop $RATE/s x ${OPEN_SECS}s; raw results in $OUT"

# 1. Single-process mode.
if [[ " $CASES " == *" single "* ]]; then
  start_accel single
  run_case single single ""
  stop "$PID_single"
fi

# 2. One replica, one nats-server, stream replicas 1.
if [[ " $CASES " == *" c1 "* ]]; then
  read -r NP NM <<<"$(free_ports 2)"
  start_nats n1 "$NP" "$NM"
  start_accel c1 --nats="nats://127.0.0.1:$NP" --nats_stream_replicas=1 --replica_id=c1
  run_case c1 c1 "$PID_n1"
  stop "$PID_c1" "$PID_n1"
fi
[[ " $CASES " == *" r3 "* ]] || exit 0

# 3. Three clustered nats-servers, stream replicas 3; 1, 2, 3 replicas.
read -r P0 P1 P2 R0 R1 R2 M0 M1 M2 <<<"$(free_ports 9)"
CP=("$P0" "$P1" "$P2"); RP=("$R0" "$R1" "$R2"); MP=("$M0" "$M1" "$M2")
NATS_URLS=""
for i in 0 1 2; do
  routes=""
  for j in 0 1 2; do [ "$j" = "$i" ] || routes="${routes:+$routes,}nats://127.0.0.1:${RP[$j]}"; done
  start_nats "m$i" "${CP[$i]}" "${MP[$i]}" -n "nats-$i" --cluster_name accelsel \
    --cluster "nats://127.0.0.1:${RP[$i]}" --routes "$routes"
  NATS_URLS="${NATS_URLS:+$NATS_URLS,}nats://127.0.0.1:${CP[$i]}"
done
for i in 0 1 2; do wait_js_leader "${MP[$i]}"; done
NPIDS="$PID_m0 $PID_m1 $PID_m2"
# Each replica connects to its own nats-server first (the others are its fail-over list).
replica_urls() { local i="$1"; echo "nats://127.0.0.1:${CP[$i]},$NATS_URLS"; }
NAMES=""
for i in 0 1 2; do
  start_accel "r$i" --nats="$(replica_urls "$i")" --nats_stream_replicas=3 --replica_id="r$i"
  NAMES="$NAMES r$i"
  run_case "r3x$((i + 1))" "$NAMES" "$NPIDS"
done

# 4. Catch-up. The stream now holds every run of the r3 cases (N); nothing else is running.
N="$(stored "$MET_r0")"
SEQ="$(position "$MET_r0")"
echo "cluster_ingest: stream holds $N runs; consumer rate, then catch-up of a fresh replica"
cat >"$WORK/consume.c" <<'CEOF'
/* Reads stream ARGV[2] (subject accelsel.runs) from its first message to its last, as accelsel's applier does
   (ordered push consumer, js_SubscribeSync, NextMsg, each message's metadata parsed), applying nothing. */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char** argv) {
  natsConnection* nc = NULL; jsCtx* js = NULL; natsSubscription* sub = NULL; jsStreamInfo* info = NULL;
  jsErrCode jerr = 0;
  if (argc < 3 || natsConnection_ConnectTo(&nc, argv[1]) != NATS_OK) { fprintf(stderr, "connect failed\n"); return 1; }
  if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK) return 1;
  if (js_GetStreamInfo(&info, js, argv[2], NULL, &jerr) != NATS_OK) { fprintf(stderr, "no stream\n"); return 1; }
  uint64_t last = info->State.LastSeq, n = 0, bytes = 0;
  jsSubOptions so; jsSubOptions_Init(&so); so.Stream = argv[2]; so.Ordered = true; so.Config.DeliverPolicy = js_DeliverAll;
  double t0 = now();
  if (js_SubscribeSync(&sub, js, "accelsel.runs", NULL, &so, &jerr) != NATS_OK) { fprintf(stderr, "subscribe failed\n"); return 1; }
  for (;;) {
    natsMsg* m = NULL; jsMsgMetaData* meta = NULL;
    if (natsSubscription_NextMsg(&m, sub, 10000) != NATS_OK) { fprintf(stderr, "stalled at %llu\n", (unsigned long long)n); return 1; }
    uint64_t seq = 0;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) { seq = meta->Sequence.Stream; jsMsgMetaData_Destroy(meta); }
    bytes += natsMsg_GetDataLength(m); natsMsg_Destroy(m); n++;
    if (seq >= last) break;
  }
  double t = now() - t0; struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  printf("{\"messages\":%llu,\"bytes\":%llu,\"seconds\":%.3f,\"rate\":%.0f,\"consumer_cpu_s\":%.3f}\n",
         (unsigned long long)n, (unsigned long long)bytes, t, n / t,
         ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
  natsSubscription_Destroy(sub); jsStreamInfo_Destroy(info); jsCtx_Destroy(js); natsConnection_Destroy(nc);
  return 0;
}
CEOF
cc -O2 -o "$WORK/consume" "$WORK/consume.c" -lnats

# consume_rate NAME: the consumer against nats-0, under the lock, with the nats-servers' CPU.
consume_rate() {
  local name="$1" n0="" n1="" p
  lock_begin
  for p in $NPIDS; do n0="$n0 $(ticks "$p")"; done
  nolock "$WORK/consume" "nats://127.0.0.1:${CP[0]}" ACCELSEL_RUNS >"$OUT/$name.raw"
  for p in $NPIDS; do n1="$n1 $(ticks "$p")"; done
  lock_end
  "$PY" - "$OUT/$name.raw" "$n0" "$n1" "$HZ" >"$OUT/$name.json" <<'PYEOF'
import json, sys
r = json.loads(open(sys.argv[1]).read())
r["nats_cpu_s"] = [(float(j) - float(i)) / float(sys.argv[4]) for i, j in zip(sys.argv[2].split(), sys.argv[3].split())]
print(json.dumps(r))
PYEOF
  echo "  $name: $(cat "$OUT/$name.json")"
}
consume_rate consume_before

# The fresh replica: from its start to its cluster_caught_up line (health SERVING) and to its position = the stream's
# last sequence (runs_stored = N unless it skipped messages: runs_missing).
lock_begin
n0=""; for p in $NPIDS; do n0="$n0 $(ticks "$p")"; done
w0="$(date +%s.%N)"
start_accel fresh --nats="$(replica_urls 0)" --nats_stream_replicas=3 --replica_id=fresh
ws="$(date +%s.%N)"
for _ in $(seq 1 6000); do
  [ "$(position "$MET_fresh")" = "$SEQ" ] && break
  sleep 0.05
done
w1="$(date +%s.%N)"
a1="$(ticks "$PID_fresh")"
n1=""; for p in $NPIDS; do n1="$n1 $(ticks "$p")"; done
lock_end
for _ in $(seq 1 100); do grep -q cluster_caught_up "$OUT/fresh.log" && break; sleep 0.1; done
"$PY" - "$OUT/fresh.log" "$N" "$(stored "$MET_fresh")" "$w0" "$ws" "$w1" "$a1" "$n0" "$n1" "$HZ" \
  >"$OUT/catchup.json" <<'PYEOF'
import json, sys
a = sys.argv
hz = float(a[10])
caught = None
for line in open(a[1]):
    if "cluster_caught_up" in line and line.startswith("{"):
        caught = json.loads(line)
r = dict(runs=int(a[2]), runs_stored=int(a[3]), start_to_listening_s=float(a[5]) - float(a[4]),
         start_to_stored_s=float(a[6]) - float(a[4]), replica_cpu_s=float(a[7]) / hz,
         nats_cpu_s=[(float(j) - float(i)) / hz for i, j in zip(a[8].split(), a[9].split())],
         caught_up_log=caught)
r["rate_to_stored"] = r["runs"] / r["start_to_stored_s"]
r["runs_missing"] = r["runs"] - r["runs_stored"]
r["lost_to_retention_lines"] = sum("cluster_messages_lost_to_retention" in l for l in open(a[1]))
r["slow_consumer_lines"] = sum("Slow Consumer" in l for l in open(a[1]))
if caught and "seconds" in caught:
    r["rate_to_serving"] = r["runs"] / caught["seconds"]
print(json.dumps(r))
PYEOF
echo "  catchup: $(cat "$OUT/catchup.json")"
stop "$PID_fresh"
consume_rate consume_after

# The table.
"$PY" - "$OUT" <<'PYEOF'
import glob, json, os, sys
out = sys.argv[1]
print()
print("| case | load | replicas | runs/s | p50 ms | p99 ms | runs | accelsel CPU s / 1k runs, each replica | NATS CPU s / 1k runs, each server | total CPU s / 1k runs |")
print("|---|---|---|---:|---:|---:|---:|---|---|---:|")
for case in ["single", "c1", "r3x1", "r3x2", "r3x3"]:
    for kind in ["closed", "open"]:
        f = os.path.join(out, "%s-%s.json" % (case, kind))
        if not os.path.exists(f):
            continue
        r = json.load(open(f))
        k = r["runs"] / 1000.0
        acc = [c / k for c in r["accel_cpu_s"]]
        nat = [c / k for c in r["nats_cpu_s"]]
        print("| %s | %s | %d | %.0f | %.2f | %.2f | %d | %s | %s | %.3f |" % (
            case, kind, len(acc), r["qps"], r["p50_ms"], r["p99_ms"], r["runs"],
            " / ".join("%.3f" % x for x in acc), " / ".join("%.3f" % x for x in nat) or "-", sum(acc) + sum(nat)))
PYEOF
