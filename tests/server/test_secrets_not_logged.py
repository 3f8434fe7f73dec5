"""No password, token, session or secret ever reaches a log, at any level.

A real server (and a real feedback client and script connection in this process) goes
through wrong and right logins, the one-time link, a service's session and device token
and the scripts' RPyC secret, with every logger at DEBUG; none of those values may appear
in what was logged.
"""

from __future__ import annotations

import logging

import httpx

from rtcloud.feedback import FeedbackClient
from rtcloud.interfaces.client import ClientInterface
from rtcloud.redact import RedactSecrets
from rtcloud.server.app import COOKIE_NAME, DEVICE_COOKIE
from rtcloud.server.auth import PasswordFile
from rtcloud.transport.ws_client import device_token_path

RIGHT = "Right-Password-4242"
WRONG = "Wrong-Password-1717"


def test_no_secret_reaches_the_log(server_factory, caplog):
    caplog.set_level(logging.DEBUG)
    server = server_factory(subject_remote=True)
    PasswordFile(server.passwords.path, rounds=4).set_password("alice", RIGHT)
    secrets = {"right password": RIGHT, "wrong password": WRONG}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/login", data={"username": "alice", "password": WRONG}).is_error
        ok = client.post("/login", data={"username": "alice", "password": RIGHT})
        secrets["session"] = ok.cookies[COOKIE_NAME]
        secrets["device token"] = ok.cookies[DEVICE_COOKIE]
    with httpx.Client(timeout=10) as client:
        assert client.get(server.login_url).status_code == 303
    secrets["one-time token"] = server.login_token
    address = server.url.split("//")[1].rstrip("/")
    feedback = FeedbackClient(address, "alice", RIGHT).start(timeout=20)
    try:
        secrets["service device token"] = (
            device_token_path("127.0.0.1", server.port, "alice").read_text().strip()
        )
        script = ClientInterface()
        try:
            script.subjInterface.setResult(1, 0, 0.5, 0)
            assert feedback.wait_for_result(1, 0, timeout=10) is not None
        finally:
            script.close()
    finally:
        feedback.close()
    secrets["RPyC secret"] = server._secret.hex()
    # Every line of rtcloud and of the libraries it runs on (not the test's own httpx).
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert "logged in" in logged and "> GET /ws/service/subject" in logged  # all captured
    for what, value in secrets.items():
        assert value and value not in logged, f"the {what} was logged"


def test_the_log_filter_masks_credentials_in_library_lines():
    cases = {
        (
            "> %s: %s",
            ("Authorization", "Bearer abc.def-123"),
        ): "> Authorization: Bearer [redacted]",
        ("< %s: %s", ("Cookie", "rtcloud_session=abc; rtcloud_device=xyz")): (
            "< Cookie: rtcloud_session=[redacted]; rtcloud_device=[redacted]"
        ),
        ("GET %s", ("/login?token=abc&next=/",)): "GET /login?token=[redacted]&next=/",
        (
            "body %s",
            ("username=alice&password=hunter2",),
        ): "body username=alice&password=[redacted]",
        ("plain %d volumes", (3,)): "plain 3 volumes",
    }
    for (msg, args), expected in cases.items():
        record = logging.LogRecord("websockets.client", logging.DEBUG, "x", 1, msg, args, None)
        assert RedactSecrets().filter(record)
        assert record.getMessage() == expected
