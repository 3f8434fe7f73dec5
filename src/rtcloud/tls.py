"""TLS for the server and its services: self-signed certificates and fingerprint pinning.

``rtcloud serve --tls auto`` makes (once, then reuses) a self-signed certificate for this
computer's names and addresses and prints its SHA-256 fingerprint; a service started with
``--fingerprint`` accepts exactly that certificate, with no CA and no copy of the server's
private key. A service may instead trust a CA file (``--cafile``), or the system's CAs for a
certificate of one's own.

The pin is checked inside the TLS handshake: a pinned context's sockets compare the peer's
certificate before ``do_handshake`` returns, so a server with another certificate gets no byte
of application data (no login form, no session cookie), whatever code uses the socket
(``http.client``, the WebSocket client).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rtcloud.errors import AuthenticationError, ValidationError

__all__ = [
    "PinnedContext",
    "client_context",
    "ensure_self_signed",
    "fingerprint_of_file",
    "fingerprint_of_der",
    "normalize_fingerprint",
    "verify_fingerprint",
]


def fingerprint_of_der(der: bytes) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex (as browsers show it)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def fingerprint_of_file(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return fingerprint_of_der(cert.public_bytes(serialization.Encoding.DER))


def normalize_fingerprint(text: str) -> str:
    """Accept ``AB:CD...``, ``abcd...`` or ``sha256:...``; return the canonical form."""
    clean = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(clean) != 64 or any(c not in "0123456789abcdef" for c in clean):
        raise ValidationError(
            f"{text!r} is not a SHA-256 fingerprint (64 hex digits, as rtcloud serve prints it)"
        )
    upper = clean.upper()
    return ":".join(upper[i : i + 2] for i in range(0, 64, 2))


def _names() -> tuple[list[str], list[str]]:
    dns = {"localhost", socket.gethostname()}
    try:
        dns.add(socket.getfqdn())
    except OSError:
        pass
    ips = {"127.0.0.1", "::1"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            ips.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    return sorted(d for d in dns if d), sorted(ips)


def ensure_self_signed(
    folder: Path, *, extra_names: list[str] | None = None, days: int = 825
) -> tuple[Path, Path, str]:
    """The (cert, key, fingerprint) in ``folder``, creating them if absent or expired."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7):
            return cert_path, key_path, fingerprint_of_file(cert_path)
    from rtcloud.server.auth import write_private_file

    dns, ips = _names()
    for name in extra_names or []:
        try:
            ipaddress.ip_address(name)
            ips.append(name)
        except ValueError:
            dns.append(name)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcloud server")])
    now = dt.datetime.now(dt.timezone.utc)
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(set(dns))]
    alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in sorted(set(ips))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_private_file(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, fingerprint_of_file(cert_path)


class _PinnedSocket(ssl.SSLSocket):
    """An SSL socket whose handshake fails unless the peer has its context's pinned certificate.

    ``wrap_socket`` runs the handshake on connect, so the check happens before the caller
    holds a socket it could write to.
    """

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        if isinstance(context, PinnedContext):
            try:
                verify_fingerprint(self, context.pin)
            except AuthenticationError:
                self.close()
                raise


class PinnedContext(ssl.SSLContext):
    """A client context that accepts exactly one certificate, named by its SHA-256 fingerprint.

    No CA is consulted (a self-signed certificate is the usual case); the comparison runs in
    the handshake (:class:`_PinnedSocket`), before any application byte is sent.
    """

    sslsocket_class = _PinnedSocket
    pin: str

    @classmethod
    def for_fingerprint(cls, fingerprint: str) -> PinnedContext:
        ctx = cls(ssl.PROTOCOL_TLS_CLIENT)
        ctx.pin = normalize_fingerprint(fingerprint)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False  # the pin names the certificate, not the host
        ctx.verify_mode = ssl.CERT_NONE  # no CA chain: the pin replaces it
        return ctx


def client_context(
    *, fingerprint: str | None = None, cafile: Path | None = None
) -> ssl.SSLContext:
    """An SSL context for a service: pinned (checked in the handshake), CA file, or system."""
    if fingerprint:
        return PinnedContext.for_fingerprint(fingerprint)
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if cafile:
        ctx.check_hostname = False  # a self-signed CA file names the server, not the host
    return ctx


def verify_fingerprint(ssl_object: ssl.SSLObject | ssl.SSLSocket, expected: str) -> None:
    """Raise AuthenticationError unless the peer's certificate has the pinned fingerprint."""
    der = ssl_object.getpeercert(binary_form=True)
    if der is None:
        raise AuthenticationError("the server presented no TLS certificate")
    actual = fingerprint_of_der(der)
    if not hmac.compare_digest(actual, normalize_fingerprint(expected)):
        raise AuthenticationError(
            f"the server's certificate fingerprint {actual} is not the pinned {expected}; "
            "check that you connect to the right server (its start-up output prints it)"
        )
