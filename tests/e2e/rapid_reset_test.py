#!/usr/bin/python3
"""Rapid reset (HEADERS + DATA + RST_STREAM in a loop on one connection, tests/e2e/h2_rapid_reset.py) against the real
accelsel-server, directly and behind the shipped nginx front proxy (deploy/nginx/accelsel-grpc.conf).

Directly, gRPC 1.51 holds no bound: the test measures the server's peak RSS (VmHWM) after ACCELSEL_RR_STREAMS reset
streams and after the same count of normal SelectAccelerator calls, and prints both (docs/OPERATIONS.md, "Rapid
reset"); it asserts only that the server survives and still answers. Behind the proxy it floods for
ACCELSEL_RR_SECONDS with reconnects and asserts the bound: server and proxy worker peak RSS each grow by less than
BOUND_MIB, and a real call through the proxy answers right after. Skipped in sanitizer builds (RSS means nothing
there) and, for the proxy part, when nginx is not installed (Debian: apt-get install nginx)."""
import concurrent.futures
import os
import shutil
import socket
import subprocess
import time
import unittest

import grpc

import accelsel_py as ap
import h2_rapid_reset as rr

pb = ap.load_protos()
STREAMS = int(os.environ.get("ACCELSEL_RR_STREAMS", "20000"))
SECONDS = float(os.environ.get("ACCELSEL_RR_SECONDS", "10"))
BOUND_MIB = 64  # docs/OPERATIONS.md, "Rapid reset"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM")


def sanitizer_build():
    with open(os.path.join(ap.BIN, "accelsel-server"), "rb") as f:
        binary = f.read()
    return b"__asan_init" in binary or b"__tsan_init" in binary


def wait_listening(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def select_request():
    return pb.SelectAcceleratorRequest(context=ap.make_report(pb, "x", "vllm", 8, 100).context)


def register_and_warm(address):
    with grpc.insecure_channel(address) as channel:
        stub = ap.stubs(grpc, pb, channel)
        stub["register"](pb.RegisterStrategyRequest(strategy=pb.Strategy(
            id="vllm", components=[pb.StrategyComponent(method="engine", value="vllm")])), timeout=10)
        stub["select"](select_request(), timeout=10)


class Nginx:
    """nginx in the foreground with the shipped accelsel-grpc.conf, pointed at `upstream`, in its own folder."""

    def __init__(self, folder, upstream):
        self.port = ap.free_port()
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(ap.SRC, "deploy/nginx/accelsel-grpc.conf")) as f:
            conf = f.read()
        conf = conf.replace("127.0.0.1:50051", upstream).replace("listen 50052 http2",
                                                                 "listen 127.0.0.1:%d http2" % self.port)
        with open(os.path.join(folder, "accelsel-grpc.conf"), "w") as f:
            f.write(conf)
        temp = " ".join("%s_temp_path %s/%s;" % (k, folder, k) for k in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                          "scgi"))
        with open(os.path.join(folder, "nginx.conf"), "w") as f:
            f.write("daemon off; master_process on; worker_processes 1; pid %s/nginx.pid;\n"
                    "error_log %s/error.log warn; events { worker_connections 1024; }\n"
                    "http { access_log off; %s include %s/accelsel-grpc.conf; }\n" % (folder, folder, temp, folder))
        self.proc = subprocess.Popen([NGINX, "-p", folder, "-c", os.path.join(folder, "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port)

    def worker_peak_rss_mib(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return max(peak_rss_mib(int(p)) for p in out)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


@unittest.skipIf(sanitizer_build(), "RSS bounds mean nothing in a sanitizer build")
class RapidResetTest(unittest.TestCase):
    def test_direct_attack_compared_with_normal_load_of_the_same_count(self):
        # Two servers, one per load, so neither peak hides the other.
        peaks = {}
        for load in ("normal", "reset"):
            server = ap.Server(ap.fresh_dir("rr-" + load)).start()
            try:
                register_and_warm(server.address)
                before = peak_rss_mib(server.proc.pid)
                start = time.time()
                if load == "reset":
                    attacker = rr.Attacker("127.0.0.1", server.port, message=select_request().SerializeToString())
                    sent = attacker.run(STREAMS, 60)
                    attacker.close()
                else:
                    with grpc.insecure_channel(server.address) as channel:
                        select = ap.stubs(grpc, pb, channel)["select"]
                        with concurrent.futures.ThreadPoolExecutor(16) as pool:
                            sent = sum(1 for _ in pool.map(lambda _: select(select_request(), timeout=30),
                                                           range(STREAMS)))
                elapsed = time.time() - start
                # The server still answers once it has worked through what the connection left it.
                with grpc.insecure_channel(server.address) as channel:
                    ap.stubs(grpc, pb, channel)["select"](select_request(), timeout=60)
                peaks[load] = (before, peak_rss_mib(server.proc.pid), sent, elapsed)
            finally:
                self.assertEqual(server.stop(), 0, "server did not exit 0 on SIGTERM")
        for load, (before, after, sent, elapsed) in peaks.items():
            print("direct %-6s: %d calls in %.1f s, server peak RSS %.0f -> %.0f MiB (+%.0f)" %
                  (load, sent, elapsed, before, after, after - before))

    @unittest.skipIf(NGINX is None, "nginx is not installed (Debian: apt-get install nginx)")
    def test_front_proxy_bounds_memory(self):
        folder = ap.fresh_dir("rr-proxy")
        server = ap.Server(os.path.join(folder, "data")).start()
        proxy = None
        try:
            register_and_warm(server.address)
            proxy = Nginx(os.path.join(folder, "nginx"), server.address)
            register_and_warm("127.0.0.1:%d" % proxy.port)  # through the proxy: it forwards real calls
            server_before, proxy_before = peak_rss_mib(server.proc.pid), proxy.worker_peak_rss_mib()
            message = select_request().SerializeToString()
            end = time.time() + SECONDS
            streams, connections = 0, 0
            while time.time() < end:  # the proxy closes each connection after keepalive_requests: reconnect
                attacker = rr.Attacker("127.0.0.1", proxy.port, message=message)
                streams += attacker.run(10**9, end - time.time())
                connections += 1
                attacker.close()
            # The proxy forwards again once the flood stops. Its per-client limits (answered 503, UNAVAILABLE) may
            # still be spent by the attack for a moment: poll, with a bound, instead of judging the first call.
            with grpc.insecure_channel("127.0.0.1:%d" % proxy.port) as channel:
                select = ap.stubs(grpc, pb, channel)["select"]
                give_up = time.time() + 20
                while True:
                    try:
                        select(select_request(), timeout=10)
                        break
                    except grpc.RpcError as e:
                        if e.code() != grpc.StatusCode.UNAVAILABLE or time.time() > give_up:
                            raise
                        time.sleep(0.2)
            server_grown = peak_rss_mib(server.proc.pid) - server_before
            proxy_grown = proxy.worker_peak_rss_mib() - proxy_before
            print("behind nginx: %d reset streams on %d connections in %.0f s; server peak RSS +%.1f MiB, "
                  "nginx worker peak RSS +%.1f MiB" % (streams, connections, SECONDS, server_grown, proxy_grown))
            self.assertLess(server_grown, BOUND_MIB)
            self.assertLess(proxy_grown, BOUND_MIB)
        finally:
            if proxy:
                proxy.stop()
            self.assertEqual(server.stop(), 0, "server did not exit 0 on SIGTERM")


if __name__ == "__main__":
    unittest.main()
