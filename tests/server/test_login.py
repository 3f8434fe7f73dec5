"""Logins under attack, over real HTTP: equal cost, queued guesses, services that get back in.

The server runs with a :class:`helpers.FakeClock`: throttled attempts wait on it, so the
tests see who is waiting and release them by moving the clock, without sleeping.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from helpers import FakeClock, wait_for
from rtcloud.errors import ValidationError
from rtcloud.feedback import FeedbackClient
from rtcloud.server.auth import PasswordFile

PASSWORD = "the right one"


def address(server):
    return server.url.split("//")[1].rstrip("/")


def add_user(server, user="alice", password=PASSWORD):
    PasswordFile(server.passwords.path, rounds=4).set_password(user, password)


def post_login(server, user, password):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.post("/login", data={"username": user, "password": password})


class Attack:
    """``count`` wrong logins sent at the same moment from real HTTP clients in threads."""

    def __init__(self, server, users):
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(len(users))
        barrier = threading.Barrier(len(users))

        def one(user):
            barrier.wait()
            status = post_login(server, user, "wrong guess").status_code
            with self._lock:
                self.statuses.append(status)

        self._futures = [self._pool.submit(one, user) for user in users]

    def answered(self, status=None):
        with self._lock:
            return sum(1 for s in self.statuses if status is None or s == status)

    def finish(self, clock):
        clock.advance(3600)  # release whoever still waits
        for future in self._futures:
            future.result(30)
        self._pool.shutdown()


def settled(attack, clock, total):
    """Every attempt is answered or waits its turn on the clock."""
    return lambda: attack.answered() + clock.sleeping == total


def test_long_password_is_a_plain_refusal_for_known_and_unknown_users(server):
    add_user(server)
    long = "x" * 100  # bcrypt 5 raises on more than 72 bytes
    assert post_login(server, "nobody", long).status_code == 401
    assert post_login(server, "alice", long).status_code == 401
    assert post_login(server, "alice", PASSWORD).status_code == 303


def test_add_user_refuses_a_password_bcrypt_would_cut(tmp_path):
    with pytest.raises(ValidationError, match="72 bytes"):
        PasswordFile(tmp_path / "u.json", rounds=4).set_password("alice", "é" * 40)


def test_failed_logins_cost_the_same_for_known_and_unknown_users(tmp_path, monkeypatch):
    # Every failed check must be one real bcrypt check at the cost of the file's hashes:
    # for an unknown user, or a password over bcrypt's limit, not a cost of its own or none.
    import bcrypt

    users = PasswordFile(tmp_path / "u.json", rounds=8)
    users.set_password("alice", PASSWORD)
    checks: list[tuple[int, bytes]] = []
    real_checkpw = bcrypt.checkpw

    def counted(password: bytes, hashed: bytes) -> bool:
        checks.append((len(password), hashed.split(b"$")[2]))
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counted)
    for user, password in [
        ("alice", "wrong"),
        ("nobody", "wrong"),
        ("nobody", "y" * 100),
        ("alice", "y" * 100),
    ]:
        checks.clear()
        assert users.verify(user, password) is False
        assert [cost for _, cost in checks] == [b"08"], (user, len(password), checks)
        assert checks[0][0] <= 72
    checks.clear()
    assert users.verify("alice", PASSWORD) is True and len(checks) == 1


@pytest.mark.parametrize("spread", ["one user", "thirty users"])
def test_concurrent_wrong_logins_queue_behind_each_other(server_factory, spread):
    clock = FakeClock()
    server = server_factory(clock=clock)
    add_user(server)
    users = ["alice"] * 30 if spread == "one user" else [f"user{i}" for i in range(30)]
    attack = Attack(server, users)
    try:
        wait_for(settled(attack, clock, 30), what="every attempt answered or queued")
        free = server.throttle.free
        # Only the free attempts were checked at once; the next ones wait their turn, and
        # those whose turn is more than a minute away are refused at once without a check.
        assert attack.answered(401) == free
        waiting = clock.sleeping
        assert waiting > 0
        assert attack.answered(429) == 30 - free - waiting
        turn = server.throttle.base
        for released in range(1, waiting + 1):
            clock.advance(turn)
            assert clock.sleeping == waiting - released  # one turn, one attempt
            wait_for(lambda r=released: attack.answered(401) == free + r, what="its answer")
            turn *= 2
            turn = min(turn, server.throttle.cap)
    finally:
        attack.finish(clock)


def test_a_service_gets_back_in_at_once_while_strangers_guess(server_factory):
    clock = FakeClock()
    server = server_factory(subject_remote=True, clock=clock)
    add_user(server)
    first = FeedbackClient(address(server), "alice", PASSWORD).start(timeout=10)
    first.close()
    wait_for(lambda: not server.service_connected("subject"), what="the first service gone")
    attack = Attack(server, ["alice"] * 30)
    try:
        wait_for(settled(attack, clock, 30), what="the strangers' attempts answered or queued")
        # The restarted service (a new client, with the device token kept on disk) logs in
        # and connects while the strangers still wait: nobody moves the clock.
        again = FeedbackClient(address(server), "alice", PASSWORD).start(timeout=10)
        try:
            assert server.service_connected("subject")
        finally:
            again.close()
        assert attack.answered(401) == server.throttle.free
        # Without the token, the right password waits behind the strangers like theirs.
        assert post_login(server, "alice", PASSWORD).status_code == 429
    finally:
        attack.finish(clock)


def test_a_device_token_does_not_help_a_wrong_password(server_factory):
    clock = FakeClock()
    server = server_factory(clock=clock)
    add_user(server)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert (
            client.post("/login", data={"username": "alice", "password": PASSWORD}).status_code
            == 303
        )
        assert "rtcloud_device" in client.cookies
        statuses = [
            client.post("/login", data={"username": "alice", "password": "bad"}).status_code
            for _ in range(server.throttle.free)
        ]
        assert statuses == [401] * server.throttle.free
        # the device's own queue now throttles it, like anyone else
        waiting = threading.Thread(
            target=lambda: client.post("/login", data={"username": "alice", "password": "bad"})
        )
        waiting.start()
        wait_for(lambda: clock.sleeping == 1, what="the device's fourth guess to queue")
        clock.advance(60)
        waiting.join(30)
