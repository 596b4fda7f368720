"""A newcomer's first minutes: the demo server starts, the admin logs in and sees the demo fleet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT
from tests.servers import free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_admin_logs_in_and_sees_the_demo_fleet_in_the_browser(demo_server: Any, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{demo_server.url}/gateways/")
    assert page.url.startswith(f"{demo_server.url}/login/")
    page.fill("#id_username", demo_server.username)
    page.fill("#id_password", demo_server.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo_server.url}/gateways/")
    assert page.title() == "Gateways · Gridfleet"
    assert page.locator("text=DEMO-GW-0001").count() == 1
    # Filtering is an htmx partial update: the table changes without leaving the page.
    page.fill("input[name=q]", "DEMO-GW-0003")
    page.wait_for_function("() => !document.body.innerText.includes('DEMO-GW-0001')")
    assert page.locator("#gateway-table tbody tr").count() == 1
    page.close()


def token_headers(client: httpx.Client, demo_server: Any) -> dict[str, str]:
    """The demo admin's API token, as request headers."""
    token = client.post(
        "/api/accounts/token/", data={"username": demo_server.username, "password": demo_server.password}
    ).json()["token"]
    return {"Authorization": f"Token {token}"}


def test_the_rest_api_of_the_demo_answers_with_a_token(demo_server: Any) -> None:
    with httpx.Client(base_url=demo_server.url) as client:
        gateways = client.get("/api/inventory/gateways/", headers=token_headers(client, demo_server)).json()
        assert gateways["count"] == 10
        assert client.get("/api/schema/").status_code == 200


def test_simulated_gateways_enroll_come_online_and_report_their_inverter_meter_and_battery(demo_server: Any) -> None:
    with httpx.Client(base_url=demo_server.url) as client:
        headers = token_headers(client, demo_server)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            online = client.get(
                "/api/inventory/gateways/", params={"never_seen": "false", "status": "active"}, headers=headers
            ).json()["results"]
            devices = client.get("/api/inventory/field-devices/", headers=headers).json()["results"]
            if len(online) == 2 and len(devices) == 6:
                break
            time.sleep(1)
        assert sorted(g["serial"] for g in online) == ["DEMO-GW-0001", "DEMO-GW-0002"]
        assert {(d["make"], d["kind"], d["serial"]) for d in devices} == {
            ("Gridfleet", kind, f"DEMO-GW-000{n}-{suffix}")
            for n in (1, 2)
            for kind, suffix in (("inverter", "INV1"), ("meter", "MTR1"), ("battery", "BAT1"))
        }


def test_simulated_gateways_register_with_the_demo_headend_and_follow_its_curtailment(demo_server: Any) -> None:
    with httpx.Client(base_url=demo_server.url) as client:
        headers = token_headers(client, demo_server)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            devices = client.get("/api/csip/end-devices/", headers=headers).json()["results"]
            curtailed = [d for d in devices if (d["link_detail"] or {}).get("applied_limit_pct") == 30.0]
            if len(curtailed) == 2:
                break
            time.sleep(2)
        assert sorted(d["gateway"] for d in curtailed) == ["DEMO-GW-0001", "DEMO-GW-0002"]
        assert {d["link_state"] for d in curtailed} == {"following"}
        control = client.get("/api/csip/controls/", headers=headers).json()["results"][0]
        assert control["setpoint"] == "output ≤ 30.00 %"
        while time.monotonic() < deadline:
            responses = client.get(f"/api/csip/controls/{control['id']}/responses/", headers=headers).json()
            if len([r for r in responses if r["status"] == 2]) == 2:
                break
            time.sleep(2)
        started = sorted(r["gateway"] for r in responses if r["status_label"] == "started")
        assert started == ["DEMO-GW-0001", "DEMO-GW-0002"]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return found


def test_a_newcomer_opens_a_tunnel_to_a_simulated_inverter_with_the_cli(demo_server: Any) -> None:
    from pymodbus.client import ModbusTcpClient

    with httpx.Client(base_url=demo_server.url) as client:
        headers = token_headers(client, demo_server)
        deadline = time.monotonic() + 120  # the allow-list arrives as a signed configuration through TUF
        while time.monotonic() < deadline:
            gateway = client.get("/api/inventory/gateways/", params={"search": "DEMO-GW-0001"}, headers=headers)
            if gateway.json()["results"][0]["attributes"].get("remote_access", {}).get("targets"):
                break
            time.sleep(2)
        env = {**demo_server.env, "GRIDFLEET_URL": demo_server.url, "GRIDFLEET_TOKEN": headers["Authorization"][6:]}
    cli = str(Path(sys.executable).parent / "gridfleet")
    tunnel = subprocess.Popen(
        [cli, "tunnel", "open", "DEMO-GW-0001", "--target", "DEMO-GW-0001-INV1", "--local", "0", "--reason", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert tunnel.stdout is not None
        line = tunnel.stdout.readline()
        while line and "Forwarding" not in line:
            line = tunnel.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        modbus = ModbusTcpClient("127.0.0.1", port=port, timeout=10)
        assert modbus.connect()
        assert modbus.read_holding_registers(40000, count=2, device_id=1).registers == [0x5375, 0x6E53]  # SunS
        modbus.close()
    finally:
        tunnel.terminate()
        tunnel.wait(20)


def test_stopping_the_demo_stops_its_simulated_gateways(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {"GRIDFLEET_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "fleet.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "demo_fleet", "--port", str(port), "--agents", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        deadline = time.monotonic() + 30
        while not processes_mentioning(f"{tmp_path}/demo-agent.toml") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_mentioning(f"{tmp_path}/demo-agent.toml"), "the simulated gateways did not start"
    finally:
        server.terminate()
        server.wait(20)
    deadline = time.monotonic() + 15
    while processes_mentioning(f"{tmp_path}/demo-agent.toml") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(f"{tmp_path}/demo-agent.toml") == []
