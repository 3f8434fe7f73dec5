"""The project server over real HTTP and WebSockets: login, sessions, the page's channel."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from helpers import FakeClock, wait_for
from rtcloud.errors import InvocationError
from rtcloud.server.app import COOKIE_NAME
from rtcloud.server.config import ServerConfig
from rtcloud.server.server import ProjectServer

_CLIENTS: list[httpx.Client] = []


def new_client(server):
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=10)
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def close_clients():
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def login(server, user="test", password="test"):
    client = new_client(server)
    response = client.post("/login", data={"username": user, "password": password, "next": "/"})
    return client, response


def ws_connect(server, cookie, origin=None):
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
    url = server.url.replace("http://", "ws://") + "ws/ui"
    return connect(url, additional_headers=headers, origin=origin, open_timeout=5)


def receive_until(ws, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        seen.append(message)
        if predicate(message):
            return message, seen
    raise AssertionError(f"no matching message; saw {[m.get('cmd') for m in seen]}")


def test_pages_need_a_session(server):
    client = new_client(server)
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/"
    assert client.get("/static/app.js").status_code == 401
    assert client.get("/api/config").status_code == 401
    assert client.get("/static/plotly.min.js").status_code == 401
    login_page = client.get("/login")
    assert login_page.status_code == 200 and 'name="password"' in login_page.text


def test_wrong_password_is_refused_and_right_one_logs_in(server):
    client, response = login(server, password="nope")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert COOKIE_NAME not in response.cookies
    client, response = login(server)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get("/static/plotly.min.js").status_code == 200
    config = client.get("/api/config").json()
    assert config["title"] == "Test study"


def test_login_redirect_only_to_local_paths(server):
    client = new_client(server)
    response = client.post(
        "/login", data={"username": "test", "password": "test", "next": "//evil.example/x"}
    )
    assert response.headers["location"] == "/"


def test_repeated_wrong_passwords_slow_down(server_factory):
    clock = FakeClock()
    server = server_factory(clock=clock)
    free = server.throttle.free
    for _ in range(free):  # the first ones are answered at once
        assert login(server, user="mallory", password="guess")[1].status_code == 401
    answers = []
    later = threading.Thread(
        target=lambda: answers.append(login(server, user="mallory", password="guess")[1])
    )
    later.start()
    wait_for(lambda: clock.sleeping == 1, what="the next guess to wait its turn")
    clock.advance(server.throttle.base - 0.01)
    assert clock.sleeping == 1 and not answers
    clock.advance(0.01)
    later.join(10)
    assert [a.status_code for a in answers] == [401]


def test_one_time_login_link(server):
    client = new_client(server)
    token = server.login_url.split("token=")[1]
    first = client.get(f"/login?token={token}")
    assert first.status_code == 303 and COOKIE_NAME in first.cookies
    second = new_client(server).get(f"/login?token={token}")
    assert second.status_code == 401 and "already used" in second.text


def test_users_from_the_password_file(server_factory, tmp_path):
    from rtcloud.server.auth import PasswordFile

    PasswordFile(tmp_path / "users.json", rounds=4).set_password("alice", "s3cret!")
    server = server_factory(test=False)
    _, bad = login(server, user="test", password="test")  # test user only in --test mode
    assert bad.status_code == 401
    _, good = login(server, user="alice", password="s3cret!")
    assert good.status_code == 303


def test_websocket_needs_session_and_same_origin(server):
    with pytest.raises(InvalidStatus):
        with ws_connect(server, None) as ws:
            ws.recv(timeout=5)
    _, response = login(server)
    cookie = response.cookies[COOKIE_NAME]
    with pytest.raises(InvalidStatus):
        with ws_connect(server, cookie, origin="http://evil.example") as ws:
            ws.recv(timeout=5)
    host = server.url.rstrip("/")
    with ws_connect(server, cookie, origin=host) as ws:
        ws.send(json.dumps({"cmd": "getState"}))
        hello, _ = receive_until(ws, lambda m: m["cmd"] == "hello")
        assert hello["user"] == "test" and hello["project"] == "proj"
        config, _ = receive_until(ws, lambda m: m["cmd"] == "config")
        keys = [item["key"] for item in config["items"]]
        assert keys[:3] == ["title", "subjectName", "runNum"]
        assert config["plot"]["xRange"] is None  # no range in the file: auto-range


@pytest.mark.parametrize("role", ["data", "subject"])
def test_service_sockets_take_a_bearer_session_only_and_no_origin(server_factory, role):
    server = server_factory(data_remote=True, subject_remote=True)
    _, response = login(server)
    session = response.cookies[COOKIE_NAME]
    url = server.url.replace("http://", "ws://") + f"ws/service/{role}"
    refused = {
        "the browser's cookie": {"Cookie": f"{COOKIE_NAME}={session}"},
        "a bearer session from a page": {"Authorization": f"Bearer {session}"},
        "a forged bearer session": {"Authorization": "Bearer made-up"},
    }
    for what, headers in refused.items():
        origin = server.url.rstrip("/") if "page" in what else None
        with pytest.raises(InvalidStatus, match="403"):
            connect(url, additional_headers=headers, origin=origin, open_timeout=5).close()
    with connect(url, additional_headers={"Authorization": f"Bearer {session}"}) as ws:
        wait_for(lambda: server.service_connected(role), what=f"the {role} service")
        ws.close()


def run_main_script(server, runs, scans):
    """Press Run on the page's channel; (final runStatus, every message seen until then)."""
    _, response = login(server)
    with ws_connect(server, response.cookies[COOKIE_NAME]) as ws:
        ws.send(
            json.dumps(
                {"cmd": "runScript", "script": "mainScript", "runNum": runs, "scanNum": scans}
            )
        )
        return receive_until(
            ws, lambda m: m["cmd"] == "runStatus" and m["state"] in ("complete", "failed")
        )


def test_run_streams_lines_and_plot_points_then_completes(server):
    done, seen = run_main_script(server, [2], [7])
    logs = [m["value"] for m in seen if m["cmd"] == "userLog"]
    assert done["state"] == "complete", logs
    assert "connected to server: True" in logs
    assert "run 2 tr 2 value 4.0" in logs
    points = [
        (m["trId"], m["value"])
        for m in seen
        if m["cmd"] == "plotDataPoint" and m["trId"] is not None
    ]
    assert points == [(0, 0.0), (1, 2.0), (2, 4.0)]
    states = [m["state"] for m in seen if m["cmd"] == "runStatus"]
    assert states[0] == "running"
    assert server.subject is not None and server.subject.msgQueue.qsize() == 3


RT_CLOUD_STYLE_SCRIPT = """
import argparse
from rtCommon.utils import loadConfigFile

p = argparse.ArgumentParser()
p.add_argument("--config", "-c")  # and nothing else, as RT-Cloud's openNeuroClient
args = p.parse_args()
cfg = loadConfigFile(args.config)
print(f"runs {cfg.runNum} scans {cfg.scanNum} subject {cfg.subjectName}", flush=True)
"""


def test_a_script_that_takes_only_its_config_runs_with_the_pages_numbers(server):
    """The server started the main script with --runs and --scans too: a script whose
    argparse has only --config (RT-Cloud started scripts with -c alone) stopped at once with
    an argparse error. It now gets a copy of the settings holding the page's numbers."""
    server.config.main_script.write_text(RT_CLOUD_STYLE_SCRIPT)
    before = server.settings.path.read_text()
    done, seen = run_main_script(server, [3], [9])
    logs = [m["value"] for m in seen if m["cmd"] == "userLog"]
    assert done["state"] == "complete", logs
    assert "runs [3] scans [9] subject sub01" in logs
    assert server.settings.path.read_text() == before  # the project's own file is untouched
    copy = server.settings.path.with_name("cfg_subsub01_run3.toml")
    assert "# runs to process" in copy.read_text()  # comments kept, as the file was


def test_stop_midway_says_stopped(server):
    server.settings.save({"numVolumes": 1000, "pause": 0.05})
    _, response = login(server)
    with ws_connect(server, response.cookies[COOKIE_NAME]) as ws:
        ws.send(json.dumps({"cmd": "runScript", "script": "mainScript"}))
        receive_until(ws, lambda m: m["cmd"] == "userLog" and m["value"].startswith("run 1 tr 3"))
        ws.send(json.dumps({"cmd": "stop"}))
        final, _ = receive_until(
            ws,
            lambda m: m["cmd"] == "runStatus" and m["state"] in ("stopped", "failed", "complete"),
        )
        assert final["state"] == "stopped"


def test_session_scripts_and_bad_commands(server):
    _, response = login(server)
    with ws_connect(server, response.cookies[COOKIE_NAME]) as ws:
        ws.send(json.dumps({"cmd": "runScript", "script": "initScript"}))
        _, seen = receive_until(ws, lambda m: m["cmd"] == "runStatus" and m["state"] == "complete")
        assert ("sessionLog", "initialized") in [(m["cmd"], m.get("value")) for m in seen]
        ws.send(json.dumps({"cmd": "runScript", "script": "rm -rf /"}))
        error, _ = receive_until(ws, lambda m: m["cmd"] == "userError")
        assert "unknown script" in error["error"]
        ws.send("not json")
        error, _ = receive_until(ws, lambda m: m["cmd"] == "userError")
        assert "bad message" in error["error"]


def test_save_settings_over_the_socket(server):
    _, response = login(server)
    with ws_connect(server, response.cookies[COOKIE_NAME]) as ws:
        ws.send(json.dumps({"cmd": "saveConfig", "values": {"numVolumes": "many"}}))
        error, _ = receive_until(ws, lambda m: m["cmd"] == "configError")
        assert "numVolumes" in error["errors"]
        ws.send(json.dumps({"cmd": "saveConfig", "values": {"numVolumes": 7}}))
        receive_until(ws, lambda m: m["cmd"] == "configSaved")
    text = server.settings.path.read_text()
    assert "numVolumes = 7 # volumes per run" in text and "# runs to process" in text


def test_port_taken_and_listen_policy(server, project_dir, tmp_path):
    config = ServerConfig.for_project(
        "proj", project_dir=project_dir, port=server.port, state_dir=tmp_path
    )
    with pytest.raises(InvocationError, match="already in use"):
        ProjectServer(config)
    config = ServerConfig.for_project("proj", project_dir=project_dir, host="0.0.0.0", test=True)
    with pytest.raises(InvocationError, match="--test"):
        ProjectServer(config)
    config = ServerConfig.for_project("proj", project_dir=project_dir, host="0.0.0.0")
    with pytest.raises(InvocationError, match="TLS"):
        ProjectServer(config)


def test_missing_project_is_a_clear_error(tmp_path):
    with pytest.raises(InvocationError, match="not found"):
        ServerConfig.for_project("nosuchproject")


def test_the_login_reads_no_multipart_or_large_body(server):
    """Before any check, a stranger's body was read: multipart parts of up to 1 MiB each in
    memory, or a whole large file on disk. Now only a small url-encoded form is read."""
    client = new_client(server)
    parts = {f"part{i}": ("x.bin", b"x" * 200_000) for i in range(10)}
    response = client.post("/login", files=parts, data={"username": "test", "password": "test"})
    assert response.status_code == 415 and COOKIE_NAME not in response.cookies
    large = client.post("/login", data={"username": "test", "password": "x" * 20_000})
    assert large.status_code == 413
    chunked = client.post(  # no length announced: refused before reading
        "/login",
        content=iter([b"username=test&password=test"]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert chunked.status_code == 411
    client, response = login(server)  # the page's own form still logs in
    assert response.status_code == 303


def test_the_log_names_the_real_address_and_never_an_unknown_user_name(server, caplog):
    """X-Forwarded-For chose the address the login throttle counted against; and a password
    typed into the user-name field went into the log."""
    caplog.set_level(logging.WARNING)
    secret = "Zq9SecretPassw0rdXYZ"
    client = new_client(server)
    response = client.post(
        "/login",
        data={"username": secret, "password": "nope", "next": "/"},
        headers={"X-Forwarded-For": "203.0.113.1"},
    )
    assert response.status_code == 401
    _, response = login(server, password="nope")
    assert response.status_code == 401
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in logged and "203.0.113.1" not in logged
    assert "failed login for a user name that is nobody's from 127.0.0.1" in logged
    assert "failed login for user 'test' from 127.0.0.1" in logged


def test_a_loopback_server_answers_only_requests_addressed_to_this_computer(server):
    """DNS rebinding: a page elsewhere points its own name at 127.0.0.1; the browser sends
    that name as Host and Origin, and the page was on this server's origin (with --test's
    known password it could log in and run scripts)."""
    client = new_client(server)
    port = server.url.rstrip("/").rsplit(":", 1)[1]
    foreign = {"Host": f"rebind.attacker.example:{port}"}
    response = client.post(
        "/login",
        data={"username": "test", "password": "test", "next": "/"},
        headers={**foreign, "Origin": f"http://rebind.attacker.example:{port}"},
    )
    assert response.status_code == 421 and COOKIE_NAME not in response.cookies
    assert client.get("/api/config", headers=foreign).status_code == 421
    for name in ("localhost", "127.0.0.1", "[::1]"):  # this computer, by any of its names
        page = client.get("/login", headers={"Host": f"{name}:{port}"})
        assert page.status_code == 200, name
    _, logged_in = login(server)
    cookie = {"Cookie": f"{COOKIE_NAME}={logged_in.cookies[COOKIE_NAME]}"}

    def upgrade(name):  # connect to 127.0.0.1, addressed (Host, Origin) to ``name``
        sock = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        return connect(
            f"ws://{name}:{port}/ws/ui",
            sock=sock,
            additional_headers=cookie,
            origin=f"http://{name}:{port}",
            open_timeout=5,
        )

    with upgrade("localhost") as ws:  # this computer's page: its channel opens
        assert ws.protocol.state.name == "OPEN"
    with pytest.raises(InvalidStatus):
        upgrade("rebind.attacker.example")


def test_another_site_cannot_log_the_experimenter_out(server):
    """GET /logout ended the session: an <img src=".../logout"> on a page served from
    another port of this computer (the same site to the browser, so the cookie went along)
    logged the experimenter out mid-run."""
    client, _ = login(server)
    assert client.get("/logout").status_code == 405
    origin = {"Origin": "http://127.0.0.1:1"}
    assert client.post("/logout", headers=origin).status_code == 403
    assert client.get("/api/config").status_code == 200  # still logged in
    ours = {"Origin": str(client.base_url).rstrip("/")}
    assert client.post("/logout", headers=ours).status_code == 303
    assert client.get("/api/config").status_code == 401


def test_logging_out_ends_the_session_everywhere(server):
    """Logout only deleted the cookie: a copy of it (another tab, a stolen value) still
    worked for up to 12 hours."""
    client, response = login(server)
    assert response.status_code == 303
    cookie = response.cookies[COOKIE_NAME]
    copy = new_client(server)
    copy.cookies.set(COOKIE_NAME, cookie)
    assert copy.get("/api/config").status_code == 200
    assert client.post("/logout").status_code == 303
    assert copy.get("/api/config").status_code == 401
    with pytest.raises(InvalidStatus):
        ws_connect(server, cookie)
    _, again = login(server)  # a new login is a new session
    assert again.status_code == 303 and COOKIE_NAME in again.cookies


def _closed_code(ws, timeout=10.0):
    """The close code of an open socket, waiting for the server to close it."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    return closed.value.rcvd.code if closed.value.rcvd else None


@pytest.mark.parametrize("path", ["ws/ui", "ws/feedback"])
def test_logging_out_closes_the_pages_already_open(server, path):
    """Logout refused new requests, but a page's socket opened before it kept receiving the
    experiment (the participant's feedback, the log, the plots) until the page closed."""
    _, response = login(server)
    cookie = response.cookies[COOKIE_NAME]
    url = server.url.replace("http://", "ws://") + path
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"}
    with connect(url, additional_headers=headers, open_timeout=5) as page:
        if path == "ws/ui":
            page.send(json.dumps({"cmd": "getState"}))
        page.recv(timeout=5)  # the channel is open and talking
        copy = new_client(server)
        copy.cookies.set(COOKIE_NAME, cookie)
        assert copy.post("/logout").status_code == 303
        started = time.monotonic()
        assert _closed_code(page) == 4401
        assert time.monotonic() - started < 5
    # a page's session that goes on is left open
    _, other = login(server)
    with ws_connect(server, other.cookies[COOKIE_NAME]) as page:
        page.send(json.dumps({"cmd": "getState"}))
        receive_until(page, lambda m: m["cmd"] == "hello")
        time.sleep(2.5)  # over two checks of its session
        page.send(json.dumps({"cmd": "getState"}))
        receive_until(page, lambda m: m["cmd"] == "hello")


def test_a_changed_password_ends_the_users_sessions(server_factory, tmp_path):
    """``rtcloud add-user`` changing a password left every session of that user working
    (the page told users to restart the server): a stolen session outlived the new
    password."""
    import subprocess
    import sys

    from rtcloud.server.auth import PasswordFile

    users = tmp_path / "users.json"
    PasswordFile(users, rounds=4).set_password("alice", "old-pass")
    PasswordFile(users, rounds=4).set_password("bob", "bobs-pass")
    server = server_factory(test=False, password_file=users)
    alice, response = login(server, user="alice", password="old-pass")
    assert response.status_code == 303
    bob, response = login(server, user="bob", password="bobs-pass")
    assert response.status_code == 303
    with ws_connect(server, alice.cookies[COOKIE_NAME]) as page:
        page.send(json.dumps({"cmd": "getState"}))
        receive_until(page, lambda m: m["cmd"] == "hello")
        assert alice.get("/api/config").status_code == 200

        changed = subprocess.run(
            [
                sys.executable,
                "-m",
                "rtcloud",
                "add-user",
                "-u",
                "alice",
                "--users-file",
                str(users),
                "--password-stdin",
            ],
            input="new-pass\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert changed.returncode == 0, changed.stderr
        assert alice.get("/api/config").status_code == 401
        assert _closed_code(page) == 4401
    assert bob.get("/api/config").status_code == 200  # another user's session goes on
    assert login(server, user="alice", password="old-pass")[1].status_code == 401
    assert login(server, user="alice", password="new-pass")[1].status_code == 303


@pytest.mark.parametrize("role", ["data", "subject"])
def test_a_changed_password_closes_the_users_service_links(server_factory, tmp_path, role):
    """A service connected with a password kept its link open after the password changed
    (a leaked password, revoked, still served the scanner's files). The link now closes
    within a second; the service logs in again, and with the old password it cannot."""
    from rtcloud.errors import AuthenticationError
    from rtcloud.server.auth import PasswordFile
    from rtcloud.transport.ws_client import ServiceClient

    users = tmp_path / "users.json"
    PasswordFile(users, rounds=4).set_password("alice", "old-pass")
    server = server_factory(test=False, password_file=users, data_remote=True, subject_remote=True)
    host = server.url.split("//")[1].rstrip("/")
    service = ServiceClient(host, role, {}, username="alice", password="old-pass")
    ended = []

    def run():
        try:
            service.run_forever()
        except AuthenticationError as exc:
            ended.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.service_connected(role), what=f"the {role} service")
        PasswordFile(users, rounds=4).set_password("alice", "new-pass")
        started = time.monotonic()
        wait_for(lambda: not server.service_connected(role), timeout=10, what="the link closed")
        assert time.monotonic() - started < 5
        thread.join(timeout=20)
        assert ended and not thread.is_alive()  # the old password no longer logs in
    finally:
        service.stop()
        thread.join(timeout=10)


def test_run_while_a_run_runs_leaves_its_settings_copy_alone(server):
    """Run pressed again (another tab) while run 1 ran wrote the settings copy for the new
    run numbers before it was refused: the running script's copy could be written over."""
    server.settings.save({"pause": 0.3})
    _, response = login(server)
    with ws_connect(server, response.cookies[COOKIE_NAME]) as ws:
        start = {"cmd": "runScript", "script": "mainScript", "runNum": [1], "scanNum": [5]}
        ws.send(json.dumps(start))
        receive_until(ws, lambda m: m["cmd"] == "runStatus" and m["state"] == "running")
        conf = server.settings.path.parent
        before = {p.name: p.read_text() for p in conf.glob("cfg_sub*")}
        ws.send(json.dumps({**start, "runNum": [1], "scanNum": [9]}))
        error, _ = receive_until(ws, lambda m: m["cmd"] == "userError")
        assert "still running" in error["error"]
        assert {p.name: p.read_text() for p in conf.glob("cfg_sub*")} == before
