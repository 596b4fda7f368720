"""A deployment taken to its end by a real gridfleet-agent process against a real server process."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.tests.bundles import firmware_bundle
from tests.agent.test_end_to_end import AgentProcess, Server
from tests.deployments import e2e_actions
from tests.servers import wait_for

# Fixtures `server` (a server process per module) and `online_agent` (enrolled, connected) come from
# the agent's end-to-end harness, through tests/deployments/conftest.py.
pytestmark = pytest.mark.slow


def deploy_and_wait(server: Server, agent: AgentProcess, bundle: Path, version: str, final: str) -> dict:
    deployment = e2e_actions.run(server.process.var_dir, "deploy", agent.serial, str(bundle), version)["deployment"]
    assert agent.cli("check-now").returncode == 0
    return wait_for(
        lambda: (s := e2e_actions.run(server.process.var_dir, "state", str(deployment)))["state"] == final and s,
        timeout=60,
        what=f"the gateway action to reach {final}",
    )


@pytest.mark.parametrize("online_agent", ["E2E-001"], indirect=True)
def test_real_agent_reports_drive_the_action_to_success(server: Server, online_agent: AgentProcess, tmp_path: Path):
    agent = online_agent
    state = deploy_and_wait(
        server, agent, firmware_bundle(tmp_path, "2.0.0", health_check="echo ok\n"), "2.0.0", "success"
    )
    assert state["steps"][-1] == "success" and "installing" in state["steps"]
    assert state["deployment_status"] == "running"  # completes at the next tick
    assert agent.status()["installed"]["firmware"] == "2.0.0"


@pytest.mark.parametrize("online_agent", ["E2E-002"], indirect=True)
def test_real_agent_rollback_is_recorded_and_pauses_the_rollout(
    server: Server, online_agent: AgentProcess, tmp_path: Path
):
    agent = online_agent
    bundle = firmware_bundle(tmp_path, "3.0.0", health_check="echo 'bridge down'\nexit 1\n")
    state = deploy_and_wait(server, agent, bundle, "3.0.0", "rolled_back")
    assert state["failure_code"] == "health_check_failed" and "bridge down" in state["log_excerpt"]
    assert state["deployment_status"] == "paused"
    assert agent.status()["installed"]["firmware"] == "1.0.0"
