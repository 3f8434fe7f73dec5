"""Remote services: TLS with a pinned fingerprint, the mixed configuration, big transfers."""

from __future__ import annotations

import os
import threading
import time

import pytest
from test_remote import start_service

from helpers import wait_for
from rtcloud.atomic_files import flush_removals
from rtcloud.errors import ValidationError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.interfaces.expose import expose
from rtcloud.tls import ensure_self_signed
from rtcloud.transport.ws_client import ServiceClient


def test_tls_with_a_pinned_fingerprint(server_factory, tmp_path):
    cert, key, fingerprint = ensure_self_signed(tmp_path / "tls")
    server = server_factory(data_remote=True, tls_cert=cert, tls_key=key)
    assert server.url.startswith("https://")
    wrong = "AA:" * 31 + "AA"
    bad = start_service("data-service", server, "--fingerprint", wrong, "-d", str(tmp_path))
    out, _ = bad.communicate(timeout=30)
    assert bad.returncode == 3 and "fingerprint" in out
    good = start_service("data-service", server, "--fingerprint", fingerprint, "-d", str(tmp_path))
    try:
        wait_for(lambda: server.channels["data"].connected, what="TLS data service")
        (tmp_path / "hello.txt").write_text("over TLS")
        client = ClientInterface()
        try:
            assert client.dataInterface.getFile(str(tmp_path / "hello.txt")) == b"over TLS"
        finally:
            client.close()
    finally:
        good.kill()
        good.communicate(timeout=10)


def test_mixed_configuration_remote_and_local_data(server_factory, tmp_path):
    server = server_factory(data_remote=True)
    remote_dir, local_dir = tmp_path / "remote", tmp_path / "local"
    remote_dir.mkdir()
    local_dir.mkdir()
    service = start_service("data-service", server, "-d", str(remote_dir), "-f", ".txt")
    try:
        wait_for(lambda: server.channels["data"].connected, what="data service")
        client = ClientInterface()
        try:
            local = DataInterface(dataRemote=False, allowedDirs=["*"], allowedFileTypes=["*"])
            (local_dir / "local.bin").write_bytes(b"\x01\x02")
            assert local.getFile(str(local_dir / "local.bin")) == b"\x01\x02"
            client.dataInterface.putFile(str(remote_dir / "for-matlab.txt"), "0.5")
            assert (remote_dir / "for-matlab.txt").read_text() == "0.5"
            local.close()
        finally:
            client.close()
    finally:
        service.kill()
        service.communicate(timeout=10)


def test_small_calls_answer_during_a_100_mb_get_file(server_factory, tmp_path):
    server = server_factory(data_remote=True, subject_remote=True)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(100_000_000))
    data_service = start_service("data-service", server, "-d", str(tmp_path), "-f", ".bin")
    subject_service = start_service("subject-service", server, "-o", str(tmp_path / "out"))
    try:
        wait_for(lambda: server.all_services_connected(), what="services")
        client = ClientInterface()
        try:
            done = {}

            def fetch():
                start = time.monotonic()
                done["size"] = len(client.dataInterface.getFile(str(big)))
                done["seconds"] = time.monotonic() - start

            thread = threading.Thread(target=fetch)
            thread.start()
            time.sleep(0.05)
            durations = []
            while thread.is_alive() and len(durations) < 200:
                start = time.monotonic()
                client.subjInterface.setResult(1, len(durations), 0.5, 0)
                durations.append(time.monotonic() - start)
            thread.join(60)
            assert done["size"] == 100_000_000
            durations.sort()
            median = durations[len(durations) // 2] if durations else 0
            print(
                f"100 MB getFile {done['seconds']:.2f} s; {len(durations)} setResult during it, "
                f"median {median * 1000:.1f} ms, max {durations[-1] * 1000:.1f} ms"
            )
            assert len(durations) >= 3
            assert median < 0.05  # milliseconds, not seconds behind the transfer
        finally:
            client.close()
    finally:
        for proc in (data_service, subject_service):
            proc.kill()
            proc.communicate(timeout=10)


class _SpoolRecorder(DataInterface):
    """The real DataInterface, noting which putFile data arrived already on disk."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.kinds = []

    @expose
    def putFile(self, filename, data, compress=False):
        self.kinds.append(type(data).__name__)
        return super().putFile(filename, data, compress)


def test_a_large_put_file_is_written_to_disk_as_it_arrives(server_factory, tmp_path):
    server = server_factory(data_remote=True)
    folder = tmp_path / "remote"
    folder.mkdir()
    data = _SpoolRecorder(allowedDirs=[str(folder)], allowedFileTypes=[".bin"])
    host = server.url.split("//")[1].rstrip("/")
    service = ServiceClient(
        host, "data", {"DataInterface": data}, username="test", password="test"
    )
    thread = threading.Thread(target=service.run_forever, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.channels["data"].connected, what="data service")
        client = ClientInterface()
        try:
            remote = client.dataInterface
            first, second = os.urandom(12 << 20), os.urandom(9 << 20)
            remote.putFile(str(folder / "big.bin"), first)
            assert (folder / "big.bin").read_bytes() == first
            remote.putFile(str(folder / "big.bin"), second)  # replaces a large file
            assert (folder / "big.bin").read_bytes() == second
            remote.putFile(str(folder / "small.bin"), b"tiny")
            assert data.kinds == ["SpooledFile", "SpooledFile", "bytes"]
            with pytest.raises(ValidationError, match="not allowed|file type"):
                remote.putFile(str(folder / "big.exe"), first)
            with pytest.raises(ValidationError):
                remote.putFile(str(tmp_path / "outside" / "big.bin"), first)
            assert remote.getFile(str(folder / "big.bin")) == second
        finally:
            client.close()
        flush_removals()  # the old copy of the replaced file is deleted in the background
        assert sorted(p.name for p in folder.iterdir()) == ["big.bin", "small.bin"]
        assert not (tmp_path / "outside").exists()
    finally:
        service.stop()
        thread.join(timeout=10)
