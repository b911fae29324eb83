#!/usr/bin/python3
"""Robustness run of the offline evaluator on generated tables of different shapes (issue 18, item 4).

The public tables of docs/EVALUATION.md have one shape each. This script generates synthetic measured tables in
the `--csv` form of `accelsel-eval` with shapes the public data does not have: few tasks, many strategies (from
three strategy columns), strategies missing from most tasks, heavy exact ties, constant columns, a maximised
throughput-like target, 10^5 rows, and a mixed table (categorical columns beyond the one-hot limit, missing
feature values, repeated measurements, unusable target cells). It runs the evaluator on each with
`--json --seeds K` and checks, per shape:

- the evaluator exits 0 and its JSON parses;
- the JSON is complete: tasks, skipped tasks and candidates equal what the generator wrote, and for every seed
  and for the mean over seeds, each selector of SELECTORS has top1, top3, slowdown_geomean and gap_closed;
  gap_closed may be null only where docs/EVALUATION.md says so (SBS no worse than the oracle: log(SBS slowdown)
  is 0); the figures are consistent (0 <= top1 <= top3 <= 1, slowdown >= 1, the oracle at 1);
- accelsel is not worse than the single best strategy (SBS) by more than noise: accelsel's mean
  slowdown_geomean <= SBS's x (1 + noise), noise = max(floor, 2 x the larger of the two selectors' standard
  deviations over seeds / SBS's mean). The floor is 0.5 % in the full mode and 10 % in --quick, which runs one
  seed (no standard deviation to measure) on small tables where a few tasks decide the figure.

Every table comes from a seeded latent model in which the best strategy depends on the task's features in a
learnable way: log(value) = base(task) + sum over the strategy's column values of (bias + slopes on two numeric
task properties + an affinity to the task's platform) + a small per-strategy quirk + Gaussian noise. A selector
that learns the interactions beats SBS, and SBS is still a reasonable choice (the biases differ). Nothing in the
product is tuned to these tables; they are here to find crashes, incomplete output and selectors that fall
behind SBS on odd shapes.

Usage: eval/robustness.py [--bin DIR] [--out DIR] [--quick] [--shapes a,b] [--seed N]
Exit status: 0 when every shape passes, 1 when any fails, 2 on a usage error.
Only Python's standard library is used (Debian's /usr/bin/python3), so ctest can run it on any build machine.
"""

import argparse
import csv
import itertools
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

SELECTORS = ("accelsel", "xgb_plain", "sbs", "random", "oracle", "knn")
METRICS = ("top1", "top3", "slowdown_geomean", "gap_closed")
# Evaluator seeds per shape in the full mode (--quick runs one): the spread over seeds is the noise measured.
FULL_SEEDS = 3
# Floors of the noise margin (relative to SBS's slowdown) in the full and the quick mode; see the docstring.
FULL_NOISE_FLOOR = 0.005
QUICK_NOISE_FLOOR = 0.10
# How platforms are written in the tables (the latent model knows them by index).
PLATFORM_NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@dataclass
class Table:
    """One generated table and how the evaluator is to read it."""

    header: list
    rows: list
    task_cols: list
    strategy_cols: list
    target_col: str
    maximize: bool = False
    # What the evaluator must find, computed from the rows as docs/EVALUATION.md describes the loader.
    expected: dict = field(default_factory=dict)


@dataclass
class Shape:
    """A named table shape: generate(rng, quick) builds its table."""

    name: str
    what: str
    generate: object


class LatentModel:
    """The latent cost model shared by every shape.

    Each value of each strategy column carries a bias, slopes on the two task properties and one affinity per
    platform; a strategy (one value per strategy column) adds its values' effects up, plus a small quirk of its
    own. Costs are exp(base + effect + noise), so the best strategy moves with the task's properties.
    """

    # Standard deviations of the effects: the biases are the largest, so one strategy is good on average (SBS is
    # a reasonable choice), and the slopes and affinities move the best strategy by task, which a selector can
    # learn from the task columns.
    BIAS_SD, SLOPE_SD, AFFINITY_SD, QUIRK_SD = 0.3, 0.15, 0.12, 0.05

    def __init__(self, rng, strategy_levels, platforms):
        self.effects = {}
        for column, levels in enumerate(strategy_levels):
            for level in levels:
                # A column with one level cannot change the choice; its effect is still drawn (it shifts every
                # strategy alike), which keeps constant columns honest: present, encoded, and useless.
                self.effects[(column, level)] = (
                    rng.gauss(0, self.BIAS_SD),
                    rng.gauss(0, self.SLOPE_SD),
                    rng.gauss(0, self.SLOPE_SD),
                    [rng.gauss(0, self.AFFINITY_SD) for _ in range(platforms)],
                )
        self.strategies = list(itertools.product(*strategy_levels))
        self.quirks = {s: rng.gauss(0, self.QUIRK_SD) for s in self.strategies}

    def log_cost(self, z0, z1, platform, strategy):
        base = 3.0 + 1.2 * z0 + 0.6 * z1 + 0.1 * platform
        effect = self.quirks[strategy]
        for column, level in enumerate(strategy):
            bias, slope0, slope1, affinity = self.effects[(column, level)]
            effect += bias + slope0 * z0 + slope1 * z1 + affinity[platform]
        return base + effect


def three_sig(x):
    """x rounded to three significant digits, as a measured property would be written."""
    return float(f"{x:.3g}")


def task_properties(rng, n_tasks, platforms):
    """n_tasks distinct tasks as (model_b, batch, platform) with the latent z0, z1 computed back from the written
    values, so that the features the evaluator reads determine the latent model exactly (learnable)."""
    seen = set()
    tasks = []
    while len(tasks) < n_tasks:
        model_b = three_sig(10 ** rng.uniform(-0.3, 2.6))  # 0.5 .. 400 (billions): log-scaled by the encoder
        batch = 2 ** rng.randint(0, 8)  # 1 .. 256
        platform = rng.randrange(platforms)
        key = (model_b, batch, platform)
        # Two tasks with the same written columns would be one task to the evaluator (its rows averaged), which
        # would blur two latent tasks into one; draw again instead.
        if key in seen:
            continue
        seen.add(key)
        z0 = (math.log10(model_b) - 1.15) / 1.45
        z1 = (math.log2(batch) - 4) / 4
        tasks.append((key, z0, z1, platform))
    return tasks


def expected_counts(table):
    """Tasks, skipped tasks and candidates as the loader counts them: rows with a positive finite target, keyed
    by the stripped task and strategy columns; tasks with fewer than two distinct strategies skipped; candidates =
    distinct strategies over the kept tasks."""
    col = {name: i for i, name in enumerate(table.header)}
    cells = {}
    for row in table.rows:
        try:
            v = float(row[col[table.target_col]])
        except ValueError:
            continue
        if not (v > 0 and math.isfinite(v)):
            continue
        task = tuple(str(row[col[c]]).strip() for c in table.task_cols)
        strategy = tuple(str(row[col[c]]).strip() for c in table.strategy_cols)
        cells.setdefault(task, set()).add(strategy)
    kept = [s for s in cells.values() if len(s) >= 2]
    return {
        "tasks": len(kept),
        "skipped_tasks": len(cells) - len(kept),
        "candidates": len(set().union(*kept)) if kept else 0,
    }


def standard_table(rng, n_tasks, strategy_columns, platforms=4, sigma=0.05, keep=1.0, min_keep=0,
                   round_value=None, maximize=False, task_extra=None, strategy_extra=None):
    """The common generator: tasks (model_b, batch, platform[, extra task columns]) x strategies (one column per
    entry of strategy_columns, a list of (name, levels)), every (task, strategy) measured with probability keep
    (at least min_keep per task), one row per measurement."""
    model = LatentModel(rng, [levels for _, levels in strategy_columns], platforms)
    task_extra = task_extra or []  # (name, function(rng) -> value): columns that carry no signal
    header = ["model_b", "batch", "platform"] + [n for n, _ in task_extra] + [n for n, _ in strategy_columns]
    header += [n for n, _ in strategy_extra or []]
    target = "tokens_per_s" if maximize else "latency_ms"
    header.append(target)
    rows = []
    for key, z0, z1, platform in task_properties(rng, n_tasks, platforms):
        extra = [f(rng) for _, f in task_extra]
        measured = [s for s in model.strategies if rng.random() < keep]
        if len(measured) < min_keep:
            measured = rng.sample(model.strategies, min_keep)
        for strategy in measured:
            cost = math.exp(model.log_cost(z0, z1, platform, strategy) + rng.gauss(0, sigma))
            value = 1e5 / cost if maximize else cost
            value = round_value(value) if round_value else three_sig(value)
            rows.append([key[0], key[1], PLATFORM_NAMES[platform]] + extra + list(strategy)
                        + [v for _, v in strategy_extra or []] + [value])
    return Table(header, rows, ["model_b", "batch", "platform"] + [n for n, _ in task_extra],
                 [n for n, _ in strategy_columns] + [n for n, _ in strategy_extra or []], target, maximize)


FRAMEWORKS = ["vllm", "trt-llm", "sglang", "llama.cpp", "deepspeed", "tgi", "mlc", "exllama"]


def few_tasks(rng, quick):
    # 12 tasks: 10-fold cross-validation trains on 10 or 11 of them; the inner model selection has almost nothing.
    return standard_table(rng, 12, [("framework", FRAMEWORKS[:4]), ("precision", ["fp16", "int8"])])


def many_strategies(rng, quick):
    # 5 x 4 x 4 = 80 strategies from three strategy columns (one numeric), every one measured on every task.
    return standard_table(rng, 20 if quick else 150,
                          [("framework", FRAMEWORKS[:5]), ("quant", ["fp16", "fp8", "int8", "int4"]),
                           ("tp", [1, 2, 4, 8])])


def sparse(rng, quick):
    # Each (task, strategy) measured with probability 0.4: each strategy is missing from about 60 % of the
    # tasks, and some tasks end up with fewer than two candidates (skipped, and counted).
    return standard_table(rng, 60 if quick else 400,
                          [("framework", FRAMEWORKS[:6]), ("precision", ["fp16", "int8"])], keep=0.4)


def ties(rng, quick):
    # Values written with one significant digit (20, 30, 40, ...): most tasks have several strategies tied for
    # best, and some tasks have all of them tied.
    return standard_table(rng, 40 if quick else 300, [("framework", FRAMEWORKS[:8])],
                          round_value=lambda v: float(f"{v:.0e}"))


def constant_cols(rng, quick):
    # A constant numeric and a constant categorical task column, and the same on the strategy side: each
    # encodes to a feature with one value.
    return standard_table(rng, 40 if quick else 300, [("framework", FRAMEWORKS[:6])],
                          task_extra=[("nodes", lambda r: 1), ("os", lambda r: "linux")],
                          strategy_extra=[("runtime", "cuda"), ("version", 2)])


def maximize(rng, quick):
    # Throughput (1e5 / latency) maximised: --maximize, slowdown = best / chosen.
    return standard_table(rng, 40 if quick else 300,
                          [("framework", FRAMEWORKS[:4]), ("precision", ["fp16", "fp8", "int8"])], maximize=True)


def large(rng, quick):
    # 5,000 tasks x 20 strategies = 10^5 rows (50 x 20 in --quick, to stay quick).
    return standard_table(rng, 50 if quick else 5000,
                          [("framework", FRAMEWORKS[:5]), ("precision", ["fp16", "fp8", "int8", "int4"])])


def mixed(rng, quick):
    """Categorical and numeric task columns of every kind the encoder types differently: a platform named with
    spaces, a model name with 48 levels (beyond the one-hot limit of 32: hashed), numeric columns that are
    sometimes missing ('' or '?'), a column name with a space; one categorical and one numeric strategy column;
    1-3 repeated measurements per cell (averaged by the loader) and a few unusable targets (empty, 'n/a', 0,
    negative: skipped rows)."""
    platforms = 6
    model = LatentModel(rng, [FRAMEWORKS[:5], [1, 4, 16]], platforms)
    models = {f"model-{i:02d}": three_sig(10 ** rng.uniform(-0.3, 2.6)) for i in range(48)}
    header = ["Hardware Name", "model", "model_b", "Batch Size", "context", "framework", "threads", "latency"]
    rows = []
    seen = set()
    n_tasks = 40 if quick else 400
    while len(seen) < n_tasks:
        name = rng.choice(sorted(models))
        model_b = models[name]
        batch = 2 ** rng.randint(0, 8)
        platform = rng.randrange(platforms)
        context = rng.choice([512, 2048, 8192])
        # Missing feature values: the model size in 15 % of the tasks, the batch in 10 % (the latent model still
        # uses the true value, so a learner has to do without).
        written_b = rng.choice(["", "?"]) if rng.random() < 0.15 else model_b
        written_batch = "" if rng.random() < 0.10 else batch
        # Distinct as written: two tasks that differ only in a value written as missing would be one task to the
        # loader.
        key = (name, written_b, written_batch, platform, context)
        if key in seen:
            continue
        seen.add(key)
        z0 = (math.log10(model_b) - 1.15) / 1.45
        z1 = (math.log2(batch) - 4) / 4
        for strategy in model.strategies:
            if rng.random() < 0.15:
                continue
            for _ in range(rng.randint(1, 3)):
                cost = math.exp(model.log_cost(z0, z1, platform, strategy) + rng.gauss(0, 0.08))
                value = three_sig(cost)
                if rng.random() < 0.02:
                    value = rng.choice(["", "n/a", 0, -3.5])
                rows.append([f"{PLATFORM_NAMES[platform]} gpu", name, written_b, written_batch, context,
                             strategy[0], strategy[1], value])
    return Table(header, rows, ["Hardware Name", "model", "model_b", "Batch Size", "context"],
                 ["framework", "threads"], "latency")


SHAPES = [
    Shape("few_tasks", "12 tasks x 8 strategies", few_tasks),
    Shape("many_strategies", "80 strategies from 3 strategy columns", many_strategies),
    Shape("sparse", "each strategy missing from ~60 % of tasks", sparse),
    Shape("ties", "target with one significant digit", ties),
    Shape("constant_cols", "constant task and strategy columns", constant_cols),
    Shape("maximize", "throughput, --maximize", maximize),
    Shape("large", "10^5 rows (5,000 tasks x 20 strategies)", large),
    Shape("mixed", "categorical + numeric, hashed, missing values, repeats", mixed),
]


def write_csv(table, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(table.header)
        w.writerows(table.rows)


def check_selector(name, metrics, where, sbs_slowdown, problems):
    """Appends to problems what is missing or inconsistent in one selector's metrics (one seed or the mean)."""
    for key in METRICS:
        if key not in metrics:
            problems.append(f"{where}: {name} has no {key}")
    if any(key not in metrics for key in METRICS):
        return
    for key in ("top1", "top3", "slowdown_geomean"):
        if not isinstance(metrics[key], (int, float)) or not math.isfinite(metrics[key]):
            problems.append(f"{where}: {name}.{key} is {metrics[key]!r}")
            return
    gap = metrics["gap_closed"]
    if gap is None:
        # Documented null: 1 - log(selector) / log(SBS) has no value when SBS is already at the oracle.
        if sbs_slowdown is None or sbs_slowdown > 1 + 1e-12:
            problems.append(f"{where}: {name}.gap_closed is null although SBS's slowdown is {sbs_slowdown}")
    elif not isinstance(gap, (int, float)) or not math.isfinite(gap):
        problems.append(f"{where}: {name}.gap_closed is {gap!r}")
    eps = 1e-9
    if not (-eps <= metrics["top1"] <= metrics["top3"] + eps <= 1 + 2 * eps):
        problems.append(f"{where}: {name} top1 {metrics['top1']} / top3 {metrics['top3']} out of order")
    if metrics["slowdown_geomean"] < 1 - eps:
        problems.append(f"{where}: {name}.slowdown_geomean {metrics['slowdown_geomean']} < 1")


def check_report(report, expected, seeds):
    """Completeness and consistency of one evaluator JSON; returns a list of problems (empty = complete)."""
    problems = []
    for key, value in expected.items():
        if report.get(key) != value:
            problems.append(f"{key} is {report.get(key)!r}, the table has {value}")
    selectors = report.get("selectors")
    if not isinstance(selectors, dict):
        return problems + ["no selectors object"]
    missing = [s for s in SELECTORS if s not in selectors]
    if missing:
        return problems + [f"selectors missing: {', '.join(missing)}"]
    # With --seeds K the flat keys are means over seeds and "seeds" holds the K per-seed objects; with one seed
    # there is only the flat object, which is then that seed's.
    views = [("mean", {s: selectors[s] for s in SELECTORS})]
    if seeds > 1:
        for s in SELECTORS:
            if len(selectors[s].get("seeds", [])) != seeds:
                problems.append(f"{s} has {len(selectors[s].get('seeds', []))} per-seed results, not {seeds}")
                return problems
        for i in range(seeds):
            views.append((f"seed #{i + 1}", {s: selectors[s]["seeds"][i] for s in SELECTORS}))
    for where, view in views:
        sbs_slowdown = view["sbs"].get("slowdown_geomean")
        if where == "mean" and seeds > 1:
            # The mean's gap_closed is null when any seed's is, so SBS at the oracle in any seed allows it.
            per_seed = [v["sbs"].get("slowdown_geomean") for _, v in views[1:]]
            sbs_slowdown = min((x for x in per_seed if isinstance(x, (int, float))), default=None)
        for s in SELECTORS:
            check_selector(s, view[s], where, sbs_slowdown, problems)
        oracle = view["oracle"]
        if isinstance(oracle.get("slowdown_geomean"), (int, float)) and abs(oracle["slowdown_geomean"] - 1) > 1e-9:
            problems.append(f"{where}: oracle slowdown {oracle['slowdown_geomean']} != 1")
        if isinstance(oracle.get("top1"), (int, float)) and abs(oracle["top1"] - 1) > 1e-9:
            problems.append(f"{where}: oracle top1 {oracle['top1']} != 1")
    return problems


def run_shape(shape, args, out_dir):
    """Generates, evaluates and checks one shape; returns a result dict (printed as one line)."""
    rng = random.Random(f"accelsel-robustness:{args.seed}:{shape.name}:{'quick' if args.quick else 'full'}")
    table = shape.generate(rng, args.quick)
    table.expected = expected_counts(table)
    csv_path = os.path.join(out_dir, f"{shape.name}.csv")
    json_path = os.path.join(out_dir, f"{shape.name}.json")
    write_csv(table, csv_path)
    seeds = 1 if args.quick else FULL_SEEDS
    cmd = [os.path.join(args.bin, "accelsel-eval"), "--csv", csv_path, "--task-cols", ",".join(table.task_cols),
           "--strategy-cols", ",".join(table.strategy_cols), "--target-col", table.target_col, "--json",
           "--seed", "1", "--seeds", str(seeds)]
    if table.maximize:
        cmd.append("--maximize")
    result = {"shape": shape.name, "rows": len(table.rows), "tasks": table.expected["tasks"],
              "strategies": table.expected["candidates"], "seeds": seeds, "problems": [], "cmd": cmd}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                              env=dict(os.environ, ACCELSEL_PROGRESS="0"))
    except subprocess.TimeoutExpired:
        result["problems"].append(f"timed out after {args.timeout} s")
        result["seconds"] = time.monotonic() - start
        return result
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["seconds"] = time.monotonic() - start
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(json_path, "w") as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        result["problems"].append(f"exit code {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return result
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        result["problems"].append(f"JSON does not parse: {e}")
        return result
    result["problems"] += check_report(report, table.expected, seeds)
    if result["problems"]:
        return result
    sel = report["selectors"]
    for name in ("accelsel", "sbs", "xgb_plain"):
        result[name] = (sel[name]["slowdown_geomean"], sel[name].get("slowdown_geomean_sd", 0.0))
    result["ranked_by"] = sel["accelsel"].get("ranked_by", {})
    sbs_mean = result["sbs"][0]
    floor = QUICK_NOISE_FLOOR if args.quick else FULL_NOISE_FLOOR
    noise = max(floor, 2 * max(result["accelsel"][1], result["sbs"][1]) / sbs_mean)
    result["noise"] = noise
    result["limit"] = sbs_mean * (1 + noise)
    if result["accelsel"][0] > result["limit"]:
        result["problems"].append(f"accelsel {result['accelsel'][0]:.4f} > SBS {sbs_mean:.4f} x (1 + {noise:.4f})")
    return result


def fmt(pair):
    mean, sd = pair
    return f"{mean:.4f}±{sd:.4f}"


def main(argv):
    shape_names = [s.name for s in SHAPES]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="shapes:\n" + "\n".join(f"  {s.name:<16} {s.what}" for s in SHAPES))
    parser.add_argument("--bin", default="build/bin", help="directory holding accelsel-eval (default build/bin)")
    parser.add_argument("--out", help="keep the tables (SHAPE.csv) and the evaluator's JSON (SHAPE.json) here")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes of every shape, one seed, the SBS comparison with a 10 %% margin")
    parser.add_argument("--shapes", help="comma-separated subset of the shapes below (default: all)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1; the evaluator runs seed 1..)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per evaluator run (default 1800)")
    args = parser.parse_args(argv)
    chosen = SHAPES
    if args.shapes:
        wanted = [s.strip() for s in args.shapes.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in shape_names]
        if unknown:
            parser.error(f"unknown shape(s) {', '.join(unknown)}; known: {', '.join(shape_names)}")
        chosen = [s for s in SHAPES if s.name in wanted]
    binary = os.path.join(args.bin, "accelsel-eval")
    if not os.access(binary, os.X_OK):
        parser.error(f"{binary} is not an executable (build it, or pass --bin DIR)")

    floor = QUICK_NOISE_FLOOR if args.quick else FULL_NOISE_FLOOR
    print(f"eval robustness ({'quick' if args.quick else 'full'}, generator seed {args.seed}): accelsel passes "
          f"when its slowdown <= SBS x (1 + noise), noise = max({floor:g}, 2 x max(sd accelsel, sd sbs) / SBS)")
    print(f"{'shape':<16} {'rows':>7} {'tasks':>5} {'strat':>5} {'seeds':>5} {'seconds':>8} {'cpu_s':>7} "
          f"{'accelsel':>15} {'sbs':>15} {'xgb_plain':>15} {'noise':>6}  verdict  ranked_by")
    with tempfile.TemporaryDirectory(prefix="accelsel-robustness-") as tmp:
        out_dir = args.out or tmp
        os.makedirs(out_dir, exist_ok=True)
        results = []
        for shape in chosen:
            r = run_shape(shape, args, out_dir)
            results.append(r)
            ok = not r["problems"]
            figures = (f"{fmt(r['accelsel']):>15} {fmt(r['sbs']):>15} {fmt(r['xgb_plain']):>15} {r['noise']:>6.3f}"
                       if "accelsel" in r else f"{'-':>15} {'-':>15} {'-':>15} {'-':>6}")
            ranked = ",".join(f"{k}:{v}" for k, v in sorted(r.get("ranked_by", {}).items()))
            print(f"{r['shape']:<16} {r['rows']:>7} {r['tasks']:>5} {r['strategies']:>5} {r['seeds']:>5} "
                  f"{r['seconds']:>8.1f} {r.get('cpu_seconds', 0):>7.1f} {figures}  {'pass' if ok else 'FAIL':<7}  "
                  f"{ranked}", flush=True)
            for p in r["problems"]:
                print(f"    {r['shape']}: {p}", flush=True)
        if args.out:
            with open(os.path.join(out_dir, "summary.json"), "w") as f:
                json.dump(results, f, indent=1)
    failed = [r["shape"] for r in results if r["problems"]]
    print(f"eval robustness: {len(results) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
