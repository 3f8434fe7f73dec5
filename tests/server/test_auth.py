"""Password file, sessions, throttling and one-time tokens."""

import os
import stat
import sys

import pytest

from helpers import FakeClock
from rtcloud.errors import AuthenticationError, ValidationError
from rtcloud.server.auth import DeviceTokens, OneTimeTokens, PasswordFile, SessionSigner
from rtcloud.server.throttle import LoginThrottle, LoginThrottled


def test_password_file_stores_only_hashes(tmp_path):
    path = tmp_path / "users.json"
    users = PasswordFile(path, rounds=4)
    users.set_password("alice", "correct horse")
    users.set_password("bob", "hunter22")
    assert users.verify("alice", "correct horse")
    assert not users.verify("alice", "wrong")
    assert not users.verify("nobody", "correct horse")
    assert "correct horse" not in path.read_text()
    assert users.users() == ["alice", "bob"]
    users.set_password("alice", "new password")
    assert users.verify("alice", "new password") and not users.verify("alice", "correct horse")
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_password_file_rejects_bad_input(tmp_path):
    users = PasswordFile(tmp_path / "u.json", rounds=4)
    with pytest.raises(ValidationError):
        users.set_password("with space", "pw1234")
    with pytest.raises(ValidationError):
        users.set_password("carol", "pw")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValidationError, match="add-user"):
        PasswordFile(tmp_path / "broken.json").verify("a", "b")


def test_sessions_sign_and_expire():
    clock = FakeClock()
    signer = SessionSigner(max_age=10, clock=clock)
    value = signer.sign("alice")
    assert signer.user_of(value) == "alice"
    assert signer.user_of(value[:-2] + "xx") is None
    assert SessionSigner().user_of(value) is None  # another server's key
    assert signer.user_of(None) is None
    clock.advance(10)
    assert signer.user_of(value) == "alice"
    clock.advance(0.5)
    assert signer.user_of(value) is None


def test_device_tokens_name_their_user_and_outlive_restarts(tmp_path):
    clock = FakeClock()
    devices = DeviceTokens.in_folder(tmp_path, lifetime=100, clock=clock)
    token = devices.issue("alice")
    assert devices.device_of(token, "alice")
    assert devices.device_of(token, "bob") is None
    assert devices.issue("alice") != token
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(tmp_path / DeviceTokens.KEY_FILE).st_mode) == 0o600
    restarted = DeviceTokens.in_folder(tmp_path, lifetime=100, clock=clock)
    assert restarted.device_of(token, "alice") == devices.device_of(token, "alice")
    assert (
        DeviceTokens.in_folder(tmp_path / "other", clock=clock).device_of(token, "alice") is None
    )
    clock.advance(101)
    assert restarted.device_of(token, "alice") is None


def test_throttle_gives_turns_that_grow_then_resets():
    clock = FakeClock()
    throttle = LoginThrottle(free=2, base=0.5, cap=4, max_wait=10, clock=clock)
    # concurrent attempts: each takes the next turn before any of them is checked
    waits = [throttle.reserve("ip:1", "user:a") for _ in range(6)]
    assert waits == [0, 0, 0.5, 1.5, 3.5, 7.5]
    with pytest.raises(LoginThrottled) as refused:
        throttle.reserve("ip:1")  # turn 11.5 s away: refused, nothing reserved
    assert refused.value.retry_after == 11.5
    assert throttle.pending("ip:1") == 6
    assert throttle.reserve("ip:2", "user:b") == 0  # other keys are not held up
    clock.advance(11.5)
    assert throttle.reserve("ip:1") == 0
    throttle.succeeded("ip:1", "user:a")
    assert throttle.reserve("ip:1", "user:a") == 0
    assert throttle.pending("ip:1") == 1


def test_throttle_forgets_quiet_keys_and_bounds_its_records():
    clock = FakeClock()
    throttle = LoginThrottle(free=1, base=1, forget_after=60, max_records=100, clock=clock)
    throttle.reserve("ip:1")
    clock.advance(61)
    throttle.reserve("ip:2")
    assert throttle.pending("ip:1") == 0
    for i in range(500):
        throttle.reserve(f"user:{i}")
    assert len(throttle._records) <= 100


def test_one_time_tokens_work_once_and_expire():
    clock = FakeClock()
    tokens = OneTimeTokens(lifetime=60, clock=clock)
    token = tokens.issue("alice")
    assert tokens.redeem(token) == "alice"
    with pytest.raises(AuthenticationError):
        tokens.redeem(token)
    with pytest.raises(AuthenticationError):
        tokens.redeem("made-up")
    late = tokens.issue("bob")
    clock.advance(61)
    with pytest.raises(AuthenticationError):
        tokens.redeem(late)
