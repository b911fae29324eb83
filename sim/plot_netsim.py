#!/usr/bin/python3
"""Plots of one accelsel-netsim run: reads its JSON lines (windows, then the summary) and writes PNGs.

usage: plot_netsim.py NETSIM.jsonl OUT_DIR
Needs Debian's python3-matplotlib (run with /usr/bin/python3).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.ticker  # noqa: E402

POLICIES = ["accelsel", "oracle", "sbs", "epsilon_greedy", "default", "random"]
STYLE = {
    "accelsel": dict(linewidth=2.5, color="tab:red"),
    "oracle": dict(color="black", linestyle=":"),
    "sbs": dict(color="tab:blue"),
    "epsilon_greedy": dict(color="tab:orange"),
    "default": dict(color="tab:green"),
    "random": dict(color="tab:grey"),
}


def load(path):
    windows, summary = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if "summary" in obj:
                summary = obj["summary"]
            else:
                windows.append(obj)
    if summary is None:
        sys.exit(f"plot_netsim.py: {path} has no summary line")
    return windows, summary


def title(summary):
    c = summary["config"]
    parts = [f"{c['jobs']} jobs", f"{c['nodes']} nodes", f"noise {c['noise']}", c["mode"],
             "warm %g" % c["warm"] if c["warm"] else "cold"]
    for key in ("late_hardware", "drift"):
        if key in c:
            parts.append(f"{key.replace('_', ' ')} {c[key]}")
    if "liars" in c:
        parts.append(f"{c['liars']['nodes']} liars x{c['liars']['factor']}")
    if c.get("churn"):
        parts.append("churn")
    return ", ".join(parts)


def regret_plot(windows, summary, key, name, out, ylabel):
    fig, ax = plt.subplots(figsize=(9, 5))
    x = [w["jobs"] for w in windows]
    for p in POLICIES:
        y = [(w[key]["regret_geomean"] if key else w["regret_geomean"]).get(p) for w in windows]
        y = [v if v is not None else float("nan") for v in y]
        ax.plot(x, y, label=p, **STYLE.get(p, {}))
    if "drift" in summary:
        ax.axvline(summary["drift"]["at_job"], color="grey", linestyle="--", label="drift")
    if "late_hardware" in summary:
        ax.axvline(summary["late_hardware"]["joins_at_job"], color="grey", linestyle="-.", label="hardware joins")
    ax.set_xlabel("jobs")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"{name}\n{title(summary)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def exploration_plot(windows, summary, out):
    fig, ax = plt.subplots(figsize=(9, 4))
    x = [w["jobs"] for w in windows]
    ax.plot(x, [w["exploration_share"] if w["exploration_share"] is not None else float("nan") for w in windows],
            label="exploration share", color="tab:blue")
    ax.set_xlabel("jobs")
    ax.set_ylabel("share of first places explored")
    ax2 = ax.twinx()
    ax2.step(x, [w["model_version"] for w in windows], where="post", color="tab:green", label="serving model")
    ax2.set_ylabel("model version in answers")
    ax.set_title(f"exploration and model versions\n{title(summary)}", fontsize=9)
    fig.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    windows, summary = load(sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    written = [os.path.join(out, "regret.png"), os.path.join(out, "exploration.png")]
    regret_plot(windows, summary, None, "regret per window (geometric mean of chosen / best)", written[0],
                "regret vs oracle")
    exploration_plot(windows, summary, written[1])
    if "late_hardware" in summary:
        written.append(os.path.join(out, "late_hardware.png"))
        regret_plot(windows, summary, "late_hardware",
                    f"regret on late hardware {summary['late_hardware']['hardware']}", written[-1],
                    "regret vs oracle on that hardware")
    print("plots: " + " ".join(written), file=sys.stderr)


if __name__ == "__main__":
    main()
