#!/usr/bin/python3
"""End-to-end: the real binaries. Seed from the bundled LLM-Inference-Bench table, answer a select from the CLI,
then SIGKILL the server in the middle of a ReportRun stream (three times), restart it, and prove that every run that
was acknowledged is stored exactly once."""
import os
import subprocess
import sys
import threading
import time
import unittest

import grpc

import accelsel_py as ap

pb = ap.load_protos()
CSV = os.path.join(ap.SRC, "data/llm-inference-bench/throughput_all_results.csv")
EXAMPLES = os.path.join(ap.SRC, "data/examples")


class Kill9EndToEndTest(unittest.TestCase):
    def test_seed_select_and_kill9_loses_no_acknowledged_run(self):
        data_dir = ap.fresh_dir("e2e-kill9")
        server = ap.Server(data_dir, seed_csv=CSV).start()
        channel = grpc.insecure_channel(server.address)
        stub = ap.stubs(grpc, pb, channel)
        seeded = stub["info"](pb.GetModelInfoRequest(), timeout=10).runs_stored
        self.assertGreater(seeded, 4000, "the bundled table should seed thousands of runs")

        # The CLI answers a select for a context drawn from the bundled data, from imported runs.
        example = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".json"))[0]
        cli = subprocess.run([os.path.join(ap.BIN, "accelsel"), "select", "--server", server.address,
                              "--context", os.path.join(EXAMPLES, example), "--json"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertIn("EVIDENCE_LAYER_OBSERVED", cli.stdout)
        strategies = [s.id for s in stub["list"](pb.ListStrategiesRequest(), timeout=10).strategies]
        self.assertIn("vllm", strategies)

        all_reports = []
        acked = set()
        for cycle in range(3):
            reports = [ap.make_report(pb, "kill-%d-%d" % (cycle, i), "vllm", 1 + i % 64, 10.0 + i % 13)
                       for i in range(20000)]
            all_reports.extend(reports)
            kill_after = 2000 + 1500 * cycle
            got = 0
            try:
                for ack in stub["report"](iter(reports), timeout=120):
                    if ack.result == pb.RunAck.RESULT_DURABLE:
                        acked.add(ack.run_id)
                    got += 1
                    if got == kill_after:
                        server.kill9()  # mid-stream: reports are still being sent and written
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE, e.details())
            self.assertGreaterEqual(got, kill_after)
            channel.close()
            server = ap.Server(data_dir).start()
            channel = grpc.insecure_channel(server.address)
            stub = ap.stubs(grpc, pb, channel)

        # Every acknowledged run survived: resending it yields DUPLICATE, never DURABLE.
        resend = list(stub["report"](iter(all_reports), timeout=300))
        self.assertEqual(len(resend), len(all_reports))
        for ack in resend:
            if ack.run_id in acked:
                self.assertEqual(ack.result, pb.RunAck.RESULT_DUPLICATE, ack.run_id)
            else:
                self.assertIn(ack.result, (pb.RunAck.RESULT_DURABLE, pb.RunAck.RESULT_DUPLICATE))
        # Exactly once: the store holds the seed plus each distinct run once.
        stored = stub["info"](pb.GetModelInfoRequest(), timeout=10).runs_stored
        self.assertEqual(stored, seeded + len(all_reports))
        self.assertGreater(len(acked), 6000)
        channel.close()
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
