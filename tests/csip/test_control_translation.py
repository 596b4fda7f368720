"""Each kind of control the head-end serves, as the sep2 XML a gateway receives, through py20305's
own translation into the agent's connector and down to the setpoints of the field stack's one
setpoint path. No network: the real representations, the real translation, a recording field stack."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from gridfleet_agent.csip.config import DerDevice
from gridfleet_agent.csip.connector import FieldStackConnector
from gridfleet_agent.field.setpoints import Connection, PowerFactor, PowerLimit, SetpointResult
from py20305.connectors.config import CustomDeviceConfig
from py20305.connectors.dispatcher import ConnectorDispatcher
from py20305.connectors.registry import ConnectorConfigRegistry
from py20305.models.sep import sep as S
from py20305.xml.serialization import from_xml, validate_xml

from fleet.csip import selectors, sep, services
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db
LFDI = "AB" * 20


class RecordingField:
    def __init__(self) -> None:
        self.setpoints: list[tuple[str, Any]] = []

    async def apply_setpoint(self, device_id: str, setpoint: Any, *, source: str) -> SetpointResult:
        assert source == "ieee2030.5"
        self.setpoints.append((device_id, setpoint))
        return SetpointResult(device=device_id, setpoint=setpoint, sunspec_model=704, readback={})


@pytest.mark.parametrize(
    ("setpoint", "expected"),
    [
        ({"export_limit_w": 4000}, PowerLimit(40.0)),
        ({"max_lim_pct": Decimal(30)}, PowerLimit(30.0)),
        ({"connect": False}, Connection(False)),
        ({"power_factor": Decimal("0.95"), "power_factor_absorbing": True}, PowerFactor(0.95, absorbing_vars=True)),
    ],
)
def test_a_control_from_the_headend_reaches_the_setpoint_path(setpoint: dict[str, Any], expected: Any) -> None:
    now = timezone.now()
    admin = UserFactory(is_superuser=True)
    program = services.create_program(organization=OrganizationFactory(), name="Controls", user=admin)
    control = services.create_control(
        program=program, start=now + timedelta(minutes=1), duration_s=60, user=admin, now=now, **setpoint
    )
    body = sep.control(control, status=selectors.control_status(control, now=now))
    assert validate_xml(body) == []
    derc = from_xml(body, S.Dercontrol)

    field = RecordingField()
    connector = FieldStackConnector(field, (DerDevice("inv-1", 10_000),), latest=lambda _device: {})
    registry = ConnectorConfigRegistry(
        [CustomDeviceConfig(lfdi=LFDI, class_path="gridfleet_agent.csip.connector.FieldStackConnector")],
        factory_resolver=lambda _device: lambda: connector,
    )
    dispatcher = ConnectorDispatcher(registry, lfdi_resolver=lambda _href: LFDI)
    asyncio.run(dispatcher.apply_control("/sep2/edev/1", derc, []))

    assert field.setpoints == [("inv-1", expected)]
