"""Signing keys: an encrypted local key file signer and the server's online keyring.

Online keys (timestamp, snapshot, bins) are securesystemslib signers addressed by a private key
URI: `encfile:<path>` (this module; a PKCS#8 PEM encrypted with a passphrase) by default, or any
URI securesystemslib knows (`gcpkms:`, `awskms:`, `azurekms:`, `hsm:`, ...) by configuration.
Offline keys use the same file format but live on the signing machine (firmware.tuf.offline).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import parse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import (
    SIGNER_FOR_URI_SCHEME,
    CryptoSigner,
    Key,
    SecretsHandler,
    Signer,
    SSlibKey,
)

from .layout import ONLINE_KEY_ROLES


class EncryptedFileSigner(CryptoSigner):
    """CryptoSigner whose private key is a passphrase-encrypted PKCS#8 PEM file.

    URI: `encfile:<path>`; the passphrase comes from the secrets handler ("passphrase").
    """

    SCHEME = "encfile"

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: SecretsHandler | None = None,
    ) -> EncryptedFileSigner:
        uri = parse.urlparse(priv_key_uri)
        if uri.scheme != cls.SCHEME:
            raise ValueError(f"EncryptedFileSigner does not support {priv_key_uri}")
        if secrets_handler is None:
            raise ValueError(f"{priv_key_uri} needs a passphrase")
        if not isinstance(public_key, SSlibKey):
            raise ValueError(f"Expected SSlibKey for {priv_key_uri}")
        pem = Path(uri.path).read_bytes()
        private_key = load_pem_private_key(pem, secrets_handler("passphrase").encode())
        return cls(private_key, public_key)


SIGNER_FOR_URI_SCHEME[EncryptedFileSigner.SCHEME] = EncryptedFileSigner


def private_directory(path: Path) -> None:
    """Create `path` readable by its owner only (0700), whatever the umask; keys live there."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def key_to_json(key: Key) -> dict[str, Any]:
    return {"keyid": key.keyid, **key.to_dict()}


def key_from_json(data: dict[str, Any]) -> Key:
    data = dict(data)
    keyid = data.pop("keyid")
    return Key.from_dict(keyid, data)


def load_public_key(path: Path) -> Key:
    return key_from_json(json.loads(path.read_text()))


def generate_key_file(private_path: Path, passphrase: str) -> Key:
    """Write a new ed25519 key as `<private_path>` (encrypted PEM, mode 0600) and
    `<private_path>.pub.json` (the TUF public key with its keyid); return the public key."""
    private_key = Ed25519PrivateKey.generate()
    public_key = SSlibKey.from_crypto(private_key.public_key())
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(passphrase.encode()))
    private_directory(private_path.parent)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path(private_path).write_text(json.dumps(key_to_json(public_key), indent=2))
    return public_key


def public_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub.json")


def load_file_signer(private_path: Path, passphrase: str) -> Signer:
    public_key = load_public_key(public_path(private_path))
    return Signer.from_priv_key_uri(
        f"{EncryptedFileSigner.SCHEME}:{private_path}", public_key, lambda _name: passphrase
    )


@dataclass(frozen=True)
class OnlineKey:
    uri: str
    public_key: Key

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "public_key": key_to_json(self.public_key)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OnlineKey:
        return cls(uri=data["uri"], public_key=key_from_json(data["public_key"]))


class OnlineKeyring:
    """The online keys of one repository, recorded in `<keys_dir>/online.json`.

    Each role has an active key and, during a rotation, a pending one that becomes active once
    the offline-signed metadata naming it is published.
    """

    def __init__(
        self,
        keys_dir: Path,
        passphrase: Callable[[], str],
        configured: dict[str, OnlineKey] | None = None,
    ) -> None:
        self.keys_dir = keys_dir
        self._passphrase = passphrase
        self._configured = configured or {}
        self._signers: dict[str, Signer] = {}

    @property
    def _record_path(self) -> Path:
        return self.keys_dir / "online.json"

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self._record_path.exists():
            return {"active": {}, "pending": {}}
        record: dict[str, dict[str, Any]] = json.loads(self._record_path.read_text())
        return record

    def _write(self, record: dict[str, dict[str, Any]]) -> None:
        tmp = self._record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, self._record_path)

    def _new_local_key(self, role: str) -> OnlineKey:
        existing = len(list(self.keys_dir.glob(f"{role}-*.pem")))
        path = self.keys_dir / f"{role}-{existing + 1}.pem"
        public_key = generate_key_file(path, self._passphrase())
        return OnlineKey(uri=f"{EncryptedFileSigner.SCHEME}:{path}", public_key=public_key)

    def ensure(self, roles: Iterable[str] = ONLINE_KEY_ROLES) -> dict[str, Key]:
        """Create (or take from configuration) an active key for each of `roles`."""
        roles = list(roles)
        record = self._read()
        missing = [role for role in roles if role not in record["active"]]
        if missing:
            private_directory(self.keys_dir)
            for role in missing:
                key = self._configured.get(role) or self._new_local_key(role)
                record["active"][role] = key.to_json()
            self._write(record)
        return {role: OnlineKey.from_json(record["active"][role]).public_key for role in roles}

    def has(self, role: str) -> bool:
        return role in self._read()["active"]

    def public_key(self, role: str, *, pending: bool = False) -> Key:
        return OnlineKey.from_json(self._read()["pending" if pending else "active"][role]).public_key

    def has_pending(self, role: str) -> bool:
        return role in self._read()["pending"]

    def stage_rotation(self, role: str, new_key: OnlineKey | None = None) -> Key:
        """Create the key that will replace `role`'s key once the metadata naming it is signed."""
        record = self._read()
        key = new_key or self._new_local_key(role)
        record["pending"][role] = key.to_json()
        self._write(record)
        return key.public_key

    def promote(self, role: str) -> None:
        record = self._read()
        record["active"][role] = record["pending"].pop(role)
        self._write(record)

    def signer(self, role: str) -> Signer:
        """The active signer of `role`. The record is re-read on every call, so a rotation
        promoted by another process (tuf_import) is picked up without a restart."""
        key = OnlineKey.from_json(self._read()["active"][role])
        cached = self._signers.get(role)
        if cached is None or cached.public_key.keyid != key.public_key.keyid:
            cached = Signer.from_priv_key_uri(key.uri, key.public_key, lambda _name: self._passphrase())
            self._signers[role] = cached
        return cached
