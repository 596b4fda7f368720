"""Bad input at the head-end: each refusal gets the status CSIP expects, is logged and audited, and
nothing stored before is lost. Clients use py20305's own TLS context (TLS 1.2, its cipher list)."""

from __future__ import annotations

import http.client
import ssl
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from py20305.client.tls import TlsConfig, create_ssl_context
from py20305.models.sep import sep as S
from py20305.xml.serialization import to_xml, validate_xml

from fleet.audit.models import AuditEntry
from fleet.csip import services
from fleet.csip.headend import CSIP_CIPHER
from fleet.csip.models import DerControlResponse, EndDevice
from tests.factories import GatewayFactory, UserFactory

from .conftest import UtilityIdentity


def connect(headend: Any, identity: UtilityIdentity) -> http.client.HTTPSConnection:
    context = create_ssl_context(
        TlsConfig(client_cert=identity.certificate, client_key=identity.key, ca_cert=identity.ca_bundle)
    )
    return http.client.HTTPSConnection("127.0.0.1", headend.port, context=context, timeout=10)


def request(
    headend: Any, identity: UtilityIdentity, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    conn = connect(headend, identity)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/sep+xml"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def response_body(device: EndDevice, mrid: str, status: int = 1) -> bytes:
    return to_xml(
        S.DercontrolResponse(
            end_device_lfdi=bytes.fromhex(device.lfdi),
            status=status,
            subject=S.MRidtype(value=bytes.fromhex(mrid)),
            created_date_time=S.TimeType(value=int(timezone.now().timestamp())),
        )
    )


def refusals(status: int) -> list[dict[str, Any]]:
    return [e.detail for e in AuditEntry.objects.filter(action="csip.request.refused") if e.detail["status"] == status]


@pytest.fixture
def registered(enroll_utility_identity: Any) -> UtilityIdentity:
    identity: UtilityIdentity = enroll_utility_identity(GatewayFactory())
    return identity


@pytest.fixture
def control(registered: UtilityIdentity) -> Any:
    assert registered.end_device is not None
    gateway = registered.end_device.gateway
    admin = UserFactory(is_superuser=True)
    now = timezone.now()
    program = services.create_program(organization=gateway.organization, name="Curtailment", user=admin)
    return services.create_control(
        program=program, start=now + timedelta(hours=1), duration_s=3600, max_lim_pct=50, user=admin, now=now
    )


def test_the_csip_cipher_suite_is_negotiated_over_tls_1_2(headend: Any, registered: UtilityIdentity) -> None:
    conn = connect(headend, registered)
    conn.connect()
    assert isinstance(conn.sock, ssl.SSLSocket)
    name, protocol, _bits = conn.sock.cipher()
    conn.close()
    assert protocol == "TLSv1.2"
    assert name == CSIP_CIPHER == "ECDHE-ECDSA-AES128-CCM8"


def test_every_resource_served_validates_against_the_sep2_schema(
    headend: Any, registered: UtilityIdentity, control: Any
) -> None:
    device = registered.end_device
    assert device is not None
    program = control.program
    admin = UserFactory(is_superuser=True)
    now = timezone.now()
    for setpoint in ({"export_limit_w": 3000}, {"connect": False}, {"power_factor": Decimal("0.9")}):
        services.create_control(
            program=program, start=now + timedelta(hours=2), duration_s=600, user=admin, now=now, **setpoint
        )
    paths = [
        "/sep2/dcap",
        "/sep2/tm",
        "/sep2/edev",
        f"/sep2/edev/{device.pk}",
        f"/sep2/edev/{device.pk}/rg",
        f"/sep2/edev/{device.pk}/fsa",
        f"/sep2/edev/{device.pk}/derp",
        f"/sep2/edev/{device.pk}/der",
        f"/sep2/derp/{program.pk}",
        f"/sep2/derp/{program.pk}/derc",
        *(f"/sep2/derp/{program.pk}/derc/{c.pk}" for c in program.controls.all()),
        "/sep2/mup",
    ]
    for path in paths:
        status, body = request(headend, registered, "GET", path)
        assert status == 200, path
        assert validate_xml(body) == [], path


def test_malformed_and_schema_invalid_bodies_get_400_and_keep_what_was_stored(
    headend: Any, registered: UtilityIdentity, control: Any
) -> None:
    device = registered.end_device
    assert device is not None
    good = response_body(device, control.mrid)
    assert request(headend, registered, "POST", "/sep2/rsps/1/rsp", good)[0] == 201

    malformed = b"<DERControlResponse xmlns='urn:ieee:std:2030.5:ns'><status>1</status>"
    invalid = good.replace(b"<status>1</status>", b"<status>one</status>")
    assert validate_xml(invalid), "the schema-invalid body really is invalid"
    wrong_resource = to_xml(
        S.LogEvent(
            created_date_time=S.TimeType(value=0),
            function_set=0,
            log_event_code=0,
            log_event_id=0,
            log_event_pen=S.Pentype(value=0),
            profile_id=0,
        )
    )
    for body in (malformed, invalid, wrong_resource, b""):
        status, text = request(headend, registered, "POST", "/sep2/rsps/1/rsp", body)
        assert status == 400, text

    assert list(DerControlResponse.objects.values_list("status", flat=True)) == [1]
    reasons = [r["reason"] for r in refusals(400)]
    assert len(reasons) == 4
    assert any("not well-formed" in r for r in reasons) and any("sep2 schema" in r for r in reasons)


def test_a_response_for_another_device_is_refused(
    headend: Any, registered: UtilityIdentity, control: Any, enroll_utility_identity: Any
) -> None:
    other = enroll_utility_identity(GatewayFactory())
    status, _ = request(headend, registered, "POST", "/sep2/rsps/1/rsp", response_body(other.end_device, control.mrid))
    assert status == 400
    assert not DerControlResponse.objects.exists()


def test_an_unknown_lfdi_gets_403_on_every_resource(headend: Any, registered: UtilityIdentity) -> None:
    device = registered.end_device
    assert device is not None
    EndDevice.objects.filter(pk=device.pk).delete()  # a certificate from the utility CA, but no EndDevice
    for path in ("/sep2/dcap", "/sep2/edev", "/sep2/mup"):
        assert request(headend, registered, "GET", path)[0] == 403
    assert {r["lfdi"] for r in refusals(403)} == {device.lfdi}


def test_another_device_resources_are_forbidden(
    headend: Any, registered: UtilityIdentity, enroll_utility_identity: Any
) -> None:
    other = enroll_utility_identity(GatewayFactory())
    assert request(headend, registered, "GET", f"/sep2/edev/{other.end_device.pk}")[0] == 403


def test_a_certificate_from_another_ca_fails_the_handshake_and_is_logged(
    headend: Any, foreign_identity: UtilityIdentity
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        request(headend, foreign_identity, "GET", "/sep2/dcap")
    assert any("TLS handshake refused" in r["reason"] for r in _wait_for_refusals(0))


def test_an_expired_certificate_fails_the_handshake_and_is_logged(headend: Any, enroll_utility_identity: Any) -> None:
    identity = enroll_utility_identity(GatewayFactory(), days=1, now=timezone.now() - timedelta(days=3))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        request(headend, identity, "GET", "/sep2/dcap")
    assert any("expired" in r["reason"] for r in _wait_for_refusals(0))


def _wait_for_refusals(status: int) -> list[dict[str, Any]]:
    """The server logs a handshake refusal in its worker thread, just after the client saw it fail."""
    import time

    for _ in range(50):
        found = refusals(status)
        if found:
            return found
        time.sleep(0.1)
    return []
