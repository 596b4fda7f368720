"""The gateway's identity: its P-256 key, its certificate, enrollment, renewal and access tokens.

The private key is generated here and never leaves the gateway. The protocol is
docs/protocol/identity.md: enroll with a CSR and a one-time token, then exchange a signed auth
request for a short-lived bearer token that every other gateway request carries.

Files under ``<state_dir>/identity/`` (written atomically, so a power cut leaves the old or the
new identity, never half of one): ``key.pem`` (0600), ``cert.pem`` (0600), ``chain.pem``,
``identity.json`` (0600).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gridfleet_agent import __version__
from gridfleet_agent.errors import AgentError
from gridfleet_agent.fsutil import atomic_write

AUTH_REQUEST_TYPE = "gridfleet-gw-auth/v1"
IDENTITY_DIR = "identity"
PRIVATE = 0o600
# Refresh the bearer token when less than this many seconds (or a fifth of its life) remain.
TOKEN_REFRESH_MARGIN = 60.0


class IdentityError(AgentError):
    """The server refused an identity request; `code` is the protocol's `error` value."""

    def __init__(self, code: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


class NotEnrolled(IdentityError):
    def __init__(self, state_dir: Path) -> None:
        super().__init__("not_enrolled", f"no gateway identity in {state_dir / IDENTITY_DIR}")


class EnrollmentPending(IdentityError):
    """The server queued the enrollment for an operator; call `complete_enrollment` later."""

    def __init__(self, request_id: str) -> None:
        super().__init__("enrollment_pending", f"waiting for an operator to accept request {request_id}")
        self.request_id = request_id


class ReenrollmentNeeded(IdentityError):
    """The certificate is revoked or expired: only a new enrollment token brings the gateway back."""


_REENROLL_CODES = {"certificate_revoked", "certificate_expired", "unknown_certificate"}


class _Http:
    """JSON over urllib3; refusals become IdentityError with the server's error code."""

    def __init__(self, server_url: str, ssl_context: ssl.SSLContext | None, timeout: float) -> None:
        self.base = server_url.rstrip("/")
        self.pool = urllib3.PoolManager(ssl_context=ssl_context, retries=urllib3.Retry(2, redirect=0))
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"User-Agent": f"gridfleet-agent/{__version__}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = self.pool.request(
                method,
                self.base + path,
                body=json.dumps(body).encode() if body is not None else None,
                headers=headers,
                timeout=self.timeout,
            )
        except urllib3.exceptions.HTTPError as e:
            raise IdentityError("unreachable", f"{self.base}{path}: {e}") from e
        try:
            data = json.loads(response.data or b"{}")
        except json.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if response.status >= HTTPStatus.BAD_REQUEST:
            code = str(data.get("error") or f"http_{response.status}")
            detail = str(data.get("detail") or response.data[:200])
            error_class = ReenrollmentNeeded if code in _REENROLL_CODES else IdentityError
            raise error_class(code, detail, response.status)
        return response.status, data


def _directory(state_dir: Path) -> Path:
    directory = Path(state_dir) / IDENTITY_DIR
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _csr_pem(key: ec.EllipticCurvePrivateKey, serial: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


@dataclass
class Identity:
    state_dir: Path
    serial: str
    server_url: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain_pem: str
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30.0
    _token: str | None = field(default=None, repr=False)
    _token_expires: float = 0.0
    _token_lifetime: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _clients: dict[str, _Http] = field(default_factory=dict, repr=False)

    # --- persistence -------------------------------------------------------------------------

    @classmethod
    def load(cls, state_dir: Path, *, ssl_context: ssl.SSLContext | None = None) -> Identity:
        directory = Path(state_dir) / IDENTITY_DIR
        try:
            meta = json.loads((directory / "identity.json").read_text())
            key = serialization.load_pem_private_key((directory / "key.pem").read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
            chain_pem = (directory / "chain.pem").read_text()
        except FileNotFoundError as e:
            raise NotEnrolled(Path(state_dir)) from e
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IdentityError("invalid_key", f"{directory / 'key.pem'} is not an EC private key")
        return cls(
            state_dir=Path(state_dir),
            serial=meta["serial"],
            server_url=meta["server_url"],
            key=key,
            certificate=certificate,
            chain_pem=chain_pem,
            ssl_context=ssl_context,
        )

    def _save(self, *, with_key: bool) -> None:
        directory = _directory(self.state_dir)
        if with_key:
            atomic_write(directory / "key.pem", _key_pem(self.key), mode=PRIVATE)
        atomic_write(directory / "cert.pem", self.certificate.public_bytes(serialization.Encoding.PEM), mode=PRIVATE)
        atomic_write(directory / "chain.pem", self.chain_pem.encode(), mode=0o644)
        meta = {
            "serial": self.serial,
            "server_url": self.server_url,
            "not_after": self.not_after.isoformat(),
            "renew_after": self.renew_after.isoformat(),
            "lfdi": self.lfdi,
        }
        atomic_write(directory / "identity.json", json.dumps(meta, indent=2).encode(), mode=PRIVATE)

    # --- facts about the certificate ---------------------------------------------------------

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def renew_after(self) -> datetime:
        """Two thirds into the certificate's life: late enough to be rare, early enough to retry for months."""
        start, end = self.certificate.not_valid_before_utc, self.certificate.not_valid_after_utc
        return start + (end - start) * 2 / 3

    @property
    def lfdi(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()[:40]

    def _http(self, server_url: str | None) -> _Http:
        """One connection pool per server URL, reused across token refreshes and renewals."""
        url = server_url or self.server_url
        if url not in self._clients:
            self._clients[url] = _Http(url, self.ssl_context, self.timeout)
        return self._clients[url]

    # --- authentication ----------------------------------------------------------------------

    def signed_auth_request(self, *, now: float | None = None) -> dict[str, str]:
        """The body of POST /gw/v1/auth/token: a fresh, signed proof that we hold the key."""
        payload = json.dumps(
            {
                "typ": AUTH_REQUEST_TYPE,
                "serial": self.serial,
                "iat": int(time.time() if now is None else now),
                "nonce": secrets.token_hex(16),
            },
            separators=(",", ":"),
        ).encode()
        signature = self.key.sign(payload, ec.ECDSA(hashes.SHA256()))
        return {
            "certificate": self.certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "chain": "",
            "payload": base64.b64encode(payload).decode(),
            "signature": base64.b64encode(signature).decode(),
        }

    def access_token(self, server_url: str | None = None) -> str:
        """A bearer token for gateway requests, cached and refreshed shortly before it expires."""
        with self._lock:
            remaining = self._token_expires - time.monotonic()
            if self._token and remaining > max(TOKEN_REFRESH_MARGIN, self._token_lifetime / 5):
                return self._token
            _, data = self._http(server_url).request("POST", "/gw/v1/auth/token", self.signed_auth_request())
            self._token = str(data["access_token"])
            self._token_lifetime = float(data["expires_in"])
            self._token_expires = time.monotonic() + self._token_lifetime
            return self._token

    def forget_access_token(self) -> None:
        """Drop the cached token (e.g. after a 401 `access_token_expired` from another endpoint)."""
        with self._lock:
            self._token = None
            self._token_expires = 0.0

    # --- renewal -----------------------------------------------------------------------------

    def renew_if_due(self, server_url: str | None = None, *, now: datetime | None = None) -> bool:
        """Renew when two thirds of the certificate's life have passed; True if it renewed."""
        if (now or datetime.now(UTC)) < self.renew_after:
            return False
        self.renew(server_url)
        return True

    def renew(self, server_url: str | None = None) -> None:
        """A new certificate for the same key; the old one stays valid until it expires."""
        token = self.access_token(server_url)
        _, data = self._http(server_url).request(
            "POST", "/gw/v1/certificate/renew", {"csr": _csr_pem(self.key, self.serial)}, token=token
        )
        self.certificate = x509.load_pem_x509_certificate(str(data["certificate"]).encode())
        self.chain_pem = str(data["chain"])
        self._save(with_key=False)
        self.forget_access_token()


# --- enrollment ------------------------------------------------------------------------------


def _pending_path(state_dir: Path) -> Path:
    return Path(state_dir) / IDENTITY_DIR / "pending.json"


def _finish(
    state_dir: Path,
    server_url: str,
    serial: str,
    key: ec.EllipticCurvePrivateKey,
    data: dict[str, Any],
    *,
    ssl_context: ssl.SSLContext | None,
) -> Identity:
    certificate = x509.load_pem_x509_certificate(str(data["certificate"]).encode())
    if _spki(certificate.public_key()) != _spki(key.public_key()):
        raise IdentityError("key_mismatch", "the issued certificate is not for our key")
    identity = Identity(
        state_dir=Path(state_dir),
        serial=serial,
        server_url=server_url,
        key=key,
        certificate=certificate,
        chain_pem=str(data["chain"]),
        ssl_context=ssl_context,
    )
    identity._save(with_key=True)
    _pending_path(state_dir).unlink(missing_ok=True)
    (Path(state_dir) / IDENTITY_DIR / "key.pending.pem").unlink(missing_ok=True)
    return identity


def enroll(
    server_url: str,
    token: str,
    serial: str,
    state_dir: Path,
    *,
    hardware_model: str = "",
    ssl_context: ssl.SSLContext | None = None,
    wait_seconds: float = 0.0,
) -> Identity:
    """Generate a key, send a CSR with the one-time token, store key and certificate (0600).

    If the server requires operator acceptance, the key and request id are kept on disk and
    `EnrollmentPending` is raised (after polling for up to `wait_seconds`); call
    `complete_enrollment(state_dir)` later.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    http = _Http(server_url, ssl_context, 30.0)
    status, data = http.request(
        "POST",
        "/gw/v1/enroll",
        {"serial": serial, "token": token, "csr": _csr_pem(key, serial), "hardware_model": hardware_model},
    )
    if status == HTTPStatus.ACCEPTED:
        directory = _directory(state_dir)
        atomic_write(directory / "key.pending.pem", _key_pem(key), mode=PRIVATE)
        pending = {"serial": serial, "server_url": server_url, "request_id": data["request_id"]}
        atomic_write(_pending_path(state_dir), json.dumps(pending).encode(), mode=PRIVATE)
        return complete_enrollment(state_dir, ssl_context=ssl_context, wait_seconds=wait_seconds)
    return _finish(Path(state_dir), server_url, serial, key, data, ssl_context=ssl_context)


def complete_enrollment(
    state_dir: Path, *, ssl_context: ssl.SSLContext | None = None, wait_seconds: float = 0.0
) -> Identity:
    """Poll a pending enrollment until accepted (or `wait_seconds` pass: EnrollmentPending)."""
    try:
        pending = json.loads(_pending_path(state_dir).read_text())
    except FileNotFoundError as e:
        raise NotEnrolled(Path(state_dir)) from e
    key = serialization.load_pem_private_key(
        (Path(state_dir) / IDENTITY_DIR / "key.pending.pem").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    http = _Http(pending["server_url"], ssl_context, 30.0)
    deadline = time.monotonic() + wait_seconds
    while True:
        status, data = http.request("GET", f"/gw/v1/enroll/{pending['request_id']}")
        if status == HTTPStatus.OK:
            return _finish(
                Path(state_dir), pending["server_url"], pending["serial"], key, data, ssl_context=ssl_context
            )
        retry_after = float(data.get("retry_after", 60))
        if time.monotonic() + retry_after > deadline:
            raise EnrollmentPending(pending["request_id"])
        time.sleep(retry_after)
