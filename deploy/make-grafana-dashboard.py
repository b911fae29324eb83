"""Writes deploy/grafana-dashboard.json. The dashboard is generated so that its queries share one label filter and
stay consistent; edit this file, run it (python3 deploy/make-grafana-dashboard.py), commit both. tests/deploy_check.sh
fails when the committed JSON differs from what this script writes."""
import json
import os
import sys

ds = {"type": "prometheus", "uid": "${datasource}"}
panels = []
def ts(title, exprs, unit, x, y, w=12, h=8, desc=""):
    panels.append({
        "id": len(panels) + 1, "type": "timeseries", "title": title, "description": desc, "datasource": ds,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [{"refId": chr(65 + i), "datasource": ds, "expr": e, "legendFormat": l}
                    for i, (e, l) in enumerate(exprs)],
    })
def stat(title, expr, unit, x, y, w=6, h=4, desc=""):
    panels.append({
        "id": len(panels) + 1, "type": "stat", "title": title, "description": desc, "datasource": ds,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto"},
        "targets": [{"refId": "A", "datasource": ds, "expr": expr, "legendFormat": "{{instance}}"}],
    })
def m(name, extra=""):
    inner = 'job=~"$job", instance=~"$instance"' + (", " + extra if extra else "")
    return name + "{" + inner + "}"
R = "[$__rate_interval]"
server_err = 'code=~"UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED"'
unary = 'method!="ReportRun"'
stat("Runs stored", m("accelsel_runs_stored"), "short", 0, 0)
stat("Store size", m("accelsel_storage_bytes"), "bytes", 6, 0)
stat("Serving model version", m("accelsel_model_version"), "none", 12, 0,
     desc="0 = statistics only (no promoted model yet)")
stat("Model age", m("accelsel_model_age_seconds"), "s", 18, 0)
ts("RPC rate by method and code",
   [("sum by (method, code) (rate(" + m("accelsel_rpc_requests_total") + R + "))", "{{method}} {{code}}")],
   "reqps", 0, 4)
ts("Server-side error ratio",
   [("sum(rate(" + m("accelsel_rpc_requests_total", server_err) + R + ")) / sum(rate("
     + m("accelsel_rpc_requests_total") + R + "))", "error ratio")],
   "percentunit", 12, 4, desc="The AccelselHighErrorRatio alert fires above 5% for 5 minutes.")
ts("Unary latency p50 / p99",
   [("histogram_quantile(%s, sum by (method, le) (rate(" % q + m("accelsel_rpc_latency_seconds_bucket", unary) + R
     + ")))", "p%d {{method}}" % int(float(q) * 100)) for q in ("0.5", "0.99")],
   "s", 0, 12, desc="ReportRun is a stream; its lifetime is not a latency and is left out.")
ts("Telemetry ingest",
   [("sum(rate(" + m("accelsel_runs_ingested_total") + R + "))", "stored"),
    ("sum(rate(" + m("accelsel_runs_duplicate_total") + R + "))", "duplicate"),
    ("sum by (reason) (rate(" + m("accelsel_runs_rejected_total") + R + "))", "rejected: {{reason}}")],
   "short", 12, 12, desc="Runs per second acknowledged durable, duplicate or rejected (by reason).")
ts("Selections by evidence layer",
   [("sum by (layer) (rate(" + m("accelsel_selections_total") + R + "))", "{{layer}}"),
    ("sum(rate(" + m("accelsel_selections_explored_total") + R + "))", "explored")],
   "short", 0, 20, desc="Which layer answered: observed runs, model, prior from similar tasks, unknown.")
ts("Model holdout MAPE and training time",
   [(m("accelsel_model_holdout_mape"), "holdout MAPE {{instance}}"),
    (m("accelsel_model_training_seconds"), "training seconds {{instance}}")],
   "short", 12, 20)
ts("Model promotions / rejections",
   [("sum(increase(" + m("accelsel_model_promotions_total") + "[1h]))", "promoted per hour"),
    ("sum(increase(" + m("accelsel_model_rejections_total") + "[1h]))", "rejected per hour"),
    ("sum(increase(" + m("accelsel_model_retrain_failures_total") + "[1h]))", "failed trainings per hour"),
    (m("accelsel_model_training_rows"), "training rows {{instance}}")],
   "short", 0, 28)
ts("Store size", [(m("accelsel_storage_bytes"), "{{instance}}")], "bytes", 12, 28,
   desc="AccelselStorageGrowingFast fires when it doubles within a day above 1 GiB.")
# Live quality: decisions joined with the runs the nodes report, per serving model version. Ratios over the last hour,
# as in deploy/alerts.yml (a shorter window is noise at a few runs a minute).
def row(title, y):
    panels.append({"id": len(panels) + 1, "type": "row", "title": title, "collapsed": False,
                   "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
W = "[1h]"
def share(name, part, rest):
    """Share of `name` with label match `part` (the other value: `rest`) per version; 0, not nothing, when the
    `part` series does not exist yet."""
    return ("sum by (version) (increase(" + m(name, part) + W + ") or 0 * increase(" + m(name, rest) + W
            + ")) / sum by (version) (increase(" + m(name) + W + "))")
def per_version_mean(hist):
    return ("sum by (version) (rate(" + m(hist + "_sum") + W + ")) / sum by (version) (rate(" + m(hist + "_count")
            + W + "))")
row("Live quality", 36)
ts("Live MAPE vs holdout MAPE",
   [(per_version_mean("accelsel_live_ape"), "live v{{version}}"),
    ("max by (version) (" + m("accelsel_live_holdout_mape") + ")", "holdout v{{version}}"),
    ("max(" + m("accelsel_live_window_mape") + ")", "serving, last joined runs")],
   "percentunit", 0, 37,
   desc="|measured - predicted| / measured of the strategy each node ran, over the last hour, per model version, "
        "against that version's held-out MAPE. AccelselLiveErrorAboveHoldout fires above twice the holdout.")
ts("Live 80% interval coverage",
   [(share("accelsel_live_interval_total", 'result="hit"', 'result="miss"'), "v{{version}}"),
    ("vector(0.7)", "band 0.7"), ("vector(0.9)", "band 0.9")],
   "percentunit", 12, 37,
   desc="Share of joined runs whose measured value fell inside the 80% interval, over the last hour. "
        "AccelselLiveCoverageOff fires outside 0.7-0.9 with at least 200 joined runs an hour.")
ts("Follow rate and exploration share",
   [(share("accelsel_live_followed_total", 'followed="true"', 'followed="false"'), "followed v{{version}}"),
    (share("accelsel_live_decisions_total", 'explored="true"', 'explored="false"'), "explored v{{version}}")],
   "percentunit", 0, 45,
   desc="Followed: joined runs where the node ran the first-placed strategy. Explored: decisions whose first "
        "strategy was placed by exploration.")
ts("Failures predicted vs seen",
   [("sum by (version) (increase(" + m("accelsel_live_failures_predicted_total") + W + "))", "predicted v{{version}}"),
    ("sum by (version) (increase(" + m("accelsel_live_failures_total") + W + "))", "seen v{{version}}")],
   "short", 12, 45,
   desc="Failed runs per hour: the sum of the predicted failure probabilities of the strategies run, and the "
        "failures reported.")
ts("Regret of the first-placed choice",
   [(per_version_mean("accelsel_live_regret_log"), "mean v{{version}}"),
    ("histogram_quantile(0.9, sum by (version, le) (rate(" + m("accelsel_live_regret_log_bucket") + W + ")))",
     "p90 v{{version}}")],
   "none", 0, 53,
   desc="ln(measured / best predicted alternative), floored at 0, over the last hour: 0.1 is about 10% slower "
        "than the best other choice was predicted to be.")
ts("Drift",
   [("max(" + m("accelsel_live_drift_ratio") + ")", "window MAPE / holdout MAPE"),
    ("sum(increase(" + m("accelsel_drift_wakeups_total") + W + "))", "trainer woken by drift, per hour")],
   "short", 12, 53,
   desc="The serving version's MAPE over its last joined runs divided by its holdout MAPE, and how often drift "
        "woke the trainer early.")
ts("Decision log throughput",
   [("sum(rate(" + m("accelsel_decisions_logged_total") + R + "))", "logged"),
    ("sum by (kind) (rate(" + m("accelsel_decision_log_dropped_total") + R + "))", "dropped: {{kind}}"),
    ("sum by (reason) (rate(" + m("accelsel_decision_log_pruned_total") + R + "))", "pruned: {{reason}}")],
   "short", 0, 61,
   desc="Records per second written, dropped because the queue was full (AccelselDecisionLogDrops), and pruned "
        "by age or size.")
ts("Reports joined to decisions",
   [("avg by (result) (rate(" + m("accelsel_decision_joins_total") + R + "))", "{{result}}")],
   "short", 12, 61,
   desc="Reports carrying a decision_id per second, by join outcome (joined, unknown, expired, foreign, repeat). "
        "Averaged over instances: in cluster mode every replica joins every run.")
ts("Decision log size", [(m("accelsel_decision_log_bytes"), "{{instance}}")], "bytes", 0, 69)
def var(name, label, query):
    return {"name": name, "type": "query", "datasource": ds, "label": label, "includeAll": True, "multi": True,
            "query": {"query": query, "refId": name}, "definition": query, "refresh": 2, "current": {}, "hide": 0}
dash = {
    "title": "accelsel",
    "uid": "accelsel-overview",
    "description": "accelsel: RPCs, telemetry ingest, storage, the meta-model and its live quality. "
                   "Metrics: docs/OPERATIONS.md.",
    "tags": ["accelsel"],
    "schemaVersion": 38,
    "version": 1,
    "editable": True,
    "time": {"from": "now-6h", "to": "now"},
    "refresh": "30s",
    "timezone": "utc",
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
         "current": {}, "hide": 0},
        var("job", "Job", "label_values(accelsel_runs_stored, job)"),
        var("instance", "Instance", 'label_values(accelsel_runs_stored{job=~"$job"}, instance)'),
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "grafana-dashboard.json")
with open(OUT, "w") as f:
    json.dump(dash, f, indent=2)
    f.write("\n")
