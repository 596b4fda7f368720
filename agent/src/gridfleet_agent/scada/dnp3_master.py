"""The gateway as a DNP3 master polling a field device that is a DNP3 outstation (dnp3py).

On connect: an integrity poll (class 0123), then ENABLE UNSOLICITED for classes 1-3 if asked.
Then, until the link fails: unsolicited responses as they come, an event poll (class 123) every
`event_interval` seconds and an integrity poll every `integrity_interval` seconds. Every value
that arrives becomes a `telemetry` record for the device (uplink section 3.3) under the point
name the configuration maps its index to (`AI<n>`, `BI<n>`, `CTR<n>` when unmapped); binary
values as 1/0. A link that fails is reopened with backoff; after `comm_loss_after` seconds
without it the device's `field.comms_lost` alarm is raised, as for a SunSpec device.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dnp3.master import DefaultSOEHandler, Master, MasterConfig, MasterRunnerError, MasterTcpRunner
from dnp3.master.handler import AnalogValue, BinaryValue, CounterValue, ResponseInfo

from gridfleet_agent.backoff import Backoff
from gridfleet_agent.scada.status import LinkStatus

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Dnp3DeviceConfig:
    id: str
    host: str
    kind: str = "meter"
    port: int = 20000
    address: int = 10
    master_address: int = 1
    integrity_interval: float = 300.0
    event_interval: float = 5.0
    unsolicited: bool = True
    timeout: float = 5.0
    comm_loss_after: float = 30.0
    #: index -> point name, per point type; unmapped indices are reported as AI<n>/BI<n>/CTR<n>.
    analog: Mapping[int, str] = field(default_factory=dict)
    binary: Mapping[int, str] = field(default_factory=dict)
    counter: Mapping[int, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}/{self.address}"


class _Collector(DefaultSOEHandler):
    """Keeps dnp3py's latest-value tables and also what changed in the current response."""

    def __init__(self, config: Dnp3DeviceConfig) -> None:
        super().__init__()
        self.config = config
        self.changed: dict[str, float] = {}

    def on_analog_input(self, values: list[AnalogValue], info: ResponseInfo) -> None:
        super().on_analog_input(values, info)
        for v in values:
            self.changed[self.config.analog.get(v.index, f"AI{v.index}")] = v.value

    def on_binary_input(self, values: list[BinaryValue], info: ResponseInfo) -> None:
        super().on_binary_input(values, info)
        for v in values:
            self.changed[self.config.binary.get(v.index, f"BI{v.index}")] = 1 if v.value else 0

    def on_counter(self, values: list[CounterValue], info: ResponseInfo) -> None:
        super().on_counter(values, info)
        for v in values:
            self.changed[self.config.counter.get(v.index, f"CTR{v.index}")] = v.value

    def take(self) -> dict[str, float]:
        changed, self.changed = self.changed, {}
        return changed


class Dnp3FieldDevice:
    """A supervised protocol service: one DNP3 outstation field device."""

    def __init__(self, config: Dnp3DeviceConfig, *, emit: Emit) -> None:
        self.config = config
        self._emit = emit
        self.status = LinkStatus(
            name=f"dnp3-master:{config.id}",
            protocol="dnp3",
            role="master",
            endpoint=config.endpoint,
            state="down",
            comm_loss_after=config.comm_loss_after,
            device=config.id,
        )
        self.values: dict[str, float] = {}
        self.unsolicited_received = 0

    def inventory_entry(self) -> dict[str, Any]:
        return {
            "key": self.config.id,
            "kind": self.config.kind,
            "protocol": "dnp3-tcp",
            "address": self.config.endpoint,
        }

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=max(5.0, self.config.event_interval * 4))
        while True:
            try:
                await self._session(backoff)
            except (MasterRunnerError, OSError, TimeoutError) as exc:
                self.status.error(f"{self.config.endpoint}: {exc}")
            self.status.set_state("down")
            await asyncio.sleep(backoff.next_delay())

    async def _session(self, backoff: Backoff) -> None:
        cfg = self.config
        collector = _Collector(cfg)
        master = Master(
            config=MasterConfig(
                address=cfg.master_address, outstation_address=cfg.address, response_timeout=cfg.timeout
            ),
            handler=collector,
        )
        runner = MasterTcpRunner(master=master, host=cfg.host, port=cfg.port, response_timeout=cfg.timeout)
        await runner.open()
        try:
            await runner.integrity_poll()
            self._publish(collector)
            if cfg.unsolicited:
                await runner.enable_unsolicited()
                self._publish(collector)
            self.status.set_state("connected", cfg.endpoint)
            backoff.reset()
            loop = asyncio.get_running_loop()
            next_integrity = loop.time() + cfg.integrity_interval
            next_events = loop.time() + cfg.event_interval
            while True:
                wait = max(0.0, min(next_integrity, next_events) - loop.time())
                if cfg.unsolicited:
                    info = await runner.listen_unsolicited(timeout=max(wait, 0.05))
                    if info is not None:
                        self.unsolicited_received += 1
                        self._publish(collector)
                else:
                    await asyncio.sleep(wait)
                now = loop.time()
                if now >= next_integrity:
                    await runner.integrity_poll()
                    next_integrity = now + cfg.integrity_interval
                    self._publish(collector)
                if now >= next_events:
                    await runner.class_poll()
                    next_events = now + cfg.event_interval
                    self._publish(collector)
        finally:
            with contextlib.suppress(Exception):  # closing a failed link may fail again; it is gone either way
                await runner.close()

    def _publish(self, collector: _Collector) -> None:
        changed = collector.take()
        if not changed:
            return
        self.values.update(changed)
        self.status.points = len(self.values)
        ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._emit({"kind": "telemetry", "ts": ts, "payload": {"device": self.config.id, "points": changed}})
