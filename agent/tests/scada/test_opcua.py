"""The gateway's OPC UA server, used by an asyncua client over loopback with Basic256Sha256."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.uaerrors import BadOutOfRange, UaError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from gridfleet_agent.scada.opcua import NAMESPACE, OpcUaConfig, OpcUaServer

from .conftest import Site, free_port, start, stop, wait_until

# Fixed validity window around the moment the certificates are made; OPC UA checks it on connect.
NOW = datetime.now(UTC).replace(microsecond=0)


class Authority:
    """A CA like Gridfleet's (ECDSA P-256) issuing RSA application certificates for SCADA clients."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue_client(self, directory: Path, uri: str) -> tuple[Path, Path]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "utility-scada")]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=True,
                    data_encipherment=True,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "client.der", directory / "client-key.pem"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path


CLIENT_URI = "urn:utility:scada"


@pytest.fixture
def gridfleet_ca() -> Authority:
    return Authority("Gridfleet test CA")


@pytest.fixture
async def server(site: Site, gridfleet_ca: Authority, tmp_path: Path) -> AsyncIterator[OpcUaServer]:
    service = OpcUaServer(
        OpcUaConfig(host="127.0.0.1", port=free_port(), trusted_ca_pem=(gridfleet_ca.pem,)),
        site=site.image,
        controls=site.controls,
        state_dir=tmp_path / "state",
        gateway="GW-TEST-1",
    )
    task = await start(service)
    yield service
    await stop(task)


async def secure_client(server: OpcUaServer, cert: Path, key: Path) -> Client:
    client = Client(server.status.endpoint, timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=str(cert),
        private_key=str(key),
        server_certificate=str(server.dir / "server-cert.der"),  # pinned, as an operator would
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    return client


async def test_a_client_with_a_certificate_from_the_trusted_ca_reads_the_site_and_limits_power(
    site: Site, server: OpcUaServer, gridfleet_ca: Authority, tmp_path: Path
) -> None:
    site.simulator.update(103, {"W": 2500})
    await site.wait_for_value("inv-1.W", lambda v: v == 2500)
    client = await secure_client(server, *gridfleet_ca.issue_client(tmp_path / "client", CLIENT_URI))
    async with client:
        ns = await client.get_namespace_index(NAMESPACE)
        power = client.get_node(ua.NodeId("inv-1.W", ns))
        await wait_until_value(power, 2500.0)
        controls = await client.nodes.objects.get_child([f"{ns}:Site", f"{ns}:Controls"])
        set_power_limit = await controls.get_child(f"{ns}:SetPowerLimit")
        readback = await controls.call_method(set_power_limit, 35.0)
        assert "WMaxLimPct" in readback
        assert site.simulator.get(704, "WMaxLimPct") == 35.0  # the inverter's registers
        assert site.simulator.get(704, "WMaxLimPctEna") == 1
        await wait_until_value(client.get_node(ua.NodeId("site.limit_pct", ns)), 35.0)

        with pytest.raises(BadOutOfRange):
            await controls.call_method(set_power_limit, 120.0)
        assert site.simulator.get(704, "WMaxLimPct") == 35.0
        assert server.status.state == "connected"
    assert server.status.errors == 1
    assert "0..100" in server.status.last_error
    assert len(server.status.as_dict()["certificate_sha256"]) == 64


async def test_a_client_certificate_from_another_ca_is_refused(server: OpcUaServer, tmp_path: Path) -> None:
    stranger = Authority("Someone else")
    client = await secure_client(server, *stranger.issue_client(tmp_path / "stranger", CLIENT_URI))
    with pytest.raises((UaError, OSError, TimeoutError)):
        async with client:
            pass
    await wait_until(lambda: server.status.errors >= 1)
    assert "refused" in server.status.last_error


async def test_no_endpoint_without_security(server: OpcUaServer) -> None:
    client = Client(server.status.endpoint, timeout=5)
    endpoints = await client.connect_and_get_server_endpoints()
    assert {e.SecurityPolicyUri.rsplit("#", 1)[-1] for e in endpoints} == {"Basic256Sha256"}
    assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.SignAndEncrypt}


async def wait_until_value(node: object, expected: float) -> None:
    async def read() -> float:
        return await node.read_value()  # type: ignore[attr-defined,no-any-return]

    for _ in range(100):
        if await read() == expected:
            return
        await asyncio.sleep(0.05)
    assert await read() == expected
