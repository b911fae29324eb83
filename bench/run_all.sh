#!/usr/bin/env bash
# Runs every accelsel benchmark against servers it starts on 127.0.0.1 (free ports), prints one table of figures
# and ratios, and stops exactly the processes it started. Usage: bench/run_all.sh BIN_DIR  (make bench does this)
# Environment: BENCH_SECONDS (measured seconds per load run, default 5); BENCH_PREPARE_RUNS (runs stored in the
# real server before the select runs, default 100000); BENCH_TRAIN_LARGE=1 also runs the training
# micro-benchmark on 100k and 1M runs (each in its own process for its peak RSS; many minutes on a shared 2-core
# machine) — by default 100k-run training is measured through the server's own Retrain; BENCH_OUT (folder for the
# raw results, default a new temp folder that is kept); BENCH_ONLY=streams runs only the streams section (step 7,
# a few minutes; BENCH_STREAMS_SECONDS measured seconds per case, default 3); BENCH_ONLY=decision_log runs only the
# decision-log section (step 8, about 3 minutes; its settings are described above decision_log_section).
set -euo pipefail

BIN="$(cd "${1:?usage: run_all.sh BIN_DIR}" && pwd)"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS="${BENCH_SECONDS:-5}"
OUT="${BENCH_OUT:-$(mktemp -d /tmp/accelsel-bench.XXXXXX)}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/accelsel-bench-data.XXXXXX)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
cd "$ROOT"

# shellcheck source=bench/servers.sh
source "$ROOT/bench/servers.sh"

# start NAME CMD...: start_server with the output in $OUT/NAME.log.
start() {
  local name="$1"; shift
  start_server "$name" "$OUT/$name.log" "$@"
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# load NAME PID LOADGEN-ARGS...: runs the loadgen, saves its JSON with the server's CPU seconds added.
load() {
  local name="$1" pid="$2"; shift 2
  local t0 t1
  t0="$(ticks "$pid")"
  "$BIN/accelsel-loadgen" --json "$@" >"$OUT/$name.raw" 2>"$OUT/$name.err" || {
    echo "run_all: loadgen $name failed:"; cat "$OUT/$name.err"; exit 1; }
  t1="$(ticks "$pid")"
  "$PY" - "$OUT/$name.raw" "$t0" "$t1" "$(getconf CLK_TCK)" >"$OUT/$name.json" <<'PYEOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
r["server_cpu_s"] = (float(sys.argv[3]) - float(sys.argv[2])) / float(sys.argv[4])
print(json.dumps(r))
PYEOF
  echo "  $name: $(cat "$OUT/$name.json")"
}

# The streams section (issue 13): ReportRun with many concurrent streams against the real server (sync writes).
# Every case caps each stream at 4,096 unacknowledged reports (--max_unacked: the same client discipline at 1 and at
# 1,000 streams, and short drains), and spreads its streams over connections of at most 100 streams each (the
# server's per-connection limit; gRPC would queue the rest). Memory cases run on fresh servers so that the RSS
# they difference is not memory freed by an earlier case and kept by malloc.
streams_section() {
  local ss="${BENCH_STREAMS_SECONDS:-3}" c
  local SC=(--warmup 1 --duration "$ss" --max_unacked 4096)
  echo "[7/8] ReportRun streams, sync writes, $ss s each: backlogged 1/4/16/64/1,000 streams; 16 busy + 984 idle; open loop over 1,000 at half the peak; RSS per stream"
  start streams "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/streams" \
    --trainer=false --sync_writes=true
  start streamsidle "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$WORK/streamsidle" --trainer=false --sync_writes=true
  start streamsmem "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$WORK/streamsmem" --trainer=false --sync_writes=true
  start streamsbare "$BIN/accelsel-nullserver" --listen=127.0.0.1:0 --mode=bare --data_dir="$WORK/streamsbare" \
    --sync_writes=true
  for s in "$ADDR_streams" "$ADDR_streamsidle" "$ADDR_streamsmem"; do
    "$BIN/accelsel-loadgen" --server "$s" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
  done
  # Mostly idle: 984 streams open (one report each, acknowledged) before 16 busy ones start; a fresh server, so
  # (RSS with the idle streams open - RSS before) / 984 is the memory of an idle stream.
  load streams_idle "$PID_streamsidle" --server "$ADDR_streamsidle" --rpc report --concurrency 16 --idle_streams 984 \
    --server_pid "$PID_streamsidle" "${SC[@]}"
  for c in 1 4 16 64 1000; do
    load "streams_c$c" "$PID_streams" --server "$ADDR_streams" --rpc report --concurrency "$c" \
      --server_pid "$PID_streams" "${SC[@]}"
  done
  # The bare stream (same RocksDB batches, no validation/statistics) at 64 and 1,000 streams: how much of the drop
  # at 1,000 streams the gRPC transport, the load generator and the group commit make without the server's work.
  load streams_bare_c64 "$PID_streamsbare" --server "$ADDR_streamsbare" --rpc report --concurrency 64 "${SC[@]}"
  load streams_bare_c1000 "$PID_streamsbare" --server "$ADDR_streamsbare" --rpc report --concurrency 1000 "${SC[@]}"
  # Backlogged memory: 1,000 streams on a fresh server after 2 s of one stream (memtables past their first fill).
  "$BIN/accelsel-loadgen" --server "$ADDR_streamsmem" --rpc report --concurrency 1 --warmup 0 --duration 2 \
    --max_unacked 4096 >/dev/null
  load streams_mem_c1000 "$PID_streamsmem" --server "$ADDR_streamsmem" --rpc report --concurrency 1000 \
    --server_pid "$PID_streamsmem" "${SC[@]}"
  # Open loop over 1,000 streams at half the best backlogged rate of this run, latency from the intended send.
  local half
  half="$("$PY" -c 'import json,sys; print(max(1000, int(max(json.load(open(f))["qps"] for f in sys.argv[1:]) / 2)))' \
    "$OUT"/streams_c*.json)"
  echo "  open loop over 1,000 streams at half the peak: $half/s"
  load streams_open_half "$PID_streams" --server "$ADDR_streams" --rpc report --concurrency 1000 --rate "$half" \
    "${SC[@]}"
  # And at a rate this machine sustains (BENCH_STREAMS_OPEN_RATE, default 10,000/s), for the tail when not overloaded.
  load streams_open_low "$PID_streams" --server "$ADDR_streams" --rpc report --concurrency 1000 \
    --rate "${BENCH_STREAMS_OPEN_RATE:-10000}" "${SC[@]}"
}

# The decision-log section (issue 15): SelectAccelerator and ReportRun throughput with the server's --decision_log on
# and off, as ratios. Each round starts two servers one after the other, each on a fresh copy of one prepared store
# (32 strategies, BENCH_DECISION_PREPARE_RUNS runs, default 20,000, and a trained model); the order alternates
# (on, off, then off, on) so a drift of the host's speed does not favour one side; the figures are the median of the
# per-round ratios. On each server: select, unique contexts, 64 outstanding, then one ReportRun stream (sync writes)
# whose every report carries a decision_id of BENCH_DECISION_IDS (default 10,000) selects made on that server just
# before the timed window (loadgen --decision_ids; 1 in 8 reports names a candidate other than the first-placed).
# Cycling through 10,000 ids, all but a decision's first report are repeats, which the log counts and does not join
# again; so a third load sends BENCH_DECISION_ONCE_IDS (default 100,000; 0 = skip) reports, each with a decision of
# its own, harvested just before (each joined once, as a node backlog would be; the reports of the first 0.3 s are
# not counted, the load ends when all are sent). The on server's decision-log counters are scraped after each load.
# BENCH_DECISION_ROUNDS (default 4); BENCH_DECISION_SECONDS measured seconds per load (default BENCH_SECONDS);
# BENCH_DECISION_AA=1 gives both servers the same (default) settings: an A/A run, the ratios' noise on this host.
# dl_scrape HOST:PORT/metrics NAME: the server's decision-log counters now, to NAME.metrics (nothing if unreachable).
dl_scrape() {
  [ -n "$1" ] || return 0
  curl -s --max-time 5 "http://$1" 2>/dev/null | grep -E '^accelsel_decision' >"$OUT/$2.metrics" || true
}

decision_log_section() {
  local rounds="${BENCH_DECISION_ROUNDS:-4}" ids="${BENCH_DECISION_IDS:-10000}" ds="${BENCH_DECISION_SECONDS:-$SECS}"
  local aa="${BENCH_DECISION_AA:-0}" once="${BENCH_DECISION_ONCE_IDS:-100000}" r mode name order
  local DC=(--warmup 1 --duration "$ds")
  local flags
  flags="$("$BIN/accelsel-server" --helpfull 2>&1 || true)"  # --helpfull exits 1
  if [ "$aa" != 1 ] && ! grep -q -- '--decision_log ' <<<"$flags"; then
    echo "[8/8] decision log: skipped, $BIN/accelsel-server has no --decision_log flag (BENCH_DECISION_AA=1 runs A/A)"
    [ "${BENCH_ONLY:-}" = decision_log ] && exit 1
    return 0
  fi
  local what="--decision_log on vs off"
  [ "$aa" = 1 ] && what="A/A: both sides the server's default settings"
  echo "[8/8] decision log ($what): $rounds rounds (on/off, off/on, ...), a fresh server per side; on each select" \
    "64 outstanding, then ReportRun 1 stream with $ids decision_ids, $ds s each"
  echo "decision log: rounds $rounds, decision_ids $ids, once_ids $once, seconds $ds, aa $aa" \
    >"$OUT/decision_log.settings"
  start dlprep "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/dlprep" \
    --trainer=false --sync_writes=true --trainer_nice=0
  "$BIN/accelsel-loadgen" --server "$ADDR_dlprep" --rpc prepare --candidates 32 \
    --prepare_runs "${BENCH_DECISION_PREPARE_RUNS:-20000}" 2>"$OUT/dl_prepare.err" >"$OUT/dl_prepare.out" || {
    cat "$OUT/dl_prepare.err"; exit 1; }
  cat "$OUT/dl_prepare.err"
  kill -TERM "$PID_dlprep"; wait "$PID_dlprep" 2>/dev/null || true
  for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) = 1 ]; then order="on off"; else order="off on"; fi
    for mode in $order; do
      name="dl_r${r}_$mode"
      local flag=()
      if [ "$aa" != 1 ]; then
        if [ "$mode" = on ]; then flag=(--decision_log=true); else flag=(--decision_log=false); fi
      fi
      cp -a "$WORK/dlprep" "$WORK/$name"
      start "$name" "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/$name" \
        --trainer=false --sync_writes=true "${flag[@]}"
      local addr_var="ADDR_$name" pid_var="PID_$name" metrics
      metrics="$(grep -o 'metrics on [0-9.]*:[0-9]*/metrics' "$OUT/$name.log" | head -1 | awk '{print $3}')" || true
      load "${name}_select" "${!pid_var}" --server "${!addr_var}" --rpc select --contexts unique --concurrency 64 \
        "${DC[@]}"
      dl_scrape "$metrics" "${name}_select"
      load "${name}_report" "${!pid_var}" --server "${!addr_var}" --rpc report --concurrency 1 --decision_ids "$ids" \
        --server_cpu_pid "${!pid_var}" "${DC[@]}"
      dl_scrape "$metrics" "${name}_report"
      if [ "$once" -gt 0 ]; then
        load "${name}_once" "${!pid_var}" --server "${!addr_var}" --rpc report --concurrency 1 --decision_ids "$once" \
          --decision_once --server_cpu_pid "${!pid_var}" --warmup 0.3 --duration "$ds"
        dl_scrape "$metrics" "${name}_once"
        sleep 2
        dl_scrape "$metrics" "${name}_end"
      fi
      kill -TERM "${!pid_var}"; wait "${!pid_var}" 2>/dev/null || true
      rm -rf "${WORK:?}/$name"
    done
  done
}

COMMON=(--warmup 1 --duration "$SECS")
echo "accelsel benchmarks: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); raw results in $OUT"
if [ "${BENCH_ONLY:-}" = streams ]; then
  streams_section
  "$PY" "$ROOT/bench/report.py" "$OUT"
  exit 0
fi
if [ "${BENCH_ONLY:-}" = decision_log ]; then
  decision_log_section
  "$PY" "$ROOT/bench/report.py" "$OUT"
  exit 0
fi

echo "[1/8] micro-benchmarks (features, ranking vs raw predict, storage vs raw RocksDB, training on 10k runs)"
[ "${BENCH_SKIP_MICRO:-0}" = 1 ] || ACCELSEL_BENCH_TMPDIR="$WORK" "$BIN/accelsel-microbench" \
  --benchmark_filter='BM_(ContextFromProto|Encode|SelectorRank|MetaModelPredict|RawXgbPredict|StoreAppendRuns|RawRocksBatch|Train/10000/)' \
  --benchmark_out="$OUT/micro.json" --benchmark_out_format=json >"$OUT/micro.txt" 2>&1 || {
  echo "run_all: microbench failed"; tail -20 "$OUT/micro.txt"; exit 1; }
if [ "${BENCH_TRAIN_LARGE:-0}" = 1 ] && [ "${BENCH_SKIP_MICRO:-0}" != 1 ]; then
  for n in 100000 1000000; do
    echo "  training on $n runs (own process for its peak RSS)"
    "$BIN/accelsel-microbench" --benchmark_filter="BM_Train/$n/" --benchmark_out="$OUT/micro_$n.json" \
      --benchmark_out_format=json >"$OUT/micro_$n.txt" 2>&1 || echo "run_all: training on $n failed ($OUT/micro_$n.txt)"
  done
fi

echo "[2/8] servers on free ports"
start null "$BIN/accelsel-nullserver" --listen=127.0.0.1:0 --mode=null
PREP="${BENCH_PREPARE_RUNS:-100000}"
# The first model is trained at normal priority (--trainer_nice=0) so seeding does not wait for an idle core on a
# busy machine; the server is then restarted on the same store with the default settings for every measurement.
start prep "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/real" \
  --trainer=false --sync_writes=true --trainer_nice=0

echo "[3/8] preparing the real server: 32 strategies, $PREP runs (half with LLM-Inference-Bench contexts), retrain"
"$BIN/accelsel-loadgen" --server "$ADDR_prep" --rpc prepare --candidates 32 --prepare_runs "$PREP" \
  --contexts bundled 2>"$OUT/prepare.err" >"$OUT/prepare.out" || { cat "$OUT/prepare.err"; exit 1; }
cat "$OUT/prepare.err"
kill -TERM "$PID_prep"; wait "$PID_prep" 2>/dev/null || true
start real "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/real" \
  --trainer=false --sync_writes=true

echo "[4/8] SelectAccelerator, 32 candidates: closed loop 64 outstanding, 1 outstanding, open loop at half rate"
load select_null "$PID_null" --server "$ADDR_null" --rpc null --concurrency 64 "${COMMON[@]}"
load select_unique "$PID_real" --server "$ADDR_real" --rpc select --contexts unique --concurrency 64 "${COMMON[@]}"
load select_bundled "$PID_real" --server "$ADDR_real" --rpc select --contexts bundled --concurrency 64 "${COMMON[@]}"
load select_null_c1 "$PID_null" --server "$ADDR_null" --rpc null --concurrency 1 "${COMMON[@]}"
load select_unique_c1 "$PID_real" --server "$ADDR_real" --rpc select --contexts unique --concurrency 1 "${COMMON[@]}"
HALF="$("$PY" -c 'import json,sys; print(max(1, int(json.load(open(sys.argv[1]))["qps"] / 2)))' "$OUT/select_unique.json")"
echo "  open loop at half the saturating rate: $HALF/s"
load select_half "$PID_real" --server "$ADDR_real" --rpc select --contexts unique --rate "$HALF" "${COMMON[@]}"
# The floor of that tail: the null server under the same open-loop rate and load generator.
load select_null_half "$PID_null" --server "$ADDR_null" --rpc null --rate "$HALF" "${COMMON[@]}"

echo "[5/8] SelectAccelerator at $HALF/s while a retrain runs (the load stops when the retrain returns)"
load select_retrain "$PID_real" --server "$ADDR_real" --rpc select --contexts unique --rate "$HALF" \
  --warmup 1 --duration 600 --retrain_during

echo "[6/8] ReportRun, one stream, $SECS s each: real server sync / no-sync (ranged acks; sync also plain), bare stream sync / no-sync, null acks"
kill -TERM "$PID_real"; wait "$PID_real" 2>/dev/null || true
start realsync "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$WORK/realsync" \
  --trainer=false --sync_writes=true
start realnosync "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$WORK/realnosync" --trainer=false --sync_writes=false
start bare "$BIN/accelsel-nullserver" --listen=127.0.0.1:0 --mode=bare --data_dir="$WORK/bare" --sync_writes=true
start barenosync "$BIN/accelsel-nullserver" --listen=127.0.0.1:0 --mode=bare --data_dir="$WORK/barenosync" \
  --sync_writes=false
for s in "$ADDR_realsync" "$ADDR_realnosync"; do
  "$BIN/accelsel-loadgen" --server "$s" --rpc prepare --candidates 32 --prepare_runs 0 >/dev/null
done
load report_null "$PID_null" --server "$ADDR_null" --rpc report --concurrency 1 "${COMMON[@]}"
load report_real_sync "$PID_realsync" --server "$ADDR_realsync" --rpc report --concurrency 1 "${COMMON[@]}"
load report_bare_sync "$PID_bare" --server "$ADDR_bare" --rpc report --concurrency 1 "${COMMON[@]}"
# What ranged acks buy: the same stream with one ack per report (a client that does not ask for ranges).
load report_real_sync_plain "$PID_realsync" --server "$ADDR_realsync" --rpc report --concurrency 1 --ack_ranges=false \
  "${COMMON[@]}"
load report_real_nosync "$PID_realnosync" --server "$ADDR_realnosync" --rpc report --concurrency 1 "${COMMON[@]}"
load report_bare_nosync "$PID_barenosync" --server "$ADDR_barenosync" --rpc report --concurrency 1 "${COMMON[@]}"
for pid in "$PID_realsync" "$PID_realnosync" "$PID_bare" "$PID_barenosync"; do kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; done

streams_section
decision_log_section

"$PY" "$ROOT/bench/report.py" "$OUT"
