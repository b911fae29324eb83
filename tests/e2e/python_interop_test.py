#!/usr/bin/python3
"""Wire-contract test with a second gRPC implementation: Debian's python3-grpcio calls the real accelsel-server
binary (SelectAccelerator, ReportRun, RegisterStrategy, ListStrategies) and checks the answers, and the rich error
details (grpc-status-details-bin) decode as standard google.rpc messages."""
import sys
import unittest

import grpc

import accelsel_py as ap

pb = ap.load_protos()
from google.rpc import error_details_pb2, status_pb2  # noqa: E402  (compiled by load_protos)


def rpc_status(err):
    """The google.rpc.Status of a failed call, from its grpc-status-details-bin trailer."""
    raw = dict(err.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert status.code == err.code().value[0] and status.message == err.details(), status
    return status


class PythonInteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ap.Server(ap.fresh_dir("py-interop")).start()
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = ap.stubs(grpc, pb, cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0, "server did not exit 0 on SIGTERM"

    def test_report_then_select(self):
        for sid in ("py-fast", "py-slow"):
            self.stub["register"](pb.RegisterStrategyRequest(strategy=pb.Strategy(
                id=sid, components=[pb.StrategyComponent(method="engine", value=sid)])), timeout=10)
        reports = []
        for i in range(6):
            reports.append(ap.make_report(pb, "py-f%d" % i, "py-fast", 8, 50.0 + i))
            reports.append(ap.make_report(pb, "py-s%d" % i, "py-slow", 8, 90.0 + i))
        bad = ap.make_report(pb, "py-bad", "py-fast", 8, 1.0)
        bad.metrics.e2e_latency_ms = float("nan")
        reports.append(bad)
        acks = list(self.stub["report"](iter(reports), timeout=30))
        self.assertEqual(len(acks), len(reports))
        by_id = {a.run_id: a for a in acks}
        self.assertEqual(by_id["py-f0"].result, pb.RunAck.RESULT_DURABLE)
        self.assertEqual(by_id["py-bad"].result, pb.RunAck.RESULT_REJECTED)
        self.assertIn("metrics.e2e_latency_ms", by_id["py-bad"].reason)

        req = pb.SelectAcceleratorRequest(context=reports[0].context, candidate_ids=["py-slow", "py-fast"])
        resp = self.stub["select"](req, timeout=10)
        self.assertEqual([r.strategy.id for r in resp.recommendations], ["py-fast", "py-slow"])
        self.assertEqual(resp.recommendations[0].evidence_layer, pb.EVIDENCE_LAYER_OBSERVED)
        self.assertEqual(resp.recommendations[0].evidence_count, 6)
        self.assertAlmostEqual(resp.recommendations[0].expected_value, 52.5)
        self.assertTrue(resp.decision_id)

    def test_invalid_select_is_invalid_argument_with_field(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub["select"](pb.SelectAcceleratorRequest(), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("context: is required", cm.exception.details())
        status = rpc_status(cm.exception)
        self.assertEqual(len(status.details), 1)
        bad = error_details_pb2.BadRequest()
        self.assertTrue(status.details[0].Unpack(bad))
        self.assertEqual([(v.field, v.description) for v in bad.field_violations], [("context", "is required")])

    def test_rate_limited_call_carries_retry_info_and_pushback(self):
        server = ap.Server(ap.fresh_dir("py-interop-limited"), extra=[
            "--rate_limit_anonymous", "--rate_calls_per_s=0.5", "--rate_call_burst=1"]).start()
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = ap.stubs(grpc, pb, channel)
                request = pb.ListStrategiesRequest()
                stub["list"](request, timeout=10)
                with self.assertRaises(grpc.RpcError) as cm:
                    stub["list"](request, timeout=10)
        finally:
            self.assertEqual(server.stop(), 0)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        trailers = dict(cm.exception.trailing_metadata())
        pushback_ms = int(trailers["grpc-retry-pushback-ms"])
        self.assertTrue(0 < pushback_ms <= 2000, trailers)
        self.assertEqual(int(trailers["retry-after-ms"]), pushback_ms)
        status = rpc_status(cm.exception)
        self.assertEqual(len(status.details), 1)
        retry = error_details_pb2.RetryInfo()
        self.assertTrue(status.details[0].Unpack(retry))
        self.assertEqual(retry.retry_delay.ToMilliseconds(), pushback_ms)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
