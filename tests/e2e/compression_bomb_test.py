#!/usr/bin/python3
"""Memory bound under compression bombs: Debian's python3-grpcio sends gzip-compressed requests that inflate to
ACCELSEL_BOMB_MIB (default 128) MiB each, ACCELSEL_BOMB_CALLS (default 3) at once, to the real accelsel-server.
Each must be refused (UNIMPLEMENTED: compression disabled) and the server's peak RSS (VmHWM) may grow by at most
BOUND_MIB. RSS means nothing under ASan, so this runs in the plain build only (make test, hence .ci/run)."""
import concurrent.futures
import os
import unittest

import grpc

import accelsel_py as ap

pb = ap.load_protos()
BOMB_MIB = int(os.environ.get("ACCELSEL_BOMB_MIB", "128"))
CALLS = int(os.environ.get("ACCELSEL_BOMB_CALLS", "3"))
BOUND_MIB = 64  # docs/OPERATIONS.md, "Limits"


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def sanitizer_build():
    with open(os.path.join(ap.BIN, "accelsel-server"), "rb") as f:
        binary = f.read()
    return b"__asan_init" in binary or b"__tsan_init" in binary


class CompressionBombTest(unittest.TestCase):
    @unittest.skipIf(sanitizer_build(), "RSS bounds mean nothing in a sanitizer build")
    def test_compressed_requests_are_refused_without_inflating_them(self):
        server = ap.Server(ap.fresh_dir("bomb")).start()
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = ap.stubs(grpc, pb, channel)
                stub["list"](pb.ListStrategiesRequest(), timeout=10)  # warm: threads, arenas, first call
            before = peak_rss_kib(server.proc.pid)
            # Zeros inflate ~1000x: 128 MiB of them is ~130 kB of gzip on the wire.
            payload = bytes(BOMB_MIB << 20)

            def bomb(_):
                with grpc.insecure_channel(server.address, compression=grpc.Compression.Gzip) as ch:
                    call = ch.unary_unary("/accelsel.v1.AcceleratorSelector/SelectAccelerator")
                    try:
                        call(payload, timeout=60, compression=grpc.Compression.Gzip)
                        return grpc.StatusCode.OK, ""
                    except grpc.RpcError as e:
                        return e.code(), e.details()

            with concurrent.futures.ThreadPoolExecutor(CALLS) as pool:
                results = list(pool.map(bomb, range(CALLS)))
            after = peak_rss_kib(server.proc.pid)
            grown_mib = (after - before) / 1024.0
            print("peak RSS %.1f -> %.1f MiB (+%.1f MiB) after %d x %d MiB bombs; answers: %s" %
                  (before / 1024.0, after / 1024.0, grown_mib, CALLS, BOMB_MIB, results[0]))
            for code, details in results:
                self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED, details)
                self.assertIn("gzip", details)
            self.assertLess(grown_mib, BOUND_MIB)
            # The server still serves uncompressed calls.
            with grpc.insecure_channel(server.address) as channel:
                stub = ap.stubs(grpc, pb, channel)
                stub["list"](pb.ListStrategiesRequest(), timeout=10)
        finally:
            self.assertEqual(server.stop(), 0, "server did not exit 0 on SIGTERM")


if __name__ == "__main__":
    unittest.main()
