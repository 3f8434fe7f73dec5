"""Shared fixtures: a throw-away project, and a real project server on 127.0.0.1 port 0."""

from __future__ import annotations

import ipaddress
import socket
import textwrap
from pathlib import Path

import pytest

from helpers import REPO

SAMPLE_DICOMS = REPO.parent / "shared" / "data" / "sample-dicoms"


def _loopback(host: object) -> bool:
    if host in ("localhost", b"localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name: it would be looked up and reached over the network


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """No test reaches beyond this machine: a connection anywhere but loopback fails.

    What tests need from the network (jsPsych for the browser tests) is installed by the
    README's test command beforehand; a test that tries to fetch gets this error.
    """
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise PermissionError(
                f"tests must not use the network: connection to {address!r} refused "
                "(tests/conftest.py no_network)"
            )

    def guarded_connect(sock, address):
        check(sock, address)
        return connect(sock, address)

    def guarded_connect_ex(sock, address):
        check(sock, address)
        return connect_ex(sock, address)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory, monkeypatch):
    """Each test gets its own home folder: no test reads or writes the real ~/.rtcloud."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.delenv("RTCLOUD_SERVER_INFO", raising=False)
    monkeypatch.delenv("RTCLOUD_SERVER", raising=False)
    monkeypatch.delenv("RTCLOUD_PASSWORD_FILE", raising=False)
    return home


PROJECT_SCRIPT = """
import argparse, sys, time
from rtCommon.clientInterface import ClientInterface
from rtCommon.utils import loadConfigFile

p = argparse.ArgumentParser()
p.add_argument("--config", "-c")
p.add_argument("--runs", "-r", default="")
p.add_argument("--scans", "-s", default="")
args = p.parse_args()
cfg = loadConfigFile(args.config)
runs = [int(r) for r in args.runs.split(",")] if args.runs else cfg.runNum
ci = ClientInterface()
print(f"connected to server: {ci.isUsingProjectServer()}", flush=True)
for run in runs:
    ci.webInterface.clearRunPlot(run)
    for tr in range(cfg.numVolumes):
        ci.webInterface.plotDataPoint(run, tr, float(tr * run))
        ci.subjInterface.setResult(run, tr, float(tr), 0)
        print(f"run {run} tr {tr} value {float(tr * run)}", flush=True)
        time.sleep(cfg.pause)
print("done", flush=True)
"""

PROJECT_CONFIG = """# Test project
title = "Test study"
subjectName = "sub01"
# runs to process
runNum = [1]
scanNum = [5]
numVolumes = 3 # volumes per run
pause = 0.01
"""


@pytest.fixture
def project_dir(tmp_path):
    """A small project: proj.py plots and sends a value per volume; init/finalize print."""
    folder = tmp_path / "projects" / "proj"
    (folder / "conf").mkdir(parents=True)
    (folder / "proj.py").write_text(textwrap.dedent(PROJECT_SCRIPT))
    (folder / "conf" / "proj.toml").write_text(PROJECT_CONFIG)
    (folder / "initialize.py").write_text("print('initialized')\n")
    (folder / "finalize.py").write_text("print('finalized')\n")
    return folder


@pytest.fixture
def server_factory(tmp_path, project_dir):
    """Start real project servers (in threads) and stop them after the test."""
    from rtcloud.server.config import ServerConfig
    from rtcloud.server.server import ProjectServer

    started = []

    def start(clock=None, **options):
        options.setdefault("port", 0)
        options.setdefault("test", True)
        options.setdefault("password_file", tmp_path / "users.json")
        options.setdefault("grace_period", 2.0)
        config = ServerConfig.for_project("proj", project_dir=project_dir, **options)
        extra = {} if clock is None else {"clock": clock}
        server = ProjectServer(config, **extra).start_in_thread()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.fixture
def sample_dicom_dir() -> Path:
    """The real Siemens series in ../shared/data/sample-dicoms (skips when absent)."""
    if not SAMPLE_DICOMS.is_dir():
        pytest.skip(f"real scanner data not found at {SAMPLE_DICOMS}")
    return SAMPLE_DICOMS
