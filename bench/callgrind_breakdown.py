#!/usr/bin/env python3
"""Per-call instruction breakdown of SelectAccelerator from the callgrind files of bench/profile_select.sh."""
import json
import os
import re
import subprocess
import sys

work = sys.argv[1]


def inclusive(name):
    """{function: inclusive Ir} and the program total of one callgrind file."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", os.path.join(work, name + ".cg")],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    funcs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if m:
            fn = m.group(2)
            fn = fn.split(":", 1)[1] if ":" in fn and not fn.startswith("accelsel") else fn
            funcs[fn] = max(funcs.get(fn, 0), int(m.group(1).replace(",", "")))
    return total, funcs


def find(funcs, pattern):
    return max([v for k, v in funcs.items() if re.search(pattern, k)] or [0])


def calls(name):
    r = json.load(open(os.path.join(work, name + ".json")))
    return r["ok"] + r["errors"]


rt, rf = inclusive("real")
nt, nf = inclusive("null")
rc, nc = calls("real"), calls("null")
parts = [
    ("handler: SelectorService::SelectAccelerator (all of our code)", r"SelectorService::SelectAccelerator\("),
    ("  ServiceCore::Select", r"ServiceCore::Select\("),
    ("    validation (ValidateSelectRequest)", r"ValidateSelectRequest\("),
    ("    context proto -> record (FromProto)", r"accelsel::FromProto\(accelsel::v1::TaskContext"),
    ("    Selector::Select (ranking, incl. predict)", r"Selector::Select\("),
    ("      MetaModel::Predict", r"MetaModel::Predict\("),
    ("        feature encoding: EncodeContext", r"model::EncodeContext\("),
    ("        feature encoding: EncodeStrategies", r"MetaModel::EncodeStrategies\("),
    ("        XGBoost: XGBoosterPredictFromDense (floor)", r"XGBoosterPredictFromDense"),
    ("      observed statistics: ObservedStats::Exact", r"ObservedStats::Exact\("),
    ("    decision id", r"NewDecisionId"),
    ("    metrics: Metrics::RecordSelection", r"Metrics::RecordSelection\("),
    ("  metrics: RpcTimer::Finish", r"RpcTimer::Finish\("),
]
print("\nSelectAccelerator, 32 candidates, unique contexts: callgrind instructions per call "
      "(real %d calls, null %d calls)" % (rc, nc))
print("%-62s %12s" % ("part", "instr/call"))
print("%-62s %12.0f" % ("whole server process, real", rt / rc))
print("%-62s %12.0f" % ("whole server process, null server (gRPC floor)", nt / nc))
for label, pat in parts:
    v = find(rf, pat)
    print("%-62s %12s" % (label, "%.0f" % (v / rc) if v else "(inlined)"))
handler = find(rf, r"SelectorService::SelectAccelerator\(")
print("%-62s %12.0f" % ("outside the handler (gRPC, parse, serialize, free)", (rt - handler) / rc))
