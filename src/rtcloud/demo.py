"""The end-to-end demo: a synthetic scan replayed through the sample project.

It generates a Siemens-style mosaic series, starts the project server for the sample
project (unless ``local``) with the data service and the subject service as separate
processes connected over loopback (unless ``services`` is False), replays the series into
a "scanner" folder at TR pace, writing each file in pieces as a scanner does, runs the
sample script through the server exactly as the Run button does, and prints the script's
line for every volume. Everything lives in a
temporary folder that is removed at the end (unless ``workdir`` is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import tomlkit

from rtcloud.errors import InvocationError, StateError
from rtcloud.server.config import ServerConfig, find_project_dir

__all__ = ["prepare_demo", "run_demo"]

#: Loggers that report a service going away: quiet while the demo stops its services.
QUIET_AT_END = ("rtcloud.transport.ws_server", "rtcloud.server.subject_relay")


def prepare_demo(
    workdir: Path, volumes: int, tr: float, layout: str = "mosaic"
) -> tuple[Path, Path, Path]:
    """Generate the series and the demo's config; return (source, scanner dir, config)."""
    from rtcloud.simulate.synthetic import generate_series

    source = workdir / "source"
    scanner = workdir / "scanner"
    scanner.mkdir(parents=True, exist_ok=True)
    project = find_project_dir("sample")
    doc = tomlkit.parse((project / "conf" / "sample.toml").read_text(encoding="utf-8"))
    paths = generate_series(
        source,
        num_volumes=volumes,
        tr_ms=int(round(tr * 1000)),
        scan=int(doc["scanNum"][0]),
        pattern=str(doc["dicomNamePattern"]),
        layout=layout,
        motion=1.0,  # a moving head, for the Quality tab
    )
    # a file per slice is small: the size floor must let it through
    smallest = min(path.stat().st_size for path in paths)
    doc["minExpectedDicomSize"] = min(int(doc["minExpectedDicomSize"]), smallest)
    doc["imgDir"] = str(scanner)
    doc["numVolumes"] = volumes
    doc["trInterval"] = float(tr)
    doc["resultsDir"] = str(workdir / "results")
    config = workdir / "sample.toml"
    config.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return source, scanner, config


def _start_replay(
    source: Path, scanner: Path, tr: float, stop: threading.Event
) -> threading.Thread:
    from rtcloud.simulate.replay import files_per_volume, replay_series, series_files

    files = series_files(source)
    per = files_per_volume(files[0], files)
    thread = threading.Thread(
        target=replay_series,
        args=(source, scanner),
        kwargs={
            "tr": tr,
            "mode": "pieces",
            "start_delay": 1.0,
            "stop_event": stop,
            "files_per_volume": per,
        },
        name="rtcloud-demo-replay",
        daemon=True,
    )
    thread.start()
    return thread


def run_demo(
    *,
    volumes: int = 20,
    tr: float = 1.0,
    port: int = 8888,
    local: bool = False,
    keep_open: bool = False,
    workdir: Path | None = None,
    services: bool = False,
    layout: str = "mosaic",
) -> int:
    """Run the demo; return the sample script's exit status.

    ``layout`` is how the simulated scanner writes its files: ``mosaic``, ``enhanced`` or
    ``slices`` (see :mod:`rtcloud.simulate.synthetic`).

    With ``services`` the data and subject services run as separate processes that connect
    to the server over loopback WebSockets, as on three computers.
    """
    if volumes < 1 or tr <= 0:
        raise InvocationError("the demo needs --volumes >= 1 and --tr > 0")
    own_dir = workdir is None
    base = Path(tempfile.mkdtemp(prefix="rtcloud-demo-")) if own_dir else Path(workdir)  # type: ignore[arg-type]
    base.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    try:
        print(
            f"demo: generating {volumes} synthetic volumes (TR {tr:g} s, {layout} layout) "
            f"in {base}",
            flush=True,
        )
        source, scanner, config = prepare_demo(base, volumes, tr, layout)
        if local:
            return _run_local(source, scanner, config, tr, stop)
        return _run_with_server(source, scanner, config, tr, port, keep_open, stop, services, base)
    finally:
        stop.set()
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)


def _run_local(source: Path, scanner: Path, config: Path, tr: float, stop: threading.Event) -> int:
    project = find_project_dir("sample")
    print("demo: no server (local mode): the script reads the scanner folder itself", flush=True)
    replay = _start_replay(source, scanner, tr, stop)
    code = subprocess.call(
        [sys.executable, "-u", str(project / "sample.py"), "-y", "--config", str(config)]
    )
    stop.set()
    replay.join(timeout=5)
    print(f"demo: finished (exit status {code})", flush=True)
    return code


def _start_services(server_address: str, base: Path) -> list[subprocess.Popen[bytes]]:
    """The data and subject services as separate processes (logging in as the test user)."""
    common = ["-s", server_address, "--test"]
    commands = [
        ["data-service", *common, "-d", str(base), "-f", ".dcm,.txt"],
        ["subject-service", *common, "-o", str(base / "feedback")],
    ]
    return [
        subprocess.Popen([sys.executable, "-m", "rtcloud", "-q", *cmd], stdout=subprocess.DEVNULL)
        for cmd in commands
    ]


def _run_with_server(
    source: Path,
    scanner: Path,
    config: Path,
    tr: float,
    port: int,
    keep_open: bool,
    stop: threading.Event,
    services: bool = False,
    base: Path | None = None,
) -> int:
    from rtcloud.server.server import ProjectServer

    state = Path(tempfile.mkdtemp(prefix="rtcloud-demo-state-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        server_config = ServerConfig.for_project(
            "sample",
            config=config,
            port=port,
            state_dir=state,
            data_remote=services,
            subject_remote=services,
            test=services,
        )
        try:
            server = ProjectServer(server_config)
        except InvocationError:
            server_config.port = 0  # 8888 is taken: any free port will do for a demo
            server = ProjectServer(server_config)
        server.line_hooks.append(lambda script, stream, line: print(f"  {line}", flush=True))
        server.start_in_thread()
        try:
            print(f"demo: server running; watch it live at {server.login_url}", flush=True)
            print(
                f"demo: the participant's feedback page is {server.url}feedback (same login)",
                flush=True,
            )
            if services:
                assert base is not None
                procs = _start_services(f"127.0.0.1:{server.port}", base)
                deadline = time.monotonic() + 30
                while not server.all_services_connected():
                    if time.monotonic() > deadline:
                        raise StateError("the demo's data and subject services did not connect")
                    time.sleep(0.05)
                print(
                    "demo: data service and subject service connected (separate processes); "
                    f"feedback files in {base / 'feedback'}",
                    flush=True,
                )
            replay = _start_replay(source, scanner, tr, stop)
            loop = server.loop
            asyncio.run_coroutine_threadsafe(server.run_script("mainScript"), loop).result(30)
            status = asyncio.run_coroutine_threadsafe(server.runner.wait(), loop).result()
            replay.join(timeout=5)
            print(f"demo: run {status.state} ({status.message})", flush=True)
            if keep_open:
                print(
                    f"demo: server still running at {server.url} - press Ctrl-C to end", flush=True
                )
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            if status.exit_code is None:
                raise StateError(f"the sample script did not finish: {status.message}")
            return status.exit_code
        finally:
            quiet = [logging.getLogger(name) for name in QUIET_AT_END] if procs else []
            levels = [logger.level for logger in quiet]
            for logger in quiet:  # the services' goodbyes are expected now
                logger.setLevel(logging.ERROR)
            try:
                for proc in procs:
                    proc.terminate()
                    proc.wait(10)
                server.stop()
            finally:
                for logger, level in zip(quiet, levels, strict=True):
                    logger.setLevel(level)
    finally:
        shutil.rmtree(state, ignore_errors=True)
