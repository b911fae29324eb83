#!/usr/bin/python3
"""Crash loop: SIGKILL the real server at random moments during heavy ingest (two concurrent ReportRun streams),
at least 20 times, restarting it on the same data folder each time (a few kills land during start-up itself).
Checks: the store opens after every kill, and at the end every acknowledged run is stored exactly once (resending
everything yields DUPLICATE for each acknowledged run, and the run count equals the number of distinct runs)."""
import os
import random
import subprocess
import sys
import threading
import time
import unittest

import grpc

import accelsel_py as ap

pb = ap.load_protos()
CYCLES = int(os.environ.get("ACCELSEL_CRASH_CYCLES", "24"))
STREAMS = 2
PER_STREAM = 4000


class CrashLoopTest(unittest.TestCase):
    def test_sigkill_loop_keeps_every_acknowledged_run_exactly_once(self):
        rng = random.Random(int(os.environ.get("ACCELSEL_CRASH_SEED", "20261126")))
        data_dir = ap.fresh_dir("e2e-crash-loop")
        # sync_writes stays at its default (true): the promise is "acknowledged = durable".
        extra = ["--metrics_listen="]
        server = ap.Server(data_dir, extra=extra).start()
        live = {"server": server}  # whichever server is current; killed if the test fails half-way
        self.addCleanup(lambda: live["server"].proc.poll() is None and live["server"].kill9())
        channel = grpc.insecure_channel(server.address)
        stub = ap.stubs(grpc, pb, channel)
        stub["register"](pb.RegisterStrategyRequest(strategy=pb.Strategy(
            id="vllm", components=[pb.StrategyComponent(method="engine", value="vllm")])), timeout=10)

        sent_ids = set()
        acked = set()
        lock = threading.Lock()
        start = time.time()
        kills_mid_ingest = 0
        for cycle in range(CYCLES):
            if cycle % 6 == 5:
                # Kill during start-up (store open / statistics rebuild), before it serves anything.
                channel.close()
                server.kill9()
                proc_args = [os.path.join(ap.BIN, "accelsel-server"), "--listen=127.0.0.1:%d" % ap.free_port(),
                             "--metrics_listen=", "--data_dir=" + data_dir, "--trainer=false"]
                early = subprocess.Popen(proc_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.0, 0.15))
                early.kill()
                early.wait()
                server = live["server"] = ap.Server(data_dir, extra=extra).start()  # the store must still open
                channel = grpc.insecure_channel(server.address)
                stub = ap.stubs(grpc, pb, channel)
                continue

            def pump(stream_no):
                def reports():  # made lazily: only what was actually handed to gRPC counts as sent
                    for i in range(PER_STREAM):
                        r = ap.make_report(pb, "c%d-s%d-%d" % (cycle, stream_no, i), "vllm", 1 + i % 32,
                                           5.0 + (i * 7) % 50, node="crash-node-%d" % stream_no)
                        with lock:
                            sent_ids.add(r.run_id)
                        yield r
                try:
                    for ack in stub["report"](reports(), timeout=60):
                        if ack.result in (pb.RunAck.RESULT_DURABLE, pb.RunAck.RESULT_DUPLICATE):
                            with lock:
                                acked.add(ack.run_id)
                except grpc.RpcError as e:
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        raise

            threads = [threading.Thread(target=pump, args=(n,)) for n in range(STREAMS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.1, 1.0))
            alive = any(t.is_alive() for t in threads)
            server.kill9()
            kills_mid_ingest += 1 if alive else 0
            for t in threads:
                t.join(timeout=60)
                self.assertFalse(t.is_alive())
            channel.close()
            server = live["server"] = ap.Server(data_dir, extra=extra).start()  # raises if the store does not open
            channel = grpc.insecure_channel(server.address)
            stub = ap.stubs(grpc, pb, channel)
            stored = stub["info"](pb.GetModelInfoRequest(), timeout=10).runs_stored
            with lock:
                self.assertGreaterEqual(stored, len(acked), "cycle %d lost acknowledged runs" % cycle)

        # Resend everything ever sent: acknowledged runs must come back DUPLICATE.
        all_ids = sorted(sent_ids)
        by_id = {}
        for rid in all_ids:
            _, s, i = rid.split("-")
            by_id[rid] = ap.make_report(pb, rid, "vllm", 1 + int(i) % 32, 5.0 + (int(i) * 7) % 50,
                                        node="crash-node-%s" % s[1:])
        resend = list(stub["report"](iter(by_id[r] for r in all_ids), timeout=300))
        self.assertEqual(len(resend), len(all_ids))
        for ack in resend:
            if ack.run_id in acked:
                self.assertEqual(ack.result, pb.RunAck.RESULT_DUPLICATE, ack.run_id)
            else:
                self.assertIn(ack.result, (pb.RunAck.RESULT_DURABLE, pb.RunAck.RESULT_DUPLICATE))
        stored = stub["info"](pb.GetModelInfoRequest(), timeout=10).runs_stored
        self.assertEqual(stored, len(all_ids), "exactly once: one stored run per distinct run_id")
        total_kills = CYCLES + CYCLES // 6
        print("crash loop: %d SIGKILLs (%d during ingest, %d during start-up), %d runs acknowledged before a "
              "kill, %d distinct runs, %.1f s" % (total_kills, kills_mid_ingest, CYCLES // 6, len(acked),
                                                  len(all_ids), time.time() - start))
        self.assertGreaterEqual(kills_mid_ingest, 15)
        self.assertGreater(len(acked), 500)
        channel.close()
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
