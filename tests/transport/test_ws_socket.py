"""WsSocket, the services' WebSocket client, against real servers on 127.0.0.1.

The peer is websockets' own asyncio server (a well-kept implementation of the protocol), run
in a thread on port 0, or a plain TCP server where a misbehaving peer is needed.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.utils import accept_key

from rtcloud.transport.ws_socket import LinkClosed, WsSocket


class Server:
    """A websockets server in its own thread; ``handler(ws)`` runs per connection."""

    def __init__(self, handler, process_request=None):
        self.handler = handler
        self.process_request = process_request
        self.requests = []
        self._ready = threading.Event()
        self._loop = None
        self._stop = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    async def _main(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def record(connection, request):
            self.requests.append(request)
            if self.process_request is not None:
                return self.process_request(connection, request)
            return None

        async with serve(
            self.handler, "127.0.0.1", 0, process_request=record, max_size=None
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def close(self):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def servers():
    started = []
    yield lambda *a, **k: started.append(Server(*a, **k)) or started[-1]
    for server in started:
        server.close()


def test_messages_both_ways_with_headers_text_and_fragments(servers):
    async def handler(ws):
        await ws.send(b"\x00binary")
        await ws.send("text é")
        await ws.send([b"frag", b"mented ", b"message"])  # three frames, one message
        async for message in ws:
            await ws.send(b"echo " + message)

    server = servers(handler)
    link = WsSocket.connect(server.url, headers={"Cookie": "rtcloud_session=abc"})
    try:
        messages = link.messages()
        assert next(messages) == b"\x00binary"
        assert next(messages) == "text é"
        assert next(messages) == b"fragmented message"
        big = bytes(range(256)) * 8192  # 2 MiB: several socket reads
        link.send(big)
        assert next(messages) == b"echo " + big
        assert server.requests[0].headers["Cookie"] == "rtcloud_session=abc"
    finally:
        link.close()


@pytest.mark.parametrize(
    "sizes",
    [
        (65535,),  # framed by websockets
        (65536,),  # framed here: the smallest such message
        (22, 1 << 20),  # a chunk frame's header, then its data
        (1, 2, 3, 70001, 5, 131071),  # parts that turn the mask at every offset
    ],
)
def test_messages_sent_in_parts_arrive_whole(servers, sizes):
    """websockets' server unmasks and checks every frame: the parts, framed without being
    joined, must arrive as the one message they make, whatever their lengths."""
    received = []

    async def handler(ws):
        async for message in ws:
            received.append(message)
            await ws.send(len(message).to_bytes(8, "big"))

    server = servers(handler)
    link = WsSocket.connect(server.url)
    data = bytes(range(251)) * (sum(sizes) // 251 + 1)
    parts, at = [], 0
    for size in sizes:
        parts.append(memoryview(data)[at : at + size])
        at += size
    try:
        messages = link.messages()
        link.send(parts)
        assert int.from_bytes(next(messages), "big") == sum(sizes)
        link.send(parts[0])  # one part alone, as a view
        assert int.from_bytes(next(messages), "big") == sizes[0]
        assert received == [data[: sum(sizes)], bytes(parts[0])]
    finally:
        link.close()


def test_refused_handshake_raises_invalid_status_with_the_code(servers):
    def refuse(connection, request):
        return Response(403, "Forbidden", Headers(), b"no remote data service here\n")

    server = servers(lambda ws: None, process_request=refuse)
    with pytest.raises(InvalidStatus) as info:
        WsSocket.connect(server.url)
    assert info.value.response.status_code == 403


def test_server_closing_ends_the_messages_and_send_then_fails(servers):
    async def handler(ws):
        await ws.send(b"bye")
        await ws.close(1001, "going away")

    server = servers(handler)
    link = WsSocket.connect(server.url)
    assert list(link.messages()) == [b"bye"]  # ends by itself, no error
    with pytest.raises(LinkClosed):
        link.send(b"too late")


def test_close_from_another_thread_unblocks_the_reader(servers):
    async def handler(ws):
        await ws.wait_closed()

    server = servers(handler)
    link = WsSocket.connect(server.url)
    got = []
    reader = threading.Thread(target=lambda: got.extend(link.messages()))
    reader.start()
    time.sleep(0.2)
    start = time.monotonic()
    link.close()
    reader.join(5)
    assert not reader.is_alive() and time.monotonic() - start < 2
    assert got == []
    with pytest.raises(LinkClosed):
        link.send(b"after close")


def test_keepalive_pings_keep_a_quiet_link_open(servers):
    async def handler(ws):
        await asyncio.sleep(2.5)  # silent past the pong deadline: only pongs keep it alive
        await ws.send(b"still here")
        await ws.wait_closed()

    server = servers(handler)
    # pings go out every 0.1 s while the server is silent; a 2 s pong deadline is generous for
    # a loaded machine (the server's loop shares the test's process), and shorter than the
    # silence, so a link whose pongs were not read would close before the message
    link = WsSocket.connect(server.url, ping_interval=0.1, ping_timeout=2.0)
    try:
        assert next(link.messages()) == b"still here"
    finally:
        link.close()


def silent_server(answer_handshake):
    """A TCP server that (optionally) accepts the WebSocket handshake, then says nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    conns = []

    def run():
        conn, _ = listener.accept()
        conns.append(conn)
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        if answer_handshake:
            key = [
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            ][0]
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_key(key.decode()).encode()
                + b"\r\n\r\n"
            )
        time.sleep(5)

    threading.Thread(target=run, daemon=True).start()
    return listener, conns


def test_a_server_that_goes_silent_is_declared_lost():
    listener, conns = silent_server(answer_handshake=True)
    try:
        link = WsSocket.connect(
            f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", ping_interval=0.2, ping_timeout=0.3
        )
        start = time.monotonic()
        with pytest.raises(LinkClosed, match="considered lost"):
            list(link.messages())
        assert 0.4 < time.monotonic() - start < 3
    finally:
        listener.close()
        for conn in conns:
            conn.close()


def test_a_server_that_never_answers_the_handshake_times_out():
    listener, conns = silent_server(answer_handshake=False)
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            WsSocket.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", open_timeout=0.5)
        assert time.monotonic() - start < 3
    finally:
        listener.close()
        for conn in conns:
            conn.close()
