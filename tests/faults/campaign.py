"""The fault campaign: a scan through remote services while services and links fail.

A :class:`Rig` is a whole remote set-up in real processes: ``rtcloud serve --remote`` and the
data and subject services, each service reaching the server through its own
:class:`~rtcloud.simulate.network.NetworkProxy` (its network path). A :class:`Scan` replays
volumes into the scanner folder at TR pace while the experiment script (a real
``ClientInterface`` in a thread of the test) reads every volume and sends a result for it,
retrying what a service's absence makes fail, as a robust script would. A :class:`Faults`
thread kills (SIGKILL, then a restart), stops (SIGSTOP, then SIGCONT) and cuts, stalls or
takes down the paths at random points (seeded).

The :class:`Tally` counts what must stay 0 (volumes lost, results lost, calls that overran
their deadline, feedback calls that raised or held the script) and the recovery times: from
the end of a fault to the next volume the script received (data faults) or the next result
the subject service wrote (subject faults).
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultlib import Proc, ServerProcess, rtcloud_env

from rtcloud.errors import ServiceUnavailableError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.server.hub import DEADLINE_MARGIN
from rtcloud.simulate.network import NetworkProxy
from rtcloud.simulate.replay import replay_series
from rtcloud.simulate.synthetic import generate_series
from rtcloud.transport.rpyc_client import HOP1_GRACE

PATTERN = "001_000013_{TR:06d}.dcm"
#: Seconds a call may run past its deadline before it counts as an overrun (scheduling).
SLACK = 0.75
#: A feedback call that holds the script longer than this counts as held.
HELD = 1.0
#: Seconds the script keeps trying to get one volume before it counts as lost.
GIVE_UP = 45.0
ROLES = ("data", "subject")


class Rig:
    """Server, data service and subject service as processes; each service behind a proxy."""

    def __init__(
        self,
        folder: Path,
        project_dir: Path,
        *,
        delay: float = 0.0,
        rate: float | None = None,
    ) -> None:
        self.folder = folder
        self.scanner = folder / "scanner"
        self.scanner.mkdir(parents=True, exist_ok=True)
        self.out = folder / "feedback"
        self.server = ServerProcess(project_dir, folder, "--remote")
        self.proxies = {
            role: NetworkProxy(("127.0.0.1", self.server.port), delay=delay, rate=rate).start()
            for role in ROLES
        }
        env = rtcloud_env(folder)
        self.services = {
            "data": Proc(
                ["data-service", "-s", self.proxies["data"].address, "--test"]
                + ["-d", str(folder), "-f", ".dcm"],
                env,
                "data service",
            ),
            "subject": Proc(
                ["subject-service", "-s", self.proxies["subject"].address, "--test"]
                + ["-o", str(self.out)],
                env,
                "subject service",
            ),
        }
        for role in ROLES:
            self.server.wait_for_line(f"{role} service connected", timeout=60)

    def result_file(self, tr: int) -> Path:
        return self.out / "run1" / "results" / f"vol-1-{tr}.json"

    def close(self) -> None:
        for service in self.services.values():
            service.kill()
        for proxy in self.proxies.values():
            proxy.stop()
        self.server.kill()


@dataclass
class Tally:
    """What a scan counted; see the module docstring."""

    volumes: int = 0
    volumes_lost: list[int] = field(default_factory=list)
    results_lost: list[int] = field(default_factory=list)
    overruns: list[str] = field(default_factory=list)
    feedback_errors: list[str] = field(default_factory=list)
    feedback_held: list[float] = field(default_factory=list)
    retries: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)
    received: dict[int, float] = field(default_factory=dict)  # volume -> time.time()
    written: dict[int, float] = field(default_factory=dict)  # volume -> file complete
    set_result_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def latencies_ms(self) -> list[float]:
        return [
            1000 * (self.received[i] - self.written[i])
            for i in sorted(self.received)
            if i in self.written
        ]

    def recoveries(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for fault in self.faults:
            if fault.get("recovery_s") is not None:
                out.setdefault(fault["kind"], []).append(fault["recovery_s"])
        return out

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms())
        sr = sorted(1000 * s for s in self.set_result_s)

        def pct(values: list[float], q: float) -> float | None:
            return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else None

        return {
            "volumes": self.volumes,
            "volumes_lost": len(self.volumes_lost),
            "results_lost": len(self.results_lost),
            "overruns": len(self.overruns),
            "feedback_errors": len(self.feedback_errors),
            "feedback_held": len(self.feedback_held),
            "retries": self.retries,
            "faults": len(self.faults),
            "latency_ms": {"median": pct(lat, 0.5), "p90": pct(lat, 0.9), "max": pct(lat, 1.0)},
            "setResult_ms": {"median": pct(sr, 0.5), "p99": pct(sr, 0.99), "max": pct(sr, 1.0)},
            "recovery_s": {
                kind: {
                    "n": len(values),
                    "median": round(statistics.median(values), 2),
                    "max": round(max(values), 2),
                }
                for kind, values in sorted(self.recoveries().items())
            },
            "elapsed_s": round(self.elapsed_s, 1),
        }

    def report(self) -> str:
        return json.dumps(
            {
                **self.summary(),
                "details": {
                    "volumes_lost": self.volumes_lost[:20],
                    "results_lost": self.results_lost[:20],
                    "overruns": self.overruns[:20],
                    "feedback_errors": self.feedback_errors[:20],
                    "faults": self.faults,
                },
            },
            indent=1,
        )


class Faults:
    """Random faults of the services and their paths, in a thread, until stopped.

    ``kinds`` name ``role:what`` with what one of kill, stop, longstop (past the keepalive),
    cut, down (cut, and new connections refused a while), stall, midcut.
    """

    KINDS = (
        "data:kill",
        "data:stop",
        "data:cut",
        "data:stall",
        "subject:kill",
        "subject:stop",
        "subject:cut",
        "subject:stall",
        "data:midcut",
        "subject:down",
        "data:down",
        "subject:midcut",
        "data:longstop",
        "subject:longstop",
    )

    def __init__(self, rig: Rig, tally: Tally, seed: int, gap: tuple[float, float]) -> None:
        self.rig = rig
        self.tally = tally
        self.random = random.Random(seed)
        self.gap = gap
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)

    def _run(self) -> None:
        order: list[str] = []
        while not self.stop_event.wait(self.random.uniform(*self.gap)):
            if not order:  # every kind once per round, in a random order
                order = list(self.KINDS)
                self.random.shuffle(order)
            kind = order.pop()
            fault = {"kind": kind, "start": time.time()}
            try:
                self._inject(kind, fault)
            except Exception as exc:  # noqa: BLE001 - the campaign reports it, and fails
                fault["error"] = repr(exc)
            fault["end"] = time.time()
            self.tally.faults.append(fault)

    def _inject(self, kind: str, fault: dict[str, Any]) -> None:
        role, what = kind.split(":")
        service, proxy = self.rig.services[role], self.rig.proxies[role]
        pause = self.random.uniform(0.5, 6.0)
        if what == "kill":
            service.signal(signal.SIGKILL)
            self.stop_event.wait(self.random.uniform(0.2, 2.0))
            service.restart()
        elif what in ("stop", "longstop"):
            if what == "longstop":
                pause = self.random.uniform(16.0, 20.0)  # past the 15 s keepalive
            service.signal(signal.SIGSTOP)
            self.stop_event.wait(pause)
            service.signal(signal.SIGCONT)
        elif what == "cut":
            proxy.cut()
        elif what == "down":
            proxy.refuse(True)
            proxy.cut()
            self.stop_event.wait(pause)
            proxy.refuse(False)
        elif what == "stall":
            proxy.stall()
            self.stop_event.wait(pause)
            proxy.resume()
        elif what == "midcut":
            proxy.cut_mid_message()
        fault["duration_s"] = round(time.time() - fault["start"], 2)


class Scan:
    """Volumes replayed at TR pace; the script reads each and sends a result for it."""

    def __init__(self, rig: Rig, volumes: int, tr: float, *, shape=(32, 32, 8)) -> None:
        self.rig = rig
        self.volumes = volumes
        self.tr = tr
        self.wait = max(2.0, 4 * tr)  # getImageData's own timeout
        source = rig.folder / "source"
        generate_series(source, num_volumes=min(volumes, 50), shape=shape, scan=13)
        self.files = sorted(source.glob("*.dcm"))
        self.tally = Tally(volumes=volumes)
        self._stop = threading.Event()

    def _replay(self) -> None:
        files = [self.files[i % len(self.files)] for i in range(self.volumes)]
        replay_series(
            files,
            self.rig.scanner,
            tr=self.tr,
            mode="pieces",
            chunk_size=8192,
            start_delay=1.0,
            rename=lambda i, _p: PATTERN.format(TR=i),
            stop_event=self._stop,
            on_volume=lambda i, _p, t: self.tally.written.__setitem__(i, t),
        )

    def run(self, faults: Faults | None = None, midway: Any = None) -> Tally:
        """Run the scan (``midway(i)`` is called before volume i is asked for)."""
        tally = self.tally
        begin = time.monotonic()
        client = ClientInterface()
        replay = threading.Thread(target=self._replay, name="replay", daemon=True)
        try:
            data, subj = client.dataInterface, client.subjInterface
            stream = self._retry(
                lambda: data.initScannerStream(str(self.rig.scanner), PATTERN, 0),
                "initScannerStream",
            )
            replay.start()
            if faults is not None:
                faults.start()
            for i in range(self.volumes):
                if midway is not None:
                    midway(i)
                if self._volume(data, stream, i):
                    self._feedback(subj, i)
        finally:
            if faults is not None:
                faults.stop()
            self._stop.set()
            replay.join(30)
            client.close()
        self._count_results()
        self._recovery_times()
        tally.elapsed_s = time.monotonic() - begin
        return tally

    def _retry(self, call: Any, what: str) -> Any:
        deadline = time.monotonic() + GIVE_UP
        while True:
            try:
                return call()
            except (ServiceUnavailableError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                self.tally.retries += 1
                time.sleep(0.1)  # a retry's pause, not a synchronisation

    def _volume(self, data: Any, stream: int, i: int) -> bool:
        tally = self.tally
        limit = self.wait + DEADLINE_MARGIN + HOP1_GRACE + SLACK
        give_up = time.monotonic() + GIVE_UP
        while True:
            started = time.monotonic()
            try:
                dataset = data.getImageData(stream, i, timeout=self.wait)
            except (ServiceUnavailableError, TimeoutError) as exc:
                took = time.monotonic() - started
                if took > limit:
                    tally.overruns.append(f"getImageData({i}) {took:.2f} s > {limit:.2f}: {exc}")
                if time.monotonic() > give_up:
                    tally.volumes_lost.append(i)
                    return False
                tally.retries += 1
                if isinstance(exc, ServiceUnavailableError):
                    time.sleep(0.1)  # a retry's pause, not a synchronisation
                continue
            took = time.monotonic() - started
            if took > limit:
                tally.overruns.append(f"getImageData({i}) returned after {took:.2f} s")
            if int(dataset.InstanceNumber) != i % len(self.files) + 1:
                tally.volumes_lost.append(i)  # the wrong volume counts as lost
                return False
            tally.received[i] = time.time()
            return True

    def _feedback(self, subj: Any, i: int) -> None:
        started = time.monotonic()
        try:
            subj.setResult(1, i, i / 1000, 0)
        except Exception as exc:  # noqa: BLE001 - counted: a feedback call must not raise
            self.tally.feedback_errors.append(f"setResult({i}): {type(exc).__name__}: {exc}")
        took = time.monotonic() - started
        self.tally.set_result_s.append(took)
        if took > HELD:
            self.tally.feedback_held.append(took)

    def _count_results(self) -> None:
        """Every result must reach the subject service's folder (late ones included)."""
        expected = [i for i in range(self.volumes) if i in self.tally.received]
        deadline = time.monotonic() + 60
        missing = expected
        while time.monotonic() < deadline:
            missing = [i for i in missing if not self.rig.result_file(i).exists()]
            if not missing:
                break
            time.sleep(0.2)  # polling a folder another process writes
        self.tally.results_lost = missing

    def _recovery_times(self) -> None:
        written: list[float] = []
        for i in range(self.volumes):
            path = self.rig.result_file(i)
            try:
                written.append(float(json.loads(path.read_text())["writtenAt"]))
            except (OSError, ValueError, KeyError):
                continue
        written.sort()
        received = sorted(self.tally.received.values())
        for fault in self.tally.faults:
            times = received if fault["kind"].startswith("data") else written
            after = [t for t in times if t >= fault["end"]]
            fault["recovery_s"] = round(after[0] - fault["end"], 3) if after else None
