"""Who may use the project server: users, passwords, sessions, device and one-time tokens.

- Users live in a JSON password file (``rtcloud add-user``) holding a bcrypt hash per user;
  the file is written atomically and readable by its owner only. A wrong password costs the
  same bcrypt work whether the user exists or not, whatever its length.
- A successful login gives a session cookie signed with a per-server random key (so
  restarting the server ends every session); it expires after ``max_age`` seconds, ends
  when the user logs out, and ends when the user's password changes (the cookie carries a
  stamp of the password hash it was issued under).
- It also gives a device token (:class:`DeviceTokens`, signed with a key kept in the state
  folder, so it outlives restarts): later logins carrying it are throttled on their own, not
  with strangers guessing the same user's password (:mod:`rtcloud.server.throttle`).
- For a quick local start the server prints a URL carrying a one-time token that logs the
  browser in once, as Jupyter does.

Time comes from an injected :class:`~rtcloud.server.clock.Clock`. Passwords and tokens are
never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from itsdangerous import BadSignature, URLSafeSerializer

from rtcloud.errors import AuthenticationError, ValidationError
from rtcloud.server.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "BCRYPT_MAX_BYTES",
    "DeviceTokens",
    "OneTimeTokens",
    "PasswordFile",
    "SESSION_CHECK_INTERVAL",
    "SessionSigner",
    "TEST_PASSWORD",
    "TEST_USER",
    "default_password_file",
]

TEST_USER = "test"
TEST_PASSWORD = "test"

#: Seconds between two checks that an open socket's session still counts.
SESSION_CHECK_INTERVAL = 1.0

#: bcrypt reads at most this many bytes of a password.
BCRYPT_MAX_BYTES = 72


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
        self._dummies: dict[bytes, bytes] = {}  # cost -> a hash of that cost, for unknown users
        self._stamps: dict[str, str] = {}
        self._stamped: tuple[int, int, int] | None = None  # the file's version they are of

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
        if len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
            raise ValidationError(
                f"password must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8 (bcrypt reads no "
                "more); choose a shorter one"
            )
        hashed = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=self.rounds))
        with self._lock:
            users = self._load()
            users[user] = hashed.decode("ascii")
            write_private_file(self.path, json.dumps({"users": users}, indent=2) + "\n")

    def stamp(self, user: str) -> str | None:
        """A short digest of ``user``'s password hash ("" for a user without a password,
        such as the one a start-up login link logs in): it changes when the password does.
        None when the file cannot be read (then no session should count). Cheap: the file
        is read again only when it changed (it is replaced whole when written)."""
        try:
            st = os.stat(self.path)
            version = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            version = (0, 0, 0)
        except OSError:
            return None
        with self._lock:
            if version != self._stamped:
                try:
                    users = self._load() if version != (0, 0, 0) else {}
                except ValidationError:
                    return None
                self._stamps = {
                    name: hashlib.sha256(hashed.encode("utf-8")).hexdigest()[:16]
                    for name, hashed in users.items()
                }
                self._stamped = version
            return self._stamps.get(user, "")

    def verify(self, user: str, password: str) -> bool:
        """True when ``password`` is ``user``'s password.

        Every answer costs one bcrypt check at the cost of the file's hashes: an unknown user
        is checked against a hash of the same cost, so the time taken does not tell which
        users exist. Passwords are cut to bcrypt's 72 bytes, as bcrypt before version 5 did
        (``add-user`` refuses longer ones).
        """
        users = self._load()
        candidate = password.encode("utf-8")[:BCRYPT_MAX_BYTES]
        stored = users.get(user, "").encode("ascii", "replace")
        if not stored.startswith(b"$2") or stored.count(b"$") != 3:
            bcrypt.checkpw(candidate, self._dummy(users))
            return False
        try:
            return bcrypt.checkpw(candidate, stored)
        except ValueError:  # a damaged hash: as costly as a wrong password, and wrong
            bcrypt.checkpw(candidate, self._dummy(users))
            return False

    def _dummy(self, users: dict[str, str]) -> bytes:
        """A hash with the cost of the file's first user's hash (or ``rounds``)."""
        cost = f"{self.rounds:02d}".encode()
        for stored in users.values():
            parts = stored.encode("ascii", "replace").split(b"$")
            if len(parts) == 4 and parts[2].isdigit() and 4 <= int(parts[2]) <= 31:
                cost = parts[2]
                break
        dummy = self._dummies.get(cost)
        if dummy is None:
            salt = bcrypt.gensalt(rounds=int(cost))
            dummy = self._dummies[cost] = bcrypt.hashpw(secrets.token_bytes(16), salt)
        return dummy


class _SignedValues:
    """Signed, time-stamped values: ``{"u": user, "t": issue time, ...}`` (wall clock)."""

    def __init__(self, secret: bytes, salt: str, max_age: float, clock: Clock) -> None:
        self._serializer = URLSafeSerializer(secret, salt=salt)
        self.max_age = max_age
        self.clock = clock

    def sign(self, user: str, **extra: Any) -> str:
        return self._serializer.dumps({"u": user, "t": self.clock.wall(), **extra})

    def load(self, value: str | None) -> dict[str, Any] | None:
        """The fields of a valid, unexpired value, else None."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str):
            return None
        issued = data.get("t")
        if not isinstance(issued, (int, float)):
            return None
        age = self.clock.wall() - issued
        if age < -60 or age > self.max_age:  # a minute of clock slack, for NTP steps
            return None
        return data


class SessionSigner:
    """Signs and checks session cookie values (user name, issue time, session id, password
    stamp). A session ended by logging out no longer counts, although its cookie would not
    have expired yet; nor does one issued before its user's password changed.

    Args:
        stamp: the current stamp of a user's password (:meth:`PasswordFile.stamp`; None:
            nothing counts); without it, password changes do not end sessions.
    """

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        max_age: float = 12 * 3600,
        clock: Clock = SYSTEM_CLOCK,
        stamp: Callable[[str], str | None] | None = None,
    ) -> None:
        self._values = _SignedValues(
            secret or secrets.token_bytes(32), "rtcloud-session", max_age, clock
        )
        self.max_age = max_age
        self._clock = clock
        self._stamp = stamp
        self._lock = threading.Lock()
        self._ended: dict[str, float] = {}  # session id -> when its cookie would expire

    def sign(self, user: str) -> str:
        extra: dict[str, Any] = {"s": secrets.token_urlsafe(12)}
        if self._stamp is not None:
            extra["p"] = self._stamp(user)
        return self._values.sign(user, **extra)

    def user_of(self, value: str | None) -> str | None:
        """The user of a valid, unexpired cookie value of a session not ended, else None."""
        data = self._values.load(value)
        if data is None or data.get("s") in self._ended:
            return None
        user = str(data["u"])
        if self._stamp is not None:
            current = self._stamp(user)
            if current is None or data.get("p") != current:
                return None
        return user

    async def until_ended(self, value: str | None) -> None:
        """Return once the session of a cookie value has ended (logout, a changed password,
        expiry), looking every :data:`SESSION_CHECK_INTERVAL` seconds."""
        while self.user_of(value) is not None:
            await asyncio.sleep(SESSION_CHECK_INTERVAL)

    def end(self, value: str | None) -> None:
        """End the session of a cookie value (log out): it no longer counts anywhere."""
        data = self._values.load(value)
        if data is None or not isinstance(data.get("s"), str):
            return
        now = self._clock.wall()
        with self._lock:  # forget ended sessions whose cookies have expired anyway
            self._ended = {sid: until for sid, until in self._ended.items() if until > now}
            self._ended[data["s"]] = float(data["t"]) + self.max_age + 60


class DeviceTokens:
    """Tokens that mark a browser or service which has logged in as a user before.

    A token names the user and a random device id, and is signed with a key kept in the
    server's state folder, so it outlives server restarts. It is not a credential: the
    password is still checked; it only moves the device's attempts out of the queue that
    strangers guessing the same user's password wait in.
    """

    KEY_FILE = "device-key"

    def __init__(
        self, secret: bytes, *, lifetime: float = 30 * 86400, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._values = _SignedValues(secret, "rtcloud-device", lifetime, clock)
        self.lifetime = lifetime

    @classmethod
    def in_folder(cls, folder: Path, **options: Any) -> DeviceTokens:
        """Tokens signed with the key in ``folder`` (made once, readable by its owner only)."""
        path = folder / cls.KEY_FILE
        try:
            secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            secret = b""
        if len(secret) < 32:
            secret = secrets.token_bytes(32)
            write_private_file(path, secret.hex() + "\n")
        return cls(secret, **options)

    def issue(self, user: str) -> str:
        return self._values.sign(user, d=secrets.token_hex(12))

    def device_of(self, value: str | None, user: str) -> str | None:
        """The device id of a valid token issued to ``user``, else None."""
        data = self._values.load(value)
        if data is None or data["u"] != user or not isinstance(data.get("d"), str):
            return None
        return str(data["d"])


class OneTimeTokens:
    """Tokens that log a browser in once (printed by the server at start)."""

    def __init__(self, *, lifetime: float = 24 * 3600, clock: Clock = SYSTEM_CLOCK) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (user, self.clock.monotonic() + self.lifetime)
        return token

    def redeem(self, token: str) -> str:
        """The user the token was issued for; AuthenticationError when unknown, used or expired."""
        with self._lock:
            for known in list(self._tokens):
                if hmac.compare_digest(known, token):
                    user, expires = self._tokens.pop(known)
                    if self.clock.monotonic() <= expires:
                        return user
        raise AuthenticationError(
            "this login link was already used or has expired; log in with your password"
        )
