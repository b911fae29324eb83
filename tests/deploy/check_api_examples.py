"""Replays the examples of docs/API.md against a running accelsel-server that was seeded with the bundled
LLM-Inference-Bench table and has no trained model: the documented SelectAcceleratorRequest must get the documented
ranking (same strategies, ranks, evidence layers, expected values within 0.1%, the same filled_fields), and the
documented reports, followed by an invalid copy and a resend, must get the documented acknowledgements. Run by
tests/deploy_check.sh.

Usage: check_api_examples.py SOURCE_DIR TMP_DIR GRPC_PORT
"""
import os
import re
import subprocess
import sys


def main():
    src, tmp, port = sys.argv[1], sys.argv[2], sys.argv[3]
    out = os.path.join(tmp, "api_examples_py")
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "-I", os.path.join(src, "proto"), "--python_out=" + out,
                    os.path.join(src, "proto", "accelsel", "v1", "accelsel.proto")], check=True)
    sys.path.insert(0, out)
    import grpc
    from google.protobuf import json_format
    from accelsel.v1 import accelsel_pb2 as pb

    doc = open(os.path.join(src, "docs", "API.md"), encoding="utf-8").read()

    def examples(type_name, cls):
        return [json_format.Parse(b, cls()) for b in re.findall(r"^```json accelsel\.v1\." + type_name + r"\n(.*?)^```",
                                                                doc, re.M | re.S)]

    failures = []
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)

    # The selection first: the reports below add runs that would change it.
    select = channel.unary_unary("/accelsel.v1.AcceleratorSelector/SelectAccelerator",
                                 request_serializer=pb.SelectAcceleratorRequest.SerializeToString,
                                 response_deserializer=pb.SelectAcceleratorResponse.FromString)
    request = examples("SelectAcceleratorRequest", pb.SelectAcceleratorRequest)[0]
    documented = examples("SelectAcceleratorResponse", pb.SelectAcceleratorResponse)[0]
    got = select(request, timeout=10)
    want_rows = [(r.strategy.id, r.rank, r.evidence_layer, r.meets_constraints) for r in documented.recommendations]
    got_rows = [(r.strategy.id, r.rank, r.evidence_layer, r.meets_constraints) for r in got.recommendations]
    if want_rows != got_rows:
        failures.append(f"SelectAccelerator ranking differs:\n    documented {want_rows}\n    server     {got_rows}")
    else:
        for want, have in zip(documented.recommendations, got.recommendations):
            if abs(want.expected_value - have.expected_value) > 1e-3 * max(1.0, abs(want.expected_value)):
                failures.append(f"{want.strategy.id}: expected_value documented {want.expected_value}, "
                                f"server {have.expected_value}")
    if got.model_version != documented.model_version or got.objective != documented.objective:
        failures.append("SelectAccelerator model_version/objective differ from the documented response")
    if list(got.filled_fields) != list(documented.filled_fields):
        failures.append(f"SelectAccelerator filled_fields differ:\n    documented {list(documented.filled_fields)}"
                        f"\n    server     {list(got.filled_fields)}")

    # The reports, an invalid copy of the first (run_id of the third documented ack, no metrics), a resend.
    reports = examples("RunReport", pb.RunReport)
    acks = examples("RunAck", pb.RunAck)
    invalid = pb.RunReport()
    invalid.CopyFrom(reports[0])
    invalid.run_id = acks[2].run_id
    invalid.ClearField("metrics")
    stream = channel.stream_stream("/accelsel.v1.AcceleratorSelector/ReportRun",
                                   request_serializer=pb.RunReport.SerializeToString,
                                   response_deserializer=pb.RunAck.FromString)
    received = sorted(stream(iter([reports[0], reports[1], invalid, reports[0]]), timeout=10),
                      key=lambda a: a.sequence)
    want_acks = [(a.sequence, a.run_id, a.result, a.reason) for a in acks]
    got_acks = [(a.sequence, a.run_id, a.result, a.reason) for a in received]
    if want_acks != got_acks:
        failures.append(f"ReportRun acks differ:\n    documented {want_acks}\n    server     {got_acks}")

    register = channel.unary_unary("/accelsel.v1.AcceleratorSelector/RegisterStrategy",
                                   request_serializer=pb.RegisterStrategyRequest.SerializeToString,
                                   response_deserializer=pb.RegisterStrategyResponse.FromString)
    reg = examples("RegisterStrategyRequest", pb.RegisterStrategyRequest)[0]
    if not register(reg, timeout=10).created:
        failures.append("RegisterStrategy example: created is false on a fresh server")

    for f in failures:
        print(f"  api-examples: {f}")
    if failures:
        print("  (regenerate the examples in docs/API.md from a server seeded as by `make run` with --trainer=false)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
