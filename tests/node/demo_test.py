#!/usr/bin/python3
"""node/demo.py's arithmetic without an engine or a server: the split, the shuffle, medians, regret, the single
best strategy, the windows and the issue's bar, on a hand-made sweep whose answers are worked out below."""

import importlib.util
import os
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("demo", os.path.join(HERE, "..", "..", "node", "demo.py"))
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)

HEADER = ("Hardware,Num of Hardware,Framework,Model,Input Output Length,Batch Size,Latency,Throughput,Job,"
          "Repetition,Status,Message,Prompt Tokens,Output Tokens\n")


def row(strategy, model, length, batch, latency, job, rep=0):
    return f"CPU,1,{strategy},{model},{length},{batch},{latency},1,{job},{rep},OK,,{length},{length}\n"


class DemoArithmeticTest(unittest.TestCase):
    def setUp(self):
        text = HEADER
        # Latencies (s) per job: a is best on short jobs, b on long ones, the default is 1.5x the best everywhere.
        table = {"m1-32": ("m1", 32, 1.0, 2.0), "m2-32": ("m2", 32, 1.0, 2.0), "m1-128": ("m1", 128, 4.0, 2.0),
                 "m2-128": ("m2", 128, 4.0, 2.0), "m3-32": ("m3", 32, 1.0, 2.0), "m3-128": ("m3", 128, 4.0, 2.0)}
        for job, (model, length, a, b) in table.items():
            best = min(a, b)
            for rep, noise in enumerate((1.0, 1.1, 0.9)):  # median = the middle one = the value itself
                text += row("llamacpp:a", model, length, 1, a * noise, job, rep)
                text += row("llamacpp:b", model, length, 1, b * noise, job, rep)
                text += row(demo.DEFAULT_STRATEGY, model, length, 1, 1.5 * best * noise, job, rep)
        text += "CPU,1,llamacpp:a,m1,32,1,,,m1-32,3,CRASH,boom,32,32\n"  # a failed row: left out
        fd, self.path = tempfile.mkstemp(suffix=".csv")
        with os.fdopen(fd, "w") as f:
            f.write("# comment\n" + text)
        self.header, self.rows = demo.read_sweep(self.path)
        self.jobs = demo.sweep_jobs(self.rows)
        self.medians = demo.median_latencies(self.rows)

    def tearDown(self):
        os.unlink(self.path)

    def test_medians_and_regret(self):
        self.assertEqual(len(self.jobs), 6)
        self.assertAlmostEqual(self.medians["m1-32"]["llamacpp:a"], 1.0)
        self.assertAlmostEqual(demo.regret(self.medians, "m1-32", "llamacpp:b"), 2.0)
        self.assertAlmostEqual(demo.regret(self.medians, "m1-128", "llamacpp:b"), 1.0)
        self.assertAlmostEqual(demo.regret(self.medians, "m1-128", demo.DEFAULT_STRATEGY), 1.5)
        self.assertIsNone(demo.regret(self.medians, "m1-32", "llamacpp:zz"))
        self.assertAlmostEqual(demo.geomean([2.0, 8.0, None]), 4.0)
        self.assertIsNone(demo.geomean([None]))

    def test_split_keeps_short_jobs_of_the_first_models_and_holds_out_a_model(self):
        seed, rest = demo.split_jobs(self.jobs, seed_models=["m1", "m2"])
        self.assertEqual(seed, ["m1-32", "m2-32"])
        self.assertEqual(rest, ["m1-128", "m2-128", "m3-32", "m3-128"])
        seed, rest = demo.split_jobs(self.jobs)  # default: the first three models, the shortest length
        self.assertEqual(seed, ["m1-32", "m2-32", "m3-32"])
        self.assertEqual(rest, ["m1-128", "m2-128", "m3-128"])
        _, rest = demo.split_jobs(self.jobs, seed_models=["m1"], demo_models=["m3"])
        self.assertEqual(rest, ["m3-32", "m3-128"])
        with self.assertRaises(ValueError):
            demo.split_jobs(self.jobs, seed_models=["nope"])

    def test_sequence_is_seeded_rounds(self):
        demo_jobs = ["m1-128", "m2-128", "m3-32", "m3-128"]
        seq = demo.demo_sequence(demo_jobs, 10, 17)
        self.assertEqual(len(seq), 10)
        self.assertEqual(sorted(seq[:4]), sorted(demo_jobs))  # each round holds every demo job once
        self.assertEqual(sorted(seq[4:8]), sorted(demo_jobs))
        self.assertEqual(seq, demo.demo_sequence(demo_jobs, 10, 17))
        self.assertNotEqual(seq, demo.demo_sequence(demo_jobs, 10, 18))

    def test_single_best_windows_and_bar(self):
        demo_jobs = ["m1-128", "m2-128", "m3-32", "m3-128"]
        # a: 2, 2, 1, 2 -> 2^(3/4) = 1.68; b: 1, 1, 2, 1 -> 2^(1/4) = 1.19; default 1.5.
        best, value = demo.single_best(self.medians, demo_jobs)
        self.assertEqual(best, "llamacpp:b")
        self.assertAlmostEqual(value, 2 ** 0.25)
        self.assertEqual(demo.windows([1.0, 4.0, 2.0], 2), [(0, 1, 2.0), (2, 2, 2.0)])
        # A run that picks a first (wrong on long jobs), then always the best.
        seq = ["m1-128", "m3-32", "m1-128", "m3-32"]
        lines = []
        for i, (job, strategy) in enumerate(zip(seq, ["llamacpp:a", "llamacpp:a", "llamacpp:b", "llamacpp:a"])):
            lines.append({"job": f"d{i:04d}-{job}", "strategy": strategy, "status": "RUN_STATUS_OK",
                          "e2e_latency_ms": 1000.0 * self.medians[job][strategy]})
        job_of = {f"d{i:04d}-{j}": j for i, j in enumerate(seq)}
        s = demo.score_phase(lines, job_of, self.medians, best, 2)
        self.assertAlmostEqual(s["first_half"]["accelsel"], 2 ** 0.5)
        self.assertAlmostEqual(s["last_half"]["accelsel"], 1.0)
        self.assertAlmostEqual(s["last_half"]["default"], 1.5)
        self.assertAlmostEqual(s["last_half"]["single_best"], 2 ** 0.5)  # b: 1 on m1-128, 2 on m3-32
        self.assertAlmostEqual(s["measured_over_sweep_median"], 1.0)
        self.assertEqual([w["accelsel"] for w in s["windows"]], [s["first_half"]["accelsel"], 1.0])
        self.assertEqual(demo.bar(s), {"le_1_05": True, "beats_default": True, "beats_single_best": True})


if __name__ == "__main__":
    unittest.main()
