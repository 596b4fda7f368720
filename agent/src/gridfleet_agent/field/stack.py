"""FieldStack: the agent daemon's one entry point to its field devices.

    stack = FieldStack(config_section, sink)        # sink(record) -> None, or an awaitable
    await stack.start()
    result = await stack.apply_setpoint("inv-1", PowerLimit(60.0), source="dnp3")  # the one setpoint path
    outcome = await stack.execute("set_power_limit", {"device": "inv-1", "limit_pct": 60.0})  # server command
    await stack.stop()

Every record handed to the sink is `{"kind": ..., "ts": RFC 3339 UTC, "payload": {...}}` with
kind `telemetry`, `alarm`, `event` (`field.setpoint`) or `inventory` and the payloads of
docs/protocol/uplink.md section 3 (docs/field-devices.md shows what this stack puts in them).
Each device polls in its own task; its blocking Modbus I/O runs in the stack's own worker
threads (one per device), so a slow or hung device never delays another, the daemon's event
loop, or the daemon's default executor.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

from gridfleet_agent.field.alarms import AlarmTransition, CommLossTracker, EventAlarmTracker
from gridfleet_agent.field.config import DeviceConfig, FieldConfig
from gridfleet_agent.field.errors import ControlError, ControlFailed, ControlRejected, DeviceUnreachable
from gridfleet_agent.field.events import COMM_LOSS
from gridfleet_agent.field.logic import Firing, RuleEngine
from gridfleet_agent.field.modbus import TemplateDevice
from gridfleet_agent.field.mqtt import MqttPublisher
from gridfleet_agent.field.setpoints import PowerLimit, Setpoint, SetpointResult, describe, setpoint_from_command
from gridfleet_agent.field.sunspec import DeviceIdentity, Reading, SunSpecDevice

logger = logging.getLogger(__name__)

Record = dict[str, Any]
Sink = Callable[[Record], Awaitable[None] | None]
T = TypeVar("T")
Blocking = Callable[..., Awaitable[Any]]
#: A device the stack polls: SunSpec (self-describing) or described by a template.
FieldDevice = SunSpecDevice | TemplateDevice

MAX_POINTS_PER_RECORD = 256  # uplink section 3.3; a bigger reading goes out as several records
MQTT_CONNECT_WAIT = 2.0  # seconds start() waits for the broker before going on without it
LOGIC_TICK = 1.0  # seconds between site-logic clock ticks (durations and staleness)


class UnknownDevice(ControlRejected):
    """No field device with that id is configured."""


@dataclass(frozen=True)
class CommandOutcome:
    """The `data` of a `command_result` event, less the command id the daemon adds."""

    status: Literal["succeeded", "failed", "rejected"]
    message: str
    result: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def make_record(kind: str, payload: dict[str, Any]) -> Record:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"kind": kind, "ts": ts, "payload": payload}


class FieldStack:
    def __init__(self, config: FieldConfig | Mapping[str, Any], sink: Sink) -> None:
        self.config = config if isinstance(config, FieldConfig) else FieldConfig.from_dict(config)
        self._sink = sink
        self._pollers = {
            d.id: DevicePoller(
                d,
                self._device(d),
                emit=self._emit,
                identity_changed=self._identity_changed,
                blocking=self._blocking,
            )
            for d in self.config.devices
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._mqtt = MqttPublisher(self.config.mqtt) if self.config.mqtt.enabled else None
        rules = self.config.site_logic.rules
        self._logic = RuleEngine(rules) if rules else None
        self._actions: asyncio.Queue[Firing] = asyncio.Queue()
        # One worker per device plus one for controls and the MQTT start-up wait.
        self._executor = ThreadPoolExecutor(max_workers=len(self._pollers) + 1, thread_name_prefix="field-io")

    def _device(self, config: DeviceConfig) -> FieldDevice:
        if config.template is not None:
            return TemplateDevice(config, self.config.templates[config.template])
        return SunSpecDevice(config, self.config.vendor_events)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    async def start(self) -> None:
        if self._mqtt is not None:
            self._mqtt.start()
            if not await self._blocking(self._mqtt.wait_connected, MQTT_CONNECT_WAIT):
                logger.warning(
                    "MQTT broker %s:%s not reachable yet; publishing once it is",
                    self.config.mqtt.host,
                    self.config.mqtt.port,
                )
        self._tasks = [
            asyncio.create_task(poller.run(), name=f"field-poll-{device_id}")
            for device_id, poller in self._pollers.items()
        ]
        if self._logic is not None:
            self._tasks += [
                asyncio.create_task(self._tick_logic(), name="site-logic-clock"),
                asyncio.create_task(self._run_logic(), name="site-logic-actions"),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.gather(*(self._blocking(p.device.close) for p in self._pollers.values()))
        if self._mqtt is not None:
            await self._blocking(self._mqtt.stop)
        self._executor.shutdown(wait=False)  # a stopped stack is done; a new configuration gets a new stack

    async def __aenter__(self) -> FieldStack:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def field_devices(self) -> list[dict[str, Any]]:
        """`inventory.field_devices` entries for every device discovered so far."""
        return [p.inventory_entry() for p in self._pollers.values() if p.identity is not None]

    def link_statuses(self) -> list[dict[str, Any]]:
        """The link to each configured device, for the gateway page (uplink attributes.protocols)."""
        return [p.link_status() for p in self._pollers.values()]

    def device_ids(self, kind: str | None = None) -> list[str]:
        """The configured device ids, optionally only those of one kind (e.g. "inverter")."""
        return [d.id for d in self.config.devices if kind is None or d.kind == kind]

    async def apply_setpoint(self, device_id: str, setpoint: Setpoint, *, source: str) -> SetpointResult:
        """The one path for every control to a field device: write, read back, log, report.

        `source` says who asked (`server`, `ieee2030.5`, `dnp3`, `iec104`, `site-logic`, `cli`...);
        it goes into the log line and the `field.setpoint` event record sent for every attempt,
        succeeded or not. Raises ControlRejected (unknown device, bad value, control not
        implemented, the device refused; nothing changed) or ControlFailed (no answer, read back
        something else).
        """
        report: dict[str, Any] = {"device": device_id, "source": source, "setpoint": describe(setpoint)}
        try:
            poller = self._poller(device_id)
            result = await self._apply_discovered(poller, setpoint)
        except ControlError as exc:
            status = "rejected" if isinstance(exc, ControlRejected) else "failed"
            logger.warning("setpoint %s for %s from %s %s: %s", report["setpoint"], device_id, source, status, exc)
            await self._emit(make_record("event", _setpoint_event(report, status, str(exc))))
            raise
        logger.info("setpoint from %s: %s: %s", source, device_id, result.message)
        report.update(sunspec_model=result.sunspec_model, readback=result.readback)
        await self._emit(make_record("event", _setpoint_event(report, "succeeded", result.message)))
        return result

    async def _apply_discovered(self, poller: DevicePoller, setpoint: Setpoint) -> SetpointResult:
        """Apply on a discovered device; a poll that failed meanwhile and dropped the connection
        gets one rediscovery, so the error says why the device is not answering."""
        for attempt in range(2):
            try:
                if poller.device.needs_discovery:
                    await poller.discover()
                result: SetpointResult = await self._blocking(poller.device.apply, setpoint)
            except DeviceUnreachable as exc:
                if attempt == 1 or not poller.device.needs_discovery:
                    raise ControlFailed(f"{poller.config.id} is not answering: {exc}") from exc
            else:
                return result
        raise AssertionError("unreachable")  # the loop returns or raises

    async def execute(self, name: str, args: Mapping[str, Any]) -> CommandOutcome:
        """Run a server command addressed to the field stack (uplink section 2.6): one of
        `setpoints.COMMANDS`, parsed into a setpoint and sent down the one setpoint path."""
        try:
            device_id, setpoint = setpoint_from_command(name, args)
            result = await self.apply_setpoint(device_id, setpoint, source="server")
        except ControlRejected as exc:
            return CommandOutcome("rejected", str(exc))
        except ControlError as exc:
            return CommandOutcome("failed", str(exc))
        data = result.as_dict()
        if isinstance(setpoint, PowerLimit):  # the field uplink.md section 2.6 documents
            data["readback_pct"] = result.readback.get("WMaxLimPct")
        return CommandOutcome("succeeded", result.message, data)

    def _poller(self, device_id: str) -> DevicePoller:
        try:
            return self._pollers[device_id]
        except KeyError:
            raise UnknownDevice(f"no field device {device_id!r} (configured: {', '.join(self._pollers)})") from None

    async def _identity_changed(self) -> None:
        await self._emit(make_record("inventory", {"field_devices": self.field_devices()}))

    async def _emit(self, record: Record) -> None:
        try:
            result = self._sink(record)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the queue failing must not stop polling; it logs and goes on
            logger.exception("field record sink failed for a %s record", record["kind"])
        if self._mqtt is not None:
            self._mqtt.publish(record)
        if self._logic is not None:
            self._feed_logic(record)

    # -- site logic (logic.py): fed with every telemetry record, ticked every second -------------

    def _feed_logic(self, record: Record) -> None:
        assert self._logic is not None
        payload, now = record["payload"], asyncio.get_running_loop().time()
        if record["kind"] == "telemetry":
            firings = self._logic.observe(payload["device"], payload["points"], now)
        elif record["kind"] == "alarm" and payload["code"] == COMM_LOSS.code and payload["state"] == "raised":
            firings = self._logic.comm_lost(payload["device"], now)
        else:
            return
        for firing in firings:
            self._actions.put_nowait(firing)

    async def _tick_logic(self) -> None:
        assert self._logic is not None
        while True:
            await asyncio.sleep(LOGIC_TICK)
            for firing in self._logic.tick(asyncio.get_running_loop().time()):
                self._actions.put_nowait(firing)

    async def _run_logic(self) -> None:
        """Carries out the rules' actions one after another, in the order they fired."""
        while True:
            firing = await self._actions.get()
            await self._carry_out(firing)

    async def _carry_out(self, firing: Firing) -> None:
        rule, action = firing.rule, firing.action
        results: list[dict[str, Any]] = []
        if action is not None:
            for device_id in action.devices or tuple(self.device_ids(action.kind)):
                setpoint = action.setpoint_for(device_id)
                if rule.dry_run:
                    results.append({"device": device_id, "status": "dry_run", "setpoint": describe(setpoint)})
                    continue
                try:
                    result = await self.apply_setpoint(device_id, setpoint, source=f"site-logic:{rule.name}")
                except ControlError as exc:
                    status = "rejected" if isinstance(exc, ControlRejected) else "failed"
                    results.append({"device": device_id, "status": status, "message": str(exc)})
                else:
                    results.append({"device": device_id, "status": "succeeded", "readback": result.readback})
        what = "would run" if rule.dry_run and action is not None else "ran" if action is not None else "nothing to run"
        message = f"rule {rule.name}: {firing.reason}; {firing.transition} {what}"
        logger.info("site logic: %s %s", message, results)
        data = {
            "rule": rule.name,
            "transition": firing.transition,
            "reason": firing.reason,
            "value": firing.value,
            "action": action.describe() if action is not None else None,
            "dry_run": rule.dry_run,
            "results": results,
        }
        await self._emit(make_record("event", {"name": "site_logic.action", "message": message, "data": data}))


def _setpoint_event(report: dict[str, Any], status: str, message: str) -> dict[str, Any]:
    """`event` payload (uplink section 3.5) reporting one setpoint attempt."""
    return {"name": "field.setpoint", "message": message, "data": {**report, "status": status}}


class DevicePoller:
    """Polls one device at its interval and turns what it sees into records."""

    def __init__(
        self,
        config: DeviceConfig,
        device: FieldDevice,
        *,
        emit: Callable[[Record], Awaitable[None]],
        identity_changed: Callable[[], Awaitable[None]],
        blocking: Blocking,
    ) -> None:
        self.config = config
        self.device = device
        self.identity: DeviceIdentity | None = None
        self._blocking = blocking
        self._emit = emit
        self._identity_changed = identity_changed
        self._events: dict[str, EventAlarmTracker] = {}  # per event source key
        self._comm = CommLossTracker(config.comm_loss_after)
        #: The link to this device as the gateway page shows it (link_status).
        self.state: Literal["starting", "connected", "down"] = "starting"
        self.since = time.time()
        self.points = 0
        self.errors = 0
        self.last_error = ""

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.poll_once()
            await asyncio.sleep(max(0.0, self.config.poll_interval - (loop.time() - started)))

    async def discover(self) -> DeviceIdentity:
        identity: DeviceIdentity = await self._blocking(self.device.discover)
        if identity != self.identity:
            self.identity = identity
            await self._identity_changed()
        return identity

    async def poll_once(self) -> None:
        try:
            if self.device.needs_discovery:
                await self.discover()
            reading: Reading = await self._blocking(self.device.read)
        except DeviceUnreachable as exc:
            logger.info("field device %s: %s", self.config.id, exc)
            await self._failed(str(exc))
            return
        except Exception as exc:  # an answer pysunspec2 cannot make sense of must not end this device's polling
            logger.exception("field device %s gave an unusable answer", self.config.id)
            await self._blocking(self.device.close)  # start over with a fresh discovery
            await self._failed(f"unusable answer: {exc}")
            return
        await self._alarm(self._comm.succeeded(), {"address": self.config.address})
        self.points = len(reading.values)
        await self._link_state("connected")
        values = list(reading.values.items())
        for start in range(0, len(values), MAX_POINTS_PER_RECORD):
            points = dict(values[start : start + MAX_POINTS_PER_RECORD])
            await self._emit(make_record("telemetry", {"device": self.config.id, "points": points}))
        for event in reading.events:
            tracker = self._events.get(event.source.key)
            if tracker is None or tracker.source is not event.source:  # new, or the make changed
                tracker = self._events[event.source.key] = EventAlarmTracker(self.config.debounce_polls, event.source)
            for transition in tracker.update(event.bits):
                await self._alarm(transition, {"bit": transition.definition.bit, "points": list(event.points)})

    async def _failed(self, error: str) -> None:
        self.errors += 1
        self.last_error = error
        await self._alarm(self._comm.failed(), {"error": error, "address": self.config.address})
        if self._comm.active:  # the same moment field.comms_lost is raised
            await self._link_state("down")

    async def _link_state(self, state: Literal["connected", "down"]) -> None:
        if state != self.state:
            first_contact = self.state == "starting" and state == "connected"  # discovery just signalled
            self.state, self.since = state, time.time()
            if not first_contact:
                await self._identity_changed()  # the daemon's inventory (with the link table) is due again

    def link_status(self) -> dict[str, Any]:
        """One row of the gateway page's protocol table (uplink inventory attributes.protocols)."""
        identity = self.identity
        peer = " ".join(p for p in (identity.make, identity.model) if p) if identity is not None else ""
        return {
            "name": f"field:{self.config.id}",
            "protocol": self.config.protocol,
            "role": "client",
            "endpoint": self.config.address,
            "state": self.state,
            "peer": peer,
            "points": self.points,
            "errors": self.errors,
            "last_error": self.last_error,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
        }

    async def _alarm(self, transition: AlarmTransition | None, details: dict[str, Any]) -> None:
        if transition is None:
            return
        definition = transition.definition
        await self._emit(
            make_record(
                "alarm",
                {
                    "source": f"device:{self.config.id}",
                    "device": self.config.id,
                    "code": definition.code,
                    "severity": definition.severity.value,
                    "state": "raised" if transition.raised else "cleared",
                    "message": f"{self.config.id}: {definition.message}",
                    "details": details,
                },
            )
        )

    def inventory_entry(self) -> dict[str, Any]:
        identity = self.identity
        entry: dict[str, Any] = {
            "key": self.config.id,
            "kind": self.config.kind,
            "protocol": self.config.protocol,
            "address": self.config.address,
        }
        if identity is not None:
            entry.update(
                make=identity.make,
                model=identity.model,
                serial=identity.serial,
                firmware_version=identity.firmware_version,
            )
        return {k: v for k, v in entry.items() if v is not None}
