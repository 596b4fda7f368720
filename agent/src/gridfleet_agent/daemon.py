"""The agent daemon: uplink, heartbeat and inventory, update polling, installs, commands, field devices.

``Agent`` wires the parts together; each runs as an asyncio task and blocking work (TUF, installs,
SQLite bursts) runs in worker threads, so a slow download never stalls the uplink. One process may
run several agents (``gridfleet-agent simulate``), so nothing here is global.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gridfleet_agent import __version__, logfiles
from gridfleet_agent.backoff import Backoff, jittered
from gridfleet_agent.config import AgentConfig
from gridfleet_agent.errors import AgentError
from gridfleet_agent.fsutil import atomic_write
from gridfleet_agent.identity import Identity, IdentityError
from gridfleet_agent.installers.config import ConfigInstaller
from gridfleet_agent.installers.license import LicenseInstaller
from gridfleet_agent.installers.registry import OWN_INSTALLERS, InstallerContext, load_installer, load_installers
from gridfleet_agent.installers.runner import Installer, InstallError, InstallRunner, Step, command_defer_hook
from gridfleet_agent.inventory import disk_free_mb, mem_total_mb, os_name
from gridfleet_agent.queue import Outbox, RecordKind, utc_timestamp
from gridfleet_agent.reporting import queue_status_reporter
from gridfleet_agent.tunnel import TunnelService
from gridfleet_agent.updater import UpdateService
from gridfleet_agent.uplink import Uplink, UplinkError

logger = logging.getLogger(__name__)

INVENTORY_INTERVAL = 60.0
FIELD_RESTART_TIMEOUT = 60.0  # seconds a new field configuration may take to start
FIRST_CHECK_DELAY = 5.0  # seconds, jittered: lets the uplink come up first after a start
MIN_POLL_INTERVAL = 5.0  # seconds: a server-sent update_poll_interval below this is ignored
SEEN_COMMANDS_KEPT = 256
MAX_REBOOT_DELAY_S = 3600  # a reboot command may ask to wait up to an hour
REBOOT_FLUSH_WAIT = 30.0  # seconds a reboot waits for the queue to be acknowledged


async def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main``; SIGTERM (systemd stop) and SIGINT cancel it so that it shuts down cleanly."""
    task = asyncio.create_task(main)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def ssl_context_for(config: AgentConfig) -> ssl.SSLContext | None:
    if not config.server_url.startswith("https://"):
        return None
    return ssl.create_default_context(cafile=config.agent.ca_bundle or None)


class FieldDevices(Protocol):
    """What the daemon needs from a field protocol stack (``gridfleet_agent.field.FieldStack``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def field_devices(self) -> list[dict[str, Any]]: ...

    def link_statuses(self) -> list[dict[str, Any]]: ...

    async def execute(self, name: str, args: dict[str, Any]) -> Any: ...


FieldRecordSink = Callable[[dict[str, Any]], None]
FieldFactory = Callable[[FieldRecordSink], FieldDevices]


def _no_devices(kind: str | None = None) -> list[str]:
    return []


class QueueLogHandler(logging.Handler):
    """Sends the agent's own log lines to the server as ``log`` records (through the outbox)."""

    def __init__(self, outbox: Outbox, level: int) -> None:
        super().__init__(level)
        self.outbox = outbox

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        try:
            self.outbox.put(
                RecordKind.LOG,
                {
                    "level": level if level in {"debug", "info", "warning", "error", "critical"} else "info",
                    "logger": record.name[:200],
                    "message": self.format(record)[:16_000],
                },
            )
        except Exception:  # logging must never take the agent down
            self.handleError(record)


def _log_link_failure(task: asyncio.Task[None]) -> None:
    """The link runs beside the agent's loops: a crash is logged, it does not stop the agent."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("utility link stopped: %s", task.exception(), exc_info=task.exception())


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        identity: Identity | None = None,
        durable_queue: bool = True,
        compression: bool = True,
        control_socket: bool = True,
        field: FieldFactory | None = None,
    ) -> None:
        self.config = config
        # The server's welcome may replace it (docs/protocol/uplink.md 2.2).
        self.poll_interval = config.updates.poll_interval
        state = config.state_dir
        # Identity key, queue and install state: the agent's alone, whatever the umask.
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(state, 0o700)
        self._ssl = ssl_context_for(config)
        self.identity = identity or Identity.load(state, ssl_context=self._ssl)
        self.outbox = Outbox(state / "outbox.sqlite3", max_records=config.queue.max_records, durable=durable_queue)
        updates = config.updates
        # Bundle type -> the installer registered under the name [installers] gives (installers.registry).
        self.installers = load_installers(
            config.installers.by_kind,
            lambda name: InstallerContext(
                name=name,
                state_dir=state,
                updates=updates,
                serial=self.identity.serial,
                settings=config.installers.settings.get(name, {}),
                online_probe=self._wait_online_from_thread,
                license_key=self._license_key,
            ),
        )
        # The built-in config installer also feeds the field stack (field_section, _reload_field).
        config_installer = self.installers["config"]
        self.config_bundle = config_installer if isinstance(config_installer, ConfigInstaller) else None
        if self.config_bundle is not None:
            self.config_bundle.on_reload.append(self._reload_field)
        self.runner = InstallRunner(
            state / "update-state.json",
            self.installers,
            report=queue_status_reporter(self.outbox),
            defer_hooks=tuple(command_defer_hook(list(c)) for c in updates.defer_hooks),
            reboot=self._reboot if updates.reboot_command else None,
        )
        self.updates = UpdateService(
            server_url=config.server_url,
            state_dir=state,
            token=self._token,
            runner=self.runner,
            outbox=self.outbox,
            trusted_root=updates.trusted_root,
            ssl_context=self._ssl,
        )
        self.uplink = Uplink(
            server_url=config.server_url,
            outbox=self.outbox,
            token=self._token_async,
            invalidate_token=self.identity.forget_access_token,
            on_command=self._on_command,
            on_welcome=self._on_welcome,
            settings=config.uplink,
            ssl_context=self._ssl,
            compression=compression,
        )
        self.tunnels = TunnelService(
            server_url=config.server_url,
            settings=config.remote_access,
            signed_config=self._signed_config,
            field_devices=lambda: self._field.field_devices() if self._field is not None else [],
            token=self._token_async,
            report=lambda command_id, status, text, result: self._command_result(
                command_id, status, text, result=result
            ),
            ssl_context=self._ssl,
        )
        self._control_socket = control_socket
        self.check_now = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._check_commands: list[str] = []  # check_updates commands waiting for the check's result
        self.last_check: dict[str, Any] = {}
        self.next_check_at: float | None = None
        self._last_inventory: dict[str, Any] | None = None
        self._field_factory = field
        self._field: FieldDevices | None = None
        self._link: Any = None  # gridfleet_agent.csip.UtilityLink, when `csip` is configured
        self._link_task: asyncio.Task[None] | None = None
        self._link_settings: tuple[dict[str, Any], Path] | None = None  # the table it runs with, and its base
        self._link_alarm_raised = False
        self._protocols: Any = None  # scada.services.ProtocolServices, when the signed config asks for any
        self._protocols_config_version: str | None = None
        self._field_started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen_commands_file = state / "commands-seen.json"

    # -- identity ---------------------------------------------------------------------------------
    @property
    def serial(self) -> str:
        return self.identity.serial

    def _token(self) -> str:
        return self.identity.access_token(self.config.server_url)

    async def _token_async(self) -> str:
        try:
            return await asyncio.to_thread(self._token)
        except IdentityError as e:  # e.g. certificate revoked: shown in `status`, retried with backoff
            raise UplinkError(f"no access token: {e}") from e

    def _license_key(self) -> dict[str, Any] | None:
        channel = self.updates.channel() or {}
        key = channel.get("license_public_key")
        return key if isinstance(key, dict) else None

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled."""
        self._loop = asyncio.get_running_loop()
        self.outbox.put(RecordKind.EVENT, {"name": "agent.started", "message": f"agent {__version__} started"})
        tasks = [
            asyncio.create_task(self.uplink.run(), name=f"uplink-{self.serial}"),
            asyncio.create_task(self._update_loop(), name=f"updates-{self.serial}"),
            asyncio.create_task(self._inventory_loop(), name=f"inventory-{self.serial}"),
        ]
        if self._control_socket:
            from gridfleet_agent.control import serve_control

            tasks.append(asyncio.create_task(serve_control(self), name="control"))
        try:
            await self._start_field()
            self._start_link()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._stop_link()
            await self.tunnels.close_all()
            await self._stop_protocols()
            if self._field is not None:
                await self._field.stop()
            self.outbox.put(RecordKind.EVENT, {"name": "agent.stopping", "message": "agent stopped"})
            self.outbox.close()

    async def _start_field(self) -> None:
        if self._field_factory is not None:
            self._field = self._field_factory(self.field_record)
        else:
            self._field = self._field_stack(self.field_section())
        if self._field is not None:
            await self._field.start()
        self._field_started = True
        await self._start_protocols()

    def field_section(self) -> dict[str, Any]:
        """The field configuration in force: the installed configuration bundle's ``field`` object
        (it arrives signed, through TUF) when it has one, else the agent configuration's ``[field]``."""
        try:
            bundle = json.loads(self.config_bundle.config_file.read_bytes()) if self.config_bundle else None
        except (OSError, ValueError):
            bundle = None
        section = bundle.get("field") if isinstance(bundle, dict) else None
        return section if isinstance(section, dict) else self.config.field

    def _field_stack(self, section: dict[str, Any]) -> FieldDevices | None:
        """A new field stack for `section`; raises the field's ValueError (FieldConfigError) if invalid."""
        if not section.get("devices"):
            return None
        from gridfleet_agent.field import FieldStack  # optional extra: pymodbus, pysunspec2, paho-mqtt, pyyaml

        return FieldStack(section, self.field_record)

    def _reload_field(self, config_file: Path) -> None:
        """Runs after the config installer switched bundles (in the install thread): the field stack
        is rebuilt from the new bundle. An invalid field section (a template with a mistake, say)
        fails the install with every problem named, and the runner rolls back. The SCADA/cloud
        protocols follow after the check (_after_check), onto the new stack."""
        if self._loop is None or self._field_factory is not None or not self._field_started:
            return  # not running yet (start-up recovery): _start_field reads the current bundle
        future = asyncio.run_coroutine_threadsafe(self._restart_field(), self._loop)
        try:
            future.result(timeout=FIELD_RESTART_TIMEOUT)
        except ValueError as e:
            raise InstallError("invalid_config", f"field: {e}") from e

    async def _restart_field(self) -> None:
        section = self.field_section()
        replacement = self._field_stack(section)  # validates before the running stack is stopped
        if self._field is not None:
            await self._field.stop()
        self._field = replacement
        if replacement is not None:
            await replacement.start()
        self._queue_inventory_if_changed()

    async def _start_protocols(self) -> None:
        """SCADA and cloud protocols, from the `scada` and `cloud` sections of the signed configuration.

        An invalid section is reported (log and `protocols.config_invalid` event) and nothing of it
        starts; the field stack and the uplink go on regardless.
        """
        installer = self.installers.get("config")
        self._protocols_config_version = installer.active_version() if installer is not None else None
        if not isinstance(installer, ConfigInstaller):  # configuration handled by a vendor installer
            return
        try:
            from gridfleet_agent.scada.services import ProtocolsConfig, ProtocolServices, load_signed_config

            config = ProtocolsConfig.from_config(load_signed_config(installer.config_file))
        except ImportError as exc:  # the scada/cloud extras are not installed on this gateway
            logger.info("SCADA and cloud protocols not available: %s", exc)
            return
        except AgentError as exc:
            logger.error("SCADA/cloud configuration refused: %s", exc)
            self.outbox.put(RecordKind.EVENT, {"name": "protocols.config_invalid", "message": str(exc)[:2000]})
            return
        if config.empty:
            return
        self._protocols = ProtocolServices(
            config,
            field=self._field if hasattr(self._field, "apply_setpoint") else None,  # type: ignore[arg-type]
            state_dir=self.config.state_dir,
            gateway=self.serial,
            emit=self.field_record,
            report=self._protocol_report,
            on_link_change=self._queue_inventory_if_changed,
        )
        await self._protocols.start()

    async def _stop_protocols(self) -> None:
        if self._protocols is not None:
            await self._protocols.stop()
            self._protocols = None

    def _protocol_report(self, kind: str, payload: dict[str, Any]) -> None:
        self.outbox.put(kind, payload)
        self.uplink.wake()

    def field_record(self, record: dict[str, Any]) -> None:
        """Sink for records from the field stack: ``{"kind", "ts", "payload"}``."""
        if self._link is not None:
            self._link.observe(record)
        if self._protocols is not None:
            self._protocols.observe(record)
        if record["kind"] == "inventory":
            self._queue_inventory_if_changed()
            return
        self.outbox.put(record["kind"], record["payload"], ts=record["ts"])
        self.uplink.wake()

    # -- utility link (IEEE 2030.5 / CSIP) ---------------------------------------------------------
    def _csip_settings(self) -> tuple[dict[str, Any], Path] | None:
        """The `csip` section of the signed configuration (relative paths: the bundle's files/).

        The local `[csip]` table is a development fallback, used only while the active signed
        configuration has no `csip` section; `"enabled": false` there switches the link off.
        """
        signed = self._signed_config()
        if signed is not None and isinstance(signed.get("csip"), dict):
            table = dict(signed["csip"])
            if table.pop("enabled", True) is False:
                return None
            config_file = getattr(self.installers.get("config"), "config_file", None)
            return table, (config_file.parent if isinstance(config_file, Path) else self.config.state_dir) / "files"
        return (dict(self.config.csip), self.config.state_dir) if self.config.csip else None

    def _start_link(self) -> None:
        self._link_settings = self._csip_settings()
        if self._link_settings is not None:
            self._link_task = asyncio.create_task(
                self._utility_link(*self._link_settings), name=f"utility-link-{self.serial}"
            )
            self._link_task.add_done_callback(_log_link_failure)

    async def _stop_link(self) -> None:
        if self._link_task is not None:
            self._link_task.cancel()
            await asyncio.gather(self._link_task, return_exceptions=True)
        self._link_task = self._link = None

    async def _restart_link_if_changed(self) -> None:
        """A new signed configuration: the link restarts when its `csip` section changed."""
        if self._csip_settings() != self._link_settings:
            logger.info("utility link configuration changed: restarting the link")
            await self._stop_link()
            self._start_link()

    async def _utility_link(self, table: dict[str, Any], base: Path) -> None:
        """Run the utility link (optional extra `csip`: py20305) on the field stack's setpoint path."""
        from gridfleet_agent.csip import UtilityLink
        from gridfleet_agent.csip.setup import link_config

        field = self._field
        if field is None or not hasattr(field, "apply_setpoint"):
            logger.error("csip is configured but no field stack takes setpoints; the utility link stays off")
            return
        backoff = Backoff(base=5.0, cap=300.0)
        while True:
            try:
                config = await asyncio.to_thread(
                    link_config,
                    table,
                    base=base,
                    state_dir=self.config.state_dir,
                    device_ids=getattr(field, "device_ids", _no_devices),
                    server_url=self.config.server_url,
                    token=self._token,
                    serial=self.serial,
                    ssl_context=self._ssl,
                )
                break
            except IdentityError as e:  # the fleet server is not reachable yet, or refused the CSR
                logger.warning("utility link: no utility-link identity yet: %s", e)
                await asyncio.sleep(backoff.next_delay())
        self._link = UtilityLink(config, field, report=self._report_link)  # type: ignore[arg-type]
        await self._link.run()

    def _report_link(self, status: dict[str, Any]) -> None:
        """The link's state goes to the server as a `csip.link` event; a lost link raises an alarm."""
        self.outbox.put(
            RecordKind.EVENT,
            {
                "name": "csip.link",
                "message": f"utility link {status['state']}: {status['detail']}"[:2000],
                "data": status,
            },
        )
        lost = status["state"] == "comms_lost"
        if lost != self._link_alarm_raised and (lost or status["state"] in ("registered", "following")):
            self._link_alarm_raised = lost
            self.outbox.put(
                RecordKind.ALARM,
                {
                    "source": "utility-link",
                    "code": "csip.link_lost",
                    "severity": "major",
                    "state": "raised" if lost else "cleared",
                    "message": f"utility link to {status['server']}: {status['detail'] or status['state']}"[:500],
                },
            )
        self.uplink.wake()

    def _signed_config(self) -> dict[str, Any] | None:
        """The active signed configuration (config.json of the installed config bundle), if any."""
        # The built-in "config" installer keeps it at config_file; another one may keep none.
        config_file = getattr(self.installers.get("config"), "config_file", None)
        if not isinstance(config_file, Path):
            return None
        try:
            loaded = json.loads(config_file.read_bytes())
        except (OSError, ValueError):
            return None
        return loaded if isinstance(loaded, dict) else None

    # -- updates ----------------------------------------------------------------------------------
    async def _update_loop(self) -> None:
        outcome = await asyncio.to_thread(self.runner.recover)
        if outcome is not None:
            logger.warning("finished an interrupted install at start-up: %s", outcome)
        settings = self.config.updates
        backoff = Backoff(base=min(30.0, settings.poll_interval), cap=settings.max_backoff)
        delay = jittered(FIRST_CHECK_DELAY, 1.0)
        while True:
            self.next_check_at = time.time() + delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.check_now.wait(), delay)
            self.check_now.clear()
            self.next_check_at = None
            requested_by, self._check_commands = self._check_commands, []
            try:
                report = await asyncio.to_thread(self.updates.check)
                self.last_check = {
                    "at": report.at,
                    "ok": True,
                    "sequence": report.assignment_sequence,
                    "actions": report.actions,
                }
                backoff.reset()
                delay = jittered(self.poll_interval, settings.jitter)
                answer = ("succeeded", "; ".join(f"{k}: {v}" for k, v in report.actions.items()) or "checked")
            except Exception as e:  # a check must never stop the polling; unexpected ones get a traceback
                if isinstance(e, AgentError | OSError):  # expected: the agent's own errors say what went wrong
                    logger.warning("update check failed: %s", e)
                else:
                    logger.exception("update check failed unexpectedly")
                self.last_check = {"at": utc_timestamp(), "ok": False, "error": str(e)[:500]}
                delay = backoff.next_delay()
                answer = ("failed", f"update check failed: {e}")
            for command_id in requested_by:  # the final answer to "accepted" (uplink.md 2.6)
                self._command_result(command_id, *answer, result=self.last_check)
            await self._after_check()

    async def _after_check(self) -> None:
        pending = self.runner.current()
        if pending is not None and pending.step is Step.REBOOTING and not self.config.updates.reboot_command:
            # No reboot command (a development gateway or the simulator): behave as if it restarted.
            await asyncio.to_thread(self.runner.recover)
        with contextlib.suppress(IdentityError):
            await asyncio.to_thread(self.identity.renew_if_due, self.config.server_url)
        config = self.installers.get("config")
        if config is not None and config.active_version() != self._protocols_config_version:
            # A new signed configuration was installed: the SCADA/cloud protocols follow it.
            await self._stop_protocols()
            await self._start_protocols()
            await self._restart_link_if_changed()
        self._queue_inventory_if_changed()
        self.uplink.wake()

    async def _reboot_after(self, delay: float) -> None:
        """Reboot once the delay passed and the queue (with this command's answer) is flushed."""
        await asyncio.sleep(delay)
        deadline = time.monotonic() + REBOOT_FLUSH_WAIT
        while self.outbox.depth().total and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.to_thread(self._reboot)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    def _reboot(self) -> None:
        subprocess.run(list(self.config.updates.reboot_command), check=False)

    def _wait_online_from_thread(self, timeout: float) -> bool:
        """The health check's "connected to the server again", asked from the install thread."""
        assert self._loop is not None

        async def wait() -> bool:
            try:
                await asyncio.wait_for(self.uplink.online.wait(), timeout)
            except TimeoutError:
                return False
            return True

        return asyncio.run_coroutine_threadsafe(wait(), self._loop).result()

    # -- inventory --------------------------------------------------------------------------------
    def inventory(self) -> dict[str, Any]:
        licenses = self.installers["license"]
        license_ = licenses.active_license() if isinstance(licenses, LicenseInstaller) else None
        inventory: dict[str, Any] = {
            "hardware_model": self.config.agent.hardware_model[:100],
            "os": os_name(),
            "agent_version": __version__,
            "firmware_version": self.installers["firmware"].active_version() or "",
            "attributes": {
                "serial": self.serial,
                "lfdi": self.identity.lfdi,
                "config_version": self.installers["config"].active_version(),
                "license_version": licenses.active_version(),
                "license_limits": license_.limits if license_ else {},
                "license_features": list(license_.features) if license_ else [],
                "disk_free_mb": disk_free_mb(self.config.state_dir),
                "mem_total_mb": mem_total_mb(),
                "remote_access": self.tunnels.inventory(),
            },
            "field_devices": [
                *(self._field.field_devices() if self._field is not None else []),
                *(self._protocols.field_devices() if self._protocols is not None else []),
            ],
        }
        links = [
            *(self._field.link_statuses() if self._field is not None else []),
            *(self._protocols.statuses() if self._protocols is not None else []),
        ]
        if links:
            inventory["attributes"]["protocols"] = links
        return inventory

    def _queue_inventory_if_changed(self, *, force: bool = False) -> None:
        current = self.inventory()
        comparable = {**current, "attributes": {k: v for k, v in current["attributes"].items() if k != "disk_free_mb"}}
        if force or comparable != self._last_inventory:
            self._last_inventory = comparable
            self.outbox.put(RecordKind.INVENTORY, current)
            self.uplink.wake()

    async def _on_welcome(self, welcome: dict[str, Any]) -> None:
        interval = welcome.get("update_poll_interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval >= MIN_POLL_INTERVAL:
            self.poll_interval = float(interval)
        self._queue_inventory_if_changed(force=True)

    async def _inventory_loop(self) -> None:
        while True:
            await asyncio.sleep(jittered(INVENTORY_INTERVAL, 0.2))
            self._queue_inventory_if_changed()

    # -- commands (docs/protocol/uplink.md 2.6) ------------------------------------------------------
    def _first_time(self, command_id: str) -> bool:
        """Commands may arrive twice; each id runs once, across restarts too."""
        try:
            seen: list[str] = json.loads(self._seen_commands_file.read_bytes())
        except (FileNotFoundError, ValueError):
            seen = []
        if command_id in seen:
            return False
        atomic_write(self._seen_commands_file, json.dumps([*seen, command_id][-SEEN_COMMANDS_KEPT:]).encode())
        return True

    async def _on_command(self, message: dict[str, Any]) -> None:
        command_id, name = str(message.get("id", "")), str(message.get("name", ""))
        args = message.get("args") if isinstance(message.get("args"), dict) else {}
        if not command_id or not self._first_time(command_id):
            return
        expires = message.get("expires_at")
        if isinstance(expires, str) and datetime.fromisoformat(expires.replace("Z", "+00:00")) < datetime.now(UTC):
            status, text, result = "rejected", "command expired before it arrived", None
        else:
            status, text, result = await self._execute(command_id, name, args or {})
        self._command_result(command_id, status, text, result=result)

    def _command_result(self, command_id: str, status: str, message: str, *, result: Any = None) -> None:
        data: dict[str, Any] = {"command_id": command_id, "status": status, "message": message[:2000]}
        if result is not None:
            data["result"] = result
        self.outbox.put(RecordKind.EVENT, {"name": "command_result", "data": data})
        self.uplink.wake()

    async def _execute(
        self, command_id: str, name: str, args: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any] | None]:
        if name == "check_updates":
            self._check_commands.append(command_id)
            self.check_now.set()
            return "accepted", "update check started", None
        if name == "reboot":
            return self._schedule_reboot(args)
        if name == "upload_logs":
            return await self._upload_logs(args)
        if name == "open_tunnel":
            return await self.tunnels.open(command_id, args)
        if name == "set_power_limit":
            if self._field is None:
                return "rejected", "no field devices are configured on this gateway", None
            outcome = await self._field.execute(name, args)
            return outcome.status, outcome.message, outcome.result
        return "rejected", f"command {name!r} is not implemented by agent {__version__}", None

    def _schedule_reboot(self, args: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
        if not self.config.updates.reboot_command:
            return "rejected", "this agent has no reboot command configured", None
        delay = args.get("delay_s", 0)
        if not isinstance(delay, int) or not 0 <= delay <= MAX_REBOOT_DELAY_S:
            return "rejected", f"args.delay_s must be a whole number of seconds 0..{MAX_REBOOT_DELAY_S}", None
        self._background(self._reboot_after(delay))
        return "accepted", f"rebooting in {delay} s", None

    async def _upload_logs(self, args: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
        url = args.get("upload_url")
        if not isinstance(url, str) or not url.startswith("/"):
            return "rejected", "args.upload_url must be a path on the server (/gw/v1/logs/<id>)", None
        try:
            since, until = (
                datetime.fromisoformat(str(args[k]).replace("Z", "+00:00")) if args.get(k) else None
                for k in ("since", "until")
            )
        except ValueError as e:
            return "rejected", f"args.since/until must be RFC 3339 times: {e}", None
        try:
            token = await self._token_async()
            uploaded = await asyncio.to_thread(
                logfiles.upload,
                self.config.server_url + url,
                self.config.state_dir,
                token=token,
                since=since,
                until=until,
                ssl_context=self._ssl,
            )
        except (logfiles.LogUploadError, UplinkError, OSError) as e:
            return "failed", str(e), None
        return "succeeded", f"uploaded {uploaded['lines']} log lines ({uploaded.get('bytes')} bytes gzip'd)", uploaded

    # -- status -------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        update = self.runner.state()
        pending = update.job
        return {
            **offline_status(self.config, outbox=self.outbox, installers=self.installers),
            "daemon": "running",
            "connection": {
                "state": self.uplink.state,
                "since": self.uplink.connected_since,
                "last_error": self.uplink.last_error,
            },
            "install_in_progress": (
                {"target": pending.target, "step": str(pending.step), "attempt": pending.attempt} if pending else None
            ),
            "last_applied": {kind: {"target": a.target, "result": a.result} for kind, a in update.applied.items()},
            "last_check": self.last_check,
            "next_check_in_s": round(self.next_check_at - time.time(), 1) if self.next_check_at else None,
        }


def offline_status(
    config: AgentConfig, *, outbox: Outbox | None = None, installers: Mapping[str, Installer] | None = None
) -> dict[str, Any]:
    """What can be known from the state directory alone (also when the daemon is not running)."""
    state = config.state_dir
    try:
        identity = json.loads((state / "identity" / "identity.json").read_text())
    except FileNotFoundError:
        identity = {}
    own_outbox = outbox is None
    outbox = outbox or Outbox(state / "outbox.sqlite3", max_records=config.queue.max_records)
    try:
        depth = outbox.depth()
    finally:
        if own_outbox:
            outbox.close()

    return {
        "serial": identity.get("serial"),
        "lfdi": identity.get("lfdi"),
        "server": config.server_url,
        "agent_version": __version__,
        "installed": installed_versions(config, identity.get("serial", ""), installers),
        "queue": {
            "depth": depth.total,
            "by_kind": depth.by_kind,
            "telemetry_dropped": depth.telemetry_dropped,
            "last_acked_seq": depth.last_acked_seq,
            "stream": outbox.stream,
        },
    }


def installed_versions(
    config: AgentConfig, serial: str, installers: Mapping[str, Installer] | None = None
) -> dict[str, str | None]:
    """The active firmware, config and license versions, as the installer of each says.

    Without the daemon's installers, the agent's own are read from their slot directories (building
    them would create the slots); an installer from another distribution is loaded and asked.
    """
    versions: dict[str, str | None] = {}
    for kind in ("firmware", "config", "license"):
        name = config.installers.by_kind[kind]
        try:
            if installers is not None:
                versions[kind] = installers[kind].active_version()
            elif name in OWN_INSTALLERS:
                path = config.state_dir / kind / "current" / "VERSION"
                versions[kind] = path.read_text().strip() if path.exists() else None
            else:
                context = InstallerContext(
                    name=name,
                    state_dir=config.state_dir,
                    updates=config.updates,
                    serial=serial,
                    settings=config.installers.settings.get(name, {}),
                )
                versions[kind] = load_installer(name, context).active_version()
        except Exception:  # status must answer even when an installer cannot
            logger.exception("asking installer %r for the active %s version failed", name, kind)
            versions[kind] = None
    return versions
