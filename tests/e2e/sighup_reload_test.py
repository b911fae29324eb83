#!/usr/bin/python3
"""SIGHUP reloads --auth_tokens in the real accelsel-server binary (docs/OPERATIONS.md, "Rotating tokens and
certificates"): a token added to the file works after `kill -HUP`, a removed one is refused UNAUTHENTICATED, a
broken file keeps the tokens in force, and the server keeps serving and exits 0 on SIGTERM. The file watch is off
(--config_watch_interval=0), so only the signal can have reloaded it."""
import os
import signal
import time
import unittest

import grpc

import accelsel_py as ap

pb = ap.load_protos()
OLD = "node-a-token-0123456789"
NEW = "node-c-token-0123456789"


def write_tokens(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def code_of(stub, token):
    try:
        stub["list"](pb.ListStrategiesRequest(), timeout=10, metadata=[("authorization", "Bearer " + token)])
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def wait_for(stub, token, want, seconds=30):
    """Polls until `token` gets `want` (the signal is handled asynchronously); returns the last code."""
    deadline = time.time() + seconds
    got = code_of(stub, token)
    while got != want and time.time() < deadline:
        time.sleep(0.05)
        got = code_of(stub, token)
    return got


class SighupReloadTest(unittest.TestCase):
    def test_sighup_reloads_the_tokens_file(self):
        data = ap.fresh_dir("sighup")
        tokens = data + ".tokens"
        write_tokens(tokens, OLD + " node node-a\n")
        server = ap.Server(data, extra=["--auth_tokens=" + tokens, "--config_watch_interval=0"]).start()
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = ap.stubs(grpc, pb, channel)
                self.assertEqual(code_of(stub, OLD), grpc.StatusCode.OK)
                self.assertEqual(code_of(stub, NEW), grpc.StatusCode.UNAUTHENTICATED)
                write_tokens(tokens, NEW + " node node-c\n")
                server.proc.send_signal(signal.SIGHUP)
                self.assertEqual(wait_for(stub, NEW, grpc.StatusCode.OK), grpc.StatusCode.OK)
                self.assertEqual(code_of(stub, OLD), grpc.StatusCode.UNAUTHENTICATED)
                # A broken file: refused, the tokens in force stay, the server goes on.
                write_tokens(tokens, "too-short node node-d\n")
                server.proc.send_signal(signal.SIGHUP)
                with open(data + ".log") as f:
                    deadline = time.time() + 30
                    while "config_reload_failed" not in f.read() and time.time() < deadline:
                        time.sleep(0.05)
                with open(data + ".log") as f:
                    self.assertIn("token shorter than 16 chars", f.read())
                self.assertEqual(code_of(stub, NEW), grpc.StatusCode.OK)
                self.assertIsNone(server.proc.poll())
        finally:
            self.assertEqual(server.stop(), 0, "server did not exit 0 on SIGTERM")


if __name__ == "__main__":
    unittest.main()
