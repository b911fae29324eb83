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
def var(name, label, query):
    return {"name": name, "type": "query", "datasource": ds, "label": label, "includeAll": True, "multi": True,
            "query": {"query": query, "refId": name}, "definition": query, "refresh": 2, "current": {}, "hide": 0}
dash = {
    "title": "accelsel",
    "uid": "accelsel-overview",
    "description": "accelsel: RPCs, telemetry ingest, storage and the meta-model. Metrics: docs/OPERATIONS.md.",
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
