"""The gateway as an IEC 60870-5-104 outstation (controlled station) toward SCADA, with c104.

The same site points as DNP3 (docs/field-devices.md, "IEC 60870-5-104"): measured values as
M_ME_NC_1 (short float), states as M_SP_NA_1, sent on general interrogation and spontaneously
on change. Controls: C_SE_NC_1 at IOA 5001 limits active power to the value in percent (and
enables the limit), C_SC_NA_1 at 5002 switches the limit on (the last value) or off, C_SC_NA_1
at 5003 connects (on) or disconnects (off). Each goes down the field stack's one setpoint path;
the activation confirmation is positive only once every inverter read the value back, negative
otherwise (out of range, not taken), with the reason in the link status.

c104 runs its own threads and calls `on_receive` on one of them; the control is applied on the
agent's event loop and the callback waits for the outcome (bounded by `control_timeout`).
"""

# No `from __future__ import annotations`: c104 checks the callbacks' annotations as objects.
import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import c104

from gridfleet_agent.field.errors import ControlError
from gridfleet_agent.scada.site import (
    IOA_CONNECT,
    IOA_LIMIT_ENABLE,
    IOA_LIMIT_SETPOINT,
    SiteControls,
    SiteImage,
    Value,
)
from gridfleet_agent.scada.status import LinkStatus

STATUS_CHECK = 0.2


@dataclass(frozen=True)
class Iec104Config:
    host: str = "127.0.0.1"  # set to the SCADA-facing interface; loopback keeps a bare config closed
    port: int = 2404
    common_address: int = 1
    control_timeout: float = 8.0
    comm_loss_after: float = 120.0


class Iec104Outstation:
    def __init__(self, config: Iec104Config, *, site: SiteImage, controls: SiteControls) -> None:
        self.config = config
        self.site = site
        self.controls = controls
        self.status = LinkStatus(
            name="iec104",
            protocol="iec104",
            role="outstation",
            endpoint=f"{config.host}:{config.port}/{config.common_address}",
            points=len(site.points) + 3,
            comm_loss_after=config.comm_loss_after,
        )
        self._points: dict[str, Any] = {}
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peer = ""
        self.limit_setting: float | None = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        server = c104.Server(ip=self.config.host, port=self.config.port)
        station = server.add_station(common_address=self.config.common_address)
        if station is None:
            raise ValueError(f"c104 refused common address {self.config.common_address}")
        for point in self.site.points:
            kind = c104.Type.M_SP_NA_1 if point.binary else c104.Type.M_ME_NC_1
            self._points[point.key] = station.add_point(io_address=point.ioa, type=kind)
            self._set(point.key, self.site.values.get(point.key), transmit=False)
        for ioa, kind, callback in (
            (IOA_LIMIT_SETPOINT, c104.Type.C_SE_NC_1, self._on_limit),
            (IOA_LIMIT_ENABLE, c104.Type.C_SC_NA_1, self._on_limit_enable),
            (IOA_CONNECT, c104.Type.C_SC_NA_1, self._on_connect_command),
        ):
            command = station.add_point(io_address=ioa, type=kind)
            assert command is not None, f"c104 refused command point {ioa}"
            command.on_receive(callable=callback)
        server.on_connect(callable=self._on_client)
        server.on_unexpected_message(callable=self._on_unexpected)
        self._server = server
        unsubscribe = self.site.subscribe(self._on_change)
        await asyncio.to_thread(server.start)
        try:
            while True:
                if not server.is_running:
                    raise RuntimeError(f"the 104 server on {self.status.endpoint} is not running (port in use?)")
                if server.has_active_connections:
                    self.status.set_state("connected", self._peer)
                else:
                    self.status.set_state("listening")
                await asyncio.sleep(STATUS_CHECK)
        finally:
            unsubscribe()
            await asyncio.to_thread(server.stop)
            self._server = None
            self.status.set_state("down")

    # -- monitoring direction --------------------------------------------------------------------
    def _on_change(self, changes: Mapping[str, Value]) -> None:
        for key, value in changes.items():
            if key in self._points:
                self._set(key, value, transmit=True)

    def _set(self, key: str, value: Value, *, transmit: bool) -> None:
        point = self._points[key]
        if value is None:
            point.quality = c104.Quality.Invalid
            return
        point.value = bool(value) if point.type == c104.Type.M_SP_NA_1 else float(value)
        point.quality = c104.Quality()
        server = self._server
        if transmit and server is not None and server.has_active_connections:
            point.transmit(cause=c104.Cot.SPONTANEOUS)

    # -- control direction (c104's thread) -------------------------------------------------------
    def _on_limit(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        percent = float(point.value)  # type: ignore[arg-type]  # C_SE_NC_1 carries a float
        answer = self._run(self.controls.set_power_limit(percent, source="iec104"))
        if answer == c104.ResponseState.SUCCESS:
            self.limit_setting = percent
        return answer

    def _on_limit_enable(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        if bool(point.value):
            if self.limit_setting is None:
                return self._refused(f"IOA {IOA_LIMIT_ENABLE}: send a limit to IOA {IOA_LIMIT_SETPOINT} first")
            return self._run(self.controls.set_power_limit(self.limit_setting, source="iec104"))
        return self._run(self.controls.set_power_limit(None, source="iec104"))

    def _on_connect_command(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        return self._run(self.controls.set_connected(bool(point.value), source="iec104"))

    def _run(self, work: Coroutine[Any, Any, Any]) -> c104.ResponseState:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            future.result(self.config.control_timeout)
        except ControlError as exc:
            return self._refused(str(exc))
        except TimeoutError:
            future.cancel()
            return self._refused("the inverters did not answer in time")
        return c104.ResponseState.SUCCESS

    def _refused(self, reason: str) -> c104.ResponseState:
        self.status.error(f"control refused: {reason}")
        return c104.ResponseState.FAILURE

    def _on_client(self, server: c104.Server, ip: str) -> bool:
        self._peer = ip
        return True

    def _on_unexpected(self, server: c104.Server, message: c104.IncomingMessage, cause: c104.Umc) -> None:
        self.status.error(f"unexpected {message.type.name} at IOA {message.io_address}: {cause}")
