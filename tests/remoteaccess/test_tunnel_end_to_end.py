"""Remote maintenance end to end, from outside: the `gridfleet` CLI against real uvicorn servers and a
real agent daemon in front of a SunSpec simulator, a pymodbus client as the technician's tool.

With PostgreSQL and Redis in the run, the CLI talks to one server process and the agent to another:
every frame crosses the Redis channel layer between two ASGI processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from tests.agent.e2e_server import ServerProcess
from tests.servers import free_port, wait_for, wait_for_port

from .e2e_stack import action, fresh_database, shared_env

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
GATEWAY = "E2E-001"
DEVICE = f"{GATEWAY}-INV1"


@dataclass
class Fleet:
    var_dir: Path
    env: dict[str, str]
    front: ServerProcess  # the technicians' server (API, CLI, browser)
    back: ServerProcess  # the gateways' server
    api_tokens: dict[str, str]
    agent_dir: Path
    serial_device: str
    serial_peer: int  # the "field device" end of the serial line (a PTY master)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def api(self, who: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Token {self.api_tokens[who]}"}
        return httpx.request(method, self.front.url + path, json=body, headers=headers, timeout=30)

    def act(self, *args: str) -> Any:
        return action(self.var_dir, self.env, *args)

    def cli_env(self, who: str) -> dict[str, str]:
        return {
            **os.environ,
            "GRIDFLEET_URL": self.front.url,
            "GRIDFLEET_TOKEN": self.api_tokens[who],
            "GRIDFLEET_CLI_CONFIG": str(self.var_dir / f"cli-{who}.toml"),
        }

    def cli(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "gridfleet"), *args],
            env=self.cli_env(who),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def session(self, session_id: str) -> dict[str, Any]:
        answer = self.api("admin", "GET", f"/api/remote-access/sessions/{session_id}/")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def agent_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "gridfleet-agent"), "--config", str(self.agent_dir / "agent.toml"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


class OpenTunnel:
    """`gridfleet tunnel open ...` running; its output collected line by line by a thread."""

    def __init__(self, fleet: Fleet, who: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "gridfleet"), "tunnel", "open", GATEWAY, *args, "--local", "0", "--reason", "e2e maintenance"],
            env=fleet.cli_env(who),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 60.0) -> str:
        found = wait_for(
            lambda: next((line for line in self.lines if text in line), None) or not self._reader.is_alive(),
            timeout=timeout,
            what=f"{text!r} in the CLI's output",
        )
        if not isinstance(found, str):
            raise AssertionError(f"the CLI ended without printing {text!r}: {self.lines}")
        return found

    @property
    def port(self) -> int:
        return int(self.wait_for_line("Forwarding 127.0.0.1:").split("127.0.0.1:")[1].split()[0])

    @property
    def session_id(self) -> str:
        return self.wait_for_line("(session ").split("(session ")[1].split(",")[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self._reader.join(10)


def start(command: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    env = shared_env()
    if env:
        fresh_database(env)
    var_dir = tmp_path_factory.mktemp("remote-access")
    setup = action(var_dir, env, "setup")
    back = ServerProcess(var_dir, env)
    back.start()
    front = ServerProcess(var_dir, env) if env else back  # SQLite and the in-memory layer: one process
    if front is not back:
        front.start()
    master, replica = os.openpty()
    os.set_blocking(master, False)
    fleet = Fleet(var_dir, env, front, back, setup["api_tokens"], var_dir / "agent", os.ttyname(replica), master)
    try:
        modbus_port = free_port()
        simulator = start(
            [
                sys.executable,
                "-m",
                "gridfleet_agent_simulators.sunspec",
                "--port",
                str(modbus_port),
                "--serial",
                DEVICE,
            ],
            var_dir / "simulator.log",
        )
        fleet.processes.append(simulator)
        wait_for_port(modbus_port, simulator)
        fleet.agent_dir.mkdir()
        (fleet.agent_dir / "agent.toml").write_text(
            f'[agent]\nserver_url = "{back.url}"\nstate_dir = "{fleet.agent_dir / "state"}"\n'
            "[uplink]\nreconnect_max_delay = 2\n"
            '[updates]\npoll_interval = 3600\nfactory_firmware_version = "1.0.0"\nreboot_command = []\n'
            '[remote_access]\nterminal_command = ["/bin/sh", "-i"]\n'
            f'[[field.devices]]\nid = "{DEVICE}"\nprotocol = "sunspec-tcp"\nhost = "127.0.0.1"\nport = {modbus_port}\n'
            "unit_id = 1\npoll_interval = 5\n"
        )
        enrolled = fleet.agent_cli("enroll", "--token", setup["tokens"][GATEWAY], "--serial", GATEWAY)
        assert enrolled.returncode == 0, enrolled.stderr
        fleet.processes.append(
            start(
                [str(BIN / "gridfleet-agent"), "--config", str(fleet.agent_dir / "agent.toml"), "run"],
                var_dir / "agent.log",
            )
        )
        allowed = {
            "targets": [{"device": DEVICE}, {"serial": fleet.serial_device, "baudrate": 19200}],
            "terminal": True,
        }
        fleet.act("allow", GATEWAY, json.dumps(allowed))
        wait_for(lambda: fleet.agent_cli("check-now").returncode == 0, what="the agent's control socket")

        def reported() -> Any:
            gateways = fleet.api("admin", "GET", f"/api/inventory/gateways/?search={GATEWAY}").json()["results"]
            return gateways and gateways[0]["attributes"].get("remote_access", {}).get("targets")

        wait_for(reported, timeout=90, what="the gateway to report its signed allow-list")
        yield fleet
    finally:
        for process in reversed(fleet.processes):
            process.terminate()
            process.wait(15)
        front.stop()
        back.stop()
        os.close(master)
        os.close(replica)


async def read_sunspec(port: int) -> tuple[list[int], list[int], str]:
    """What an engineering tool reads first: the SunS marker, model 1's header, its serial number."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=10)
    assert await client.connect()
    try:
        marker = await client.read_holding_registers(40000, count=2, device_id=1)
        header = await client.read_holding_registers(40002, count=2, device_id=1)
        serial = await client.read_holding_registers(40052, count=16, device_id=1)
    finally:
        client.close()
    text = b"".join(r.to_bytes(2, "big") for r in serial.registers).rstrip(b"\0").decode()
    return marker.registers, header.registers, text


async def two_tools_at_once(port: int) -> list[tuple[list[int], list[int], str]]:
    return list(await asyncio.gather(read_sunspec(port), read_sunspec(port)))


def test_cli_tunnel_carries_two_modbus_connections_to_the_inverter(fleet: Fleet) -> None:
    tunnel = OpenTunnel(fleet, "tech", "--target", DEVICE)
    try:
        port, session_id = tunnel.port, tunnel.session_id
        for marker, header, serial in asyncio.run(two_tools_at_once(port)):
            assert marker == [0x5375, 0x6E53]  # "SunS"
            assert header == [1, 66]  # model 1 (common), 66 registers
            assert serial == DEVICE
        tunnel.wait_for_line("connection 2 closed")
    finally:
        tunnel.stop()
    assert any("Session" in line and "ended" in line for line in tunnel.lines), tunnel.lines
    session = wait_for(lambda: (s := fleet.session(session_id))["state"] == "closed" and s, what="the session to close")
    assert session["connections"] == 2
    assert session["bytes_up"] > 0 and session["bytes_down"] > session["bytes_up"]
    assert [c["stream"] for c in session["connection_log"]] == [1, 2]
    assert all(c["closed_at"] and c["bytes_down"] > 0 for c in session["connection_log"])
    actions = [e["action"] for e in fleet.act("audit", session_id)["entries"]]
    assert actions[:3] == ["remoteaccess.session.open", "remoteaccess.session.connect", "remoteaccess.session.connect"]
    assert "remoteaccess.session.close" in actions and actions[-1] == "remoteaccess.session.disconnect"
    closing = fleet.act("audit", session_id)["entries"][-1]["detail"]
    assert closing["bytes_up"] == session["bytes_up"] and closing["bytes_down"] == session["bytes_down"]
    listed = fleet.cli("tech", "tunnel", "ls", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    assert session_id in [s["id"] for s in json.loads(listed.stdout)]


async def exchange_over_serial(port: int, device: int) -> tuple[bytes, bytes]:
    """A programming tool sends a request; the device on the serial line answers it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = bytes.fromhex("01 03 9c 40 00 02 eb 8f")  # Modbus RTU: read 2 registers at 40000
    writer.write(request)
    await writer.drain()
    seen = b""
    deadline = time.monotonic() + 20
    while len(seen) < len(request) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        with contextlib.suppress(BlockingIOError):
            seen += os.read(device, 64)
    os.write(device, bytes.fromhex("01 03 04 53 75 6e 53 b3 4d"))  # "SunS"
    answer = await asyncio.wait_for(reader.readexactly(9), 10)
    writer.close()
    return seen, answer


def test_a_serial_programming_port_is_bridged_through_the_tunnel(fleet: Fleet) -> None:
    tunnel = OpenTunnel(fleet, "tech", "--serial", fleet.serial_device, "--baud", "19200", "--framing", "8E1")
    try:
        assert f"-> {fleet.serial_device} 19200 8E1 on {GATEWAY}" in tunnel.wait_for_line("Forwarding")
        seen, answer = asyncio.run(exchange_over_serial(tunnel.port, fleet.serial_peer))
        assert seen == bytes.fromhex("01 03 9c 40 00 02 eb 8f")
        assert answer == bytes.fromhex("01 03 04 53 75 6e 53 b3 4d")
        tunnel.wait_for_line("connection 1 closed")
    finally:
        tunnel.stop()
    session = wait_for(lambda: (s := fleet.session(tunnel.session_id))["bytes_down"] and s, what="the byte counts")
    assert session["kind"] == "serial" and session["target_label"] == f"{fleet.serial_device} 19200 8E1"
    assert (session["bytes_up"], session["bytes_down"]) == (8, 9)


def test_everyday_read_commands_print_tables_and_json(fleet: Fleet) -> None:
    table = fleet.cli("viewer", "gateways", "ls")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:3] == ["SERIAL", "NAME", "STATUS"]
    assert GATEWAY in table.stdout
    rows = json.loads(fleet.cli("viewer", "gateways", "ls", "--json").stdout)
    assert {r["serial"] for r in rows} == {"E2E-001", "E2E-002"}
    for command in ("alarms", "deployments"):
        listed = fleet.cli("viewer", command, "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        assert isinstance(json.loads(listed.stdout), list)


def test_refusals_seen_from_outside(fleet: Fleet) -> None:
    gateway_id = fleet.api("admin", "GET", f"/api/inventory/gateways/?search={GATEWAY}").json()["results"][0]["id"]
    ask = {"gateway": gateway_id, "kind": "tcp", "target": DEVICE, "reason": "check the inverter"}
    for role in ("viewer", "operator"):
        refused = fleet.api(role, "POST", "/api/remote-access/sessions/", ask)
        assert refused.status_code == 403, refused.text
    assert fleet.api("stranger", "POST", "/api/remote-access/sessions/", ask).status_code == 400  # gateway not visible
    off_list = fleet.cli("tech", "tunnel", "open", GATEWAY, "--target", "127.0.0.1:22", "--local", "0", "--reason", "x")
    assert off_list.returncode == 1 and "127.0.0.1:22 is not on this gateway's allow-list" in off_list.stderr

    forced = fleet.act("force", GATEWAY, "127.0.0.1:22")["session"]
    refused_by_gateway = wait_for(
        lambda: (s := fleet.session(forced))["state"] == "refused" and s, what="the gateway to refuse"
    )
    assert "127.0.0.1:22 is not on this gateway's allow-list" in refused_by_gateway["end_reason"]

    audit = fleet.api("admin", "GET", "/api/audit/entries/?action=remoteaccess.session.refuse")
    if audit.status_code == 200:
        assert audit.json()["count"] >= 4


def test_awaiting_approval_then_approved_by_another_admin(fleet: Fleet) -> None:
    fleet.act("policy", "on")
    try:
        gateway_id = fleet.api("admin", "GET", f"/api/inventory/gateways/?search={GATEWAY}").json()["results"][0]["id"]
        ask = {"gateway": gateway_id, "kind": "tcp", "target": DEVICE, "reason": "firmware parameters"}
        waiting = fleet.api("tech", "POST", "/api/remote-access/sessions/", ask).json()
        assert waiting["state"] == "awaiting_approval" and waiting["expires_at"] is None
        refused = asyncio.run(technician_end(fleet, "tech", waiting["id"]))
        assert refused == {"type": "end", "state": "refused", "reason": "The session is awaiting an admin's approval."}
        assert fleet.api("tech", "POST", f"/api/remote-access/sessions/{waiting['id']}/approve/").status_code == 403
        approved = fleet.api("admin", "POST", f"/api/remote-access/sessions/{waiting['id']}/approve/")
        assert approved.status_code == 200 and approved.json()["state"] == "opening", approved.text
        wait_for(lambda: fleet.session(waiting["id"])["state"] == "active", what="the gateway to dial in")
        closed = fleet.api("tech", "POST", f"/api/remote-access/sessions/{waiting['id']}/close/")
        assert closed.json()["state"] == "closed"
    finally:
        fleet.act("policy", "off")


async def technician_end(fleet: Fleet, who: str, session_id: str) -> dict[str, Any]:
    """The first control message the technician's WebSocket gets."""
    from websockets.asyncio.client import connect

    url = fleet.front.url.replace("http://", "ws://") + f"/ws/remote/v1/sessions/{session_id}/"
    async with connect(url, additional_headers={"Authorization": f"Token {fleet.api_tokens[who]}"}) as ws:
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 30)))


def test_expiry_closes_both_ends_at_once_and_an_expired_session_stays_shut(fleet: Fleet) -> None:
    tunnel = OpenTunnel(fleet, "tech", "--target", DEVICE)
    try:
        session_id = tunnel.session_id
        tunnel.port  # noqa: B018 (forwarding)
        fleet.act("expire-in", session_id, "-1")  # as if its hour had passed
        started = time.monotonic()
        tunnel.process.wait(15)
        assert time.monotonic() - started < 10
    finally:
        tunnel.stop()
    assert fleet.session(session_id)["state"] in ("expired",)
    assert "ended" in " ".join(tunnel.lines)
    again = asyncio.run(technician_end(fleet, "tech", session_id))
    assert again["state"] == "refused" and "expired" in again["reason"]


@pytest.mark.browser
def test_browser_terminal_runs_a_command_and_plays_back_its_recording(fleet: Fleet, browser: Any) -> None:
    page = browser.new_page()
    page.goto(fleet.front.url + "/login/")
    page.fill("input[name=username]", "tech")
    page.fill("input[name=password]", "tech-password-1")
    page.click("button[type=submit]")
    gateway_id = fleet.api("admin", "GET", f"/api/inventory/gateways/?search={GATEWAY}").json()["results"][0]["id"]
    page.goto(f"{fleet.front.url}/gateways/{gateway_id}/")
    page.select_option("select[name=target]", label="Terminal on the gateway")
    page.fill("input[name=reason]", "look at the gateway's disk")
    page.click("text=Open maintenance session")
    page.wait_for_url("**/remote-access/sessions/**")
    page.wait_for_function("document.querySelector('#terminal-status').textContent === 'Connected.'", timeout=60_000)
    page.wait_for_function("document.querySelector('#terminal .xterm-rows').textContent.includes('#')", timeout=30_000)
    page.click("#terminal")
    page.keyboard.type("echo tunnel-$((6*7))\n")
    page.wait_for_function(
        "document.querySelector('#terminal .xterm-rows').textContent.includes('tunnel-42')", timeout=30_000
    )
    session_id = page.url.rstrip("/").rsplit("/", 1)[1]
    page.click("text=Close session")
    page.wait_for_selector("#play-recording")
    assert fleet.session(session_id)["state"] == "closed"
    page.click("#play-recording")
    page.wait_for_selector("#playback[data-finished=true]", timeout=60_000)
    replayed = page.inner_text("#playback .xterm-rows")
    assert "echo tunnel-$((6*7))" in replayed and "tunnel-42" in replayed
    recording = fleet.api("tech", "GET", f"/api/remote-access/sessions/{session_id}/recording/")
    header, *events = recording.text.splitlines()
    assert json.loads(header)["version"] == 2
    assert any("tunnel-42" in json.loads(event)[2] for event in events)


# Last: the gateway cannot connect any more afterwards.
def test_revoking_the_gateway_certificate_closes_its_open_session_within_seconds(fleet: Fleet) -> None:
    tunnel = OpenTunnel(fleet, "tech", "--target", DEVICE)
    try:
        session_id = tunnel.session_id
        tunnel.port  # noqa: B018 (forwarding)
        fleet.act("revoke", GATEWAY)
        started = time.monotonic()
        tunnel.process.wait(15)
        assert time.monotonic() - started < 10
    finally:
        tunnel.stop()
    session = fleet.session(session_id)
    assert session["state"] == "revoked" and "certificate was revoked" in session["end_reason"]
    assert any("revoked: the gateway's certificate was revoked" in line for line in tunnel.lines), tunnel.lines
