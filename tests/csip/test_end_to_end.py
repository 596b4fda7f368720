"""End to end: the agent's utility link (py20305 inside) against Gridfleet's CSIP head-end over
mutual TLS, applying an export limit to a simulated SunSpec inverter through the field stack."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone
from gridfleet_agent.csip import CsipConfig, DerDevice, LinkState, UtilityLink
from gridfleet_agent.field import FieldStack
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from fleet.csip import services
from fleet.csip.models import DerControlResponse, LogEvent, MirrorUsagePoint, Reading
from tests.csip.conftest import another_pin, default_program
from tests.factories import GatewayFactory, UserFactory

pytestmark = pytest.mark.slow

RATED_W = 10_000
EXPORT_LIMIT_W = 3_000  # 30 % of WMax


def link_config(headend: Any, identity: Any, *, pin: int, post_rate: int = 300) -> CsipConfig:
    """The agent's `[csip]` configuration for one inverter, pointed at the test head-end."""
    return CsipConfig(
        server_url=headend.url,
        certificate=identity.certificate,
        key=identity.key,
        ca_bundle=identity.ca_bundle,
        der=(DerDevice("inv-1", RATED_W),),
        dcap_path="/sep2/dcap",
        pin=pin,
        post_rate=post_rate,
    )


def _checked(check: Callable[[], Any]) -> Any:
    try:
        return check()
    finally:
        connections.close_all()  # this worker thread's own connection, so the test database can go


async def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(_checked, check)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


def test_agent_follows_an_export_limit_from_the_headend_mirrors_readings_and_reports_alarms(
    headend: Any, enroll_utility_identity: Any, settings: Any
) -> None:
    settings.GRIDFLEET_CSIP_POST_RATE = 2  # readings every 2 s (py20305 accepts a server rate that low)
    gateway = GatewayFactory()
    identity = enroll_utility_identity(gateway)
    admin = UserFactory(is_superuser=True)
    now = timezone.now()
    program = services.create_program(
        organization=gateway.organization,
        name="Feeder 12 export limits",
        user=admin,
        site=gateway.site,
        default_max_lim_pct=Decimal(100),
    )
    # Relative to the server's clock at creation; the agent follows the head-end's Time resource.
    control = services.create_control(
        program=program,
        start=now + timedelta(seconds=6),
        duration_s=8,
        export_limit_w=EXPORT_LIMIT_W,
        description="export limit",
        user=admin,
        now=now,
    )
    config = link_config(headend, identity, pin=identity.end_device.pin, post_rate=2)
    seen_limits: list[float | None] = []
    states: list[str] = []

    async def scenario() -> None:
        async with SunSpecSimulator(rated_w=RATED_W) as sim:
            link: UtilityLink | None = None

            def sink(record: dict[str, Any]) -> None:
                if link is not None:
                    link.observe(record)

            device = {"id": "inv-1", "protocol": "sunspec-tcp", "host": sim.host, "port": sim.port, "poll_interval": 1}
            async with FieldStack({"devices": [device]}, sink) as stack:
                link = UtilityLink(config, stack, report=lambda s: states.append(s["state"]))
                task = asyncio.create_task(link.run())
                try:
                    await until(lambda: link.state is LinkState.FOLLOWING, 30, "the link to follow a program")
                    # The event: 3000 W of 10 kW -> WMaxLimPct 30, written to model 704 and enabled.
                    await until(lambda: sim.get(704, "WMaxLimPct") == 30.0, 30, "the export limit in the registers")
                    assert sim.get(704, "WMaxLimPctEna") == 1
                    seen_limits.append(sim.power_limit_pct())
                    # At the event's end the DefaultDERControl (100 %) comes back.
                    await until(lambda: sim.get(704, "WMaxLimPct") == 100.0, 30, "the default control")
                    seen_limits.append(sim.power_limit_pct())
                    await until(
                        lambda: DerControlResponse.objects.filter(control=control, status=3).exists(),
                        30,
                        "the 'completed' response",
                    )
                    await until(Reading.objects.exists, 30, "mirrored readings")
                    # An AC over-voltage in the inverter (SunSpec Evt1 bit 10) is DERStatus alarm bit 1:
                    # LogEvent 2 when it is raised, 3 when it returns to normal.
                    sim.raise_event(10)
                    await until(lambda: LogEvent.objects.filter(log_event_code=2).exists(), 30, "the alarm LogEvent")
                    sim.clear_event(10)
                    await until(lambda: LogEvent.objects.filter(log_event_code=3).exists(), 30, "its return to normal")
                    assert link.status()["responses"], "the link reports the responses it posted"
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())

    assert seen_limits == [30.0, 100.0]
    statuses = list(DerControlResponse.objects.filter(control=control).values_list("status", flat=True))
    # received, started, completed: in the order they arrived.
    assert statuses == [1, 2, 3]
    assert all(r.end_device == identity.end_device for r in DerControlResponse.objects.all())
    mup = MirrorUsagePoint.objects.get(end_device=identity.end_device)
    watts = Reading.objects.filter(meter_reading__mirror_usage_point=mup, meter_reading__uom=38)
    assert watts.exists(), "active power (uom 38) is mirrored"
    assert "registered" in states and "following" in states
    codes = list(LogEvent.objects.order_by("received_at").values_list("log_event_code", "function_set"))
    assert codes == [(2, 11), (3, 11)]


def test_the_agent_does_not_follow_a_server_whose_registration_pin_is_not_the_installers(
    headend: Any, enroll_utility_identity: Any
) -> None:
    gateway = GatewayFactory()
    identity = enroll_utility_identity(gateway)
    default_program(gateway, pct=50)
    wrong_pin = another_pin(identity.end_device.pin)
    config = link_config(headend, identity, pin=wrong_pin)

    async def scenario() -> tuple[LinkState, float | None]:
        async with SunSpecSimulator(rated_w=RATED_W) as sim:
            device = {"id": "inv-1", "protocol": "sunspec-tcp", "host": sim.host, "port": sim.port, "poll_interval": 1}
            async with FieldStack({"devices": [device]}, lambda record: None) as stack:
                link = UtilityLink(config, stack)
                task = asyncio.create_task(link.run())
                try:
                    await until(lambda: link.state is LinkState.PIN_MISMATCH, 30, "the PIN mismatch")
                    await asyncio.sleep(2)  # time in which a default control would have been written
                    return link.state, sim.power_limit_pct()
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    state, limit = asyncio.run(scenario())
    assert state is LinkState.PIN_MISMATCH
    assert limit is None, "no limit was written to the inverter"
    assert not DerControlResponse.objects.exists()
