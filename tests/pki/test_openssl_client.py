"""The identity protocol is implementable with the openssl command line alone (no Python crypto):
key, CSR, enrollment, signed auth request, bearer call - as a third-party gateway vendor would."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet.accounts.authorization import SYSTEM
from pki import services
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db(transaction=True)


def openssl(*args: str, cwd: Path, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_a_gateway_built_on_the_openssl_cli_enrolls_and_authenticates(
    live_server: Any, pki_ca: Any, tmp_path: Path
) -> None:
    gateway = GatewayFactory(serial="VENDOR-0001")
    _, token = services.create_enrollment_token(organization=gateway.organization, serial=gateway.serial, user=SYSTEM)

    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem", cwd=tmp_path)
    openssl("req", "-new", "-key", "key.pem", "-subj", "/CN=VENDOR-0001", "-out", "csr.pem", cwd=tmp_path)
    enrolled = httpx.post(
        f"{live_server.url}/gw/v1/enroll",
        json={"serial": "VENDOR-0001", "token": token, "csr": (tmp_path / "csr.pem").read_text()},
    )
    assert enrolled.status_code == 201, enrolled.text
    (tmp_path / "cert.pem").write_text(enrolled.json()["certificate"])

    payload = json.dumps(
        {
            "typ": "gridfleet-gw-auth/v1",
            "serial": "VENDOR-0001",
            "iat": int(time.time()),
            "nonce": secrets.token_hex(16),
        }
    ).encode()
    (tmp_path / "payload.json").write_bytes(payload)
    signature = openssl("dgst", "-sha256", "-sign", "key.pem", "payload.json", cwd=tmp_path)
    issued = httpx.post(
        f"{live_server.url}/gw/v1/auth/token",
        json={
            "certificate": enrolled.json()["certificate"],
            "chain": "",
            "payload": base64.b64encode(payload).decode(),
            "signature": base64.b64encode(signature).decode(),
        },
    )
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "Bearer"

    me = httpx.get(
        f"{live_server.url}/gw/v1/identity", headers={"Authorization": f"Bearer {issued.json()['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["serial"] == "VENDOR-0001"
    # The LFDI the server reports is the one the vendor computes from its certificate.
    der = openssl("x509", "-in", "cert.pem", "-outform", "DER", cwd=tmp_path)
    digest = openssl("dgst", "-sha256", "-binary", cwd=tmp_path, stdin=der)
    assert me.json()["lfdi"] == digest.hex()[:40]
