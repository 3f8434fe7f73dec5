"""rtcloud.rpc.dispatch: only allow-listed methods run; outcomes become Result or Error."""

from __future__ import annotations

import pytest

from rtcloud.errors import ValidationError
from rtcloud.interfaces.expose import expose
from rtcloud.rpc.dispatch import Dispatcher, exposed_names
from rtcloud.rpc.messages import Error, Result
from rtcloud.rpc.protocol import CallFailed, CallResult, IncomingCall, RpcConnection


class Service:
    limit = 3

    def __init__(self):
        self.calls = []

    @expose
    def getFile(self, name, *, compress=False):
        self.calls.append((name, compress))
        if name == "/missing":
            raise FileNotFoundError(2, "No such file or directory", name)
        return b"data:" + name.encode()

    @expose
    def _hidden(self):  # marked, but private names are never callable
        return "secret"

    def helper(self):
        return "not exposed"

    @staticmethod
    @expose
    def version():
        return "1.0"


def call(method, *args, interface="DataInterface", **kwargs):
    return IncomingCall(1, interface, method, args, kwargs, None)


@pytest.fixture
def dispatcher():
    d = Dispatcher()
    d.register("DataInterface", Service())
    return d


def test_exposed_methods_are_found_by_their_mark():
    assert exposed_names(Service) == {"getFile", "version"}
    assert exposed_names(Service()) == {"getFile", "version"}


def test_dispatch_runs_exposed_methods(dispatcher):
    assert dispatcher.dispatch(call("getFile", "/a", compress=True)) == b"data:/a"
    assert dispatcher.dispatch(call("version")) == "1.0"
    assert dispatcher.interfaces == {"DataInterface": frozenset({"getFile", "version"})}


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("helper", "cannot be called remotely"),
        ("_hidden", "cannot be called remotely"),
        ("__init__", "cannot be called remotely"),
        ("__class__", "cannot be called remotely"),
        ("limit", "cannot be called remotely"),
        ("nothing", "cannot be called remotely"),
        ("", "cannot be called remotely"),
    ],
)
def test_anything_not_allowed_is_refused(dispatcher, method, message):
    with pytest.raises(ValidationError, match=message):
        dispatcher.dispatch(call(method))


def test_unknown_interface_is_refused(dispatcher):
    with pytest.raises(ValidationError, match="unknown interface 'Nope'.*DataInterface"):
        dispatcher.dispatch(call("getFile", interface="Nope"))


def test_explicit_allow_list():
    d = Dispatcher()
    service = Service()
    d.register("Svc", service, methods={"helper"})
    assert d.dispatch(call("helper", interface="Svc")) == "not exposed"
    with pytest.raises(ValidationError):
        d.dispatch(call("getFile", "/a", interface="Svc"))
    for bad in ({"_hidden"}, {"__class__"}, {"limit"}, {"missing"}):
        with pytest.raises(ValueError, match="cannot be exposed|is not a method"):
            d.register("Svc2", service, methods=bad)
    with pytest.raises(ValueError, match="public name"):
        d.register("_private", service)
    d.unregister("Svc")
    with pytest.raises(ValidationError, match="unknown interface"):
        d.dispatch(call("helper", interface="Svc"))


def test_method_exceptions_propagate_from_dispatch_and_become_errors_in_invoke(dispatcher):
    with pytest.raises(FileNotFoundError):
        dispatcher.dispatch(call("getFile", "/missing"))
    outcome = dispatcher.invoke(call("getFile", "/missing"))
    assert isinstance(outcome, Error) and outcome.type_name == "FileNotFoundError"
    assert "getFile" in outcome.traceback
    assert dispatcher.invoke(call("getFile", "/b")) == Result(1, b"data:/b")
    refused = dispatcher.invoke(call("helper"))
    assert isinstance(refused, Error) and refused.type_name == "ValidationError"


def test_wrong_arguments_come_back_as_type_error(dispatcher):
    outcome = dispatcher.invoke(call("getFile", "/a", "extra", "args"))
    assert isinstance(outcome, Error) and outcome.type_name == "TypeError"


def test_dispatcher_serves_calls_through_a_connection():
    dispatcher = Dispatcher()
    service_obj = Service()
    dispatcher.register("DataInterface", service_obj)
    server, service = RpcConnection("server"), RpcConnection("service")
    ok = server.call("DataInterface", "getFile", ("/x",), {"compress": True})
    missing = server.call("DataInterface", "getFile", ("/missing",))
    sneaky = server.call("DataInterface", "__init__")
    for frame in server.frames_to_send():
        service.receive_frame(frame)
    for event in service.events_received():
        if isinstance(event, IncomingCall):
            assert service.reply(dispatcher.invoke(event))
    for frame in service.frames_to_send():
        server.receive_frame(frame)
    events = {e.call_id: e for e in server.events_received() if hasattr(e, "call_id")}
    assert events[ok] == CallResult(ok, b"data:/x")
    assert isinstance(events[missing], CallFailed)
    assert type(events[missing].exception) is FileNotFoundError
    assert type(events[sneaky].exception) is ValidationError
    assert service_obj.calls == [("/x", True), ("/missing", False)]


def test_quick_methods_are_known_to_the_dispatcher():
    from rtcloud.interfaces.data import DataInterface
    from rtcloud.interfaces.subject import SubjectInterface

    dispatcher = Dispatcher()
    dispatcher.register("SubjectInterface", SubjectInterface())
    dispatcher.register("DataInterface", DataInterface(allowedDirs=["*"], allowedFileTypes=["*"]))
    assert dispatcher.is_quick("SubjectInterface", "setResult")
    assert dispatcher.is_quick("DataInterface", "ping")
    assert not dispatcher.is_quick("SubjectInterface", "dequeueResult")  # may block
    assert not dispatcher.is_quick("DataInterface", "getImageData")  # waits for files
    assert dispatcher.is_quick("DataInterface", "_resolve")  # refused at once


def test_spool_asks_the_object_only_for_calls_it_would_run():
    class Spooling(Service):
        def __init__(self):
            super().__init__()
            self.asked = []

        def spool_part(self, method, args, kwargs, part, size):
            self.asked.append((method, args, size))
            return f"sink for {method}"

    obj = Spooling()
    dispatcher = Dispatcher()
    dispatcher.register("DataInterface", obj)
    part = bytearray()
    assert dispatcher.spool(call("getFile", "/a", part), part, 10) == "sink for getFile"
    assert dispatcher.spool(call("helper", part), part, 10) is None  # not exposed
    assert dispatcher.spool(call("getFile", part, interface="Other"), part, 10) is None
    assert obj.asked == [("getFile", ("/a", part), 10)]
    plain = Dispatcher()
    plain.register("DataInterface", Service())  # no spool_part: memory as usual
    assert plain.spool(call("getFile", "/a", part), part, 10) is None
