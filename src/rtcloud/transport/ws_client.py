"""The service end of the server link: log in, connect out, answer calls, reconnect.

Remote services (the scanner-side data service, the subject service) sit behind firewalls,
so they dial out to the server, which then calls them. :class:`ServiceClient` logs in with a
user name and password (HTTP POST ``/login``; a wrong password stops it with
:class:`~rtcloud.errors.AuthenticationError` instead of retrying forever; "too many failed
logins" is waited out), opens
``/ws/service/<role>`` with the session in an ``Authorization`` header (the server takes no
cookie there, so a browser's session cannot open it), and serves the registered objects through a
:class:`~rtcloud.rpc.dispatch.Dispatcher`: each call runs in a worker thread, and replies go
out as the socket takes them. A lost link is retried with backoff (0.5 s doubling to 5 s),
and said so in the log. A service may also call the server (:meth:`ServiceClient.call`),
e.g. to report a participant's response.

The first login gives a device token, kept in ``~/.rtcloud/devices/`` (one file per server
and user): logins that carry it are throttled on their own, so strangers guessing the same
user's password do not keep a restarted service out. Only the standard library and
``websockets`` are
used, so this runs on Windows and macOS stimulus and scanner computers, and inside
PsychoPy's Python.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidStatus

from rtcloud.errors import (
    AuthenticationError,
    CallTimeout,
    ConfigError,
    ProtocolError,
    ServiceReplacedError,
    ServiceUnavailableError,
    ValidationError,
)
from rtcloud.rpc.dispatch import Dispatcher
from rtcloud.rpc.protocol import (
    CallFailed,
    CallResult,
    IncomingCall,
    IncomingCallCancelled,
    RpcConnection,
)
from rtcloud.server.config import is_loopback
from rtcloud.tls import client_context
from rtcloud.transport.ws_socket import REPLACED, LinkClosed, WsSocket

__all__ = ["ServiceClient", "parse_server"]

logger = logging.getLogger(__name__)

COOKIE_NAME = "rtcloud_session"
DEVICE_COOKIE = "rtcloud_device"


def device_token_path(host: str, port: int, username: str) -> Path:
    """Where a service keeps its device token for one server and user."""
    name = hashlib.sha256(f"{host}:{port}/{username}".encode()).hexdigest()[:24]
    return Path.home() / ".rtcloud" / "devices" / f"{name}.token"


def parse_server(text: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); ValidationError saying the expected form."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValidationError(f"server {text!r} must look like HOST:PORT, e.g. 192.168.1.10:8888")
    return host.strip("[]"), int(port)


class ServiceClient:
    """Serve ``objects`` (interface name -> object) to the project server at ``server``.

    Args:
        server: ``HOST:PORT`` of ``rtcloud serve``.
        role: ``data`` or ``subject``.
        username, password: a user of the server (``rtcloud add-user``).
        tls: connect with TLS (https/wss).
        fingerprint: SHA-256 fingerprint the server's certificate must have (pinning; checked
            in the TLS handshake, so another server gets no byte of the login).
        cafile: CA (or self-signed certificate) file to trust instead.
        label: what kind of peer this is (e.g. ``feedback client``): the server names
            and recognizes it by that, its user and its host.
    """

    def __init__(
        self,
        server: str,
        role: str,
        objects: dict[str, object],
        *,
        username: str,
        password: str,
        tls: bool = False,
        fingerprint: str | None = None,
        cafile: str | None = None,
        workers: int = 8,
        on_status: Callable[[str], None] | None = None,
        label: str = "",
        instance: str = "",
    ) -> None:
        self.host, self.port = parse_server(server)
        self.role = role
        self.label = label  # what kind of peer this is, for the server's log and page
        # which one of its kind this is, for the server to tell apart two on one computer
        # under one login (a subject service: its output folder, the same after a restart)
        self.instance = instance
        self.username, self._password = username, password
        self.tls = tls or bool(fingerprint) or bool(cafile)
        if not self.tls and not is_loopback(self.host):
            raise ConfigError(
                f"{self.host} is not this computer, and without TLS the password would cross "
                "the network in clear: pass --tls (and --fingerprint or --cafile when the "
                "server's certificate is its own; `rtcloud serve` prints both)"
            )
        self.fingerprint = fingerprint
        self._ssl = client_context(fingerprint=fingerprint, cafile=cafile) if self.tls else None  # type: ignore[arg-type]
        self.dispatcher = Dispatcher()
        for name, obj in objects.items():
            self.dispatcher.register(name, obj)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rtcloud-{role}")
        self._stop = threading.Event()
        self._on_status = on_status or (lambda text: logger.info("%s", text))
        self.connected = threading.Event()
        self._ws: WsSocket | None = None
        # The current link, and our own calls waiting for the server's answer (for call()).
        self._link: _Link | None = None
        self._calls: dict[int, concurrent.futures.Future[Any]] = {}
        self._device_path = device_token_path(self.host, self.port, username)

    # ------------------------------------------------------------ login

    def _device_token(self) -> str | None:
        try:
            token = self._device_path.read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            return None
        return token if token and token.isprintable() and " " not in token else None

    def _keep_device_token(self, token: str) -> None:
        from rtcloud.server.auth import write_private_file  # the one private-file writer

        try:
            write_private_file(self._device_path, token + "\n")
        except OSError as exc:  # it only spares a queue behind strangers: say so, go on
            logger.warning("could not keep the device token in %s: %s", self._device_path, exc)

    def _http(self) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=10, context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def login(self) -> str:
        """Log in; return the session cookie. AuthenticationError on a wrong password."""
        conn = self._http()
        try:
            body = urllib.parse.urlencode(
                {"username": self.username, "password": self._password, "next": "/"}
            )
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            device = self._device_token()
            if device:
                headers["Cookie"] = f"{DEVICE_COOKIE}={device}"
            conn.request("POST", "/login", body, headers)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        if response.status == 401:
            raise AuthenticationError(
                f"the server at {self.host}:{self.port} refused user {self.username!r}: wrong "
                "user name or password (add users with rtcloud add-user on the server)"
            )
        if response.status == 429:
            retry = response.getheader("Retry-After") or "a few"
            raise ServiceUnavailableError(
                f"the server at {self.host}:{self.port} refuses logins for a while (too many "
                f"failed logins for user {self.username!r} or from this address); it says to "
                f"try again in {retry} s"
            )
        cookies = {}
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                cookies[name.strip()] = rest.split(";", 1)[0]
        if cookies.get(DEVICE_COOKIE):
            self._keep_device_token(cookies[DEVICE_COOKIE])
        if cookies.get(COOKIE_NAME):
            return cookies[COOKIE_NAME]
        raise AuthenticationError(
            f"the server at {self.host}:{self.port} answered the login with status "
            f"{response.status} and no session; is it an rtcloud server?"
        )

    # ------------------------------------------------------------ running

    def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:  # already closed
                pass

    def run_forever(self) -> None:
        """Connect, serve, and reconnect until :meth:`stop`; AuthenticationError ends it."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                cookie = self.login()
                self._serve(cookie)
                delay = 0.5
            except (AuthenticationError, ServiceReplacedError):
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 403 and self.role:
                    self._on_status(
                        f"the server does not take a remote {self.role} service (start it with "
                        f"--{self.role}Remote); retrying in {delay:.1f} s"
                    )
                else:
                    self._on_status(f"the server refused the connection ({status}); retrying")
            except (OSError, InvalidHandshake, ProtocolError) as exc:
                self._on_status(
                    f"no connection to {self.host}:{self.port} ({exc}); retrying in {delay:.1f} s"
                )
            self.connected.clear()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 5.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _serve(self, cookie: str) -> None:
        scheme = "wss" if self.tls else "ws"
        url = f"{scheme}://{self.host}:{self.port}/ws/service/{self.role}"
        query = {"peer": self.label} if self.label else {}
        if self.instance:
            query["instance"] = self.instance
        url += "?" + urllib.parse.urlencode(query)
        ws = WsSocket.connect(
            url,
            headers={"Authorization": f"Bearer {cookie}"},  # never a cookie: see the server
            ssl_context=self._ssl,
            open_timeout=10,
            ping_interval=5,
            ping_timeout=10,
        )
        try:
            self._ws = ws
            conn = RpcConnection(f"{self.role}-service", spool=self.dispatcher.spool)
            link = _Link(ws, conn)
            lock = link.lock
            self._link = link
            sender = threading.Thread(target=link.sender, daemon=True)
            sender.start()
            link.wake.set()
            self.connected.set()
            self._on_status(f"connected to {url} as the {self.role} service")
            try:
                for message in ws.messages():
                    if isinstance(message, str):
                        raise ProtocolError("the server sent a text frame")
                    with lock:
                        conn.receive_frame(message)
                        events = conn.events_received()
                    for event in events:
                        if isinstance(event, IncomingCall):
                            if self.dispatcher.is_quick(event.interface, event.method):
                                self._run_call(link, event)  # never blocks: at once, in order
                            else:
                                self._pool.submit(self._run_call, link, event)
                        elif isinstance(event, IncomingCallCancelled):
                            logger.debug("call %s cancelled by the server", event.call_id)
                        else:
                            self._settle(event)
                    with lock:  # pongs and refusals the protocol queued: the sender's job
                        queued = conn.has_frames_to_send()
                    if queued:
                        link.wake.set()
            finally:
                self.connected.clear()
                with lock:
                    conn.fail_all("the connection to the server was lost")
                    events = conn.events_received()
                    self._link = None
                for event in events:
                    self._settle(event)
                link.closed = True
                link.wake.set()
                self._ws = None
                self._on_status(f"disconnected from {url}")
            if ws.close_code == REPLACED:
                raise ServiceReplacedError(
                    f"another {self.role} service connected to the server at {self.host}:"
                    f"{self.port} and took this one's place: this one stops (stop the one not "
                    "wanted; one data service serves a project)"
                )
        finally:
            ws.close()

    def _settle(self, event: object) -> None:
        """Hand the reply to one of our own calls to the thread waiting for it."""
        if isinstance(event, (CallResult, CallFailed)):
            future = self._calls.pop(event.call_id, None)
            if future is not None and not future.done():
                if isinstance(event, CallResult):
                    future.set_result(event.value)
                else:
                    future.set_exception(event.exception)

    def call(
        self,
        interface: str,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """Call ``interface.method`` on the server and wait up to ``timeout`` s for the result.

        Raises:
            ServiceUnavailableError: not connected, or the link dropped before the answer.
            CallTimeout: no answer within ``timeout`` seconds.
        """
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        link = self._link
        if link is None or not self.connected.is_set():
            raise ServiceUnavailableError(
                f"{interface}.{method}: not connected to the server at "
                f"{self.host}:{self.port} (it reconnects by itself; try again shortly)"
            )
        with link.lock:
            call_id = link.conn.call(interface, method, args, kwargs or {}, deadline_s=timeout)
            self._calls[call_id] = future
        link.flush()
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise
            with link.lock:
                self._calls.pop(call_id, None)
                link.conn.expire(call_id, timeout)
                link.conn.events_received()
            raise CallTimeout(
                f"{interface}.{method}: the server did not answer within {timeout:.3g} s"
            ) from None

    def _run_call(self, link: _Link, call: IncomingCall) -> None:
        try:
            value = self.dispatcher.dispatch(call)
        except Exception as exc:  # every error goes back to the caller, typed
            with link.lock:
                link.conn.send_error(call.call_id, exc)
        else:
            with link.lock:
                try:
                    link.conn.send_result(call.call_id, value)
                except Exception as exc:  # the value cannot be sent: say why
                    link.conn.send_error(call.call_id, exc)
        link.flush()


class _Link:
    """One connection: the socket, the protocol state and who may send.

    Whoever queues frames sends them (:meth:`flush`), one thread at a time; a thread that
    finds another one sending leaves its frames to it. The sender thread flushes what the
    receiving side queues (pongs, refusals). Small frames still go between the chunks of a
    large reply, in the order :meth:`RpcConnection.next_frame` gives.
    """

    def __init__(self, ws: WsSocket, conn: RpcConnection) -> None:
        self.ws = ws
        self.conn = conn
        self.lock = threading.Lock()  # guards conn
        self.wake = threading.Event()
        self.closed = False
        self._sending = threading.Lock()

    def flush(self) -> None:
        """Send every queued frame, unless another thread is doing so (then it will)."""
        while True:
            if not self._sending.acquire(blocking=False):
                return
            try:
                while True:
                    with self.lock:
                        frame = self.conn.next_frame_parts()
                    if frame is None:
                        break
                    self.ws.send(frame)
            except LinkClosed:
                return  # the receiving side sees the close and cleans up
            finally:
                self._sending.release()
            with self.lock:  # frames queued while we were letting go of the send lock
                if not self.conn.has_frames_to_send():
                    return

    def sender(self) -> None:
        while not self.closed:
            self.wake.wait()
            self.wake.clear()
            self.flush()


def wait_connected(client: ServiceClient, timeout: float) -> bool:
    """Wait until the client is connected (for tests and the demo)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.connected.wait(0.05):
            return True
    return False
