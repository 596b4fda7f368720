"""The server's TUF repository, configured from settings."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from securesystemslib.signer import Signer

from . import conf
from .tuf.keys import OnlineKey, OnlineKeyring
from .tuf.repository import TufRepository

# Optional online key roles besides timestamp/snapshot/bins.
RELEASE = "release"  # firmware role signed on the server (embedded default); absent: offline release keys
LICENSE = "license"  # signs license documents inside license bundles


def get_keyring() -> OnlineKeyring:
    return _keyring(conf.tuf_dir())


@cache
def _keyring(tuf_dir: Path) -> OnlineKeyring:
    # One keyring per repository directory, so loaded signers are reused between publishes.
    configured = {role: OnlineKey.from_json(data) for role, data in conf.configured_online_keys().items()}
    return OnlineKeyring(tuf_dir / "keys", conf.key_passphrase, configured)


def get_repository() -> TufRepository:
    keyring = get_keyring()
    release = [keyring.signer(RELEASE)] if keyring.has(RELEASE) else []
    return TufRepository(conf.tuf_dir(), keyring, release_signers=release)


def license_signer() -> Signer:
    keyring = get_keyring()
    keyring.ensure([LICENSE])
    return keyring.signer(LICENSE)


def reset() -> None:
    """Forget cached signers (tests and key rotation switch directories or keys)."""
    _keyring.cache_clear()
