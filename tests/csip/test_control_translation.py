"""Each kind of control the head-end serves, as the sep2 XML a gateway receives, through py20305's
own translation into the agent's connector and down to the setpoints of the field stack's one
setpoint path: to a recording field stack, and (disconnect, reconnect, fixed power factor) to a
real field stack over Modbus TCP to the SunSpec simulator, read back from its registers by a
separate SunSpec client."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from gridfleet_agent.csip.config import DerDevice
from gridfleet_agent.csip.connector import FieldStackConnector
from gridfleet_agent.field import FieldStack
from gridfleet_agent.field.setpoints import Connection, PowerFactor, PowerLimit, SetpointResult
from gridfleet_agent_simulators.sunspec import SunSpecSimulator
from py20305.connectors.config import CustomDeviceConfig
from py20305.connectors.dispatcher import ConnectorDispatcher
from py20305.connectors.registry import ConnectorConfigRegistry
from py20305.models.sep import sep as S
from py20305.xml.serialization import from_xml, validate_xml

from agent.tests.field.test_simulator import scan
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


def served_control(setpoint: dict[str, Any]) -> S.Dercontrol:
    """A control with `setpoint`, as the head-end serves it and a gateway parses it."""
    now = timezone.now()
    admin = UserFactory(is_superuser=True)
    program = services.create_program(organization=OrganizationFactory(), name="Controls", user=admin)
    control = services.create_control(
        program=program, start=now + timedelta(minutes=1), duration_s=60, user=admin, now=now, **setpoint
    )
    body = sep.control(control, status=selectors.control_status(control, now=now))
    assert validate_xml(body) == []
    return from_xml(body, S.Dercontrol)


async def apply_control(derc: S.Dercontrol, field: Any, *, rated_w: float = 10_000) -> None:
    """Through py20305's dispatcher and the agent's connector to `field` (its device "inv-1")."""
    connector = FieldStackConnector(field, (DerDevice("inv-1", rated_w),), latest=lambda _device: {})
    registry = ConnectorConfigRegistry(
        [CustomDeviceConfig(lfdi=LFDI, class_path="gridfleet_agent.csip.connector.FieldStackConnector")],
        factory_resolver=lambda _device: lambda: connector,
    )
    dispatcher = ConnectorDispatcher(registry, lfdi_resolver=lambda _href: LFDI)
    await dispatcher.apply_control("/sep2/edev/1", derc, [])


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
    field = RecordingField()
    asyncio.run(apply_control(served_control(setpoint), field))

    assert field.setpoints == [("inv-1", expected)]


def read_inverter(port: int) -> dict[str, Any]:
    """Models 703 and 704 as a SunSpec client reads them from the simulator over Modbus TCP."""
    device = scan(port)
    enter_service, controls = device.models[703][0], device.models[704][0]
    return {
        "ES": enter_service.ES.cvalue,
        "PFWInjEna": controls.PFWInjEna.cvalue,
        "PF": controls.PFWInj.PF.cvalue,
        "Ext": controls.PFWInj.Ext.cvalue,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setpoint", "expected"),
    [
        ({"connect": False}, {"ES": 0}),
        ({"connect": True}, {"ES": 1}),
        # Ext 1: under-excited (absorbing vars), as opModFixedPFInjectW's excitation asks.
        ({"power_factor": Decimal("0.95"), "power_factor_absorbing": True}, {"PFWInjEna": 1, "PF": 0.95, "Ext": 1}),
        ({"power_factor": Decimal("0.9"), "power_factor_absorbing": False}, {"PFWInjEna": 1, "PF": 0.9, "Ext": 0}),
    ],
)
def test_disconnect_and_power_factor_reach_the_inverters_registers(
    setpoint: dict[str, Any], expected: dict[str, Any]
) -> None:
    derc = served_control(setpoint)

    async def scenario() -> dict[str, Any]:
        async with SunSpecSimulator(rated_w=10_000) as sim:
            if setpoint.get("connect"):  # reconnecting: start from a disconnected inverter
                sim.set(703, "ES", 0)
            device = {"id": "inv-1", "protocol": "sunspec-tcp", "host": sim.host, "port": sim.port}
            async with FieldStack({"devices": [device]}, lambda record: None) as stack:
                before = await asyncio.to_thread(read_inverter, sim.port)
                await apply_control(derc, stack)
                after = await asyncio.to_thread(read_inverter, sim.port)
        assert {k: before[k] for k in expected} != expected, "the control changed the registers"
        return after

    after = asyncio.run(scenario())
    assert {k: after[k] for k in expected} == expected
