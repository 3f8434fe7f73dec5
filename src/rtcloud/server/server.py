"""ProjectServer: one experiment's server, from start to stop.

It owns the parts and wires them together: the hub with the experiment's interfaces, the
RPyC bridge scripts connect to, the script runner, the settings file, the login machinery
and the uvicorn server. It can run in the foreground (``rtcloud serve``) or in a thread
(tests, the demo): :meth:`ProjectServer.start_in_thread` returns once the server accepts
connections, and :meth:`ProjectServer.stop` ends everything, including a running script.

The scripts it starts get its RPyC address and secret in their environment
(``RTCLOUD_SERVER``), so they reach this server whatever else runs. For scripts started by
hand it writes a connection file of its own under ``~/.rtcloud/servers/`` (readable by this
OS user only), removed when it stops, also on SIGTERM (see :mod:`rtcloud.transport.discovery`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import getpass
import json
import logging
import os
import re
import secrets
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from rtcloud.errors import ConfigError, InvocationError, RTCloudError, StateError
from rtcloud.interfaces.bids import BidsInterface
from rtcloud.interfaces.data import DataInterface
from rtcloud.interfaces.subject import SubjectInterface
from rtcloud.interfaces.web import WebDisplayInterface
from rtcloud.server.app import bearer_token, create_app
from rtcloud.server.auth import (
    TEST_PASSWORD,
    TEST_USER,
    DeviceTokens,
    OneTimeTokens,
    PasswordFile,
    SessionSigner,
    default_password_file,
    write_private_file,
)
from rtcloud.server.clock import SYSTEM_CLOCK, Clock
from rtcloud.server.config import ServerConfig
from rtcloud.server.data_streams import BidsStreams, DataStreams
from rtcloud.server.feedback_pages import serve_feedback_page
from rtcloud.server.hub import Hub
from rtcloud.server.runner import RunState, RunStatus, ScriptRunner
from rtcloud.server.scanner_sim import ReplayPlan, ScannerSimulator
from rtcloud.server.settings import SettingsFile
from rtcloud.server.subject_relay import SubjectRelay
from rtcloud.server.throttle import LoginThrottle
from rtcloud.server.timeline import VolumeTimeline
from rtcloud.server.ui_channel import UIChannel
from rtcloud.server.uploads import (
    DEFAULT_UPLOAD_LIMIT,
    DEFAULT_UPLOAD_TYPES,
    UploadRules,
    Uploads,
)
from rtcloud.transport.discovery import ADDRESS_VAR, ENV_VAR, servers_dir
from rtcloud.transport.rpyc_bridge import SECRET_BYTES, RpycBridge
from rtcloud.transport.ws_server import ServiceChannel

__all__ = ["ProjectServer"]

logger = logging.getLogger(__name__)

SCRIPTS = ("mainScript", "initScript", "finalizeScript")
#: Lines of each page log (Run, Session) the server keeps for a page that opens or reconnects.
LOG_HISTORY = 5000


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server that reports when it accepts connections, and no signal handling."""

    def __init__(self, config: uvicorn.Config, started: threading.Event) -> None:
        super().__init__(config)
        self._started_event = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._started_event.set()

    def install_signal_handlers(self) -> None:  # the CLI handles Ctrl-C
        pass


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, or InvocationError saying the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise InvocationError(
                f"port {port} on {host} is already in use (another rtcloud serve?); stop that "
                "server or choose another port with --port"
            ) from None
        raise InvocationError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ProjectServer:
    """The server of one experiment project."""

    def __init__(self, config: ServerConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        config.check_listen_policy()
        self.config = config
        self.settings = SettingsFile(config.config_path)
        self.settings.load()  # a broken config stops the start with a clear message
        #: The pretend scanner of ``--replay`` (None without it).
        self.simulator: ScannerSimulator | None = None
        if config.replay:
            self.replay_plan()  # a config without what --replay needs stops the start
            self.simulator = ScannerSimulator(
                config.project_dir, config.replay_source, report=self._replay_report
            )
        self._config_stamp = self.settings.stamp()
        self._config_problem: str | None = None
        #: Seconds between two looks at the config file's modification time.
        self.config_poll_interval = 1.0
        self._sock = bind_socket(config.host, config.port)
        self.port: int = self._sock.getsockname()[1]
        #: Time for logins, sessions and tokens (tests pass a clock they advance by hand).
        self.clock = clock
        self.passwords = PasswordFile(config.password_file or default_password_file())
        self.sessions = SessionSigner(clock=clock, stamp=self.passwords.stamp)
        self.tokens = OneTimeTokens(clock=clock)
        self.devices = DeviceTokens.in_folder(config.state_dir, clock=clock)
        self.throttle = LoginThrottle(clock=clock)
        self.ui = UIChannel()
        self.hub = Hub()
        self.web = WebDisplayInterface(sink=self.ui.broadcast)
        self.data: DataInterface | None = None
        self.bids: BidsInterface | None = None
        self.channels: dict[str, ServiceChannel] = {}
        if config.data_remote:
            self.channels["data"] = ServiceChannel("data", self._broadcast_conn_status)
            self.hub.register_remote(
                "DataInterface", DataInterface, DataStreams(self.channels["data"]), "data service"
            )
            # BIDS streams run where the scanner's files are: in the data service
            self.hub.register_remote(
                "BidsInterface", BidsInterface, BidsStreams(self.channels["data"]), "data service"
            )
        else:
            self.data = DataInterface(allowedDirs=["*"], allowedFileTypes=["*"])
            self.hub.register_local("DataInterface", self.data)
            self.bids = BidsInterface(allowedDirs=["*"], progress=self._script_log)
            self.hub.register_local("BidsInterface", self.bids)
        #: Feedback to every connected presentation peer, responses back (both modes).
        self.relay = SubjectRelay(
            config.subject_remote, self._broadcast_conn_status, self._feedback_problem
        )
        self.subject: SubjectInterface = self.relay.local
        self.hub.register_remote(
            "SubjectInterface",
            SubjectInterface,
            self.relay,
            "subject service",
            remote=config.subject_remote,
        )
        self.hub.register_local("WebDisplayInterface", self.web)
        #: Each volume's hops before the script, added to the scripts' quality records.
        self.timeline = VolumeTimeline(self.hub, on_update=self.web.update_quality)
        self.web.quality_hook = self.timeline.enrich
        self._register_custom_interfaces()
        self._secret = secrets.token_bytes(SECRET_BYTES)
        self.bridge = RpycBridge(self.hub, self._secret, port=config.rpyc_port)
        self.info_path = self._info_path()
        self.runner = ScriptRunner(
            self._on_script_line,
            self._on_run_status,
            env={ADDRESS_VAR: json.dumps(self._connection_info())},
            grace_period=config.grace_period,
        )
        #: The Upload Files tab: its rules, and the files it sends.
        self.uploads = Uploads(
            UploadRules(
                folders=list(config.upload_dirs) or [config.project_dir],
                types=list(config.upload_types or DEFAULT_UPLOAD_TYPES),
                limit=config.upload_limit or DEFAULT_UPLOAD_LIMIT,
            ),
            self.hub,
            config.data_remote,
            lambda: self.service_connected("data"),
            report=lambda text: self.ui.broadcast({"cmd": "uploadStatus", "file": text}),
        )
        self.started = threading.Event()
        #: Called with (script, stream, line) for every line a script prints.
        self.line_hooks: list[Callable[[str, str, str], None]] = []
        # the Run and Session logs' latest lines, numbered, for a page that opens or comes
        # back mid-run (getState): it shows what it missed
        self._log_lock = threading.Lock()
        self._log_seq = 0
        self._log_history: dict[str, collections.deque[tuple[int, str]]] = {
            "userLog": collections.deque(maxlen=LOG_HISTORY),
            "sessionLog": collections.deque(maxlen=LOG_HISTORY),
        }
        self._uvicorn: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The link logs in the person who started the server: shown as their login name.
        self.login_token = self.tokens.issue(TEST_USER if config.test else _os_user())

    def _register_custom_interfaces(self) -> None:
        """A lab's own classes: in the data service with --dataRemote, else in here."""
        from rtcloud.interfaces.custom import load_interface_class

        for spec in self.config.interfaces:
            cls = load_interface_class(spec)
            if self.config.data_remote:
                self.hub.register_remote(cls.__name__, cls, self.channels["data"], "data service")
            else:
                self.hub.register_local(cls.__name__, cls())

    # ------------------------------------------------------------ identity

    @property
    def uses_tls(self) -> bool:
        return self.config.tls_cert is not None

    @property
    def url(self) -> str:
        scheme = "https" if self.uses_tls else "http"
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{self.port}/"

    @property
    def login_url(self) -> str:
        """A URL that logs a browser in once (printed at start)."""
        return f"{self.url}login?token={self.login_token}"

    def check_password(self, user: str, password: str) -> bool:
        if self.config.test and user == TEST_USER and password == TEST_PASSWORD:
            return True
        return self.passwords.verify(user, password)

    def user_label(self, user: str) -> str:
        """A login's user name for the log: the name when it is a user's; else not the text
        (a password typed into the name field must not end up in the log)."""
        known = (self.config.test and user == TEST_USER) or user in self.passwords.users()
        return f"user {user!r}" if known else "a user name that is nobody's"

    def _info_path(self) -> Path:
        override = os.environ.get(ENV_VAR)
        if override:
            return Path(override)
        return servers_dir() / f"{os.getpid()}-{self.bridge.port}.json"

    def _connection_info(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "rpycPort": self.bridge.port,
            "secret": self._secret.hex(),
            "pid": os.getpid(),
            "url": self.url,
            "project": self.config.project_name,
        }

    def _write_info(self) -> None:
        info = self._connection_info()
        write_private_file(self.info_path, json.dumps(info, indent=2) + "\n")

    def _remove_info(self) -> None:
        try:
            info = json.loads(self.info_path.read_text(encoding="utf-8"))
            if info.get("secret") == self._secret.hex():
                self.info_path.unlink()
        except (OSError, ValueError):
            pass

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (once started)."""
        if self._loop is None:
            raise StateError("the project server is not running")
        return self._loop

    # ------------------------------------------------------------ routes and lifespan

    def extra_routes(self) -> list[Any]:
        """The remote services' sockets, and the feedback pages' socket."""
        return [
            WebSocketRoute("/ws/service/{role}", self._service_socket),
            WebSocketRoute("/ws/feedback", self._feedback_socket),
        ]

    async def _feedback_socket(self, ws: WebSocket) -> None:
        user = ws.scope.get("state", {}).get("user", "?")
        await serve_feedback_page(ws, self.relay, user)

    async def _service_socket(self, ws: WebSocket) -> None:
        """A remote service's socket: for programs only, never for a web page.

        The session must come in an ``Authorization: Bearer`` header, which a page cannot
        set on a WebSocket, and cookies are ignored, so a page of another site open in a
        logged-in browser cannot use the browser's session here. Browsers always send
        ``Origin`` on a WebSocket; services never do, so any upgrade that has one is refused.
        """
        role = ws.path_params.get("role", "")
        origin = ws.headers.get("origin")
        if origin is not None:
            logger.warning("refused a %s service socket opened by a web page (%r)", role, origin)
            await ws.close(code=4403)
            return
        token = bearer_token(ws.headers.get("authorization"))
        user = self.sessions.user_of(token)
        if user is None:
            logger.warning("refused a %s service without a valid login", role)
            await ws.close(code=4401)
            return
        peer = f"{user}@{ws.client.host if ws.client else '?'}"
        if role != "subject" and role not in self.channels:
            logger.warning(
                "refused a %s service: this server serves %s locally (start it with --%sRemote)",
                role,
                role,
                role,
            )
            await ws.close(code=4403)
            return
        watcher = asyncio.create_task(self._end_with_session(ws, token, role, peer))
        try:
            if role == "subject":
                await self.relay.serve_service(ws, peer)
            else:
                await self.channels[role].serve(ws, peer)
        finally:
            watcher.cancel()

    async def _end_with_session(
        self, ws: WebSocket, token: str | None, role: str, peer: str
    ) -> None:
        """Close a service's link when its session ends (its user's password changed, say):
        it must log in again, and with a revoked password it cannot."""
        await self.sessions.until_ended(token)
        logger.warning("closing the %s service of %s: its session ended", role, peer)
        with contextlib.suppress(Exception):  # it may be closing on its own at this moment
            await ws.close(code=4401)

    def _broadcast_conn_status(self) -> None:
        self.ui.broadcast(self.conn_status())

    def _feedback_problem(self, text: str, failure: bool) -> None:
        """A feedback peer failed, is slow, left or came back: tell the experimenter."""
        if failure:
            self.ui.broadcast({"cmd": "userError", "error": text})
        else:
            self._log_line("userLog", f"rtcloud: {text}")

    def _log_line(self, cmd: str, line: str) -> None:
        """A line for a page's Run (``userLog``) or Session (``sessionLog``) log."""
        with self._log_lock:
            self._log_seq += 1
            seq = self._log_seq
            self._log_history[cmd].append((seq, line))
            self.ui.broadcast({"cmd": cmd, "value": line, "seq": seq})

    def log_history(self) -> dict[str, Any]:
        """The ``logHistory`` message: the logs' latest lines with their numbers."""
        with self._log_lock:
            return {
                "cmd": "logHistory",
                "logs": {cmd: list(lines) for cmd, lines in self._log_history.items()},
            }

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        for channel in self.channels.values():
            channel.bind_loop(self._loop)
        self.relay.bind_loop(self._loop)
        watcher = asyncio.create_task(self._watch_config_file())
        yield
        watcher.cancel()
        await self.runner.stop()

    # ------------------------------------------------------------ messages to pages

    # ------------------------------------------------------------ --replay

    def replay_plan(self) -> ReplayPlan:
        """Where and how ``--replay`` writes a run's volumes (from the config)."""
        return ReplayPlan.from_config(
            self.settings.load(), self.config.project_dir, str(self.settings.path)
        )

    def replay_note(self) -> str:
        """What pressing Run does with ``--replay``, for the page and the terminal."""
        if self.simulator is None:
            return ""
        try:
            return self.simulator.describe(self.replay_plan())
        except ConfigError as exc:
            return f"Simulated scanner (rtcloud serve --replay): {exc}"

    def _replay_report(self, text: str) -> None:
        logger.info("%s", text)
        self.ui.broadcast({"cmd": "debugLog", "value": text})

    # ------------------------------------------------------------ the experiment's config file

    def config_state(self) -> dict[str, Any]:
        """The ``config`` message, or a ``configProblem`` message when the file is unusable."""
        try:
            message = self.config_message()
        except ConfigError as exc:
            return {
                "cmd": "configProblem",
                "filename": str(self.settings.path),
                "error": str(exc),
                "line": exc.line,
                "column": exc.column,
            }
        self._config_problem = None
        return message

    def _config_title(self) -> str | None:
        try:
            title = self.settings.load().title
        except ConfigError:
            return None
        return str(title) if title else None

    def _reload_config(self) -> dict[str, Any]:
        """Re-read the changed file: its message for the pages; a problem goes to the terminal."""
        message = self.config_state()
        if message["cmd"] == "configProblem":
            if message["error"] != self._config_problem:
                logger.error(
                    "%s; the page shows this too, and the file is read again when it is saved",
                    message["error"],
                )
            self._config_problem = message["error"]
        else:
            logger.info("experiment config %s changed on disk: reloaded", self.settings.path)
        return message

    async def _watch_config_file(self) -> None:
        """Send the pages the config file's new state whenever the file changes on disk."""
        while True:
            await asyncio.sleep(self.config_poll_interval)
            stamp = self.settings.stamp()
            if stamp == self._config_stamp:
                continue
            self._config_stamp = stamp
            try:
                message = await asyncio.to_thread(self._reload_config)
            except OSError as exc:  # e.g. unreadable for a moment while an editor saves
                logger.warning("cannot read %s: %s", self.settings.path, exc)
                continue
            self.ui.broadcast(message)

    def config_message(self) -> dict[str, Any]:
        cfg = self.settings.load()
        x_range = None if cfg.plotAutoRangeX else [cfg.plotXRangeLow, cfg.plotXRangeHigh]
        y_range = None if cfg.plotAutoRangeY else [cfg.plotYRangeLow, cfg.plotYRangeHigh]
        return {
            "cmd": "config",
            "filename": str(self.settings.path),
            "header": self.settings.header(),
            "items": self.settings.items(),
            "plot": {
                "title": cfg.plotTitle,
                "xLabel": cfg.plotXLabel,
                "yLabel": cfg.plotYLabel,
                "xRange": x_range,
                "yRange": y_range,
            },
            "runNum": cfg.runNum,
            "scanNum": cfg.scanNum,
            "title": cfg.title,
        }

    def conn_status(self) -> dict[str, Any]:
        return {
            "cmd": "connStatus",
            "data": {
                "remote": self.config.data_remote,
                "connected": self.service_connected("data"),
            },
            "subject": {
                "remote": self.config.subject_remote,
                "connected": self.service_connected("subject"),
                "peers": self.relay.peer_names(),
                "waiting": self.relay.waiting(),
            },
        }

    def all_services_connected(self) -> bool:
        """Both the data and the subject side can take calls."""
        return self.service_connected("data") and self.service_connected("subject")

    def service_connected(self, kind: str) -> bool:
        """Whether the ``data`` or ``subject`` side can take calls.

        Local services always can; a remote data service when connected; the subject side
        when it is local, or a subject service or feedback page is connected.
        """
        if kind == "subject":
            return not self.config.subject_remote or bool(self.relay.peers())
        channel = self.channels.get(kind)
        return True if channel is None else channel.connected

    def _script_log(self, line: str) -> None:
        """A line on the page's script log (a download's progress, say)."""
        self._log_line("userLog", line)

    def _on_script_line(self, script: str, stream: str, line: str) -> None:
        self._log_line("userLog" if script == "mainScript" else "sessionLog", line)
        for hook in self.line_hooks:
            hook(script, stream, line)

    def _on_run_status(self, status: RunStatus) -> None:
        ended = status.state in (RunState.STOPPED, RunState.COMPLETE, RunState.FAILED)
        if ended and status.script == "mainScript" and self.simulator is not None:
            self.simulator.stop(wait=False)
        self.ui.broadcast(status.as_message())
        if status.state == RunState.FAILED:  # the cause, once: the status names the script
            self.ui.broadcast(
                {
                    "cmd": "userError",
                    "error": status.detail or status.message,
                    "script": status.script,
                }
            )

    # ------------------------------------------------------------ commands from pages

    async def handle_ui(self, ws: WebSocket, message: dict[str, Any], user: str) -> None:
        cmd = message["cmd"]
        try:
            if cmd == "getState":
                await self.ui.send_to(
                    ws,
                    {
                        "cmd": "hello",
                        "project": self.config.project_name,
                        "user": user,
                        "title": self._config_title(),
                        "replay": self.replay_note(),
                    },
                )
                await self.ui.send_to(ws, self.config_state())
                await self.ui.send_to(ws, self.runner.status.as_message())
                await self.ui.send_to(ws, self.conn_status())
                await self.ui.send_to(
                    ws, {"cmd": "setDataPoints", "value": self.web.getPreviousDataPoints()}
                )
                await self.ui.send_to(ws, self.web.quality_state())
                await self.ui.send_to(ws, self.log_history())
            elif cmd == "runScript":
                await self.run_script(
                    str(message.get("script")), message.get("runNum"), message.get("scanNum")
                )
            elif cmd == "stop":
                await self.runner.stop()
            elif cmd == "saveConfig":
                values = message.get("values")
                if not isinstance(values, dict):
                    raise ConfigError("saveConfig needs a 'values' object")
                try:
                    changed = await asyncio.to_thread(self.settings.save, values)
                except ConfigError as exc:
                    await self.ui.send_to(
                        ws, {"cmd": "configError", "errors": exc.errors or {"config": str(exc)}}
                    )
                    return
                self._config_stamp = self.settings.stamp()
                if changed:
                    logger.info("user %s changed settings: %s", user, ", ".join(changed))
                else:
                    logger.info("user %s saved the settings unchanged", user)
                self.ui.broadcast({"cmd": "configSaved", "filename": str(self.settings.path)})
                self.ui.broadcast(self.config_message())
            elif cmd == "clearPlots":
                self.web.clearAllPlots()
            elif cmd == "clearQuality":
                self.web.clearQuality()
            else:
                raise StateError(f"unknown command {cmd!r}")
        except RTCloudError as exc:
            await self.ui.send_to(ws, {"cmd": "userError", "error": str(exc)})

    async def run_script(self, script: str, run_num: Any = None, scan_num: Any = None) -> None:
        """Start one of the project's scripts with the current settings."""
        if script not in SCRIPTS:
            raise StateError(f"unknown script {script!r}; expected one of {list(SCRIPTS)}")
        if self.runner.running:  # before the run's settings copy is written over
            raise StateError(
                f"{self.runner.status.script} is still running; stop it before starting {script}"
            )
        path = {
            "mainScript": self.config.main_script,
            "initScript": self.config.init_script,
            "finalizeScript": self.config.finalize_script,
        }[script]
        args = ["--config", str(self.settings.path)]
        replay: tuple[ScannerSimulator, ReplayPlan, list[int]] | None = None
        if script == "mainScript":
            cfg = self.settings.load()
            runs = _int_list(run_num if run_num is not None else cfg.runNum, "run numbers")
            scans = _int_list(scan_num if scan_num is not None else cfg.scanNum, "scan numbers")
            # As RT-Cloud did: the script gets only --config, a copy of the settings with
            # the page's run and scan numbers (a script whose argparse knows no --runs or
            # --scans would stop at an unknown option)
            subject = re.sub(r"[^A-Za-z0-9_-]", "", str(cfg.subjectName or ""))
            name = f"cfg_sub{subject}_run{runs[0]}{self.settings.path.suffix}"
            run_config = self.settings.write_copy(
                self.settings.path.with_name(name), {"runNum": runs, "scanNum": scans}
            )
            args = ["--config", str(run_config)]
            if self.simulator is not None and not self.runner.running:
                replay = (self.simulator, self.replay_plan(), scans[: len(runs)])
        if replay is not None:  # the old files of these scans go before the script looks
            simulator, plan, scans = replay
            await asyncio.to_thread(simulator.start, plan, scans)
        try:
            if script == "mainScript" and not self.runner.running:
                with self._log_lock:  # the page clears its Run log at a run's start
                    self._log_history["userLog"].clear()
            await self.runner.start(script, path, args, self.config.project_dir)
        except BaseException:
            if replay is not None:
                replay[0].stop(wait=False)
            raise

    # ------------------------------------------------------------ lifecycle

    def _uvicorn_config(self) -> uvicorn.Config:
        kwargs: dict[str, Any] = {}
        if self.config.tls_cert is not None:
            kwargs["ssl_certfile"] = str(self.config.tls_cert)
            kwargs["ssl_keyfile"] = str(self.config.tls_key) if self.config.tls_key else None
        return uvicorn.Config(
            create_app(self),
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="websockets-sansio",
            ws_max_size=64 * 1024 * 1024,
            ws_ping_interval=5.0,
            ws_ping_timeout=10.0,
            timeout_graceful_shutdown=3,
            # X-Forwarded-For would let anyone on this computer pick the address that the
            # login throttle counts failures against; no proxy of ours sends it
            proxy_headers=False,
            **kwargs,
        )

    def _prepare(self) -> None:
        self.bridge.start()
        self._write_info()
        if self.config.host not in ("127.0.0.1", "localhost", "::1"):
            if self.config.insecure and not self.uses_tls:
                logger.warning(
                    "INSECURE: listening on %s without TLS (--insecure); passwords and data "
                    "cross the network in clear text",
                    self.config.host,
                )

    def run(self) -> None:
        """Serve in this thread until :meth:`stop`, Ctrl-C or SIGTERM (each stops cleanly)."""
        self._uvicorn = _Uvicorn(self._uvicorn_config(), self.started)
        previous = None
        if threading.current_thread() is threading.main_thread():

            def on_sigterm(signum: int, frame: object) -> None:
                logger.info("SIGTERM: stopping")
                if self._uvicorn is not None:
                    self._uvicorn.should_exit = True

            previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            self._prepare()  # the connection file exists from here: SIGTERM must remove it
            self._uvicorn.run(sockets=[self._sock])
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self._cleanup()

    def start_in_thread(self, timeout: float = 30.0) -> ProjectServer:
        """Start serving in a background thread; return once connections are accepted."""
        self._prepare()
        self._uvicorn = _Uvicorn(self._uvicorn_config(), self.started)
        failure: list[BaseException] = []

        def target() -> None:
            assert self._uvicorn is not None
            try:
                self._uvicorn.run(sockets=[self._sock])
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                self.started.set()

        self._thread = threading.Thread(target=target, name="rtcloud-server", daemon=True)
        self._thread.start()
        if not self.started.wait(timeout):
            raise StateError(f"the project server did not start within {timeout} s")
        if failure:
            raise StateError(f"the project server failed to start: {failure[0]}")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the script, the web server and the RPyC bridge."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.simulator is not None:
            self.simulator.close()
        self.uploads.close()
        self.timeline.close()
        self.bridge.stop()
        self._remove_info()
        if self.data is not None:
            self.data.close()
        if self.bids is not None:
            self.bids.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> ProjectServer:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _int_list(value: Any, what: str) -> list[int]:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{what} must be a non-empty list of whole numbers, got {value!r}")
    out: list[int] = []
    for item in value:
        try:
            if isinstance(item, bool):
                raise ValueError
            out.extend(int(part) for part in str(item).split(",") if part.strip())
        except ValueError:
            raise ConfigError(f"{what} must be whole numbers, got {item!r}") from None
    if not out:
        raise ConfigError(f"{what} must not be empty")
    return out


def _os_user() -> str:
    """The login name of whoever runs this server ("local" if the OS cannot tell)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user database entry, no LOGNAME/USER (containers)
        return "local"
