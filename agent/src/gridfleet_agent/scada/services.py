"""All SCADA and cloud protocol services of a gateway, built from its signed configuration.

    services = ProtocolServices(ProtocolsConfig.from_config(signed_config), field=stack, ...)
    services.observe(record)      # every field record: updates the site image and the cloud queues
    await services.start()        # each protocol in its own task; one failing never stops another
    services.statuses()           # link state, points, errors: inventory attribute `protocols`
    await services.stop()

Which protocol does what, and the point map of each: docs/field-devices.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gridfleet_agent.cloud.mqtt import CloudLink
from gridfleet_agent.scada.config import ProtocolConfigError, ProtocolsConfig
from gridfleet_agent.scada.dnp3_master import Dnp3FieldDevice
from gridfleet_agent.scada.dnp3_outstation import Dnp3Outstation
from gridfleet_agent.scada.iec104 import Iec104Outstation
from gridfleet_agent.scada.iec61850 import Iec61850FieldDevice
from gridfleet_agent.scada.opcua import OpcUaServer
from gridfleet_agent.scada.site import SetpointPath, SiteControls, SiteDevice, SiteImage, devices_of
from gridfleet_agent.scada.status import LinkStatus, ProtocolService, Report, Supervisor

logger = logging.getLogger(__name__)

__all__ = ["ProtocolConfigError", "ProtocolServices", "ProtocolsConfig", "load_signed_config"]


def load_signed_config(path: Path) -> dict[str, Any]:
    """The active signed configuration (`<state>/config/current/config.json`), or {} if none yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ProtocolConfigError([f"{path}: {exc}"]) from exc
    if not isinstance(data, dict):
        raise ProtocolConfigError([f"{path}: the configuration must be an object"])
    return data


class ProtocolServices:
    def __init__(
        self,
        config: ProtocolsConfig,
        *,
        field: SetpointPath | None,
        state_dir: Path,
        gateway: str,
        emit: Callable[[dict[str, Any]], None],
        report: Report,
        on_link_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.polled_devices: list[Dnp3FieldDevice | Iec61850FieldDevice] = [
            *(Dnp3FieldDevice(d, emit=emit) for d in config.dnp3_master),
            *(Iec61850FieldDevice(d, emit=emit) for d in config.iec61850),
        ]
        devices = devices_of(field) + [SiteDevice(d.config.id, d.config.kind) for d in self.polled_devices]
        self.site = SiteImage(devices)
        self.controls = SiteControls(field, self.site)
        self.cloud = [CloudLink(b, site=self.site, state_dir=state_dir, gateway=gateway) for b in config.cloud]
        services: list[ProtocolService] = [*self.polled_devices]
        if config.dnp3_outstation is not None:
            services.append(Dnp3Outstation(config.dnp3_outstation, site=self.site, controls=self.controls))
        if config.iec104 is not None:
            services.append(Iec104Outstation(config.iec104, site=self.site, controls=self.controls))
        if config.opcua is not None:
            services.append(
                OpcUaServer(config.opcua, site=self.site, controls=self.controls, state_dir=state_dir, gateway=gateway)
            )
        services.extend(self.cloud)

        def changed(_status: LinkStatus) -> None:
            on_link_change()

        for service in services:
            service.status.on_change = changed
        self.supervisor = Supervisor(services, report=report)

    def observe(self, record: Mapping[str, Any]) -> None:
        """Every record of the field stack (and of the DNP3 field devices) passes here."""
        self.site.observe(record)
        for link in self.cloud:
            try:
                link.observe(record)
            except Exception:  # a full disk for one broker's queue must not stop the others
                logger.exception("cloud link %s could not queue a record", link.config.name)

    async def start(self) -> None:
        await self.supervisor.start()

    async def stop(self) -> None:
        await self.supervisor.stop()

    def statuses(self) -> list[dict[str, Any]]:
        return self.supervisor.statuses()

    def field_devices(self) -> list[dict[str, Any]]:
        """Inventory entries of the field devices polled over DNP3 or IEC 61850."""
        return [d.inventory_entry() for d in self.polled_devices]
