"""`python -m gridfleet_agent.field`: the stack on its own, for commissioning a site."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gridfleet_agent_simulators.sunspec import SunSpecSimulator


async def run_cli(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridfleet_agent.field",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    assert process.returncode is not None
    return process.returncode, lines, stderr.decode()


async def test_it_polls_the_configured_devices_and_applies_a_power_limit(
    simulator: SunSpecSimulator, device_entry: Any, tmp_path: Path
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[[field.devices]]\nid = "inv-1"\nprotocol = "sunspec-tcp"\nhost = "127.0.0.1"\nport = {simulator.port}\n'
        "poll_interval = 0.1\n"
    )

    status, lines, _ = await run_cli(str(config), "--duration", "0.5", "--set-power-limit", "inv-1", "70")

    assert status == 0
    assert any(line.get("kind") == "telemetry" and line["payload"]["points"]["W"] == 5000 for line in lines)
    assert lines[-1] == {
        "command_result": {
            "status": "succeeded",
            "message": "WMaxLimPct=70.0, WMaxLimPctEna=1 written to model 704 and read back",
            "result": {
                "readback_pct": 70.0,
                "sunspec_model": 704,
                "readback": {"WMaxLimPct": 70.0, "WMaxLimPctEna": 1},
                "setpoint": {"kind": "power_limit", "percent": 70.0, "revert_after_s": None},
            },
        }
    }
    assert simulator.get(704, "WMaxLimPct") == 70.0


async def test_an_invalid_configuration_is_explained_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "field.json"
    config.write_text(json.dumps({"devices": [{"id": "inv-1", "protocol": "sunspec-tcp", "port": 70000}]}))

    status, lines, stderr = await run_cli(str(config), "--duration", "0")

    assert (status, lines) == (2, [])
    assert "invalid field configuration: devices[0].host: required for sunspec-tcp" in stderr
    assert "devices[0].port: must be an integer 1..65535 (got 70000)" in stderr
