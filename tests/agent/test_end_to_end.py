"""The agent against a real server: uvicorn serving fleet.asgi on a loopback port, SQLite, real processes.

The agent enrolls with a one-time token, goes online over the uplink WebSocket, reports its
inventory, receives a firmware deployment through TUF, installs it on its A/B slots and reports
every step; a bundle whose health check fails is rolled back and reported; records queued while
the server is down arrive once each after it comes back.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c104
import pytest
from gridfleet_agent.config import parse_config
from gridfleet_agent.daemon import Agent, QueueLogHandler
from gridfleet_agent.field.templates import parse_template
from gridfleet_agent.identity import enroll
from gridfleet_agent_simulators.sunspec import SunSpecSimulator, TemplateSimulator

from agent.tests.bundles import firmware_bundle
from tests.servers import free_port, wait_for

from .e2e_server import UPDATE_POLL_SECONDS, ServerProcess, run_action

pytestmark = pytest.mark.slow

AGENT = str(Path(sys.executable).parent / "gridfleet-agent")


@dataclass
class Server:
    process: ServerProcess
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.process.url

    def gateway_id(self, serial: str) -> int:
        return int(self.process.query("SELECT id FROM inventory_gateway WHERE serial = ?", serial)[0][0])

    def status_steps(self, deployment: str) -> list[str]:
        rows = self.process.query(
            "SELECT step FROM monitoring_statusreport WHERE deployment = ? ORDER BY seq", deployment
        )
        return [step for (step,) in rows]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    var_dir = tmp_path_factory.mktemp("server")
    tokens = run_action(var_dir, "setup", "10")["tokens"]
    process = ServerProcess(var_dir)
    process.start()
    try:
        yield Server(process, tokens)
    finally:
        process.stop()


class AgentProcess:
    """One gateway: its config file and state directory, driven through the ``gridfleet-agent`` CLI."""

    def __init__(self, server: Server, directory: Path, serial: str, *, ca_bundle: str = "") -> None:
        self.serial = serial
        self.state_dir = directory / "state"
        self.config = directory / "agent.toml"
        self.config.write_text(
            f'[agent]\nserver_url = "{server.url}"\nstate_dir = "{self.state_dir}"\nhardware_model = "GF-100"\n'
            f'ca_bundle = "{ca_bundle}"\n'
            "[uplink]\nreconnect_max_delay = 2\n"
            '[updates]\npoll_interval = 3600\nfactory_firmware_version = "1.0.0"\nhealth_timeout = 10\n'
            f'reboot_command = ["touch", "{directory / "rebooted"}"]\n'  # stands in for systemctl reboot
        )
        self.reboot_marker = directory / "rebooted"
        self.log = directory / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENT, "--config", str(self.config), *args], capture_output=True, text=True, check=False, timeout=60
        )

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([AGENT, "--config", str(self.config), "run"], stdout=log, stderr=log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))


@pytest.fixture
def online_agent(server: Server, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AgentProcess]:
    """An enrolled agent daemon, connected; each test gets its own gateway serial."""
    serial = request.param
    agent = AgentProcess(server, tmp_path, serial)
    enrolled = agent.cli("enroll", "--token", server.tokens[serial], "--serial", serial)
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"enrolled {serial}" in enrolled.stdout
    agent.start()
    try:
        wait_for(lambda: agent.status().get("connection", {}).get("state") == "online", what="the agent to come online")
        yield agent
    finally:
        agent.stop()


def release_and_check(server: Server, agent: AgentProcess, bundle: Path, version: str, deployment: str) -> None:
    run_action(server.process.var_dir, "release", agent.serial, str(bundle), version, deployment)
    asked = agent.cli("check-now")
    assert asked.returncode == 0, asked.stderr


@pytest.mark.parametrize("online_agent", ["E2E-001"], indirect=True)
def test_agent_goes_online_reports_inventory_and_installs_a_deployment(
    server: Server, online_agent: AgentProcess, tmp_path: Path
):
    gateway = server.gateway_id("E2E-001")
    wait_for(
        lambda: server.process.query(
            "SELECT firmware_version FROM inventory_gateway WHERE id = ? AND firmware_version = '1.0.0'", gateway
        ),
        what="the inventory report",
    )
    assert server.process.query("SELECT name FROM monitoring_gatewayevent WHERE gateway_id = ?", gateway) == [
        ("agent.started",)
    ]

    bundle = firmware_bundle(tmp_path, "2.0.0", health_check="echo healthy\n")
    release_and_check(server, online_agent, bundle, "2.0.0", "dep-ok")

    wait_for(lambda: "success" in server.status_steps("dep-ok"), what="the success report")
    assert server.status_steps("dep-ok") == ["downloading", "downloaded", "installing", "success"]
    status = online_agent.status()
    assert status["installed"]["firmware"] == "2.0.0"
    assert status["last_check"]["actions"]["firmware"].startswith("success 2.0.0")  # "(unchanged)" on a later check
    # The next check follows the server's update_poll_interval (plus jitter), not the configured 3600 s.
    assert UPDATE_POLL_SECONDS * 0.8 < status["next_check_in_s"] <= UPDATE_POLL_SECONDS * 1.1
    wait_for(
        lambda: server.process.query(
            "SELECT 1 FROM inventory_gateway WHERE id = ? AND firmware_version = '2.0.0'", gateway
        ),
        what="the new firmware version in the inventory",
    )


@pytest.mark.parametrize("online_agent", ["E2E-002"], indirect=True)
def test_bundle_failing_its_health_check_is_rolled_back_and_reported(
    server: Server, online_agent: AgentProcess, tmp_path: Path
):
    bundle = firmware_bundle(tmp_path, "3.0.0", health_check="echo 'inverter bridge did not start'\nexit 1\n")
    release_and_check(server, online_agent, bundle, "3.0.0", "dep-bad")

    wait_for(lambda: "rolled_back" in server.status_steps("dep-bad"), what="the rollback report")
    assert server.status_steps("dep-bad") == ["downloading", "downloaded", "installing", "rolled_back"]
    (payload,) = server.process.query(
        "SELECT payload FROM monitoring_statusreport WHERE deployment = 'dep-bad' AND step = 'rolled_back'"
    )
    failure = json.loads(payload[0])
    assert failure["code"] == "health_check_failed"
    assert "inverter bridge did not start" in failure["log_excerpt"]
    assert online_agent.status()["installed"]["firmware"] == "1.0.0"

    # A retry re-assigns the same target under a new sequence: the agent installs it again, once.
    release_and_check(server, online_agent, bundle, "3.0.0", "dep-bad-retry")
    wait_for(lambda: "rolled_back" in server.status_steps("dep-bad-retry"), what="the retried install's report")
    assert online_agent.cli("check-now").returncode == 0
    wait_for(
        lambda: "(unchanged)" in online_agent.status()["last_check"]["actions"]["firmware"],
        what="a later check that leaves the rolled-back target alone",
    )
    assert server.status_steps("dep-bad-retry") == ["downloading", "downloaded", "installing", "rolled_back"]


@pytest.mark.parametrize("online_agent", ["E2E-008"], indirect=True)
def test_logs_are_uploaded_and_the_gateway_rebooted_when_the_server_asks(server: Server, online_agent: AgentProcess):
    gateway = server.gateway_id(online_agent.serial)
    command = run_action(server.process.var_dir, "command", online_agent.serial, "upload_logs", "{}")["id"]
    run_action(server.process.var_dir, "command", online_agent.serial, "reboot", '{"delay_s": 1}')
    online_agent.stop()  # the server sends commands created while a gateway is away after its next hello
    online_agent.start()

    wait_for(
        lambda: server.process.query(
            "SELECT 1 FROM uplink_command WHERE gateway_id = ? AND name = 'upload_logs' AND state = 'succeeded'",
            gateway,
        ),
        what="the upload_logs result",
    )
    uploaded = server.process.var_dir / "log-uploads" / online_agent.serial / f"{command}.gz"
    text = gzip.decompress(uploaded.read_bytes()).decode()
    assert "uplink online" in text
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO ", text)  # UTC timestamps select upload windows
    wait_for(online_agent.reboot_marker.exists, what="the reboot command to run")
    assert server.process.query(
        "SELECT state FROM uplink_command WHERE gateway_id = ? AND name = 'reboot'", gateway
    ) == [("accepted",)]


@pytest.mark.parametrize("online_agent", ["E2E-004"], indirect=True)
def test_server_built_config_and_signed_license_are_installed(server: Server, online_agent: AgentProcess):
    versions = run_action(server.process.var_dir, "config-and-license", online_agent.serial)
    assert online_agent.cli("check-now").returncode == 0

    wait_for(lambda: online_agent.status()["installed"]["license"], what="the license to be installed")
    installed = online_agent.status()["installed"]
    assert installed == {
        "firmware": "1.0.0",
        "config": str(versions["config_version"]),
        "license": str(versions["license_version"]),
    }
    active = online_agent.state_dir / "config" / "current"
    assert json.loads((active / "config.json").read_text()) == {"export_limit_kw": 7.5}
    assert (active / "files" / "limits.conf").read_text() == "export_limit_kw=7.5\nserial=E2E-004\n"
    gateway = server.gateway_id(online_agent.serial)
    events = "SELECT name FROM monitoring_gatewayevent WHERE gateway_id = ? AND name LIKE '%.%ed' ORDER BY name"
    wait_for(lambda: len(server.process.query(events, gateway)) >= 3, what="config.applied and license.installed")
    assert server.process.query(events, gateway) == [("agent.started",), ("config.applied",), ("license.installed",)]
    (attributes,) = wait_for(
        lambda: server.process.query(
            "SELECT attributes FROM inventory_gateway WHERE id = ? AND attributes LIKE '%field_devices%'", gateway
        ),
        what="the license limits in the inventory",
    )
    assert json.loads(attributes[0])["license_limits"] == {"field_devices": 20}


@pytest.mark.parametrize("online_agent", ["E2E-009"], indirect=True)
def test_signed_config_starts_an_iec104_outstation_whose_link_shows_at_the_server(
    server: Server, online_agent: AgentProcess
):
    port = free_port()
    versions = run_action(server.process.var_dir, "scada-config", online_agent.serial, str(port))
    assert online_agent.cli("check-now").returncode == 0
    wait_for(
        lambda: online_agent.status()["installed"]["config"] == str(versions["config_version"]),
        what="the SCADA configuration to be installed",
    )
    client = c104.Client()
    connection = client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
    assert connection is not None
    client.start()
    try:
        wait_for(lambda: connection.is_connected, what="the gateway's 104 outstation to accept a connection")
        assert connection.unmute()  # STARTDT confirmed by the gateway
        gateway = server.gateway_id(online_agent.serial)
        query = "SELECT attributes FROM inventory_gateway WHERE id = ? AND attributes LIKE '%\"connected\"%'"
        (attributes,) = wait_for(lambda: server.process.query(query, gateway), what="the link state in the inventory")
    finally:
        client.stop()
    (link,) = json.loads(attributes[0])["protocols"]
    assert (link["name"], link["role"], link["state"]) == ("iec104", "outstation", "connected")
    assert link["endpoint"] == f"127.0.0.1:{port}/1" and link["points"] > 0


def test_simulator_runs_several_enrolled_gateways_that_report_telemetry(server: Server, tmp_path: Path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(
        "serial,token,expires_at\n"
        + "".join(f"{serial},{server.tokens[serial]},2099-01-01T00:00:00Z\n" for serial in ("E2E-005", "E2E-006"))
    )
    simulator = subprocess.Popen(
        [
            AGENT,
            "--server",
            server.url,
            "--state-dir",
            str(tmp_path / "fleet"),
            "simulate",
            "--count",
            "2",
            "--tokens",
            str(tokens),
            "--telemetry-interval",
            "0.5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "simulate.log").open("wb"),
    )
    try:
        gateways = [server.gateway_id("E2E-005"), server.gateway_id("E2E-006")]
        for gateway in gateways:
            wait_for(
                lambda gateway=gateway: server.process.query(
                    "SELECT 1 FROM monitoring_telemetrylatest WHERE gateway_id = ? AND point = 'W'", gateway
                ),
                what=f"telemetry from gateway {gateway}",
            )
            devices = server.process.query(
                "SELECT kind, model FROM inventory_fielddevice WHERE gateway_id = ?", gateway
            )
            assert devices == [("inverter", "SimInverter")]
    finally:
        simulator.terminate()
        simulator.wait(15)
    assert simulator.returncode == 0, (tmp_path / "simulate.log").read_text()[-2000:]


def test_records_queued_while_the_server_is_down_arrive_once_each(server: Server, tmp_path: Path):
    serial = "E2E-003"
    identity = enroll(server.url, server.tokens[serial], serial, tmp_path / "state")
    config = parse_config(
        {
            "agent": {"server_url": server.url, "state_dir": str(tmp_path / "state")},
            "uplink": {"reconnect_max_delay": 1.0},
            "updates": {"poll_interval": 3600},
        }
    )
    gateway = server.gateway_id(serial)

    async def scenario() -> None:
        agent = Agent(config, identity=identity, control_socket=False)
        log = logging.getLogger("gridfleet_agent.e2e")
        log.addHandler(QueueLogHandler(agent.outbox, logging.INFO))
        running = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.uplink.online.wait(), 30)
            await asyncio.to_thread(server.process.stop)
            for n in range(5):
                agent.field_record(
                    {
                        "kind": "alarm",
                        "ts": "2026-11-26T13:00:00Z",
                        "payload": {
                            "source": "device:INV-1",
                            "device": "INV-1",
                            "code": f"sunspec.evt1.test_{n}",
                            "severity": "major",
                            "state": "raised",
                            "message": f"offline alarm {n}",
                        },
                    }
                )
                log.warning("offline log %d", n)
            assert agent.outbox.depth().by_kind.get("alarm") == 5
            await asyncio.to_thread(server.process.start)
            for _ in range(300):
                if agent.outbox.depth().total == 0 and agent.uplink.state == "online":
                    break
                await asyncio.sleep(0.1)
            assert agent.outbox.depth().total == 0
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    asyncio.run(scenario())

    alarms = server.process.query(
        "SELECT code, occurrences FROM monitoring_alarm WHERE gateway_id = ? ORDER BY code", gateway
    )
    assert alarms == [(f"sunspec.evt1.test_{n}", 1) for n in range(5)]
    logs = server.process.query(
        "SELECT message FROM monitoring_logentry WHERE gateway_id = ? AND message LIKE 'offline log %' ORDER BY seq",
        gateway,
    )
    assert logs == [(f"offline log {n}",) for n in range(5)]
    (counts,) = server.process.query(
        "SELECT COUNT(*), COUNT(DISTINCT seq) FROM monitoring_logentry WHERE gateway_id = ?", gateway
    )
    assert counts[0] == counts[1]


def test_field_devices_and_commands_queued_while_offline_reach_the_server(server: Server, tmp_path: Path):
    serial = "E2E-007"
    gateway = server.gateway_id(serial)
    identity = enroll(server.url, server.tokens[serial], serial, tmp_path / "state")
    # Created while the gateway is offline: the server sends it after the agent's next hello.
    run_action(server.process.var_dir, "command", serial, "set_power_limit", '{"device": "inv-1", "limit_pct": 60}')
    run_action(server.process.var_dir, "command", serial, "check_updates", "{}")

    async def scenario() -> None:
        async with SunSpecSimulator(port=0) as inverter:
            config = parse_config(
                {
                    "agent": {"server_url": server.url, "state_dir": str(tmp_path / "state")},
                    "updates": {"poll_interval": 3600},
                    "field": {
                        "devices": [
                            {
                                "id": "inv-1",
                                "kind": "inverter",
                                "protocol": "sunspec-tcp",
                                "host": inverter.host,
                                "port": inverter.port,
                                "unit_id": inverter.unit_id,
                                "poll_interval": 0.2,
                            }
                        ]
                    },
                }
            )
            agent = Agent(config, identity=identity, control_socket=False)
            running = asyncio.create_task(agent.run())
            try:
                for _ in range(300):
                    done = await asyncio.to_thread(
                        server.process.query,
                        "SELECT state FROM uplink_command WHERE gateway_id = ? AND state = 'succeeded'",
                        gateway,
                    )
                    if len(done) == 2 and agent.outbox.depth().total == 0:
                        break
                    await asyncio.sleep(0.1)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    asyncio.run(scenario())

    commands = dict(
        (name, (state, json.loads(result)))
        for name, state, result in server.process.query(
            "SELECT name, state, result FROM uplink_command WHERE gateway_id = ?", gateway
        )
    )
    assert commands["set_power_limit"][0] == "succeeded"
    assert commands["set_power_limit"][1]["readback_pct"] == 60.0
    assert commands["check_updates"][0] == "succeeded"
    assert commands["check_updates"][1]["ok"] is True
    assert server.process.query(
        "SELECT 1 FROM monitoring_telemetrylatest WHERE gateway_id = ? AND device = 'inv-1' AND point = 'W'", gateway
    )
    assert server.process.query("SELECT kind, protocol FROM inventory_fielddevice WHERE gateway_id = ?", gateway) == [
        ("inverter", "sunspec-tcp")
    ]


SITE_METER = """\
# The site's revenue meter: holding registers, 32-bit, tenths of a watt.
template: site-meter
kind: meter
make: Acme Metering
model: AM-3
points:
  - {name: W, register: 10, type: int32, scale: 0.1, unit: W}
  - {name: TotWhExp, register: 12, type: uint32, unit: Wh}
"""


def test_a_template_meter_from_the_signed_configuration_reaches_the_inventory_with_readings(
    server: Server, tmp_path: Path
):
    """The device template travels inside the gateway's configuration bundle (TUF-signed); the
    agent builds its field stack from it, and the non-SunSpec meter shows up on the server. A
    later bundle with a broken template is refused with its line and field and rolled back."""
    serial = "E2E-010"
    gateway = server.gateway_id(serial)
    identity = enroll(server.url, server.tokens[serial], serial, tmp_path / "state")
    telemetry = "SELECT point, value FROM monitoring_telemetrylatest WHERE gateway_id = ? AND device = 'mtr-9'"

    def field(template: str, port: int) -> str:
        device = {"id": "mtr-9", "protocol": "modbus-tcp", "template": "site-meter", "host": "127.0.0.1"}
        device.update(port=port, serial="AM3-0009", poll_interval=0.2)
        return json.dumps({"templates": {"site-meter": template}, "devices": [device]})

    async def check_updates() -> None:
        await asyncio.to_thread(run_action, server.process.var_dir, "command", serial, "check_updates", "{}")

    async def scenario() -> None:
        meter_template = parse_template("site-meter", SITE_METER)
        async with TemplateSimulator(meter_template, values={"W": -2750.5, "TotWhExp": 5120}) as meter:
            await asyncio.to_thread(
                run_action, server.process.var_dir, "field-config", serial, field(SITE_METER, meter.port), "fields-1"
            )
            await check_updates()
            config = parse_config(
                {
                    "agent": {"server_url": server.url, "state_dir": str(tmp_path / "state")},
                    "updates": {"poll_interval": 3600},
                }
            )
            agent = Agent(config, identity=identity, control_socket=False)
            running = asyncio.create_task(agent.run())
            try:
                for _ in range(600):
                    if len(await asyncio.to_thread(server.process.query, telemetry, gateway)) == 2:
                        break
                    await asyncio.sleep(0.1)
                broken = SITE_METER.replace("type: uint32", "type: uint33")
                await asyncio.to_thread(
                    run_action, server.process.var_dir, "field-config", serial, field(broken, meter.port), "fields-2"
                )
                await check_updates()
                failed = "SELECT message FROM monitoring_gatewayevent WHERE gateway_id = ? AND name LIKE 'install.%'"
                for _ in range(600):
                    if await asyncio.to_thread(server.process.query, failed, gateway):
                        break
                    await asyncio.sleep(0.1)
                meter.set("W", -1000.0)
                for _ in range(300):
                    if (("W", -1000.0)) in await asyncio.to_thread(server.process.query, telemetry, gateway):
                        break
                    await asyncio.sleep(0.1)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    asyncio.run(scenario())

    assert server.process.query(
        "SELECT kind, protocol, make, model, serial FROM inventory_fielddevice WHERE gateway_id = ?", gateway
    ) == [("meter", "modbus-tcp", "Acme Metering", "AM-3", "AM3-0009")]
    (message,) = server.process.query(
        "SELECT message FROM monitoring_gatewayevent WHERE gateway_id = ? AND name LIKE 'install.%'", gateway
    )[0]
    assert "templates.site-meter: line 8, points[1].type: must be one of int16, uint16" in message
    assert "devices[0]" not in message  # the device is fine; only its template is not
    # The broken bundle was rolled back: the meter kept reporting from the first configuration.
    assert dict(server.process.query(telemetry, gateway)) == {"W": -1000.0, "TotWhExp": 5120.0}
    # The link to the meter is on the gateway page (inventory attributes.protocols).
    (attributes,) = server.process.query("SELECT attributes FROM inventory_gateway WHERE id = ?", gateway)[0]
    (link,) = [p for p in json.loads(attributes)["protocols"] if p["name"] == "field:mtr-9"]
    assert (link["protocol"], link["state"], link["peer"], link["points"]) == (
        "modbus-tcp",
        "connected",
        "Acme Metering AM-3",
        2,
    )


def test_tuf_client_command_refreshes_from_the_server_repository(server: Server, tmp_path: Path):
    root = tmp_path / "root.json.trusted"
    with urllib.request.urlopen(f"{server.url}/tuf/metadata/1.root.json") as response:  # noqa: S310 (loopback)
        root.write_bytes(response.read())
    metadata = tmp_path / "metadata"

    def tuf_client(*args: str) -> int:
        return subprocess.run([AGENT, "tuf-client", "--metadata-dir", str(metadata), *args], check=False).returncode

    assert tuf_client("init", str(root)) == 0
    assert tuf_client("--metadata-url", f"{server.url}/tuf/metadata/", "refresh") == 0
    assert {p.name for p in metadata.glob("*.json")} == {"root.json", "timestamp.json", "snapshot.json", "targets.json"}
