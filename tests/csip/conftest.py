"""Fixtures for the utility link: a test utility PKI, a mutual-TLS head-end, utility-link identities."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from fleet.csip import services
from fleet.csip.headend import HeadEnd
from fleet.csip.models import EndDevice
from fleet.csip.utility_pki import UtilityPki, test_utility_pki
from pki import ca
from tests.factories import UserFactory
from tests.pki.fixtures import csr_pem


@dataclass
class UtilityIdentity:
    """A gateway's utility-link identity as files, the way the agent keeps it."""

    certificate: Path
    key: Path
    ca_bundle: Path
    end_device: EndDevice | None


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture
def utility_pki(tmp_path: Path) -> UtilityPki:
    return test_utility_pki(now=timezone.now(), directory=tmp_path / "utility-pki")


@pytest.fixture
def headend(utility_pki: UtilityPki, transactional_db: None) -> Iterator[HeadEnd]:
    server = HeadEnd(pki=utility_pki).start()
    yield server
    server.stop()


@pytest.fixture
def enroll_utility_identity(utility_pki: UtilityPki, tmp_path: Path) -> Any:
    """Give a gateway a utility-link identity through the head-end's CSR service (key stays local)."""

    def enroll(gateway: Any, *, days: int = 30, now: datetime | None = None) -> UtilityIdentity:
        directory = tmp_path / f"identity-{gateway.serial}"
        directory.mkdir()
        key = ca.generate_key()
        write_key(directory / "utility.key", key)
        certificate, device = services.issue_utility_certificate(
            gateway=gateway, csr_pem=csr_pem(key, gateway.serial), pki=utility_pki, now=now or timezone.now(), days=days
        )
        (directory / "utility.pem").write_text(ca.certificate_pem(certificate))
        return UtilityIdentity(
            directory / "utility.pem", directory / "utility.key", utility_pki.ca_certificate_path, device
        )

    return enroll


@pytest.fixture
def foreign_identity(tmp_path: Path, utility_pki: UtilityPki) -> UtilityIdentity:
    """A client certificate from a CA the head-end does not trust."""
    now = timezone.now()
    root_key = ca.generate_key()
    root = ca.create_root_ca(key=root_key, common_name="Some other CA", organization=None, now=now, days=30)
    key = ca.generate_key()
    cert = ca.issue_device_certificate(
        public_key=key.public_key(), serial="GW-FOREIGN", issuer_certificate=root, issuer_key=root_key, now=now, days=30
    )
    directory = tmp_path / "foreign"
    directory.mkdir()
    write_key(directory / "utility.key", key)
    (directory / "utility.pem").write_text(ca.certificate_pem(cert))
    return UtilityIdentity(directory / "utility.pem", directory / "utility.key", utility_pki.ca_certificate_path, None)


def expired(now: datetime) -> datetime:
    return now - timedelta(days=40)


def default_program(gateway: Any, *, pct: int) -> Any:
    """A DER program covering the gateway's organization whose DefaultDERControl is `pct` % of WMax."""
    admin = UserFactory(is_superuser=True)
    return services.create_program(
        organization=gateway.organization, name="Defaults", user=admin, default_max_lim_pct=Decimal(pct)
    )


def another_pin(pin: int) -> int:
    """A valid registration PIN (sep2 check digit) that is not `pin`."""
    return 111115 if pin != 111115 else 222220
