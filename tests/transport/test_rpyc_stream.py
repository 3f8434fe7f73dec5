"""FastSocketStream on a real socket pair: buffered reads return exactly what was sent."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from rpyc.core.channel import Channel

from rtcloud.transport.rpyc_stream import READ_BUFFER, FastSocketStream


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, FastSocketStream(b)
    a.close()
    b.close()


def test_two_messages_in_one_recv_are_read_apart(pair):
    sender, stream = pair
    sender.sendall(b"headAbodyA" + b"headBbodyBB")
    assert stream.read(5) == b"headA"
    assert stream.poll(0)  # the rest is buffered: no wait for the socket
    assert stream.read(5) == b"bodyA"
    assert stream.read(5) == b"headB"
    assert stream.read(6) == b"bodyBB"
    assert not stream.poll(0)  # nothing left anywhere


def test_poll_waits_for_the_socket_when_nothing_is_buffered(pair):
    sender, stream = pair
    assert not stream.poll(0.05)
    sender.sendall(b"x")
    assert stream.poll(1)
    assert stream.read(1) == b"x"


@pytest.mark.parametrize("size", [1, READ_BUFFER - 1, READ_BUFFER, READ_BUFFER * 3 + 17])
def test_a_message_arriving_in_pieces_is_read_whole(pair, size):
    sender, stream = pair
    payload = os.urandom(size)
    prefix = b"12345"

    def send() -> None:
        data = prefix + payload + b"tail"
        for start in range(0, len(data), 7001):  # many small writes
            sender.sendall(data[start : start + 7001])

    thread = threading.Thread(target=send)
    thread.start()
    assert stream.read(5) == prefix
    assert stream.read(size) == payload
    assert stream.read(4) == b"tail"
    thread.join()


def test_rpyc_frames_round_trip_through_the_channel(pair):
    sender_sock, stream = pair
    sender = Channel(FastSocketStream(sender_sock), compress=False)
    receiver = Channel(stream, compress=False)
    messages = [b"", b"small", os.urandom(200_000), b"after the large one"]
    for message in messages:
        sender.send(message)
    assert [receiver.recv() for _ in messages] == messages


def test_the_peer_closing_mid_message_is_eof(pair):
    sender, stream = pair
    sender.sendall(b"only part")
    sender.shutdown(socket.SHUT_WR)
    with pytest.raises(EOFError):
        stream.read(100)
