"""The utility link is configured by the gateway's signed configuration: a running agent installs a
config bundle with a `csip` section, the link starts, follows the head-end's default control onto
the simulated inverter's registers, and restarts when a new configuration changes the section."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from gridfleet_agent.config import parse_config
from gridfleet_agent.csip import LinkState
from gridfleet_agent.daemon import Agent
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from agent.tests.bundles import make_bundle
from tests.csip.conftest import another_pin, default_program
from tests.csip.test_end_to_end import RATED_W, until
from tests.factories import GatewayFactory
from tests.servers import free_port

pytestmark = pytest.mark.slow


class OfflineIdentity:
    """The gateway's fleet identity, for an agent whose fleet server is not running: the utility
    link needs none of it when the signed configuration names the utility-link certificate."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.lfdi = "0" * 40

    def access_token(self, server_url: str) -> str:
        return "no-server"

    def forget_access_token(self) -> None:
        return None

    def renew_if_due(self, server_url: str) -> None:
        return None


def install_config(agent: Agent, directory: Path, version: str, config: dict[str, Any], files: dict[str, str]) -> None:
    """The agent's install path for a config bundle, as after TUF verified it."""
    bundle = make_bundle(
        directory / f"config-{version}.tar.gz",
        {"type": "config", "version": version},
        {"config.json": json.dumps(config), **{f"files/{name}": text for name, text in files.items()}},
    )
    outcome = agent.runner.install(deployment=version, kind="config", bundle=bundle, target=f"config/{version}")
    assert agent.installers["config"].active_version() == version, outcome


def test_a_signed_configuration_starts_the_utility_link_and_a_new_one_restarts_it(
    headend: Any, enroll_utility_identity: Any, tmp_path: Path
) -> None:
    gateway = GatewayFactory()
    identity = enroll_utility_identity(gateway)
    default_program(gateway, pct=60)
    # The utility's trust anchor ships inside the signed bundle (files/), named by a relative path;
    # the utility-link certificate and key are the gateway's own files.
    section = {
        "server_url": headend.url,
        "dcap_path": "/sep2/dcap",
        "certificate": str(identity.certificate),
        "key": str(identity.key),
        "ca_bundle": "utility-ca.pem",
        "pin": identity.end_device.pin,
        "der": [{"kind": "inverter", "rated_w": RATED_W}],
    }
    trust_anchor = {"utility-ca.pem": identity.ca_bundle.read_text()}
    wrong_pin = another_pin(identity.end_device.pin)

    async def scenario() -> list[Any]:
        async with SunSpecSimulator(rated_w=RATED_W) as sim:
            config = parse_config(
                {
                    "agent": {"server_url": f"https://127.0.0.1:{free_port()}", "state_dir": str(tmp_path / "state")},
                    "updates": {"poll_interval": 3600},
                    "field": {
                        "devices": [
                            {"id": "inv-1", "protocol": "sunspec-tcp", "host": sim.host, "port": sim.port}
                            | {"poll_interval": 1}
                        ]
                    },
                }
            )
            assert not config.csip, "no local [csip] table: the signed configuration is the only source"
            agent = Agent(config, identity=OfflineIdentity(gateway.serial), control_socket=False)  # type: ignore[arg-type]
            install_config(agent, tmp_path, "1", {"csip": section}, trust_anchor)
            running = asyncio.create_task(agent.run())
            try:
                await until(lambda: agent._link is not None and agent._link.state is LinkState.FOLLOWING, 30, "link")
                # The program's DefaultDERControl (60 %) reached the inverter's model 704 registers.
                await until(lambda: sim.get(704, "WMaxLimPct") == 60.0, 30, "the default control in the registers")
                first = agent._link
                # A new signed configuration changes the section (another PIN): the link restarts with it.
                await asyncio.to_thread(
                    install_config, agent, tmp_path, "2", {"csip": section | {"pin": wrong_pin}}, trust_anchor
                )
                agent.check_now.set()
                await until(
                    lambda: (
                        agent._link is not first
                        and agent._link is not None
                        and agent._link.state is LinkState.PIN_MISMATCH
                    ),
                    30,
                    "the restarted link to refuse the server's PIN",
                )
                # A configuration switching the section off stops the link.
                off = {"csip": section | {"enabled": False}}
                await asyncio.to_thread(install_config, agent, tmp_path, "3", off, trust_anchor)
                agent.check_now.set()
                await until(lambda: agent._link is None and agent._link_task is None, 30, "the link to stop")
                return [first.state]
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                shutil.rmtree(tmp_path / "state", ignore_errors=True)

    (first_state,) = asyncio.run(scenario())
    assert first_state is LinkState.STOPPED, "the first link was stopped when its configuration changed"
