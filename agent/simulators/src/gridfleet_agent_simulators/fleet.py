"""``gridfleet-agent simulate``: N lightweight agents in one process, for development and demos.

Each simulated gateway is a real ``Agent`` (own key and certificate, own queue, uplink, update
checks and A/B slots under ``<state_dir>/<serial>/``) with a simulated inverter in place of the
field protocol stack: it reports a solar-shaped power curve, answers ``set_power_limit``, and now
and then raises and clears an over-temperature alarm.

Gateways not enrolled yet need a one-time token each: ``--tokens`` takes the CSV the server
exports for a batch of serials (``serial,token[,expires_at]``). Enrolled ones are reused on the
next run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridfleet_agent.config import AgentConfig
from gridfleet_agent.daemon import Agent, run_until_signalled, ssl_context_for
from gridfleet_agent.identity import Identity, IdentityError, NotEnrolled, enroll
from gridfleet_agent.logfiles import configure_console

logger = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], None]


def _ts() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass
class SimulatedOutcome:
    status: str
    message: str
    result: dict[str, Any] | None = None


class SimulatedInverter:
    """Stands in for the field stack: one inverter with telemetry, a power limit and an alarm."""

    def __init__(self, serial: str, sink: Sink, *, interval: float, rng: random.Random) -> None:
        self.key = f"{serial}-INV1"
        self._sink = sink
        self._interval = interval
        self._rng = rng
        self._rated_w = rng.choice([3800.0, 5000.0, 7600.0])
        self._limit_pct = 100.0
        self._alarm_active = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def link_statuses(self) -> list[dict[str, Any]]:
        return []  # not a Modbus link: a stand-in that only makes records

    def field_devices(self) -> list[dict[str, Any]]:
        return [
            {
                "key": self.key,
                "kind": "inverter",
                "protocol": "sunspec-tcp",
                "address": "127.0.0.1:502/1",
                "make": "Gridfleet",
                "model": "SimInverter",
                "serial": self.key,
                "firmware_version": "1.0.0",
            }
        ]

    async def execute(self, name: str, args: dict[str, Any]) -> SimulatedOutcome:
        if name != "set_power_limit" or args.get("device") != self.key:
            return SimulatedOutcome("rejected", f"unknown command or device for {self.key}")
        limit = args.get("limit_pct")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 <= limit <= MAX_PERCENT:
            return SimulatedOutcome("rejected", f"args.limit_pct must be a number 0..{MAX_PERCENT}")
        self._limit_pct = float(limit)
        return SimulatedOutcome("succeeded", f"WMaxLimPct={limit} applied", {"readback_pct": float(limit)})

    def _power_w(self, now: datetime) -> float:
        hour = now.hour + now.minute / 60
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12))  # 06:00-18:00 UTC bell
        available = self._rated_w * sun * self._rng.uniform(0.85, 1.0)
        return round(min(available, self._rated_w * self._limit_pct / 100), 1)

    async def _run(self) -> None:
        await asyncio.sleep(self._rng.uniform(0, self._interval))
        while True:
            now = datetime.now(UTC)
            power = self._power_w(now)
            points = {
                "W": power,
                "Hz": round(self._rng.gauss(60.0, 0.01), 3),
                "V": round(self._rng.gauss(240, 1.5), 1),
                "PF": 1.0,
                "TmpCab": round(self._rng.gauss(38 + power / 400, 0.5), 1),
                "St": 4 if power else 2,
                "WMaxLimPct": self._limit_pct,
            }
            self._sink({"kind": "telemetry", "ts": _ts(), "payload": {"device": self.key, "points": points}})
            if self._rng.random() < ALARM_RAISE_ODDS or (self._alarm_active and self._rng.random() < ALARM_CLEAR_ODDS):
                self._alarm_active = not self._alarm_active
                self._sink(
                    {
                        "kind": "alarm",
                        "ts": _ts(),
                        "payload": {
                            "source": f"device:{self.key}",
                            "device": self.key,
                            "code": "sunspec.evt1.over_temperature",
                            "severity": "major",
                            "state": "raised" if self._alarm_active else "cleared",
                            "message": "Over-temperature" if self._alarm_active else "Temperature back to normal",
                        },
                    }
                )
            await asyncio.sleep(self._interval)


class FaultySunSpecSite:
    """The real SunSpec path for demos: a simulated inverter served over Modbus TCP and polled by the
    FieldStack (gridfleet_agent.field.SimulatedSite), with now and then an event bit raised in the
    inverter and cleared a little later, so alarms travel the way they would from a real device."""

    FAULT_BITS = (7, 10, 4)  # over-temperature, AC over-voltage, grid disconnect

    def __init__(self, serial: str, sink: Sink, *, interval: float, rng: random.Random) -> None:
        from gridfleet_agent_simulators.sunspec import SimulatedSite

        self._site = SimulatedSite(sink, name=serial, poll_interval=interval)
        self._interval = interval
        self._rng = rng
        self._faults: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._site.start()
        self._faults = asyncio.create_task(self._inject_faults())

    async def stop(self) -> None:
        if self._faults is not None:
            self._faults.cancel()
            await asyncio.gather(self._faults, return_exceptions=True)
        await self._site.stop()

    def field_devices(self) -> list[dict[str, Any]]:
        return self._site.field_devices()

    def link_statuses(self) -> list[dict[str, Any]]:
        return self._site.link_statuses()

    async def execute(self, name: str, args: dict[str, Any]) -> Any:
        return await self._site.execute(name, args)

    def device_ids(self, kind: str | None = None) -> list[str]:
        return self._site.stack.device_ids(kind) if self._site.stack is not None else []

    async def apply_setpoint(self, device_id: str, setpoint: Any, *, source: str) -> Any:
        """The site's one setpoint path, for the utility link (gridfleet_agent.csip)."""
        if self._site.stack is None:
            raise RuntimeError("the simulated site is not started")
        return await self._site.stack.apply_setpoint(device_id, setpoint, source=source)

    async def _inject_faults(self) -> None:
        while True:
            # Spread so that a demo fleet of a few gateways shows an alarm within a minute or two.
            await asyncio.sleep(self._rng.uniform(2, 30) * self._interval)
            bit = self._rng.choice(self.FAULT_BITS)
            self._site.simulator.raise_event(bit)
            await asyncio.sleep(self._rng.uniform(3, 12) * self._interval)
            self._site.simulator.clear_event(bit)


def read_tokens(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    tokens = {}
    with path.open(newline="") as f:
        for row in csv.reader(f):
            serial, token = [*row, "", ""][:2]
            if serial and token and serial != "serial":
                tokens[serial.strip()] = token.strip()
    return tokens


def load_identities(config: AgentConfig, *, count: int, tokens: dict[str, str], prefix: str) -> list[Identity]:
    """Existing simulated gateways first, then new ones enrolled with the CSV's tokens."""
    root = config.state_dir
    root.mkdir(parents=True, exist_ok=True)
    identities: list[Identity] = []
    for directory in sorted(p for p in root.iterdir() if (p / "identity" / "identity.json").exists()):
        if len(identities) == count:
            return identities
        identities.append(Identity.load(directory, ssl_context=ssl_context_for(config)))
    known = {i.serial for i in identities}
    candidates = [s for s in tokens if s not in known] or [f"{prefix}{n:04d}" for n in range(1, count + 1)]
    for serial in candidates:
        if len(identities) == count:
            break
        if serial in known:
            continue
        if serial not in tokens:
            raise NotEnrolled(root / serial)
        identities.append(_enroll_when_reachable(config, serial, tokens[serial], root / serial))
        logger.info("enrolled simulated gateway %s", serial)
    if len(identities) < count:
        raise NotEnrolled(root / f"{prefix}...")
    return identities


MAX_PERCENT = 100
# Per telemetry tick: the odds that a quiet simulated inverter raises its alarm, and that a raised one clears.
ALARM_RAISE_ODDS = 0.02
ALARM_CLEAR_ODDS = 0.2
SERVER_WAIT = 120.0  # seconds: `make demo` may start the simulator while the server is still starting


def _enroll_when_reachable(config: AgentConfig, serial: str, token: str, state_dir: Path) -> Identity:
    deadline = time.monotonic() + SERVER_WAIT
    while True:
        try:
            return enroll(
                config.server_url,
                token,
                serial,
                state_dir,
                hardware_model=config.agent.hardware_model,
                ssl_context=ssl_context_for(config),
            )
        except IdentityError as e:
            if e.code != "unreachable" or time.monotonic() > deadline:
                raise
            logger.info("server not reachable yet (%s); retrying", e.detail)
            time.sleep(2)


def agent_config(config: AgentConfig, state_dir: Path) -> AgentConfig:
    agent = dataclasses.replace(config.agent, state_dir=state_dir)
    # Simulated gateways cannot reboot and share one disk: no reboot command, no root shipped.
    updates = dataclasses.replace(config.updates, reboot_command=(), trusted_root=state_dir / "no-shipped-root")
    return dataclasses.replace(config, agent=agent, updates=updates)


FIELD_SIMULATIONS: dict[str, type[SimulatedInverter] | type[FaultySunSpecSite]] = {
    "simulated": SimulatedInverter,
    "sunspec": FaultySunSpecSite,
}


async def simulate(
    config: AgentConfig, identities: list[Identity], *, telemetry_interval: float, field: str = "simulated"
) -> None:
    agents = []
    site_class = FIELD_SIMULATIONS[field]
    for identity in identities:

        def inverter(sink: Sink, serial: str = identity.serial) -> SimulatedInverter | FaultySunSpecSite:
            return site_class(serial, sink, interval=telemetry_interval, rng=random.Random(serial))

        agents.append(
            Agent(
                agent_config(config, identity.state_dir),
                identity=identity,
                durable_queue=False,
                compression=False,
                control_socket=False,
                field=inverter,
            )
        )
    logger.info("running %d simulated gateways against %s", len(agents), config.server_url)
    await asyncio.gather(*(agent.run() for agent in agents))


def run_simulation(config: AgentConfig, args: argparse.Namespace) -> int:
    configure_console(logging.INFO)
    if args.count < 1:
        raise ValueError("--count must be at least 1")
    identities = load_identities(config, count=args.count, tokens=read_tokens(args.tokens), prefix=args.prefix)
    asyncio.run(
        run_until_signalled(simulate(config, identities, telemetry_interval=args.telemetry_interval, field=args.field))
    )
    return 0
