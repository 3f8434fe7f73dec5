"""Password file, sessions, throttling and one-time tokens."""

import os
import stat
import sys
import time

import pytest

from rtcloud.errors import AuthenticationError, ValidationError
from rtcloud.server.auth import LoginThrottle, OneTimeTokens, PasswordFile, SessionSigner


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
    signer = SessionSigner(max_age=1)
    value = signer.sign("alice")
    assert signer.user_of(value) == "alice"
    assert signer.user_of(value[:-2] + "xx") is None
    assert SessionSigner().user_of(value) is None  # another server's key
    assert signer.user_of(None) is None
    expired = SessionSigner(b"k" * 32, max_age=0)
    token = expired.sign("bob")
    time.sleep(1.1)
    assert expired.user_of(token) is None


def test_throttle_grows_then_resets():
    throttle = LoginThrottle(free=2, base=0.5, cap=4)
    assert throttle.delay("ip:1") == 0
    for _ in range(2):
        throttle.failed("ip:1", "user:a")
    assert throttle.delay("ip:1") == 0.5
    throttle.failed("ip:1", "user:a")
    assert throttle.delay("user:a") == 1.0
    for _ in range(10):
        throttle.failed("ip:1")
    assert throttle.delay("ip:1") == 4
    throttle.succeeded("ip:1", "user:a")
    assert throttle.delay("ip:1", "user:a") == 0


def test_one_time_tokens_work_once():
    tokens = OneTimeTokens()
    token = tokens.issue("alice")
    assert tokens.redeem(token) == "alice"
    with pytest.raises(AuthenticationError):
        tokens.redeem(token)
    with pytest.raises(AuthenticationError):
        tokens.redeem("made-up")
