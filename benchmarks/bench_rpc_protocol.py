"""Throughput of the RPC protocol core, without sockets: prints one JSON object.

Measures, for a 100 MB value (override with --mb):

- ``codec``: ``codec.encode`` + ``codec.decode`` of a bytes value (the RPyC hop's path);
- ``protocol_bytes`` / ``protocol_ndarray``: a call whose result is that value, through two
  RpcConnection objects wired back to back (encode, cut into 1 MiB chunks, reassemble,
  decode), pulling one frame at a time as a transport would;
- ``small_call_behind_transfer``: how many frames leave before a small call queued behind
  the 100 MB result, and the time to get that call's reply through the pair.

Each figure is the median (and best) of ``--repeat`` runs after one warm-up run; MB/s
counts 10**6 bytes of payload per second. Run: ``python benchmarks/bench_rpc_protocol.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rtcloud.rpc import codec
from rtcloud.rpc.messages import Call, decode_frame
from rtcloud.rpc.protocol import CallResult, IncomingCall, RpcConnection


def _pump(src: RpcConnection, dst: RpcConnection) -> int:
    frames = 0
    while (frame := src.next_frame()) is not None:
        dst.receive_frame(frame)
        frames += 1
    return frames


def _pair() -> tuple[RpcConnection, RpcConnection]:
    caller, callee = RpcConnection("caller"), RpcConnection("callee")
    _pump(caller, callee)
    _pump(callee, caller)
    caller.events_received()
    callee.events_received()
    return caller, callee


def _timed(run: Callable[[], None], repeat: int) -> dict[str, float]:
    run()  # warm-up: the first run pays for fresh memory pages
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "best_s": min(times)}


def _rate(size: int, timing: dict[str, float]) -> dict[str, float]:
    return {
        "median_MB_per_s": round(size / timing["median_s"] / 1e6, 1),
        "best_MB_per_s": round(size / timing["best_s"] / 1e6, 1),
        "median_ms": round(timing["median_s"] * 1e3, 1),
    }


def bench_codec(value: bytes, repeat: int) -> dict[str, float]:
    def run() -> None:
        assert len(codec.decode(codec.encode(value))) == len(value)

    return _rate(len(value), _timed(run, repeat))


def bench_protocol(value: Any, size: int, repeat: int) -> dict[str, float]:
    caller, callee = _pair()

    def run() -> None:
        call_id = caller.call("DataInterface", "getFile", ("/big",))
        _pump(caller, callee)
        (incoming,) = callee.events_received()
        assert isinstance(incoming, IncomingCall)
        callee.send_result(incoming.call_id, value)
        frames = _pump(callee, caller)
        (result,) = caller.events_received()
        assert isinstance(result, CallResult) and result.call_id == call_id and frames > 1

    return _rate(size, _timed(run, repeat))


def bench_small_call_behind_transfer(value: bytes) -> dict[str, float]:
    caller, callee = _pair()
    big = caller.call("DataInterface", "getFile", ("/big",))
    _pump(caller, callee)
    callee.events_received()
    callee.send_result(big, value)
    started = time.perf_counter()
    small = callee.call("SubjectInterface", "setResult", (1, 2, 0.5))
    frames_before = 0
    while True:
        frame = callee.next_frame()
        assert frame is not None
        message = decode_frame(frame)
        caller.receive_frame(frame)
        if isinstance(message, Call) and message.call_id == small:
            break
        frames_before += 1
    (incoming,) = [e for e in caller.events_received() if isinstance(e, IncomingCall)]
    caller.send_result(incoming.call_id, None)
    _pump(caller, callee)
    (reply,) = callee.events_received()
    elapsed = time.perf_counter() - started
    assert isinstance(reply, CallResult)
    return {"frames_sent_before_it": frames_before, "round_trip_us": round(elapsed * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="payload size in MiB (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure")
    args = parser.parse_args(argv)
    size = args.mb * 1024 * 1024
    blob = os.urandom(size)
    array = np.frombuffer(os.urandom(size), dtype=np.float32).reshape(-1, 1024).copy()
    report = {
        "benchmark": "rpc_protocol",
        "payload_bytes": size,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "codec": bench_codec(blob, args.repeat),
        "protocol_bytes": bench_protocol(blob, size, args.repeat),
        "protocol_ndarray": bench_protocol(array, size, args.repeat),
        "small_call_behind_transfer": bench_small_call_behind_transfer(blob),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
