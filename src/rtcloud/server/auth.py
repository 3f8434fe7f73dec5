"""Who may use the project server: users, passwords, sessions, throttling, one-time tokens.

- Users live in a JSON password file (``rtcloud add-user``) holding a bcrypt hash per user;
  the file is written atomically and readable by its owner only.
- A successful login gives a session cookie signed with a per-server random key (so
  restarting the server ends every session); it expires after ``max_age`` seconds.
- Wrong passwords slow down: after a few failures from one client or for one user name, every
  further attempt waits longer (doubling, capped) before it is answered.
- For a quick local start the server prints a URL carrying a one-time token that logs the
  browser in once, as Jupyter does.

Passwords and tokens are never logged.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from rtcloud.errors import AuthenticationError, ValidationError

__all__ = [
    "LoginThrottle",
    "OneTimeTokens",
    "PasswordFile",
    "SessionSigner",
    "TEST_PASSWORD",
    "TEST_USER",
    "default_password_file",
]

TEST_USER = "test"
TEST_PASSWORD = "test"

# Hash checked for unknown users so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"rtcloud-no-such-user", bcrypt.gensalt(rounds=10))


def default_password_file() -> Path:
    """``~/.rtcloud/users.json`` (or ``$RTCLOUD_PASSWORD_FILE``)."""
    override = os.environ.get("RTCLOUD_PASSWORD_FILE")
    return Path(override) if override else Path.home() / ".rtcloud" / "users.json"


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` atomically to a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class PasswordFile:
    """Users and their bcrypt password hashes, in a JSON file."""

    def __init__(self, path: str | Path, *, rounds: int = 12) -> None:
        self.path = Path(path)
        self.rounds = rounds
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValidationError(
                f"password file {str(self.path)!r} is unreadable ({exc}); recreate it with "
                "rtcloud add-user"
            ) from exc
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise ValidationError(
                f"password file {str(self.path)!r} has no 'users' table; recreate it with "
                "rtcloud add-user"
            )
        return {str(k): str(v) for k, v in users.items()}

    def users(self) -> list[str]:
        """The user names, sorted."""
        return sorted(self._load())

    def set_password(self, user: str, password: str) -> None:
        """Create ``user`` or change its password."""
        if not user or not user.strip() or any(c.isspace() for c in user):
            raise ValidationError(f"user name {user!r} must be non-empty and without spaces")
        if len(password) < 4:
            raise ValidationError("password must have at least 4 characters")
        hashed = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=self.rounds))
        with self._lock:
            users = self._load()
            users[user] = hashed.decode("ascii")
            write_private_file(self.path, json.dumps({"users": users}, indent=2) + "\n")

    def verify(self, user: str, password: str) -> bool:
        """True when ``password`` is ``user``'s password (constant work for unknown users)."""
        stored = self._load().get(user)
        candidate = password.encode("utf-8")
        if stored is None:
            bcrypt.checkpw(candidate, _DUMMY_HASH)
            return False
        try:
            return bcrypt.checkpw(candidate, stored.encode("ascii"))
        except ValueError:
            return False


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class LoginThrottle:
    """Slows down repeated wrong passwords per client address and per user name.

    The first ``free`` failures cost nothing; after that each attempt waits ``base`` seconds,
    doubling with every further failure up to ``cap``. A success clears the record; records
    are forgotten after ``forget_after`` seconds without failures.
    """

    free: int = 3
    base: float = 0.5
    cap: float = 30.0
    forget_after: float = 900.0
    _records: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def delay(self, *keys: str) -> float:
        """Seconds the next attempt for these keys must wait before it is checked."""
        now = time.monotonic()
        worst = 0
        with self._lock:
            for key in keys:
                rec = self._records.get(key)
                if rec is None:
                    continue
                if now - rec.last > self.forget_after:
                    del self._records[key]
                    continue
                worst = max(worst, rec.count)
        if worst < self.free:
            return 0.0
        return float(min(self.cap, self.base * 2 ** (worst - self.free)))

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                rec = self._records.setdefault(key, _Failures())
                rec.count += 1
                rec.last = now

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._records.pop(key, None)


class SessionSigner:
    """Signs and checks session cookie values (user name + issue time)."""

    def __init__(self, secret: bytes | None = None, *, max_age: float = 12 * 3600) -> None:
        self._serializer = URLSafeTimedSerializer(
            secret or secrets.token_bytes(32), salt="rtcloud-session"
        )
        self.max_age = max_age

    def sign(self, user: str) -> str:
        return self._serializer.dumps({"u": user})

    def user_of(self, value: str | None) -> str | None:
        """The user of a valid, unexpired cookie value, else None."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=int(self.max_age))
        except (SignatureExpired, BadSignature):
            return None
        user = data.get("u") if isinstance(data, dict) else None
        return user if isinstance(user, str) else None


class OneTimeTokens:
    """Tokens that log a browser in once (printed by the server at start)."""

    def __init__(self, *, lifetime: float = 24 * 3600) -> None:
        self.lifetime = lifetime
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (user, time.monotonic() + self.lifetime)
        return token

    def redeem(self, token: str) -> str:
        """The user the token was issued for; AuthenticationError when unknown, used or expired."""
        with self._lock:
            for known in list(self._tokens):
                if hmac.compare_digest(known, token):
                    user, expires = self._tokens.pop(known)
                    if time.monotonic() <= expires:
                        return user
        raise AuthenticationError(
            "this login link was already used or has expired; log in with your password"
        )
