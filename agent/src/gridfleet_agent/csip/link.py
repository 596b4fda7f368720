"""UtilityLink: supervises py20305's CSIP client on the gateway, like the agent's other services.

    link = UtilityLink(config, field_stack, report=callback)   # report(status dict) on every change
    link.observe(record)      # the field stack's telemetry records feed MirrorUsagePoints
    await link.run()          # until cancelled: connect, register, follow programs; restart with backoff

States (`LinkState`): starting -> discovering -> registered -> following (a program's control or
default control is applied) ; comms_lost (the server stopped answering; py20305 keeps the
DefaultDERControl) ; pin_mismatch (the server's Registration PIN is not the installer's: the link
stops following, as IEEE 2030.5 asks of a client that cannot confirm its server) ; stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from py20305.client.csip_client import CsipClient
from py20305.client.tls import TlsConfig
from py20305.connectors.config import CustomDeviceConfig
from py20305.connectors.dispatcher import ConnectorDispatcher
from py20305.connectors.registry import ConnectorConfigRegistry
from py20305.models.sep.sep import DefaultDercontrol, Dercontrol1, Dercurve1, Registration
from py20305.security import compute_lfdi
from py20305.telemetry import TelemetryCoordinator

from gridfleet_agent.backoff import Backoff
from gridfleet_agent.csip.config import CsipConfig
from gridfleet_agent.csip.connector import DER_ALARM_BITS, FieldStackConnector, SetpointPath
from gridfleet_agent.errors import AgentError

logger = logging.getLogger(__name__)

STATE_CHECK_INTERVAL = 1.0
RESPONSES_KEPT = 20


class LinkState(StrEnum):
    STARTING = "starting"
    DISCOVERING = "discovering"
    REGISTERED = "registered"
    FOLLOWING = "following"
    COMMS_LOST = "comms_lost"
    PIN_MISMATCH = "pin_mismatch"
    STOPPED = "stopped"


class PinMismatch(AgentError):
    """The server's Registration PIN is not the one the installer configured."""

    code = "csip_pin_mismatch"


class _RecordingDispatcher(ConnectorDispatcher):
    """py20305's dispatcher, noting which control (event or default) was applied last and why."""

    def __init__(self, *args: Any, link: UtilityLink, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._link = link

    async def apply_control(self, device_href: str, derc: Dercontrol1, curves: list[Dercurve1], **kwargs: Any) -> None:
        await super().apply_control(device_href, derc, curves, **kwargs)
        self._link._control_applied("event", derc.m_rid.value.hex().upper(), derc.description)

    async def apply_default_control(
        self, device_href: str, dderc: DefaultDercontrol, *args: Any, **kwargs: Any
    ) -> None:
        # py20305 0.16.1 does not track opModMaxLimWInject as a mode (events/modes_bitmask.py), so
        # it never withdraws it when the event that set it ends. The default is the baseline for
        # every mode it does not name: release the export limit here unless the default sets one.
        connector = self._link.connector
        if connector is not None and dderc.dercontrol_base.op_mod_max_lim_winject is None:
            connector.release_export_limit()
        await super().apply_default_control(device_href, dderc, *args, **kwargs)
        self._link._control_applied("default", dderc.m_rid.value.hex().upper(), dderc.description)


class UtilityLink:
    def __init__(
        self,
        config: CsipConfig,
        field: SetpointPath,
        *,
        report: Callable[[dict[str, Any]], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self._field = field
        self._report = report
        self._backoff = backoff or Backoff(base=2.0, cap=300.0)
        self._latest: dict[str, dict[str, Any]] = {}
        self._alarm_bits: dict[str, int] = {}
        self.lfdi = compute_lfdi(config.certificate.read_text()).upper()
        self.state = LinkState.STARTING
        self.detail = ""
        self.control: dict[str, Any] | None = None
        self.program: str | None = None
        self.responses: deque[dict[str, Any]] = deque(maxlen=RESPONSES_KEPT)
        self.applied_pct: float | None = None
        self._client: CsipClient | None = None
        self.connector: FieldStackConnector | None = None
        self._was_registered = False

    # -- inputs ------------------------------------------------------------------------------------

    def observe(self, record: dict[str, Any]) -> None:
        """Keep the latest telemetry and the active DER alarms of each field device (FieldStack sink records)."""
        payload = record.get("payload") or {}
        device = payload.get("device")
        if not isinstance(device, str):
            return
        if record.get("kind") == "telemetry" and isinstance(payload.get("points"), dict):
            self._latest[device] = payload["points"]
        elif record.get("kind") == "alarm" and payload.get("code") in DER_ALARM_BITS:
            mask = 1 << DER_ALARM_BITS[payload["code"]]
            current = self._alarm_bits.get(device, 0)
            self._alarm_bits[device] = current | mask if payload.get("state") == "raised" else current & ~mask

    def alarm_status(self, device_id: str) -> int:
        """The device's active alarms as IEEE 2030.5 DERStatus alarmStatus bits."""
        return self._alarm_bits.get(device_id, 0)

    def latest(self, device_id: str) -> dict[str, Any]:
        return self._latest.get(device_id, {})

    # -- status ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "detail": self.detail,
            "server": self.config.server_url,
            "lfdi": self.lfdi,
            "program": self.program,
            "control": self.control,
            "applied_limit_pct": self.applied_pct,
            "responses": list(self.responses),
        }

    def _set_state(self, state: LinkState, detail: str = "") -> None:
        if (state, detail) == (self.state, self.detail):
            return
        logger.info("utility link: %s%s", state.value, f" ({detail})" if detail else "")
        self.state, self.detail = state, detail
        self._emit()

    def _emit(self) -> None:
        if self._report is not None:
            try:
                self._report(self.status())
            except Exception:  # reporting must never stop the link
                logger.exception("utility link status report failed")

    def _control_applied(self, source: str, mrid: str, description: str | None) -> None:
        self.control = {"source": source, "mrid": mrid, "description": description or ""}
        self.program = self._program_of(mrid)
        self._set_state(LinkState.FOLLOWING, f"{source} control of {self.program or 'a program'}")
        self._emit()

    def _limit_applied(self, pct: float | None, readback: Any) -> None:
        self.applied_pct = pct

    def _response_posted(self, mrid: bytes, code: Any, lfdi: bytes, at: int, error: str | None) -> None:
        self.responses.append(
            {
                "mrid": mrid.hex().upper(),
                "status": int(code),
                "name": getattr(code, "name", str(code)),
                "at": at,
                "error": error,
            }
        )
        self._emit()

    def _program_of(self, mrid: str) -> str | None:
        if self._client is None:
            return None
        for program in self._client.state.der_programs.values():
            derp = program.program
            dderc = program.default_dercontrol
            mrids = {c.m_rid.value.hex().upper() for c in program.der_controls}
            if dderc is not None:
                mrids.add(dderc.m_rid.value.hex().upper())
            if mrid in mrids:
                return str(derp.description or program.href)
        return None

    # -- supervision -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the link until cancelled; a failed session restarts after a jittered backoff."""
        try:
            while True:
                try:
                    await self._session()
                    delay = self._backoff.next_delay()
                except PinMismatch as exc:
                    self._set_state(LinkState.PIN_MISMATCH, str(exc))
                    delay = self._backoff.cap  # wait for the installer or the utility to fix it
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    state = LinkState.COMMS_LOST if self._was_registered else LinkState.DISCOVERING
                    self._set_state(state, f"{type(exc).__name__}: {exc}"[:300])
                    delay = self._backoff.next_delay()
                await asyncio.sleep(delay)
        finally:
            self._set_state(LinkState.STOPPED)

    def _build_client(self) -> CsipClient:
        cfg = self.config
        lfdi = self.lfdi

        def build() -> FieldStackConnector:
            self.connector = FieldStackConnector(
                self._field,
                cfg.der,
                latest=self.latest,
                alarms=self.alarm_status,
                revert_after_s=cfg.revert_after_s,
                on_applied=self._limit_applied,
            )
            return self.connector

        def connector_factory(_device: Any) -> Callable[[], FieldStackConnector]:
            return build

        registry = ConnectorConfigRegistry(
            [CustomDeviceConfig(lfdi=lfdi, class_path="gridfleet_agent.csip.connector.FieldStackConnector")],
            factory_resolver=connector_factory,
        )
        tls = TlsConfig(
            client_cert=cfg.certificate, client_key=cfg.key, ca_cert=cfg.ca_bundle, check_hostname=cfg.check_hostname
        )
        return CsipClient(
            cfg.server_url,
            tls=tls,
            dispatcher=_RecordingDispatcher(registry, lfdi_resolver=lambda _href: lfdi, link=self),
            dcap_path=cfg.dcap_path,
        )

    async def _session(self) -> None:
        self._set_state(LinkState.DISCOVERING)
        client = self._client = self._build_client()
        telemetry: TelemetryCoordinator | None = None
        run_task: asyncio.Task[None] | None = None
        try:
            await client.connect()
            await self._ensure_registered(client)
            self._was_registered = True
            self._backoff.reset()
            self._set_state(LinkState.REGISTERED)
            # py20305 has no public hook for posted responses; its tracker's observer is the one
            # the operations history uses (docs/utility-link.md, "Where py20305 falls short").
            tracker = getattr(getattr(client, "_event_processor", None), "_response_tracker", None)
            if tracker is not None:
                tracker.observer = self._response_posted
            telemetry = self._start_telemetry(client)
            run_task = asyncio.create_task(client.run(), name="csip-client")
            while not run_task.done():
                await asyncio.sleep(STATE_CHECK_INTERVAL)
                if not client.http.server_alive and client.http.last_contact_epoch is not None:
                    silent = int(time.time() - client.http.last_contact_epoch)
                    self._set_state(LinkState.COMMS_LOST, f"no answer from the utility server for {silent} s")
                elif self.state is LinkState.COMMS_LOST:
                    self._set_state(LinkState.FOLLOWING if self.control else LinkState.REGISTERED)
            run_task.result()
        finally:
            if run_task is not None and not run_task.done():
                run_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run_task
            if telemetry is not None:
                await telemetry.shutdown()
            await client.shutdown()
            self._client = None

    async def _ensure_registered(self, client: CsipClient) -> None:
        own = [e for e in client.state.end_devices.values() if (e.lfdi or b"").hex().upper() == self.lfdi]
        if not own:
            # Not listed: register in band (the head-end pre-registers from the inventory, but a
            # utility server may expect the client to POST itself).
            await client.register_end_device(lfdi=self.lfdi.lower(), device_category=0)
            await client.trigger_rediscovery()
            own = [e for e in client.state.end_devices.values() if (e.lfdi or b"").hex().upper() == self.lfdi]
            if not own:
                raise RuntimeError("the utility server does not list this device after registration")
        registration_href = own[0].registration_href
        if self.config.pin is not None and registration_href:
            registration = await client.http.get(registration_href, Registration)
            if registration.p_in.value != self.config.pin:
                # py20305 only logs a mismatch; a client that cannot confirm its server must not follow it.
                raise PinMismatch(f"the server's registration PIN {registration.p_in.value} is not the configured one")

    def _start_telemetry(self, client: CsipClient) -> TelemetryCoordinator:
        dispatcher = client.dispatcher
        assert isinstance(dispatcher, ConnectorDispatcher)
        registry = dispatcher.registry

        def resolve(lfdi: str) -> Any:
            proxy = registry.get_connector(lfdi)
            if proxy is None:
                raise KeyError(lfdi)
            return proxy.aresolve()

        coordinator = TelemetryCoordinator(
            client, lfdis=[self.lfdi.lower()], connector_resolver=resolve, post_rate_seconds=self.config.post_rate
        )
        coordinator.setup()
        coordinator.start_device_telemetry()

        async def on_rediscovered() -> None:
            await coordinator.restart_device_telemetry()

        client.set_on_rediscovered(on_rediscovered)
        return coordinator
