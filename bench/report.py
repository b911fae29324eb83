#!/usr/bin/env python3
"""Turns the raw results of bench/run_all.sh (one folder) into one table of figures, ratios and the issue's bars."""
import json
import os
import statistics
import sys

out = sys.argv[1]


def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


micro = {}
for f in ("micro.json", "micro_100000.json", "micro_1000000.json"):
    p = os.path.join(out, f)
    if os.path.exists(p):
        for b in json.load(open(p))["benchmarks"]:
            micro[b["name"]] = b


def cpu_us(name):
    """CPU time per iteration of a micro-benchmark, microseconds."""
    b = micro.get(name)
    if not b:
        return None
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
    return b["cpu_time"] * scale


rows = []


def row(what, value, ratio="", bar="", ok=None):
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    rows.append((what, value, ratio, bar, verdict))


def per_call_us(r):
    """Server CPU per call. The CPU delta spans the whole loadgen run (warm-up included), so divide by every call
    the server answered: `calls` when the loadgen reports it, else ok scaled by (warm-up + measured) / measured
    (run_all's warm-up is 1 s; the rates are steady)."""
    if not r or not r["ok"]:
        return float("nan")
    calls = r.get("calls") or r["ok"] * (r["seconds"] + 1.0) / r["seconds"]
    # The loadgen's own figure (--server_cpu_pid) leaves out what it did before the load (a decision harvest).
    return r.get("server_cpu_load_s", r["server_cpu_s"]) / calls * 1e6


# SelectAccelerator.
null, uniq, bund = load("select_null"), load("select_unique"), load("select_bundled")
null1, uniq1, half, rt = load("select_null_c1"), load("select_unique_c1"), load("select_half"), load("select_retrain")
raw32 = cpu_us("BM_RawXgbPredict/32")
if null and uniq:
    ratio = uniq["qps"] / null["qps"]
    row("select 32 cand, unique, 64 outstanding: calls/s (null server)",
        "%.0f (%.0f)" % (uniq["qps"], null["qps"]), "%.3f x null" % ratio, ">= 0.25 x null", ratio >= 0.25)
    cu, cn = per_call_us(uniq), per_call_us(null)
    if raw32 is not None:
        floor = cn + raw32
        row("select server CPU/call, us (null CPU + raw predict 32 rows)",
            "%.1f (%.1f + %.1f)" % (cu, cn, raw32), "%.2f x floor" % (cu / floor), "<= 1.5 x floor",
            cu <= 1.5 * floor)
    row("select response bytes (null server's canned answer)", "%.0f (%.0f)" % (uniq["resp_bytes"], null["resp_bytes"]))
if bund and uniq:
    row("select bundled contexts: calls/s, CPU/call us", "%.0f, %.1f" % (bund["qps"], per_call_us(bund)),
        "%.2f x unique" % (bund["qps"] / uniq["qps"]))
if null1 and uniq1:
    row("select 1 outstanding: p50 / p99 ms (null)",
        "%.3f / %.3f (%.3f / %.3f)" % (uniq1["p50_ms"], uniq1["p99_ms"], null1["p50_ms"], null1["p99_ms"]),
        "%.2f x null p50" % (uniq1["p50_ms"] / null1["p50_ms"]))
if half:
    row("select open loop at half saturation (%.0f/s): p50 / p99 / p99.9 ms" % half["qps"],
        "%.3f / %.3f / %.3f" % (half["p50_ms"], half["p99_ms"], half["p999_ms"]), "", "p99 <= 2 ms",
        half["p99_ms"] <= 2.0)
null_half = load("select_null_half")
if half and null_half:
    row("null server, open loop at the same rate (%.0f/s): p50 / p99 / p99.9 ms" % null_half["qps"],
        "%.3f / %.3f / %.3f" % (null_half["p50_ms"], null_half["p99_ms"], null_half["p999_ms"]),
        "%.2f x null p99" % (half["p99_ms"] / null_half["p99_ms"] if null_half["p99_ms"] > 0 else float("inf")))
if half and rt:
    r = rt["p99_ms"] / half["p99_ms"] if half["p99_ms"] > 0 else float("inf")
    row("select p99 during a retrain (idle p99), ms; retrain took %.1f s" % rt["retrain_s"],
        "%.3f (%.3f)" % (rt["p99_ms"], half["p99_ms"]), "%.2f x idle" % r, "<= 2 x idle", r <= 2.0)

# ReportRun.
rn = load("report_null")
for sync in ("sync", "nosync"):
    real, bare = load("report_real_" + sync), load("report_bare_" + sync)
    if real and bare:
        ratio = real["qps"] / bare["qps"]
        row("ReportRun 1 stream, %s: runs/s durable (bare stream)" % sync, "%.0f (%.0f)" % (real["qps"], bare["qps"]),
            "%.2f x bare" % ratio, ">= 60000 and >= 0.5 x bare", real["qps"] >= 60000 and ratio >= 0.5)
        row("ReportRun %s: server CPU/report us (bare); ack p99 ms" % sync,
            "%.1f (%.1f); %.2f" % (per_call_us(real), per_call_us(bare), real["p99_ms"]))
plain, ranged = load("report_real_sync_plain"), load("report_real_sync")
if plain and ranged:
    row("ReportRun sync, one ack per report (no ranges): runs/s; ack p99 ms",
        "%.0f; %.2f" % (plain["qps"], plain["p99_ms"]), "ranges %.2f x" % (ranged["qps"] / plain["qps"]))
if rn:
    row("ReportRun 1 stream against null acks (gRPC stream floor): runs/s", "%.0f" % rn["qps"])

# ReportRun with many streams (run_all.sh step 7).
def reports_per_ack(r):
    return r["calls"] / r["ack_msgs"] if r.get("ack_msgs") else float("nan")


sc = {c: load("streams_c%d" % c) for c in (1, 4, 16, 64, 1000)}
small = [(c, r) for c, r in sc.items() if r and c <= 64]
if small:
    best_c, best = max(small, key=lambda cr: cr[1]["qps"])
    row("ReportRun sync, backlogged, runs/s durable at 1 / 4 / 16 / 64 streams",
        " / ".join("%.0f" % sc[c]["qps"] if sc[c] else "-" for c in (1, 4, 16, 64)), "best: %d streams" % best_c)
    row("  server CPU/report us at 1 / 4 / 16 / 64 / 1000 streams",
        " / ".join("%.1f" % per_call_us(sc[c]) if sc[c] else "-" for c in (1, 4, 16, 64, 1000)))
    row("  reports per ack message at 1 / 4 / 16 / 64 / 1000 streams",
        " / ".join("%.0f" % reports_per_ack(sc[c]) if sc[c] and sc[c].get("ack_msgs") else "-"
                   for c in (1, 4, 16, 64, 1000)))
    k = sc[1000]
    if k:
        ratio = k["qps"] / best["qps"]
        row("ReportRun sync, 1,000 backlogged streams (%d connections): runs/s durable" % k["connections"],
            "%.0f" % k["qps"], "%.2f x best of 1-64" % ratio, ">= 0.8 x best of 1-64", ratio >= 0.8)
    idle = load("streams_idle")
    if idle and sc[16]:
        row("ReportRun sync, 16 busy + 984 idle streams: runs/s durable (16 streams alone)",
            "%.0f (%.0f)" % (idle["qps"], sc[16]["qps"]), "%.2f x 16 alone" % (idle["qps"] / sc[16]["qps"]))
bare64, bare1000 = load("streams_bare_c64"), load("streams_bare_c1000")
if bare64 and bare1000:
    row("bare stream (no server work), backlogged, runs/s at 64 / 1000 streams", "%.0f / %.0f" % (bare64["qps"], bare1000["qps"]),
        "1000: %.2f x 64" % (bare1000["qps"] / bare64["qps"]))
for name, label in (("streams_open_half", "half the peak"), ("streams_open_low", "a low rate")):
    o = load(name)
    if o:
        ok = o["p99_ms"] <= 100 and o["qps"] >= 0.95 * o["rate"]
        row("ReportRun open loop over 1,000 streams at %s, %.0f/s offered: achieved/s; ack p50 / p99 / p99.9 ms"
            % (label, o["rate"]), "%.0f; %.1f / %.1f / %.1f" % (o["qps"], o["p50_ms"], o["p99_ms"], o["p999_ms"]),
            "%.2f x offered" % (o["qps"] / o["rate"]), "p99 <= 100 ms" if name.endswith("half") else "",
            ok if name.endswith("half") else None)
if idle := load("streams_idle"):
    if idle.get("rss_idle_kb") and idle.get("rss_start_kb"):
        per = (idle["rss_idle_kb"] - idle["rss_start_kb"]) / idle["idle_streams"]
        row("server RSS per idle stream, kB (%d idle, RSS %.0f -> %.0f MB)" % (
            idle["idle_streams"], idle["rss_start_kb"] / 1024, idle["rss_idle_kb"] / 1024),
            "%.1f" % per, "", "<= 50 kB", per <= 50)
mem = load("streams_mem_c1000")
if mem and mem.get("rss_max_kb"):
    per = (mem["rss_max_kb"] - mem["rss_start_kb"]) / mem["streams"]
    row("server RSS per backlogged stream, kB (1,000 streams, RSS %.0f -> max %.0f MB; report %d B wire, %d B parsed)"
        % (mem["rss_start_kb"] / 1024, mem["rss_max_kb"] / 1024, mem["report_wire_bytes"], mem["report_mem_bytes"]),
        "%.0f" % per, "window 512 x %d B = %.0f kB" % (mem["report_mem_bytes"], 512 * mem["report_mem_bytes"] / 1024))

# Decision log on vs off (run_all.sh step 8): per-round ratios on / off and their median.
def dl_rounds():
    r = 1
    while load("dl_r%d_on_select" % r) or load("dl_r%d_off_select" % r):
        yield r
        r += 1


def dl_counters(name):
    """The decision-log counters scraped into NAME.metrics: {series: value}."""
    path = os.path.join(out, name + ".metrics")
    if not os.path.exists(path):
        return None
    c = {}
    for line in open(path):
        parts = line.split()
        if len(parts) == 2:
            c[parts[0]] = float(parts[1])
    return c


DL_KINDS = (("select", "select 32 cand, unique, 64 outstanding: calls/s", ""),
            ("report", "ReportRun 1 stream sync, decision_ids cycled: runs/s durable", " (the bar as set)"),
            ("once", "ReportRun 1 stream sync, each report its own decision: runs/s durable", ""))
dl = [(r, {m: {k: load("dl_r%d_%s_%s" % (r, m, k)) for k, _, _ in DL_KINDS} for m in ("on", "off")})
      for r in dl_rounds()]
if dl:
    aa = ""
    sp = os.path.join(out, "decision_log.settings")
    if os.path.exists(sp) and "aa 1" in open(sp).read():
        aa = " [A/A: both sides the same settings]"
    for kind, label, note in DL_KINDS:
        ratios = []
        for r, m in dl:
            on, off = m["on"][kind], m["off"][kind]
            if not (on and off and off["qps"] > 0):
                continue
            ratios.append(on["qps"] / off["qps"])
            row("decision log round %d, %s on (off); server CPU/call us on (off)" % (r, label),
                "%.0f (%.0f); %.1f (%.1f)" % (on["qps"], off["qps"], per_call_us(on), per_call_us(off)),
                "%.3f x off" % ratios[-1])
        if ratios:
            med = statistics.median(ratios)
            row("decision log %s%s: median of %d rounds' on / off%s" % (kind, note, len(ratios), aa),
                " ".join("%.3f" % x for x in ratios), "%.3f x off" % med, ">= 0.9 x off", med >= 0.9)
    for r, _ in dl:
        phases = []
        for phase in ("select", "report", "once", "end"):
            c = dl_counters("dl_r%d_on_%s" % (r, phase))
            if c:
                phases.append("%s %d/%d/%d/%d" % (
                    phase, c.get('accelsel_decision_joins_total{result="joined"}', 0),
                    c.get('accelsel_decision_joins_total{result="repeat"}', 0),
                    c.get('accelsel_decision_log_dropped_total{kind="outcome"}', 0),
                    c.get('accelsel_decision_log_dropped_total{kind="decision"}', 0)))
        if phases:
            row("decision log round %d, on server after each load (+2 s): joined/repeat/dropped outcomes/dropped "
                "decisions" % r, "; ".join(phases))

# Micro-benchmarks.
for name in ("BM_ContextFromProto", "BM_EncodeContext", "BM_EncodeStrategy"):
    if cpu_us(name) is not None:
        row("micro %s, us" % name[3:], "%.3f" % cpu_us(name))
for k in (8, 32, 128):
    s, m, r = cpu_us("BM_SelectorRank/%d" % k), cpu_us("BM_MetaModelPredict/%d" % k), cpu_us("BM_RawXgbPredict/%d" % k)
    if s and r:
        row("micro rank %d cand: Selector / MetaModel::Predict / raw XGBoost, us" % k, "%.1f / %.1f / %.1f" % (s, m, r),
            "%.2f x raw" % (s / r))
for name, b in micro.items():
    if "threads:2" in name:
        row("micro %s (2 threads): items/s" % name.split("/real_time")[0], "%.0f" % b.get("items_per_second", 0))
def wall_rate(b, batch):
    """Records per wall-clock second (durability waits are not CPU time, so items_per_second would hide them)."""
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return batch / (b["real_time"] * scale)


for batch in (64, 1024):
    for sync in (0, 1):
        for summary in (0, 1):
            # Named without the summary argument before the store made the runs' training summaries.
            a = micro.get("BM_StoreAppendRuns/batch:%d/sync:%d/summary:%d/min_time:1.000" % (batch, sync, summary)) or (
                None if summary else micro.get("BM_StoreAppendRuns/batch:%d/sync:%d/min_time:1.000" % (batch, sync)))
            r = micro.get("BM_RawRocksBatch/batch:%d/sync:%d/min_time:1.000" % (batch, sync))
            if a and r:
                ra, rr = wall_rate(a, batch), wall_rate(r, batch)
                ca, cr = cpu_us(a["name"]) / batch, cpu_us(r["name"]) / batch
                what = " with training summaries" if summary else ""
                row("micro storage batch %d sync %d: AppendRuns%s / raw RocksDB, records/s wall; CPU us/record"
                    % (batch, sync, what),
                    "%.0f / %.0f; %.2f / %.2f" % (ra, rr, ca, cr), "%.2f x raw (CPU %.2f x)" % (ra / rr, ca / cr))
prev = None
for n in (10000, 100000, 1000000):
    # Named ".../iterations:1/process_time/real_time" (wall time, CPU time of every thread) or, before, without it.
    b = next((v for k, v in micro.items() if k.startswith("BM_Train/%d/iterations:1" % n)), None)
    if b:
        secs = cpu_us(b["name"]) / 1e6
        wall = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        growth = "" if prev is None else "%.1f x previous" % (wall / prev)
        bar, ok = ("<= 60 s, <= 1.5 GB", wall <= 60 and b["peak_rss_mb"] <= 1536) if n == 1000000 else ("", None)
        row("train MetaModel on %d runs: wall s (CPU s), peak RSS MB" % n,
            "%.1f (%.1f), %.0f" % (wall, secs, b["peak_rss_mb"]), growth, bar, ok)
        prev = wall

prep = os.path.join(out, "prepare.out")
if os.path.exists(prep) and open(prep).read().strip():
    p = json.loads(open(prep).read().strip().splitlines()[-1])
    row("server Retrain RPC, %d training rows (stored runs less the held-out ones): s" % p["rows"], "%.1f" % p["seconds"],
        "promoted" if p["promoted"] else "not promoted")

w = [max(len(str(r[i])) for r in rows + [("figure", "value", "ratio", "bar", "")]) for i in range(5)]
fmt = "| " + " | ".join("%%-%ds" % x for x in w) + " |"
print()
print(fmt % ("figure", "value", "ratio", "bar", ""))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(fmt % r)
