"""The Python client package (client/python) as a user installs it: a venv made from Debian's own interpreter with
its system site packages, `pip install --no-build-isolation` (stubs generated at build time by protoc and
grpc_python_plugin), then driven against the real accelsel-server: select, the telemetry sender with ranged acks,
a rejected report, the server going away (select answers from its fallback, the sender resends what was not
acknowledged), environment variables, and a server with TLS and bearer tokens.

Run by /usr/bin/python3 (CTest); it re-runs itself inside the venv for the checks."""
import os
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accelsel_py import SRC, Server, fresh_dir  # noqa: E402


def install_package(work):
    """A copy of client/python built from outside the source tree (ACCELSEL_PROTO_DIR), so concurrent runs and
    the in-tree build folders pip leaves behind cannot clash."""
    venv = os.path.join(work, "venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True)
    pkg = os.path.join(work, "client", "python")
    shutil.copytree(os.path.join(SRC, "client", "python"), pkg,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    # setup.py reads the version from the CMakeLists.txt two folders up; the copy keeps that layout.
    shutil.copy(os.path.join(SRC, "CMakeLists.txt"), os.path.join(work, "CMakeLists.txt"))
    env = dict(os.environ, ACCELSEL_PROTO_DIR=os.path.join(SRC, "proto"), PIP_NO_INDEX="1")
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-build-isolation", pkg], check=True,
                   env=env)
    return os.path.join(venv, "bin", "python")


def context(pb, batch=8):
    c = pb.TaskContext()
    c.model.name = "py/model-7b"
    c.model.parameters_b = 7
    c.hardware.accelerator = "PY GPU"
    c.hardware.count = 1
    c.workload.prompt_tokens = 512
    c.workload.output_tokens = 128
    c.workload.batch_size = batch
    return c


def report(pb, run_id, strategy, e2e_ms, batch=8):
    r = pb.RunReport(run_id=run_id, node_id="py-node", status=pb.RUN_STATUS_OK)
    r.context.CopyFrom(context(pb, batch))
    r.strategy.id = strategy
    r.strategy.components.add(method="engine", value=strategy)
    r.metrics.e2e_latency_ms = e2e_ms
    return r


def wait_until(predicate, what, timeout=60.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def model_infos_answered(server):
    """accelsel_rpc_requests_total{method="GetModelInfo",code="OK"} from the server's /metrics."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % server.metrics_port, timeout=10) as page:
        for line in page.read().decode().splitlines():
            if (line.startswith("accelsel_rpc_requests_total{") and 'method="GetModelInfo"' in line
                    and 'code="OK"' in line):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def replica_checks(work):
    """Several replicas (client/README.md, "Several replicas"): the forms of a target, calls spread over two servers
    (round_robin), and every call answered by the other when one stops."""
    import accelsel

    assert accelsel.channel_target("127.0.0.1:50051") == "127.0.0.1:50051"
    assert accelsel.channel_target(" 10.0.0.1:1, 10.0.0.2:2") == "ipv4:10.0.0.1:1,10.0.0.2:2"
    assert accelsel.channel_target("[::1]:1,[::2]:2") == "ipv6:[::1]:1,[::2]:2"
    assert accelsel.channel_target("localhost:1,127.0.0.1:1") == "ipv4:127.0.0.1:1"
    for uri in ("dns:///accelsel.example:50051", "ipv4:10.0.0.1:1,10.0.0.2:2", "unix:/run/accelsel.sock"):
        assert accelsel.channel_target(uri) == uri, uri
    for bad, why in (("", "no address"), ("10.0.0.1:1,,10.0.0.2:2", "an empty item"), ("10.0.0.1", "has no port"),
                     ("10.0.0.1:1,10.0.0.2:x", "the port must be 1 to 65535"), ("::1:1", "goes in brackets"),
                     ("10.0.0.1:1,[::1]:1", "IPv4 and IPv6"), ("a:1,dns:///b:1", "a URI (dns:///b:1)"),
                     ("dns:///a:1,b:1", "not a list")):
        try:
            accelsel.channel_target(bad, "--server")
            raise AssertionError("%r was accepted" % bad)
        except ValueError as err:
            assert str(err).startswith('--server: "%s": ' % bad) and why in str(err), err
    try:
        accelsel.Client("10.0.0.1:1,")
        raise AssertionError("a client was made for a bad target")
    except ValueError as err:
        assert str(err).startswith('target: "10.0.0.1:1,": an empty item'), err

    servers = [Server(os.path.join(work, "data-replica-%d" % i)).start() for i in range(2)]
    client = accelsel.Client(",".join(s.address for s in servers), initial_backoff_s=0.005, max_backoff_s=0.05)
    # round_robin takes a replica once it is ready; the first calls may all go to the first one up.
    wait_until(lambda: client.model_info() is not None and all(model_infos_answered(s) > 0 for s in servers),
               "calls on both replicas")
    servers[0].stop()
    survivor = model_infos_answered(servers[1])
    for _ in range(20):
        client.model_info()  # raises if a call fails
    assert model_infos_answered(servers[1]) - survivor == 20
    client.close()
    assert servers[1].stop() == 0


def checks(work):
    import grpc
    import accelsel
    from accelsel import pb

    assert accelsel.__version__ != "0.0.0", accelsel.__version__
    server = Server(os.path.join(work, "data")).start()
    client = accelsel.Client(server.address, fallback_strategy=None)
    assert client.health()

    # Reports register two strategies (no --auth_tokens: a full definition registers) and give them evidence.
    acks, rejected = [], []
    sender = accelsel.TelemetrySender(client, capacity=16, on_ack=acks.append,
                                      on_rejected=lambda run_id, reason: rejected.append((run_id, reason)))
    sent = []
    for i in range(40):
        sent.append(sender.send(report(pb, "py-run-%d" % i, "fast" if i % 2 else "slow", 100 if i % 2 else 300)))
    bad = report(pb, "py-bad", "fast", 100)
    bad.metrics.e2e_latency_ms = -1
    sender.send(bad)
    sender.flush(60)
    s = sender.stats()
    assert s["durable"] == 40 and s["rejected"] == 1 and s["buffered"] == 0, s
    assert s["max_buffered"] <= 16, s
    assert s["ack_messages"] <= 41, s
    assert sorted(a.run_id for a in acks) == sorted(sent + ["py-bad"]), acks
    assert len(rejected) == 1 and rejected[0][0] == "py-bad" and "e2e_latency_ms" in rejected[0][1], rejected
    # A report without run_id gets one; keyword fields and dicts work as well as protos.
    auto_id = sender.send(run_id="", node_id="py-node", context=context(pb), strategy_id="fast",
                          status=pb.RUN_STATUS_OK, metrics=pb.RunMetrics(e2e_latency_ms=110))
    assert auto_id, auto_id
    sender.send({"runId": "py-dict", "nodeId": "py-node", "strategyId": "slow", "status": "RUN_STATUS_OK",
                 "context": {"model": {"name": "py/model-7b", "parametersB": 7},
                             "hardware": {"accelerator": "PY GPU", "count": 1},
                             "workload": {"promptTokens": 512, "outputTokens": 128, "batchSize": 8}},
                 "metrics": {"e2eLatencyMs": 310}})
    sender.flush(60)
    assert sender.stats()["durable"] == 42, sender.stats()

    # select: the measured faster strategy first, a decision id to echo in reports.
    choice = client.select(context(pb), top_k=2, node_id="py-node")
    assert choice.source == "server" and not choice.fallback and choice.error is None
    assert choice.best == "fast", choice.response
    assert choice.decision_id, choice.response
    # The same through names and sizes, and an invalid request raises with the field named.
    by_name = client.select(model="py/model-7b", accelerator="PY GPU", count=1, prompt_tokens=512,
                            output_tokens=128, batch=8, extra=None)
    assert by_name.recommendations, by_name.response
    try:
        client.select(context(pb), top_k=100000)
        raise AssertionError("top_k beyond the limit was accepted")
    except accelsel.AccelselError as err:
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "top_k" in err.details, err
        # The field also comes decoded from the google.rpc.BadRequest in the status details.
        assert [f for f, _ in err.field_violations] == ["top_k"], err.field_violations
        assert err.field_violations[0][1].startswith("must be <= 256"), err.field_violations
        assert err.retry_delay_s is None, err.retry_delay_s

    # $ACCELSEL_SERVER is the default target, as for the CLI.
    os.environ["ACCELSEL_SERVER"] = server.address
    assert accelsel.Client().health()
    del os.environ["ACCELSEL_SERVER"]

    # The server goes away. select answers from the last answer for that context (decision id cleared), or from
    # the configured default, or raises UNAVAILABLE; the sender keeps what it could not deliver.
    port = server.port
    assert server.stop() == 0
    fallback_client = accelsel.Client(server.address, fallback_strategy="slow", deadline_s=2.0)
    cached = client.select(context(pb), top_k=2, node_id="py-node", explore=True)
    assert cached.source == "cache" and cached.fallback and "UNAVAILABLE" in cached.error, cached
    assert cached.best == "fast" and cached.decision_id == "", cached.response
    default = fallback_client.select(context(pb, batch=64))
    assert default.source == "default" and default.best == "slow", default
    try:
        client.select(context(pb, batch=64))
        raise AssertionError("select without a fallback answered while the server was down")
    except accelsel.AccelselError as err:
        assert err.code == grpc.StatusCode.UNAVAILABLE, err

    late = [sender.send(report(pb, "py-late-%d" % i, "fast", 105)) for i in range(5)]
    try:
        sender.flush(0.5)
        raise AssertionError("flush succeeded with the server down")
    except TimeoutError as err:
        assert "5 report(s)" in str(err), err
    wait_until(lambda: sender.stats()["stream_failures"] >= 2, "a failed reconnect")

    server.start(port=port)
    sender.flush(60)
    s = sender.stats()
    assert s["durable"] == 47 and s["buffered"] == 0 and s["streams_opened"] >= 2, s
    assert client.select(context(pb), top_k=2).source == "server"

    # Every acknowledged run is stored: resending them all is acknowledged DUPLICATE, none DURABLE.
    with accelsel.TelemetrySender(client) as again:
        for i in range(40):
            again.send(report(pb, "py-run-%d" % i, "fast" if i % 2 else "slow", 100 if i % 2 else 300))
        for run_id in late:
            again.send(report(pb, run_id, "fast", 105))
        again.flush(60)
        assert again.stats()["duplicate"] == 45 and again.stats()["durable"] == 0, again.stats()

    # A full buffer refuses at once when asked not to block, and close() ends a blocked flush's wait.
    small = accelsel.TelemetrySender(client, capacity=1, block_when_full=False)
    assert server.stop() == 0
    small.send(report(pb, "py-small-0", "fast", 100))
    try:
        small.send(report(pb, "py-small-1", "fast", 100))
        raise AssertionError("a full non-blocking buffer accepted a report")
    except accelsel.QueueFull:
        pass
    closer = threading.Timer(0.2, small.close)
    closer.start()
    try:
        small.flush(60)
        raise AssertionError("flush returned OK on a closed sender")
    except TimeoutError as err:
        assert "closed" in str(err), err
    try:
        small.send(report(pb, "py-small-2", "fast", 100))
        raise AssertionError("send after close accepted")
    except accelsel.SenderClosed:
        pass
    sender.close()
    client.close()

    # The README's node loop, as shipped, against a server seeded with a small LLM-Inference-Bench table.
    seeded = Server(os.path.join(work, "data-seeded"),
                    seed_csv=os.path.join(SRC, "tests", "fixtures", "llm_bench_small.csv")).start()
    example = os.path.join(SRC, "client", "python", "examples", "node_loop.py")
    out = subprocess.run([sys.executable, example, "--jobs", "6", "--accelerator", "Nvidia H100 GPU"],
                         env=dict(os.environ, ACCELSEL_SERVER=seeded.address), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "reported 6 runs" in out.stdout, (out.stdout, out.stderr)
    assert seeded.stop() == 0

    # TLS and bearer tokens.
    tokens = os.path.join(work, "tokens")
    with open(tokens, "w") as f:
        f.write("py-node-token-0123456789 node py-node\npy-operator-token-0123456 operator ops\n")
    os.chmod(tokens, 0o600)
    tls = os.path.join(SRC, "tests", "fixtures", "tls")
    secure = Server(os.path.join(work, "data-tls"),
                    extra=["--auth_tokens=" + tokens, "--tls_cert=" + os.path.join(tls, "server.pem"),
                           "--tls_key=" + os.path.join(tls, "server.key")]).start()
    ca = os.path.join(tls, "ca.pem")
    anonymous = accelsel.Client(secure.address, tls_ca=ca)
    try:
        anonymous.model_info()
        raise AssertionError("a call without a token was answered")
    except accelsel.AccelselError as err:
        assert err.code == grpc.StatusCode.UNAUTHENTICATED, err
    os.environ["ACCELSEL_TOKEN"] = "py-node-token-0123456789"
    node = accelsel.Client(secure.address, tls_ca=ca)
    del os.environ["ACCELSEL_TOKEN"]
    assert node.model_info().serving_version >= 0
    with accelsel.TelemetrySender(node) as tls_sender:
        tls_sender.send(report(pb, "py-tls-0", "fast", 100))
        tls_sender.flush(60)
        # A node token may not register strategies: the report is rejected with the reason.
        assert tls_sender.stats()["rejected"] + tls_sender.stats()["durable"] == 1, tls_sender.stats()
    operator = accelsel.Client(secure.address, tls_ca=ca, token="py-operator-token-0123456")
    with accelsel.TelemetrySender(operator) as op_sender:
        op_sender.send(report(pb, "py-tls-1", "fast", 100))
        op_sender.flush(60)
        assert op_sender.stats()["durable"] == 1, op_sender.stats()
    wrong_ca = accelsel.Client(secure.address, tls_ca=os.path.join(tls, "other_ca.pem"), deadline_s=2.0,
                               token="py-operator-token-0123456")
    try:
        wrong_ca.model_info()
        raise AssertionError("a server signed by an untrusted CA was accepted")
    except accelsel.AccelselError as err:
        assert err.code == grpc.StatusCode.UNAVAILABLE, err
    # A list of replicas over TLS: the certificate is checked against the first name as written (localhost), not
    # the resolved address list.
    listed = accelsel.Client("localhost:%d,localhost:%d" % (secure.port, secure.port), tls_ca=ca,
                             token="py-operator-token-0123456")
    assert listed.model_info().serving_version >= 0
    listed.close()
    assert secure.stop() == 0
    print("python client checks passed")


def main():
    if os.environ.get("ACCELSEL_PY_CLIENT_STAGE") != "venv":
        work = fresh_dir("py-client")
        python = install_package(work)
        env = dict(os.environ, ACCELSEL_PY_CLIENT_STAGE="venv", ACCELSEL_PY_CLIENT_WORK=work)
        sys.exit(subprocess.run([python, os.path.abspath(__file__)], env=env).returncode)
    replica_checks(os.environ["ACCELSEL_PY_CLIENT_WORK"])
    checks(os.environ["ACCELSEL_PY_CLIENT_WORK"])


if __name__ == "__main__":
    main()
