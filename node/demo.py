#!/usr/bin/python3
"""make node-demo (issue 17): accelsel in front of llama.cpp on jobs its seed never saw, scored against the sweep.

Splits the sweep's jobs into seed jobs (their rows seed the server) and demo jobs (other workloads and a model the
seed lacks; every one is in the sweep, so its best strategy is known), runs a seeded shuffle of the demo jobs through
`accelsel-node run` against a spawned accelsel-server, and reports per job the regret of the chosen strategy: its
sweep median latency on that job over the best sweep median on that job, beside llama.cpp's default
(`llamacpp:default`) and the single best strategy over the demo jobs. Once seeded, once from an empty store.
Debian's /usr/bin/python3, standard library only (matplotlib for the plot when installed, else an SVG of our own).
docs/NODE.md has the commands and what the report means.
"""

import argparse
import csv
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_STRATEGY = "llamacpp:default"
OPERATOR_TOKEN = "operator-token-node-demo-0123456789"
NODE_TOKEN = "node-token-node-demo-0123456789abc"
NODE_ID = "node-demo"


# --- The sweep table -------------------------------------------------------------------------------------------

def read_sweep(path):
    """The sweep's header and rows (dicts), '#' lines skipped."""
    with open(path, newline="") as f:
        lines = [l for l in f if l.strip() and not l.startswith("#")]
    reader = csv.DictReader(lines)
    rows = list(reader)
    for need in ("Framework", "Model", "Latency", "Job", "Batch Size", "Prompt Tokens", "Output Tokens"):
        if need not in reader.fieldnames:
            raise ValueError(f"{path}: no column {need!r}: not a table of accelsel-node sweep")
    return reader.fieldnames, rows


def sweep_jobs(rows):
    """{job id: {model, prompt_tokens, output_tokens, parallel}} in order of first appearance."""
    jobs = {}
    for r in rows:
        job = {"model": r["Model"], "prompt_tokens": int(r["Prompt Tokens"]),
               "output_tokens": int(r["Output Tokens"]), "parallel": int(r["Batch Size"])}
        if jobs.setdefault(r["Job"], job) != job:
            raise ValueError(f"job {r['Job']!r} has two shapes in the sweep: {jobs[r['Job']]} and {job}")
    return jobs


def median_latencies(rows):
    """{job: {strategy: median Latency (s) over the successful repetitions}}; failed rows (no Latency) left out."""
    runs = {}
    for r in rows:
        if not r["Latency"].strip():
            continue
        runs.setdefault(r["Job"], {}).setdefault(r["Framework"], []).append(float(r["Latency"]))
    return {job: {s: statistics.median(v) for s, v in by.items()} for job, by in runs.items()}


def split_jobs(jobs, seed_models=None, seed_lengths=None, demo_models=None):
    """(seed jobs, demo jobs), lists of job ids in sweep order.

    Seed: the jobs of `seed_models` (default: the sweep's first three models) at `seed_lengths` (default: the
    shortest prompt length of the sweep). Demo: every other job, optionally only of `demo_models`. So the demo holds
    the other workloads of the seed's models and every job of the models the seed lacks."""
    models = list(dict.fromkeys(j["model"] for j in jobs.values()))
    if seed_models is None:
        seed_models = models[:3] if len(models) > 1 else models
    if seed_lengths is None:
        seed_lengths = [min(j["prompt_tokens"] for j in jobs.values())]
    for m in list(seed_models) + list(demo_models or []):
        if m not in models:
            raise ValueError(f"model {m!r} is not in the sweep (it has {', '.join(models)})")
    seed = [k for k, j in jobs.items() if j["model"] in seed_models and j["prompt_tokens"] in seed_lengths]
    demo = [k for k in jobs if k not in seed and (not demo_models or jobs[k]["model"] in demo_models)]
    if not seed or not demo:
        raise ValueError(f"the split leaves {len(seed)} seed and {len(demo)} demo jobs; both must be non-empty")
    return seed, demo


def demo_sequence(demo, count, seed):
    """`count` job ids: rounds of the demo jobs, each round a seeded shuffle, cut at `count`."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        round_ = list(demo)
        rng.shuffle(round_)
        out.extend(round_)
    return out[:count]


# --- Regret ----------------------------------------------------------------------------------------------------

def geomean(values):
    values = [v for v in values if v is not None]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def regret(medians, job, strategy):
    """Sweep median of `strategy` on `job` over the best sweep median on `job`; None if the sweep has no success."""
    by = medians.get(job, {})
    if strategy not in by:
        return None
    return by[strategy] / min(by.values())


def single_best(medians, demo):
    """(strategy, geometric-mean regret over the distinct demo jobs): the one fixed strategy that does best in
    hindsight, among those with a sweep median on every demo job."""
    common = set.intersection(*(set(medians.get(j, {})) for j in demo))
    scored = sorted((geomean([regret(medians, j, s) for j in demo]), s) for s in common)
    return (scored[0][1], scored[0][0]) if scored else (None, None)


def windows(series, size):
    """[(first index, last index, geometric mean)] over consecutive blocks of `size` (the last may be shorter)."""
    return [(i, min(i + size, len(series)) - 1, geomean(series[i:i + size])) for i in range(0, len(series), size)]


def score_phase(results, job_of, medians, best_fixed, window):
    """Per-job regrets and the summary of one phase's `accelsel-node run` lines."""
    chosen, default, fixed, measured, sweep_chosen = [], [], [], [], []
    strategies, statuses, unknown = {}, {}, 0
    for line in results:
        job = job_of[line["job"]]
        r = regret(medians, job, line["strategy"])
        unknown += r is None
        chosen.append(r)
        default.append(regret(medians, job, DEFAULT_STRATEGY))
        fixed.append(regret(medians, job, best_fixed) if best_fixed else None)
        ok = line["status"] == "RUN_STATUS_OK" and line["e2e_latency_ms"] > 0
        measured.append(line["e2e_latency_ms"] if ok else None)
        sweep_chosen.append(medians.get(job, {}).get(line["strategy"]))
        strategies[line["strategy"]] = strategies.get(line["strategy"], 0) + 1
        statuses[line["status"]] = statuses.get(line["status"], 0) + 1
    half = len(results) // 2
    drift = [m / (1000 * s) for m, s in zip(measured, sweep_chosen) if m is not None and s]

    def part(lo, hi):
        return {"jobs": hi - lo,
                "accelsel": geomean(chosen[lo:hi]), "default": geomean(default[lo:hi]),
                "single_best": geomean(fixed[lo:hi]),
                "measured_e2e_ms_mean": (statistics.mean([m for m in measured[lo:hi] if m is not None])
                                         if any(m is not None for m in measured[lo:hi]) else None)}

    return {
        "jobs": len(results), "unknown_regret": unknown, "statuses": statuses,
        "first_half": part(0, half), "last_half": part(half, len(results)), "all": part(0, len(results)),
        "windows": [{"from": a, "to": b, "accelsel": g, "default": geomean(default[a:b + 1]),
                     "single_best": geomean(fixed[a:b + 1])} for a, b, g in windows(chosen, window)],
        "measured_over_sweep_median": geomean(drift),
        "top_strategies": sorted(strategies.items(), key=lambda kv: -kv[1])[:8],
        "per_job": [{"i": i, "job": line["job"], "sweep_job": job_of[line["job"]], "strategy": line["strategy"],
                     "decision_id": line.get("decision_id", ""), "status": line["status"], "regret": chosen[i],
                     "default_regret": default[i], "e2e_latency_ms": line["e2e_latency_ms"],
                     "ttft_ms": line.get("ttft_ms"), "tpot_ms": line.get("tpot_ms")}
                    for i, line in enumerate(results)],
    }


def bar(summary):
    """The issue's bar on the last half: (<= 1.05, better than the default, better than the single best)."""
    last = summary["last_half"]
    a = last["accelsel"]
    return {"le_1_05": a is not None and a <= 1.05,
            "beats_default": None not in (a, last["default"]) and a < last["default"],
            "beats_single_best": None not in (a, last["single_best"]) and a < last["single_best"]}


# --- The server and the node -----------------------------------------------------------------------------------

class Server:
    """accelsel-server on 127.0.0.1:0 with operator and node tokens; stopped with SIGTERM by its own PID."""

    def __init__(self, args, data_dir, log_path, seed_csv=None):
        cmd = [os.path.join(args.bin, "accelsel-server"), "--listen=127.0.0.1:0", "--metrics_listen=",
               f"--data_dir={data_dir}", f"--auth_tokens={args.tokens}", "--sync_writes=false",
               f"--exploration_rate={args.exploration_rate}", f"--seed={args.server_seed}",
               f"--retrain_min_new_runs={args.retrain_every}", f"--retrain_interval={args.retrain_interval}"]
        if args.vouch:
            # The operator runs this node itself: its runs keep their full weight (docs/OPERATIONS.md).
            cmd.append(f"--vouched_nodes={NODE_ID}")
        if seed_csv:
            cmd += [f"--seed_csv={seed_csv}", f"--descriptors_dir={args.descriptors}"]
        self.log_path = log_path
        start_offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0  # earlier starts' lines
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.addr = None
        deadline = time.time() + args.server_start_s
        while time.time() < deadline and self.addr is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"accelsel-server exited ({self.proc.returncode}); see {log_path}")
            with open(log_path) as f:
                f.seek(start_offset)
                for line in f:
                    if "listening on " in line:
                        self.addr = line.split("listening on ", 1)[1].split()[0]
            time.sleep(0.2)
        if self.addr is None:
            self.stop()
            raise RuntimeError(f"accelsel-server did not start in {args.server_start_s} s; see {log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def cli_json(args, addr, *command):
    done = subprocess.run([os.path.join(args.bin, "accelsel"), *command, "--server", addr, "--token",
                           OPERATOR_TOKEN, "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"accelsel {' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def serving_version(args, addr):
    info = cli_json(args, addr, "model", "info")
    return int(info.get("serving_version", info.get("servingVersion", 0)) or 0)


def register(args, addr, log):
    subprocess.run([os.path.join(args.bin, "accelsel-node"), "catalogue", "--register", "--server", addr,
                    "--token_file", args.operator_token], check=True, stdout=log, stderr=log)


def run_phase(args, name, sequence, strategies, seed_csv):
    """One phase: a fresh store, the catalogue, the seed (if any), the demo jobs; returns the run's job lines."""
    folder = os.path.join(args.out, name)
    os.makedirs(folder, exist_ok=True)
    data_dir = os.path.join(args.work, name + "-data")
    shutil.rmtree(data_dir, ignore_errors=True)
    log_path = os.path.join(folder, "server.log")
    open(log_path, "w").close()
    node_log = open(os.path.join(folder, "node.log"), "w")
    # The catalogue first, then the seed: the seed import keeps the catalogue's definitions (a table gives a
    # strategy only {engine: id}), and it runs only at a start on a store without runs, hence two starts.
    server = Server(args, data_dir, log_path)
    try:
        register(args, server.addr, node_log)
    finally:
        server.stop()
    server = Server(args, data_dir, log_path, seed_csv=seed_csv)
    try:
        if seed_csv and args.wait_model_s > 0:
            deadline = time.time() + args.wait_model_s
            while serving_version(args, server.addr) == 0 and time.time() < deadline:
                time.sleep(2)
            print(f"  {name}: model version {serving_version(args, server.addr)} serving before the first job")
        jobs_path = os.path.join(folder, "jobs.jsonl")
        with open(jobs_path, "w") as f:
            for i, job_id in enumerate(sequence):
                f.write(json.dumps({"id": f"d{i:04d}-{job_id}", **args.jobs[job_id]}) + "\n")
        cmd = [os.path.join(args.bin, "accelsel-node"), "run", "--server", server.addr, "--token_file",
               args.node_token, "--jobs", jobs_path, "--models", args.models, "--node_id", NODE_ID,
               "--strategies", ",".join(strategies)]
        if args.explore:
            cmd.append("--explore")
        results, summary = [], None
        start = time.time()
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=node_log, text=True) as proc, \
                open(os.path.join(folder, "run.jsonl"), "w") as raw:
            for line in proc.stdout:
                raw.write(line)
                j = json.loads(line)
                if "summary" in j:
                    summary = j["summary"]
                    continue
                results.append(j)
                if len(results) % args.window == 0:
                    print(f"  {name}: {len(results)}/{len(sequence)} jobs, {time.time() - start:.0f} s")
        if proc.returncode != 0:
            raise RuntimeError(f"accelsel-node run exited {proc.returncode}; see {folder}/node.log")
        quality = {}
        for _ in range(150):  # the decision log joins off the request path
            quality = cli_json(args, server.addr, "quality")
            if quality.get("overall", {}).get("joined_reports", 0) >= len(results):
                break
            time.sleep(0.2)
        model = cli_json(args, server.addr, "model", "info")
    finally:
        server.stop()
        node_log.close()
    for name_, obj in (("quality.json", quality), ("model.json", model)):
        with open(os.path.join(folder, name_), "w") as f:
            json.dump(obj, f, indent=1)
    return results, summary, quality, model, time.time() - start


# --- The report ------------------------------------------------------------------------------------------------

def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def summary_table(report):
    lines = ["| phase | jobs | accelsel, last half | llama.cpp default | single best | accelsel, first half | "
             "measured e2e ms, last half (mean) | joined | bar: <= 1.05, < default, < single best |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, p in report["phases"].items():
        s, b = p["score"], p["bar"]
        joined = p["quality"].get("overall", {}).get("joined_reports", "-")
        lines.append(f"| {name} | {s['jobs']} | {fmt(s['last_half']['accelsel'])} | {fmt(s['last_half']['default'])} "
                     f"| {fmt(s['last_half']['single_best'])} | {fmt(s['first_half']['accelsel'])} | "
                     f"{fmt(s['last_half']['measured_e2e_ms_mean'], 1)} | {joined} | "
                     + ", ".join("yes" if b[k] else "NO" for k in ("le_1_05", "beats_default", "beats_single_best"))
                     + " |")
    return "\n".join(lines)


def write_markdown(report, path):
    r = report
    out = [f"# make node-demo: {r['sweep']}", "",
           "Regret of a job = sweep median latency of the chosen strategy on that job / the best sweep median on "
           "that job; geometric means over the jobs. Computed from the sweep, so the host's noise during the demo "
           "does not enter it; the measured latency is beside it.", "",
           f"- command: `{r['command']}`",
           f"- seed jobs ({len(r['seed_jobs'])}, {r['seed_rows']} rows): {', '.join(r['seed_jobs'])}",
           f"- demo jobs ({len(r['demo_jobs'])}): {', '.join(r['demo_jobs'])}; models the seed lacks: "
           f"{', '.join(r['unseen_models']) or 'none'}",
           f"- {r['demo_count']} demo runs: seeded shuffles (seed {r['shuffle_seed']}) of the demo jobs, repeated; "
           f"{len(r['strategies'])} strategies with sweep medians are the candidates",
           f"- single best strategy over the demo jobs (from the sweep): `{r['single_best']}` "
           f"(geometric-mean regret {fmt(r['single_best_regret'])}); llama.cpp default: `{DEFAULT_STRATEGY}` "
           f"({fmt(r['default_regret'])})", "", summary_table(r), ""]
    for name, p in r["phases"].items():
        s = p["score"]
        out += [f"## {name}", "",
                f"{s['jobs']} jobs in {p['seconds']:.0f} s; statuses {s['statuses']}; "
                f"{s['unknown_regret']} choices without a sweep median; measured / sweep median of the chosen "
                f"strategy (geometric mean): {fmt(s['measured_over_sweep_median'])}; model version at the end "
                f"{p['model_version']}.", "",
                "Most chosen: " + ", ".join(f"`{k}` {v}" for k, v in s["top_strategies"]), "",
                "| jobs | accelsel | default | single best |", "|---|---:|---:|---:|"]
        out += [f"| {w['from']}-{w['to']} | {fmt(w['accelsel'])} | {fmt(w['default'])} | {fmt(w['single_best'])} |"
                for w in s["windows"]]
        ov = p["quality"].get("overall", {})
        out += ["", "Live quality (`accelsel quality --json`, overall): " +
                ", ".join(f"{k} {ov[k]:.4g}" if isinstance(ov[k], float) else f"{k} {ov[k]}"
                          for k in sorted(ov) if not isinstance(ov[k], (dict, list))), ""]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def write_plot(report, out_dir):
    """regret.png with matplotlib if installed, else regret.svg drawn here. Returns the path."""
    series = {}
    for name, p in report["phases"].items():
        series[f"accelsel ({name})"] = [(w["from"] + w["to"]) / 2 for w in p["score"]["windows"]], \
            [w["accelsel"] for w in p["score"]["windows"]]
    first = next(iter(report["phases"].values()))["score"]["windows"]
    xs = [(w["from"] + w["to"]) / 2 for w in first]
    series["llama.cpp default"] = xs, [w["default"] for w in first]
    series["single best"] = xs, [w["single_best"] for w in first]
    title = f"node-demo: geometric-mean regret per {report['window']} jobs"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for label, (x, y) in series.items():
            ax.plot(x, [v if v is not None else float("nan") for v in y], marker="o", label=label)
        ax.axhline(1.05, color="grey", linestyle=":", label="1.05")
        ax.set_yscale("log")
        ax.set_xlabel("job")
        ax.set_ylabel("regret (sweep median / best)")
        ax.set_title(title)
        ax.legend()
        path = os.path.join(out_dir, "regret.png")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        return path
    except ImportError:
        pass
    return write_svg(series, title, os.path.join(out_dir, "regret.svg"))


def write_svg(series, title, path, width=800, height=450):
    left, right, top, bottom = 60, 200, 40, 50
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if y is not None]
    x_max = max((x for x, _ in pts), default=1) or 1
    y_lo, y_hi = 1.0, max([1.1] + [y for _, y in pts]) * 1.02  # log scale: the default may be many times the best
    sx = lambda x: left + (width - left - right) * x / x_max
    sy = lambda y: height - bottom - (height - top - bottom) * math.log(y / y_lo) / math.log(y_hi / y_lo)
    colours = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd"]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
           f'<text x="{(width - right + left) / 2}" y="{height - 10}" text-anchor="middle">job</text>']
    for k in range(6):
        y = y_lo * (y_hi / y_lo) ** (k / 5)
        svg.append(f'<text x="{left - 5}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        svg.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{width - right}" y2="{sy(y):.1f}" stroke="#eee"/>')
    for k in range(5):
        x = x_max * k / 4
        svg.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">{x:.0f}</text>')
    if y_lo <= 1.05 <= y_hi:
        svg.append(f'<line x1="{left}" y1="{sy(1.05):.1f}" x2="{width - right}" y2="{sy(1.05):.1f}" stroke="grey" '
                   f'stroke-dasharray="3,3"/>')
    for n, (label, (xs, ys)) in enumerate(series.items()):
        c = colours[n % len(colours)]
        p = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys) if y is not None)
        svg.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"/>')
        svg.append(f'<text x="{width - right + 10}" y="{top + 18 * n}" fill="{c}">{label}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")
    return path


# --- Main ------------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", default="data/llama-cpp/sweep.csv", help="the sweep table (accelsel-node sweep)")
    p.add_argument("--descriptors", help="folder of models.csv and accelerators.csv (default: the sweep's folder)")
    p.add_argument("--bin", default="build/bin", help="accelsel-server, accelsel-node and accelsel")
    p.add_argument("--models", default="build/node-engine/models", help="the GGUF models (make node-models)")
    p.add_argument("--out", default="build/node-demo", help="output folder (results.md, results.json, the plot)")
    p.add_argument("--jobs", type=int, default=240, dest="count", help="demo runs per phase (default 240)")
    p.add_argument("--seed-models", help="comma-separated models whose seed-length jobs seed the server "
                                          "(default: the sweep's first three models)")
    p.add_argument("--seed-lengths", help="comma-separated prompt lengths of the seed jobs (default: the shortest)")
    p.add_argument("--demo-models", help="comma-separated models of the demo jobs (default: every non-seed job)")
    p.add_argument("--shuffle-seed", type=int, default=17, help="seed of the demo jobs' shuffle")
    p.add_argument("--window", type=int, default=20, help="jobs per block of the regret over time")
    p.add_argument("--phases", default="seeded,cold", help="seeded, cold (an empty store) or both")
    p.add_argument("--no-explore", dest="explore", action="store_false", help="run without --explore")
    p.add_argument("--no-vouch", dest="vouch", action="store_false",
                   help="do not start the server with --vouched_nodes for the demo's node")
    p.add_argument("--exploration-rate", type=float, default=0.05, help="the server's --exploration_rate")
    p.add_argument("--server-seed", type=int, default=17, help="the server's --seed (exploration randomness)")
    p.add_argument("--retrain-every", type=int, default=50, help="the server's --retrain_min_new_runs")
    p.add_argument("--retrain-interval", default="2m", help="the server's --retrain_interval")
    p.add_argument("--wait-model-s", type=float, default=600,
                   help="seeded phase: wait this long for the first model before the first job (0 = no wait)")
    p.add_argument("--server-start-s", type=float, default=600, help="how long a server may take to start")
    a = p.parse_args(argv)
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None
    a.seed_models, a.demo_models = split(a.seed_models), split(a.demo_models)
    a.seed_lengths = [int(x) for x in split(a.seed_lengths)] if a.seed_lengths else None
    a.phases = split(a.phases)
    if not a.phases or any(x not in ("seeded", "cold") for x in a.phases):
        p.error("--phases: seeded, cold or both")
    a.descriptors = a.descriptors or os.path.dirname(os.path.abspath(a.sweep))
    return a


def main(argv):
    args = parse_args(argv)
    header, rows = read_sweep(args.sweep)
    args.jobs = sweep_jobs(rows)
    medians = median_latencies(rows)
    seed_jobs, demo_jobs = split_jobs(args.jobs, args.seed_models, args.seed_lengths, args.demo_models)
    missing = [j for j in demo_jobs if j not in medians]
    if missing:
        raise SystemExit(f"node-demo: demo jobs without a successful sweep row: {', '.join(missing)}")
    seed_models = {args.jobs[j]["model"] for j in seed_jobs}
    unseen = sorted({args.jobs[j]["model"] for j in demo_jobs} - seed_models)
    # Candidates: the strategies the sweep measured on every demo job, so every choice has a known regret.
    strategies = sorted(set.intersection(*(set(medians[j]) for j in demo_jobs)))
    best_fixed, best_fixed_regret = single_best(medians, demo_jobs)
    sequence = demo_sequence(demo_jobs, args.count, args.shuffle_seed)
    job_of = {f"d{i:04d}-{j}": j for i, j in enumerate(sequence)}

    os.makedirs(args.out, exist_ok=True)
    args.work = tempfile.mkdtemp(prefix="node-demo-")
    args.tokens = os.path.join(args.work, "tokens")
    args.operator_token = os.path.join(args.work, "operator.token")
    args.node_token = os.path.join(args.work, "node.token")
    with open(args.tokens, "w") as f:
        f.write(f"{OPERATOR_TOKEN} operator ops\n{NODE_TOKEN} node node-demo\n")
    for path, token in ((args.operator_token, OPERATOR_TOKEN), (args.node_token, NODE_TOKEN)):
        with open(path, "w") as f:
            f.write(token + "\n")
    seed_csv = os.path.join(args.out, "seed.csv")
    with open(seed_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        seed_rows = [r for r in rows if r["Job"] in seed_jobs]
        w.writerows(seed_rows)

    print(f"node-demo: {args.sweep}: {len(args.jobs)} jobs, {len(rows)} rows; seed {len(seed_jobs)} jobs "
          f"({len(seed_rows)} rows): {', '.join(seed_jobs)}")
    print(f"node-demo: demo {len(demo_jobs)} jobs ({', '.join(demo_jobs)}), models the seed lacks: "
          f"{', '.join(unseen) or 'none'}; {len(sequence)} runs per phase, {len(strategies)} candidate strategies")
    report = {"command": "node/demo.py " + " ".join(argv), "sweep": args.sweep, "seed_jobs": seed_jobs,
              "seed_rows": len(seed_rows), "demo_jobs": demo_jobs, "unseen_models": unseen,
              "demo_count": len(sequence), "shuffle_seed": args.shuffle_seed, "window": args.window,
              "strategies": strategies, "single_best": best_fixed, "single_best_regret": best_fixed_regret,
              "default_regret": geomean([regret(medians, j, DEFAULT_STRATEGY) for j in demo_jobs]),
              "server": {"exploration_rate": args.exploration_rate, "seed": args.server_seed,
                         "retrain_min_new_runs": args.retrain_every, "retrain_interval": args.retrain_interval,
                         "explore": args.explore},
              "phases": {}}
    try:
        for name in args.phases:
            results, summary, quality, model, seconds = run_phase(
                args, name, sequence, strategies, seed_csv if name == "seeded" else None)
            score = score_phase(results, job_of, medians, best_fixed, args.window)
            report["phases"][name] = {
                "score": score, "bar": bar(score), "node_summary": summary, "quality": quality,
                "seconds": seconds,
                "model_version": int(model.get("serving_version", model.get("servingVersion", 0)) or 0)}
    finally:
        shutil.rmtree(args.work, ignore_errors=True)

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    write_markdown(report, os.path.join(args.out, "results.md"))
    plot = write_plot(report, args.out)
    print()
    print(summary_table(report))
    print(f"\nnode-demo: {args.out}/results.md, results.json, {os.path.basename(plot)} "
          f"(single best {best_fixed}: {fmt(best_fixed_regret)}; default {fmt(report['default_regret'])} over the "
          f"distinct demo jobs)")
    for name, p in report["phases"].items():
        b = p["bar"]
        verdict = "met" if all(b.values()) else "NOT met"
        print(f"node-demo: {name}: the issue's bar (last half <= 1.05, below the default and the single best) "
              f"is {verdict}: {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
