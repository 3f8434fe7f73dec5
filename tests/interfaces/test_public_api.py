"""What a scientist reads: ``help()`` on the interfaces in every mode, and ``import rtcloud``."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys
import typing

import pytest

import rtcloud
from rtcloud.interfaces.bids import BidsInterface
from rtcloud.interfaces.client import ClientInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.interfaces.expose import exposed_methods
from rtcloud.interfaces.subject import SubjectInterface
from rtcloud.interfaces.web import WebDisplayInterface
from rtcloud.transport.discovery import ENV_VAR

CONTRACTS = {
    "bidsInterface": BidsInterface,
    "dataInterface": DataInterface,
    "subjInterface": SubjectInterface,
    "webInterface": WebDisplayInterface,
}


def test_server_proxies_have_the_real_signatures_and_docstrings(server, capsys):
    ci = ClientInterface()
    try:
        assert ci.isUsingProjectServer()
        err = capsys.readouterr().err
        joined = f"rtcloud: connected to the rtcloud project server {server.url} (project proj)"
        assert joined in err
        for attribute, contract in CONTRACTS.items():
            proxy = getattr(ci, attribute)
            assert type(proxy).__name__ == contract.__name__
            assert contract.__doc__ in (type(proxy).__doc__ or "")
            for name in exposed_methods(contract):
                remote, local = getattr(proxy, name), getattr(contract, name)
                assert remote.__doc__ == local.__doc__ and remote.__doc__, name
                expected = list(inspect.signature(local).parameters.values())[1:]  # no self
                params = list(inspect.signature(remote).parameters.values())
                assert [p for p in params if p.name != "rpc_timeout"] == expected, name
                assert any(p.name == "rpc_timeout" and p.default is None for p in params)
        shown = pydoc.render_doc(ci.dataInterface.getImageData, renderer=pydoc.plaintext)
        assert "getImageData(streamId" in shown and "*args" not in shown
        assert DataInterface.getImageData.__doc__.split("\n")[0] in shown
        page = pydoc.render_doc(ci.dataInterface, renderer=pydoc.plaintext)
        assert "initScannerStream(" in page
        assert DataInterface.putFile.__doc__.split("\n")[0] in page
        # and the proxies still call out, taking rpc_timeout
        assert ci.dataInterface.ping(rpc_timeout=5) > 0
        ci.webInterface.plotDataPoint(2, 0, 1.5)
        assert server.web.getPreviousDataPoints()[1] == [{"x": 0.0, "y": 1.5}]
    finally:
        ci.close()


def test_the_interfaces_are_typed_for_editors():
    hints = typing.get_type_hints(ClientInterface)
    for attribute, contract in CONTRACTS.items():
        assert hints[attribute] is contract
    hints = typing.get_type_hints(DataInterface.getImageData)
    assert hints["timeout"] is float or "float" in str(hints["timeout"])


def test_a_script_started_by_hand_says_that_it_runs_locally(capsys):
    ci = ClientInterface(yesToPrompts=True)
    try:
        assert not ci.isUsingProjectServer()
        err = capsys.readouterr().err
        assert "rtcloud: no project server is running: using local files" in err
    finally:
        ci.close()


def test_a_script_the_server_started_prints_nothing_about_it(server, capsys, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(server.info_path))
    ci = ClientInterface()
    try:
        assert ci.isUsingProjectServer() and "rtcloud:" not in capsys.readouterr().err
    finally:
        ci.close()


# ------------------------------------------------------------------ import rtcloud


def test_every_public_name_is_there_and_in_all():
    assert rtcloud.ClientInterface is ClientInterface
    assert rtcloud.DataInterface is DataInterface
    assert rtcloud.errors.ValidationError.__module__ == "rtcloud.errors"
    from rtcloud.config import loadConfigFile
    from rtcloud.feedback import FeedbackClient
    from rtcloud.imaging.nifti import convertDicomImgToNifti

    assert rtcloud.loadConfigFile is loadConfigFile
    assert rtcloud.FeedbackClient is FeedbackClient
    assert rtcloud.convertDicomImgToNifti is convertDicomImgToNifti
    for name in rtcloud.__all__:
        assert getattr(rtcloud, name) is not None, name
        assert name in dir(rtcloud)
    namespace: dict[str, object] = {}
    exec("from rtcloud import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(rtcloud.__all__)
    assert set(rtcloud._PUBLIC) | {"errors", "__version__"} == set(rtcloud.__all__)


def test_an_unknown_name_says_what_there_is():
    with pytest.raises(AttributeError, match="public names are: .*ClientInterface"):
        rtcloud.Clientinterface  # noqa: B018


def test_import_rtcloud_is_cheap_until_a_name_is_used():
    code = (
        "import sys, rtcloud\n"
        "heavy = ['numpy', 'pydicom', 'rpyc', 'starlette', 'nibabel']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "rtcloud.ClientInterface\n"
        "print('rpyc' in sys.modules or 'rtcloud.interfaces.client' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
