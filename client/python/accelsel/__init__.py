"""accelsel: ask which acceleration strategy to run for a task, and stream what happened.

    import accelsel
    client = accelsel.Client()                      # $ACCELSEL_SERVER, else 127.0.0.1:50051; $ACCELSEL_TOKEN
    choice = client.select(model="meta-llama/Meta-Llama-3-8B", accelerator="Nvidia A100 GPU",
                           prompt_tokens=1024, output_tokens=128, batch=16, explore=True)
    with accelsel.TelemetrySender(client) as sender:
        sender.send(...)                             # RunReport: proto, dict or keyword fields
        sender.flush(30)
"""
from accelsel.client import (AccelselError, Client, FALLBACK_CODES, Options, Selection, channel_target, make_channel,
                             task_context)
from accelsel.telemetry import QueueFull, SenderClosed, TelemetrySender, run_report
from accelsel.v1 import accelsel_pb2 as pb

try:
    from importlib.metadata import version as _version
    __version__ = _version("accelsel")
except Exception:  # pylint: disable=broad-except  (running from a source tree, not installed)
    __version__ = "0.0.0"

__all__ = ["AccelselError", "Client", "FALLBACK_CODES", "Options", "QueueFull", "Selection", "SenderClosed",
           "TelemetrySender", "channel_target", "make_channel", "pb", "run_report", "task_context", "__version__"]
