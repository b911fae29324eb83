"""TelemetrySender: RunReports to accelsel over one long-lived ReportRun stream, from a bounded buffer, resending
whatever was not acknowledged after a break. The same contract as the C++ client/telemetry_sender.h."""
import collections
import logging
import random
import threading
import time
import uuid

import grpc
from google.protobuf import json_format

from accelsel.v1 import accelsel_pb2 as pb
from accelsel.v1 import accelsel_pb2_grpc as pb_grpc

# Streams that send this metadata get one ack per run of consecutive reports with the same result (RunAck.count).
ACK_RANGES_METADATA = ("accelsel-ack-ranges", "1")
# Trailers a server sends with RESOURCE_EXHAUSTED: wait at least this many ms before the next stream. gRPC's own
# pushback first; retry-after-ms is what servers before it sent.
RETRY_HINT_KEYS = ("grpc-retry-pushback-ms", "retry-after-ms")


class QueueFull(Exception):
    """send() found the buffer full (block_when_full=False) or waited past its timeout."""


class SenderClosed(Exception):
    """send() after close()."""


class _Entry:
    __slots__ = ("report", "ever_written")

    def __init__(self, report):
        self.report = report
        self.ever_written = False


def run_report(report=None, **fields):
    """A RunReport from a proto or a dict in the proto's JSON mapping (plus keyword fields of the message)."""
    if report is None:
        report = pb.RunReport(**fields)
    elif isinstance(report, pb.RunReport):
        copy = pb.RunReport()
        copy.CopyFrom(report)
        report = copy
    else:
        report = json_format.ParseDict(report, pb.RunReport())
    return report


class TelemetrySender:
    """Streams RunReports. send() returns at once unless the buffer is full; a report leaves the buffer only when
    its ack (DURABLE, DUPLICATE or REJECTED) arrives; a broken stream is reopened after a backoff (honouring the
    server's retry hint, capped at max_retry_after_s) and every unacknowledged report is written again (the server
    dedups by run_id). flush() before the node exits.

    on_ack(ack) runs once per acknowledged report (a ranged ack is expanded), on_rejected(run_id, reason) for
    REJECTED ones, both on the sender's thread with no lock held; they must not call close() or flush().
    Thread safety: send, flush, close and stats may be called from any thread."""

    def __init__(self, client, capacity=1024, block_when_full=True, on_ack=None, on_rejected=None,
                 max_retry_after_s=60.0):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._options = client.options
        self._metadata = tuple(client.metadata) + (ACK_RANGES_METADATA,)
        self._stub = pb_grpc.AcceleratorSelectorStub(client.channel)
        self._capacity = capacity
        self._block = block_when_full
        self._on_ack = on_ack
        self._on_rejected = on_rejected
        self._max_retry_after_s = max_retry_after_s
        self._cv = threading.Condition()
        self._pending = {}  # entry id -> _Entry, in send order (dicts keep insertion order)
        self._next_id = 0
        self._unwritten = collections.deque()  # entry ids still to write on the current stream
        self._in_flight = {}  # stream sequence -> entry id
        self._next_seq = 0
        self._stream = 0  # id of the current stream; a request generator of an older one stops
        self._broken = False
        self._call = None
        self._closing = False
        self._callbacks_running = 0
        self._stats = dict(accepted=0, durable=0, duplicate=0, rejected=0, unmatched_acks=0, ack_messages=0,
                           writes=0, resent=0, streams_opened=0, stream_failures=0, retry_hints=0,
                           last_retry_hint_ms=0, max_buffered=0, last_stream_error="")
        self._thread = threading.Thread(target=self._run, name="accelsel-telemetry", daemon=True)
        self._thread.start()

    # -- public --------------------------------------------------------------------------------------------------

    def send(self, report=None, timeout=None, **fields):
        """Buffers a report (proto, dict or keyword fields). A report without run_id gets a fresh UUID. Raises
        QueueFull when full (not blocking, or after `timeout` seconds), SenderClosed after close()."""
        report = run_report(report, **fields)
        if not report.run_id:
            report.run_id = str(uuid.uuid4())
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._closing and len(self._pending) >= self._capacity:
                if not self._block:
                    raise QueueFull("telemetry buffer full (%d reports)" % self._capacity)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise QueueFull("telemetry buffer still full after %.3g s" % timeout)
                self._cv.wait(left)
            if self._closing:
                raise SenderClosed("sender closed")
            entry_id = self._next_id
            self._next_id += 1
            self._pending[entry_id] = _Entry(report)
            self._unwritten.append(entry_id)
            self._stats["accepted"] += 1
            self._stats["max_buffered"] = max(self._stats["max_buffered"], len(self._pending))
            self._cv.notify_all()
        return report.run_id

    def flush(self, timeout):
        """Waits until every report sent so far is acknowledged and its callbacks returned. Raises TimeoutError
        with the number still unacknowledged and the last stream error."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while (self._pending or self._callbacks_running) and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            if not self._pending and not self._callbacks_running:
                return
            why = "sender closed" if self._closing else "not acknowledged within %.3g s" % timeout
            if self._stats["last_stream_error"]:
                why += "; last stream error: " + self._stats["last_stream_error"]
            raise TimeoutError("%d report(s) %s" % (len(self._pending), why))

    def close(self):
        """Stops the stream. Unacknowledged reports are dropped: flush() first. Idempotent."""
        with self._cv:
            self._closing = True
            call = self._call
            self._cv.notify_all()
        if call is not None:
            call.cancel()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def stats(self):
        with self._cv:
            s = dict(self._stats)
            s["buffered"] = len(self._pending)
            return s

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the stream ----------------------------------------------------------------------------------------------

    def _requests(self, stream):
        """The current stream's request iterator (gRPC consumes it on its own thread)."""
        while True:
            with self._cv:
                while True:
                    if self._closing or self._broken or self._stream != stream:
                        return
                    while self._unwritten and self._unwritten[0] not in self._pending:
                        self._unwritten.popleft()  # acked on an earlier stream
                    if self._unwritten:
                        break
                    self._cv.wait()
                entry_id = self._unwritten.popleft()
                entry = self._pending[entry_id]
                if entry.ever_written:
                    self._stats["resent"] += 1
                entry.ever_written = True
                self._stats["writes"] += 1
                self._in_flight[self._next_seq] = entry_id
                self._next_seq += 1
                report = entry.report
            yield report

    def _run(self):
        failures_in_a_row = 0  # streams that ended without one ack: drive the backoff
        while True:
            with self._cv:
                while not self._closing and not self._pending:
                    self._cv.wait()
                if self._closing:
                    return
                self._stream += 1
                stream = self._stream
                self._in_flight = {}
                self._next_seq = 0
                self._unwritten = collections.deque(self._pending)  # everything unacknowledged, in send order
                self._broken = False
                self._acked_on_stream = False
                self._stats["streams_opened"] += 1
                call = self._stub.ReportRun(self._requests(stream), metadata=self._metadata)
                self._call = call
            error = None
            try:
                for ack in call:
                    self._take_ack(ack)
            except grpc.RpcError as err:
                error = err
            with self._cv:
                self._broken = True
                self._call = None
                self._cv.notify_all()
                if self._closing:
                    return
                self._stats["stream_failures"] += 1
                if error is None:
                    self._stats["last_stream_error"] = "server closed the stream"
                else:
                    self._stats["last_stream_error"] = "%s: %s" % (error.code().name, error.details())
                failures_in_a_row = 0 if self._acked_on_stream else failures_in_a_row + 1
                wait = _backoff(self._options, failures_in_a_row)
                if error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    hint_ms = _retry_hint_ms(error)
                    if hint_ms > 0:
                        self._stats["retry_hints"] += 1
                        self._stats["last_retry_hint_ms"] = hint_ms
                        wait = max(wait, min(hint_ms / 1000.0, self._max_retry_after_s))
                wake = time.monotonic() + wait
                while not self._closing and time.monotonic() < wake:
                    self._cv.wait(wake - time.monotonic())
                if self._closing:
                    return

    def _match(self, ack, i):
        if i > 0:  # a later report of a range: only the first report's run_id travels, so match by sequence
            return self._in_flight.pop(ack.sequence + i, None)
        entry_id = self._in_flight.get(ack.sequence)
        if entry_id is not None and self._pending[entry_id].report.run_id == ack.run_id:
            return self._in_flight.pop(ack.sequence)
        for seq, entry_id in self._in_flight.items():  # a server that numbers acks differently
            if self._pending[entry_id].report.run_id == ack.run_id:
                return self._in_flight.pop(seq)
        return None

    def _take_ack(self, ack):
        matched = []
        with self._cv:
            self._stats["ack_messages"] += 1
            covered = max(ack.count, 1)
            walk = min(covered, max(len(self._in_flight), 1))  # a huge count cannot hold the lock for long
            self._stats["unmatched_acks"] += covered - walk
            for i in range(walk):
                entry_id = self._match(ack, i)
                if entry_id is None or entry_id not in self._pending:
                    self._stats["unmatched_acks"] += 1
                    continue
                entry = self._pending.pop(entry_id)
                matched.append(pb.RunAck(run_id=entry.report.run_id, result=ack.result, reason=ack.reason,
                                         sequence=ack.sequence + i))
                self._acked_on_stream = True
                if ack.result == pb.RunAck.RESULT_DURABLE:
                    self._stats["durable"] += 1
                elif ack.result == pb.RunAck.RESULT_DUPLICATE:
                    self._stats["duplicate"] += 1
                else:  # REJECTED, or a result this client does not know: not stored, so surface it
                    self._stats["rejected"] += 1
            if not matched:
                return
            self._callbacks_running += 1
            self._cv.notify_all()
        stored = ack.result in (pb.RunAck.RESULT_DURABLE, pb.RunAck.RESULT_DUPLICATE)
        try:
            for one in matched:
                # A failing callback is the caller's bug; it must not stop the stream that carries the other reports.
                try:
                    if self._on_ack:
                        self._on_ack(one)
                    if not stored and self._on_rejected:
                        self._on_rejected(one.run_id, one.reason)
                except Exception:  # pylint: disable=broad-except
                    logging.getLogger("accelsel").exception("telemetry callback failed for run %s", one.run_id)
        finally:
            with self._cv:
                self._callbacks_running -= 1
                self._cv.notify_all()


def _backoff(options, failures):
    """Exponential from initial_backoff_s, capped at max_backoff_s, drawn from [b/2, b] so nodes that lost the
    server together do not return together."""
    b = min(options.initial_backoff_s * (2 ** max(failures - 1, 0)), options.max_backoff_s)
    return random.uniform(b / 2, b)


def _retry_hint_ms(call):
    """The server's wait hint, ms: the first of RETRY_HINT_KEYS that it sent as a number; 0 without one."""
    trailers = dict(call.trailing_metadata() or ())
    for key in RETRY_HINT_KEYS:
        try:
            return max(int(trailers[key]), 0)
        except (KeyError, ValueError):
            continue
    return 0
