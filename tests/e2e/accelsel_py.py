"""Shared helpers for the end-to-end tests: a second gRPC implementation (Debian's python3-grpcio) talking to the
real accelsel binaries. Message classes come from protoc --python_out at test time; the stubs are written here with
grpcio's generic channel API, so no generated gRPC Python code is needed."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("ACCELSEL_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("ACCELSEL_BIN_DIR", os.path.join(SRC, "build", "bin"))


def load_protos():
    """accelsel_pb2; google.rpc.status_pb2 and error_details_pb2 (the rich error details) become importable too."""
    out = tempfile.mkdtemp(prefix="accelsel-py-")
    subprocess.run(["protoc", "-I", os.path.join(SRC, "proto"), "--python_out=" + out] +
                   [os.path.join(SRC, "proto", p) for p in
                    ("accelsel/v1/accelsel.proto", "google/rpc/status.proto", "google/rpc/error_details.proto")],
                   check=True)
    sys.path.insert(0, out)
    import importlib
    return importlib.import_module("accelsel.v1.accelsel_pb2")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The real accelsel-server binary on 127.0.0.1 with a temp data dir."""

    def __init__(self, data_dir, seed_csv="", extra=()):
        self.data_dir = data_dir
        self.seed_csv = seed_csv
        self.extra = list(extra)
        self.proc = None
        self.port = None

    def start(self, timeout=120, port=None):
        """port: listen there (a restart on the address clients already use); default a free one."""
        self.port = port or free_port()
        self.metrics_port = free_port()
        args = [os.path.join(BIN, "accelsel-server"), "--listen=127.0.0.1:%d" % self.port,
                "--metrics_listen=127.0.0.1:%d" % self.metrics_port, "--data_dir=" + self.data_dir,
                "--descriptors_dir=" + os.path.join(SRC, "data/descriptors"), "--trainer=false"] + self.extra
        if self.seed_csv:
            args.append("--seed_csv=" + self.seed_csv)
        self.log = open(os.path.join(self.data_dir + ".log"), "a")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %d; see %s.log" % (self.proc.returncode, self.data_dir))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not listen within %ds" % timeout)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=60)
        return self.proc.returncode if self.proc else None


def stubs(grpc, pb, channel):
    """Generic-API stubs for accelsel.v1.AcceleratorSelector."""
    svc = "/accelsel.v1.AcceleratorSelector/"
    return {
        "select": channel.unary_unary(svc + "SelectAccelerator",
                                      request_serializer=pb.SelectAcceleratorRequest.SerializeToString,
                                      response_deserializer=pb.SelectAcceleratorResponse.FromString),
        "report": channel.stream_stream(svc + "ReportRun", request_serializer=pb.RunReport.SerializeToString,
                                        response_deserializer=pb.RunAck.FromString),
        "info": channel.unary_unary(svc + "GetModelInfo", request_serializer=pb.GetModelInfoRequest.SerializeToString,
                                    response_deserializer=pb.GetModelInfoResponse.FromString),
        "register": channel.unary_unary(svc + "RegisterStrategy",
                                        request_serializer=pb.RegisterStrategyRequest.SerializeToString,
                                        response_deserializer=pb.RegisterStrategyResponse.FromString),
        "list": channel.unary_unary(svc + "ListStrategies",
                                    request_serializer=pb.ListStrategiesRequest.SerializeToString,
                                    response_deserializer=pb.ListStrategiesResponse.FromString),
    }


def make_report(pb, run_id, strategy, batch, e2e_ms, node="py-node"):
    r = pb.RunReport(run_id=run_id, node_id=node, strategy_id=strategy, status=pb.RUN_STATUS_OK)
    c = r.context
    c.model.name = "e2e/model-7b"
    c.model.parameters_b = 7
    c.hardware.accelerator = "E2E GPU"
    c.hardware.count = 1
    c.workload.prompt_tokens = 256
    c.workload.output_tokens = 256
    c.workload.batch_size = batch
    r.metrics.e2e_latency_ms = e2e_ms
    return r


def fresh_dir(tag):
    base = os.environ.get("ACCELSEL_TEST_TMPDIR", tempfile.gettempdir())
    d = os.path.join(base, "%s-%d" % (tag, os.getpid()))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d
