"""The gateway's utility-link identity: its own P-256 key (never leaves the gateway), a certificate
from the utility PKI, the PKI's trust anchor, and where the head-end is.

With a Gridfleet head-end (acting as the test utility PKI) the agent gets it through a CSR:
`POST /gw/v1/csip/certificate` with its fleet access token. With a utility's own PKI the files are
put in place by the installer and the `[csip]` configuration names them instead.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gridfleet_agent.fsutil import atomic_write
from gridfleet_agent.identity import _csr_pem, _Http, _key_pem

DIRECTORY = "utility-link"


@dataclass(frozen=True)
class UtilityIdentity:
    certificate: Path
    key: Path
    ca_bundle: Path
    server_url: str
    dcap_path: str
    pin: int | None


def _paths(state_dir: Path) -> tuple[Path, Path, Path, Path]:
    directory = state_dir / DIRECTORY
    return directory / "utility.pem", directory / "utility.key", directory / "utility-ca.pem", directory / "link.json"


def load(state_dir: Path) -> UtilityIdentity | None:
    certificate, key, ca_bundle, link = _paths(state_dir)
    if not all(p.exists() for p in (certificate, key, ca_bundle, link)):
        return None
    data: dict[str, Any] = json.loads(link.read_text())
    return UtilityIdentity(certificate, key, ca_bundle, data["server_url"], data["dcap_path"], data.get("pin"))


def obtain(
    state_dir: Path, *, server_url: str, token: str, serial: str, ssl_context: ssl.SSLContext | None
) -> UtilityIdentity:
    """The stored identity, or a new one: key generated here, CSR signed by the fleet's utility PKI."""
    existing = load(state_dir)
    if existing is not None:
        return existing
    certificate, key_path, ca_bundle, link = _paths(state_dir)
    certificate.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(certificate.parent, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    _status, data = _Http(server_url, ssl_context, timeout=30).request(
        "POST", "/gw/v1/csip/certificate", {"csr": _csr_pem(key, serial)}, token=token
    )
    atomic_write(key_path, _key_pem(key), mode=0o600)
    atomic_write(certificate, str(data["certificate"]).encode())
    atomic_write(ca_bundle, str(data["ca_bundle"]).encode())
    meta = {k: data.get(k) for k in ("server_url", "dcap_path", "pin", "lfdi", "sfdi")}
    atomic_write(link, json.dumps(meta, indent=2).encode())  # last: its presence means complete
    loaded = load(state_dir)
    assert loaded is not None
    return loaded
