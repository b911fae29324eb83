#!/usr/bin/env bash
# Where the decision log's CPU goes: perf profiles of one server with --decision_log=true and one with =false (each on
# a fresh store: 32 strategies, 20,000 runs, a trained model) under the loads of run_all.sh step 8 — select (64
# outstanding, 4 s), ReportRun with 10,000 cycled decision_ids (3 s of the window) and with 100,000 decisions each
# reported once (1.2 s right after the harvest) — then a table of server CPU µs per call by thread and symbol, on vs
# off, largest difference first. perf's software clock (cpu-clock; these guests have no hardware counters).
# Usage: bench/profile_decision_log.sh BIN_DIR [OUT_DIR]   (about 2.5 min; run under the build lock on a shared host)
set -euo pipefail

BIN="$(cd "${1:?usage: profile_decision_log.sh BIN_DIR [OUT_DIR]}" && pwd)"
OUT="${2:-$(mktemp -d /tmp/accelsel-dlprof.XXXXXX)}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/accelsel-dlprof-data.XXXXXX)"
HZ=1999
command -v perf >/dev/null || { echo "profile_decision_log: perf not installed"; exit 1; }

# shellcheck source=bench/servers.sh
source "$(dirname "$0")/servers.sh"

# profile MODE: one server with --decision_log=MODE; perf data and the loads' JSON in $OUT/MODE/.
profile() {
  local mode="$1" d="$OUT/$1" pid addr="" lg rec
  mkdir -p "$d"
  start_server profiled "$d/server.log" "$BIN/accelsel-server" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --data_dir="$WORK/$mode" --trainer=false --sync_writes=true --trainer_nice=0 --decision_log="$mode"
  addr="$ADDR_profiled"
  pid="$PID_profiled"
  "$BIN/accelsel-loadgen" --server "$addr" --rpc prepare --candidates 32 --prepare_runs 20000 >/dev/null
  "$BIN/accelsel-loadgen" --server "$addr" --rpc select --contexts unique --concurrency 64 --warmup 0 --duration 1 \
    >/dev/null
  perf record -q -F "$HZ" -e cpu-clock -p "$pid" -o "$d/select.data" -- sleep 4 2>/dev/null &
  rec=$!
  "$BIN/accelsel-loadgen" --server "$addr" --rpc select --contexts unique --concurrency 64 --warmup 0 --duration 4 \
    --json >"$d/select.json"
  wait "$rec"
  # Cycled ids: the harvest (10,000 selects) and the 1 s warm-up take about 3 s; profile 3 s of the window.
  "$BIN/accelsel-loadgen" --server "$addr" --rpc report --concurrency 1 --decision_ids 10000 --warmup 1 --duration 6 \
    --json >"$d/report.json" 2>"$d/report.err" &
  lg=$!
  until grep -q harvested "$d/report.err" 2>/dev/null; do kill -0 "$lg" 2>/dev/null || break; sleep 0.05; done
  sleep 1.5
  perf record -q -F "$HZ" -e cpu-clock -p "$pid" -o "$d/report.data" -- sleep 3 2>/dev/null
  wait "$lg"
  "$BIN/accelsel-loadgen" --server "$addr" --rpc report --concurrency 1 --decision_ids 100000 --decision_once \
    --warmup 0.3 --duration 10 --json >"$d/once.json" 2>"$d/once.err" &
  lg=$!
  until grep -q harvested "$d/once.err" 2>/dev/null; do kill -0 "$lg" 2>/dev/null || break; sleep 0.05; done
  perf record -q -F "$HZ" -e cpu-clock -p "$pid" -o "$d/once.data" -- sleep 1.2 2>/dev/null
  wait "$lg"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  for f in select report once; do
    perf report -i "$d/$f.data" --no-children --sort comm,sym --stdio 2>/dev/null | grep '%' >"$d/$f.syms" || true
    perf script -i "$d/$f.data" -F tid 2>/dev/null | wc -l >"$d/$f.samples"
  done
}

echo "profile_decision_log: on, then off; perf data in $OUT"
profile true
profile false

/usr/bin/python3 - "$OUT" "$HZ" <<'PYEOF'
import json, os, re, sys

out, hz = sys.argv[1], float(sys.argv[2])


def per_call(mode, load, seconds):
    """Server CPU us per call by (thread name, symbol): samples / Hz / calls in the profiled window."""
    d = os.path.join(out, mode)
    r = json.loads(open(os.path.join(d, load + ".json")).read().strip().splitlines()[-1])
    calls = r["qps"] * min(seconds, r["seconds"] + (0.3 if load == "once" else 0))
    samples = float(open(os.path.join(d, load + ".samples")).read())
    res = {}
    for line in open(os.path.join(d, load + ".syms")):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)", line)
        if m:
            k = (m.group(2), m.group(3).strip()[:90])
            res[k] = res.get(k, 0) + float(m.group(1)) / 100 * samples / hz / calls * 1e6
    return res, r["qps"]


for load, secs in (("select", 4.0), ("report", 3.0), ("once", 1.2)):
    on, qon = per_call("true", load, secs)
    off, qoff = per_call("false", load, secs)
    print("\n== %s: on %.0f/s, off %.0f/s; server CPU us per call: on %.1f, off %.1f" % (
        load, qon, qoff, sum(on.values()), sum(off.values())))
    threads = {}
    for (c, _), v in on.items():
        threads.setdefault(c, [0.0, 0.0])[0] += v
    for (c, _), v in off.items():
        threads.setdefault(c, [0.0, 0.0])[1] += v
    print("  by thread name (on / off): " + "; ".join(
        "%s %.1f / %.1f" % (c, a, b) for c, (a, b) in sorted(threads.items(), key=lambda x: -x[1][0])))
    print("  %7s %7s %7s  %-16s %s" % ("on", "off", "diff", "thread", "symbol"))
    for k in sorted(set(on) | set(off), key=lambda k: -(on.get(k, 0) - off.get(k, 0)))[:25]:
        print("  %7.2f %7.2f %7.2f  %-16s %s" % (on.get(k, 0), off.get(k, 0), on.get(k, 0) - off.get(k, 0), k[0], k[1]))
PYEOF
