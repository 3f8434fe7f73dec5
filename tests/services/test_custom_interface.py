"""A lab's own interface class (``--interface MODULE:CLASS``): served by a remote data service
process or by the project server, with the same exposure rules as the built-in interfaces
and nothing pickled."""

from __future__ import annotations

import os
import textwrap

import pytest

from helpers import start_service, wait_for
from rtcloud.errors import InvocationError, SerializationError, ValidationError
from rtcloud.interfaces.client import ClientInterface
from rtcloud.interfaces.custom import load_interface_class

TRACKER = '''
import os
from rtcloud.interfaces.expose import Interface, expose


class Tracker(Interface):
    """An eye tracker on the stimulus computer (a lab's own service class)."""

    def __init__(self):
        self.samples = []

    @expose
    def gaze(self, trial: int, timeout: float = 1.0) -> dict:
        """The gaze position during a trial."""
        self.samples.append(trial)
        return {"trial": trial, "x": 0.25, "y": -0.5, "count": len(self.samples)}

    @expose(quick=True)
    def where(self) -> int:
        return os.getpid()

    @expose
    def unsendable(self):
        return object()

    def recalibrate(self):
        """Not exposed: never callable from another process."""
        self.samples.clear()
'''


@pytest.fixture
def tracker_spec(tmp_path):
    path = tmp_path / "lab" / "tracker.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(TRACKER))
    return f"{path}:Tracker"


def check_rules(client, name="Tracker"):
    tracker = client.interface(name)
    assert tracker.gaze(3) == {"trial": 3, "x": 0.25, "y": -0.5, "count": 1}
    assert tracker.gaze(trial=4)["count"] == 2
    assert not hasattr(tracker, "recalibrate") and not hasattr(tracker, "samples")
    with pytest.raises(ValidationError, match="cannot be called remotely"):
        client.rpcConn.call(name, "recalibrate", (), {})
    with pytest.raises(ValidationError, match="cannot be called remotely"):
        client.rpcConn.call(name, "__init__", (), {})
    with pytest.raises(SerializationError, match="cannot be sent"):
        tracker.unsendable()
    return tracker


def test_a_lab_interface_in_a_remote_data_service(server_factory, tracker_spec, tmp_path):
    server = server_factory(data_remote=True, interfaces=(tracker_spec,))
    service = start_service(
        "data-service", server, "-d", str(tmp_path), "--interface", tracker_spec
    )
    try:
        wait_for(lambda: server.channels["data"].connected, what="data service")
        client = ClientInterface()
        try:
            tracker = check_rules(client)
            assert tracker.isRunningRemote()
            assert tracker.where() == service.pid  # it runs in the service's process
        finally:
            client.close()
    finally:
        service.kill()
        service.communicate(timeout=10)


def test_a_lab_interface_in_the_server(server_factory, tracker_spec):
    server_factory(interfaces=(tracker_spec,))
    client = ClientInterface()
    try:
        tracker = check_rules(client)
        assert tracker.where() == os.getpid()  # the server runs in this test's process
    finally:
        client.close()


def test_without_a_server_the_lab_makes_its_object(tracker_spec):
    client = ClientInterface(yesToPrompts=True)
    with pytest.raises(Exception, match="create it in this script"):
        client.interface("Tracker")
    client.close()


def test_bad_interface_specs_say_what_to_fix(tmp_path):
    with pytest.raises(InvocationError, match="MODULE:CLASS"):
        load_interface_class("no-colon")
    with pytest.raises(InvocationError, match="cannot import"):
        load_interface_class("no_such_module_xyz:Thing")
    with pytest.raises(InvocationError, match="has no class"):
        load_interface_class("os:NoSuchClass")
    with pytest.raises(InvocationError, match="no method marked @expose"):
        load_interface_class("collections:OrderedDict")
