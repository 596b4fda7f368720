"""The gateway as a DNP3 outstation toward the utility's SCADA master (dnp3py, IEEE 1815-2012).

Points follow the MESA-DER profile (IEEE 1815.2) where it defines them (see `site.py` and
docs/field-devices.md): AO87 sets the active power limit (0.1 % of WMax), BO17 enables or
disables the limit mode, BO3 grants or withdraws permission to connect. A control is applied to
every inverter through the field stack's one setpoint path and answered only after the
inverters read it back: SUCCESS, OUT_OF_RANGE (refused, nothing changed), NOT_SUPPORTED or
HARDWARE_ERROR (tried, did not take). The associated status points (AI148, BI69, BI16) then
carry the read-back values, as events too.

dnp3py calls a command handler synchronously inside request processing, so the whole DNP3
stack runs on its own thread and event loop: a control blocks only DNP3 (one master per TCP
link anyway) while it waits for the agent's loop to apply it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from dnp3.core.enums import ControlCode, OperationType, TripCloseCode
from dnp3.core.flags import AnalogQuality, BinaryQuality
from dnp3.database import AnalogInputConfig, AnalogOutputConfig, BinaryInputConfig, BinaryOutputConfig, Database
from dnp3.database.point import EventClass
from dnp3.datalink.builder import build_unconfirmed_user_data
from dnp3.mesa.scaling import ScalingError, engineering_to_transmission
from dnp3.outstation import CommandResult, DefaultCommandHandler, Outstation, OutstationConfig, OutstationTcpRunner
from dnp3.transport.segmenter import Segmenter

from gridfleet_agent.field.errors import ControlError, ControlRejected
from gridfleet_agent.field.setpoints import PowerLimit
from gridfleet_agent.scada.site import (
    AO87_MULTIPLIER,
    DNP3_AO_LIMIT,
    DNP3_BI_CONNECTED,
    DNP3_BI_LIMIT_ENABLED,
    DNP3_BO_CONNECT,
    DNP3_BO_LIMIT_ENABLE,
    SiteControls,
    SiteImage,
    SitePoint,
    Value,
)
from gridfleet_agent.scada.status import LinkStatus

logger = logging.getLogger(__name__)

UNSOLICITED_CHECK = 0.2  # seconds between looks for new events to report unsolicited
STATUS_CHECK = 0.2


@dataclass(frozen=True)
class Dnp3OutstationConfig:
    host: str = "127.0.0.1"  # set to the SCADA-facing interface; loopback keeps a bare config closed
    port: int = 20000
    address: int = 10
    master_address: int = 1
    unsolicited: bool = True
    control_timeout: float = 8.0
    comm_loss_after: float = 120.0


class UnsolicitedOutstationRunner(OutstationTcpRunner):
    """dnp3py's TCP runner plus what it leaves to the caller: sending unsolicited responses
    (`Outstation.generate_unsolicited`, "call this periodically") while a master is connected,
    and knowing who that master is."""

    def __init__(self, outstation: Outstation, host: str, port: int, *, unsolicited: bool = True) -> None:
        super().__init__(outstation=outstation, host=host, port=port)
        self.peer = ""
        self.unsolicited = unsolicited

    async def _handle_connection(self, channel: Any) -> None:
        remote = getattr(channel, "remote_address", None)
        self.peer = f"{remote[0]}:{remote[1]}" if remote else "connected"
        sender = asyncio.create_task(self._send_unsolicited(channel)) if self.unsolicited else None
        try:
            await super()._handle_connection(channel)
        finally:
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            self.peer = ""

    async def _send_unsolicited(self, channel: Any) -> None:
        config = self.outstation.config
        segmenter = Segmenter()
        while True:
            await asyncio.sleep(UNSOLICITED_CHECK)
            fragment = self.outstation.generate_unsolicited()
            if fragment is None:
                continue
            for segment in segmenter.segment(fragment.to_bytes()):
                frame = build_unconfirmed_user_data(
                    destination=config.master_address,
                    source=config.address,
                    dir_from_master=False,
                    user_data=segment.to_bytes(),
                )
                await channel.write_all(frame.to_bytes())

    @property
    def connected(self) -> bool:
        task = self._connection_task
        return task is not None and not task.done()


class _ErrorCounter(logging.Handler):
    """dnp3py reports malformed frames, handler failures and transport errors as log warnings;
    count each one on the link status so the gateway page shows them."""

    def __init__(self, status: LinkStatus) -> None:
        super().__init__(logging.WARNING)
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        self.status.error(f"DNP3: {record.getMessage()}")


class SiteCommandHandler(DefaultCommandHandler):
    """MESA controls -> the site's setpoint path, answered after the read-back."""

    def __init__(self, controls: SiteControls, agent_loop: asyncio.AbstractEventLoop, service: Dnp3Outstation) -> None:
        super().__init__()
        self.controls = controls
        self.loop = agent_loop
        self.service = service
        self.limit_setting: float | None = None  # AO87 as last written, in percent

    # -- analog outputs --------------------------------------------------------------------------
    def select_analog_output(self, index: int, value: float) -> CommandResult:
        return self._check_analog(index, value)[1]

    def operate_analog_output(self, index: int, value: float, select_sequence: int) -> CommandResult:
        return self.direct_operate_analog_output(index, value)

    def direct_operate_analog_output(self, index: int, value: float) -> CommandResult:
        percent, result = self._check_analog(index, value)
        if not result.is_success or percent is None:
            return result
        self.limit_setting = percent
        if not self.controls.site.values.get("site.limit_enabled"):
            return CommandResult.success("stored; applied when BO17 enables the limit mode")
        return self._run(self.controls.set_power_limit(percent, source="dnp3"))

    def _check_analog(self, index: int, value: float) -> tuple[float | None, CommandResult]:
        if index != DNP3_AO_LIMIT:
            return None, self._refused(CommandResult.not_supported(f"AO{index} is not a control of this outstation"))
        percent = value * AO87_MULTIPLIER
        try:
            PowerLimit(percent)  # the setpoint's own range check, also for a SELECT that changes nothing yet
        except ControlRejected as exc:
            return None, self._refused(CommandResult.out_of_range(f"AO87 {value:g} (0.1 % units): {exc}"))
        return percent, CommandResult.success()

    # -- binary outputs --------------------------------------------------------------------------
    def select_binary_output(
        self, index: int, code: ControlCode, count: int, on_time: int, off_time: int
    ) -> CommandResult:
        return self._check_binary(index, code)[1]

    def operate_binary_output(  # noqa: PLR0917 - dnp3py's CommandHandler signature
        self, index: int, code: ControlCode, count: int, on_time: int, off_time: int, select_sequence: int = 0
    ) -> CommandResult:
        return self.direct_operate_binary_output(index, code, count, on_time, off_time)

    def direct_operate_binary_output(
        self, index: int, code: ControlCode, count: int, on_time: int, off_time: int
    ) -> CommandResult:
        on, result = self._check_binary(index, code)
        if not result.is_success or on is None:
            return result
        if index == DNP3_BO_LIMIT_ENABLE:
            if on and self.limit_setting is None:
                return self._refused(CommandResult.blocked("write AO87 (the limit) before enabling the limit mode"))
            return self._run(self.controls.set_power_limit(self.limit_setting if on else None, source="dnp3"))
        return self._run(self.controls.set_connected(on, source="dnp3"))

    def _check_binary(self, index: int, code: ControlCode) -> tuple[bool | None, CommandResult]:
        if index not in (DNP3_BO_LIMIT_ENABLE, DNP3_BO_CONNECT):
            return None, self._refused(CommandResult.not_supported(f"BO{index} is not a control of this outstation"))
        op, tcc = code.op_type, code.tcc
        if op == OperationType.LATCH_ON or (op == OperationType.PULSE_ON and tcc == TripCloseCode.CLOSE):
            return True, CommandResult.success()
        if op == OperationType.LATCH_OFF or (op == OperationType.PULSE_ON and tcc == TripCloseCode.TRIP):
            return False, CommandResult.success()
        return None, self._refused(CommandResult.not_supported(f"BO{index}: use LATCH_ON/LATCH_OFF or CLOSE/TRIP"))

    # -- applying --------------------------------------------------------------------------------
    def _run(self, work: Coroutine[Any, Any, Any]) -> CommandResult:
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            outcome = future.result(self.service.config.control_timeout)
        except ControlRejected as exc:
            return self._refused(CommandResult.out_of_range(str(exc)))
        except ControlError as exc:
            return self._refused(CommandResult.hardware_error(str(exc)))
        except TimeoutError:
            future.cancel()
            return self._refused(CommandResult.hardware_error("the inverters did not answer in time"))
        return CommandResult.success(outcome.message)

    def _refused(self, result: CommandResult) -> CommandResult:
        self.service.status.error(f"control refused ({result.status.name}): {result.message}")
        return result


class Dnp3Outstation:
    """A supervised protocol service: serves the site's points to one DNP3 master at a time."""

    def __init__(self, config: Dnp3OutstationConfig, *, site: SiteImage, controls: SiteControls) -> None:
        self.config = config
        self.site = site
        self.controls = controls
        self.points = [p for p in site.points if p.dnp3 is not None]
        self.status = LinkStatus(
            name="dnp3-outstation",
            protocol="dnp3",
            role="outstation",
            endpoint=f"{config.host}:{config.port}/{config.address}",
            points=len(self.points) + 3,
            comm_loss_after=config.comm_loss_after,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._database: Database | None = None
        self.runner: UnsolicitedOutstationRunner | None = None

    async def run(self) -> None:
        agent_loop = asyncio.get_running_loop()
        ready, done = threading.Event(), threading.Event()
        failure: list[BaseException] = []
        handler = SiteCommandHandler(self.controls, agent_loop, self)

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(handler, ready))
            except BaseException as exc:  # reported to run() below, which fails the service
                failure.append(exc)
            finally:
                loop.close()
                ready.set()
                done.set()

        counter = _ErrorCounter(self.status)
        library_logger = logging.getLogger("dnp3")
        library_logger.addHandler(counter)
        unsubscribe = self.site.subscribe(self._on_change)
        thread = threading.Thread(target=serve, name="dnp3-outstation", daemon=True)
        thread.start()
        try:
            await asyncio.to_thread(ready.wait)
            if failure:
                raise failure[0]
            self.status.set_state("listening")
            while not done.is_set():
                runner = self.runner
                if runner is not None and runner.connected:
                    self.status.set_state("connected", runner.peer)
                else:
                    self.status.set_state("listening")
                await asyncio.sleep(STATUS_CHECK)
            raise RuntimeError(f"the DNP3 server stopped: {failure[0] if failure else 'no reason given'}")
        finally:
            unsubscribe()
            library_logger.removeHandler(counter)
            if self._loop is not None and self.runner is not None and not done.is_set():
                with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                    asyncio.run_coroutine_threadsafe(self.runner.stop(), self._loop)
            await asyncio.to_thread(done.wait, 10.0)
            self.status.set_state("down")

    async def _serve(self, handler: SiteCommandHandler, ready: threading.Event) -> None:
        config = self.config
        database = Database()
        for point in self.points:
            kind, index, _multiplier = point.dnp3  # type: ignore[misc]
            if kind == "AI":
                database.add_analog_input(index, AnalogInputConfig(event_class=EventClass.CLASS_2))
            else:
                database.add_binary_input(index, BinaryInputConfig(event_class=EventClass.CLASS_1))
        database.add_analog_output(DNP3_AO_LIMIT, AnalogOutputConfig(track_commands=True))
        database.add_binary_output(DNP3_BO_LIMIT_ENABLE, BinaryOutputConfig(event_class=EventClass.NONE))
        database.add_binary_output(DNP3_BO_CONNECT, BinaryOutputConfig(event_class=EventClass.NONE))
        self._database = database
        self._apply(dict(self.site.values))
        outstation = Outstation(
            config=OutstationConfig(address=config.address, master_address=config.master_address),
            database=database,
            handler=handler,
        )
        self.runner = UnsolicitedOutstationRunner(outstation, config.host, config.port, unsolicited=config.unsolicited)
        serving = asyncio.create_task(self.runner.run())
        while not self.runner.is_running and not serving.done():
            await asyncio.sleep(0.01)
        ready.set()
        await serving

    def _on_change(self, changes: Mapping[str, Value]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the DNP3 loop is shutting down
                loop.call_soon_threadsafe(self._apply, dict(changes))

    def _apply(self, changes: Mapping[str, Value]) -> None:
        """Runs on the DNP3 thread: new values into the database (which makes the events)."""
        database = self._database
        if database is None:
            return
        by_key = {p.key: p for p in self.points}
        for key, value in changes.items():
            point = by_key.get(key)
            if point is None:
                continue
            self._set(database, point, value)

    def _set(self, database: Database, point: SitePoint, value: Value) -> None:
        kind, index, multiplier = point.dnp3  # type: ignore[misc]
        if kind == "BI":
            if value is None:
                database.update_binary_input(index, False, quality=BinaryQuality.COMM_LOST)
            else:
                database.update_binary_input(index, bool(value), quality=BinaryQuality.ONLINE)
            if index == DNP3_BI_LIMIT_ENABLED and value is not None:
                database.update_binary_output(DNP3_BO_LIMIT_ENABLE, bool(value))
            if index == DNP3_BI_CONNECTED and value is not None:
                database.update_binary_output(DNP3_BO_CONNECT, bool(value))
            return
        if value is None:
            database.update_analog_input(index, 0.0, quality=AnalogQuality.COMM_LOST)
            return
        try:
            wire = engineering_to_transmission(float(value), multiplier, 0.0)
        except ScalingError:
            database.update_analog_input(index, 0.0, quality=AnalogQuality.OVER_RANGE | AnalogQuality.ONLINE)
            return
        database.update_analog_input(index, float(wire), quality=AnalogQuality.ONLINE)
