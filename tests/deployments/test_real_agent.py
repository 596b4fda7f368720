"""A deployment taken to its end by a real gridfleet-agent process against a real server process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.bundles import firmware_bundle
from tests.agent.e2e_server import ServerProcess, run_action
from tests.agent.test_end_to_end import AgentProcess, Server, wait_for
from tests.deployments import e2e_actions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    var_dir = tmp_path_factory.mktemp("server")
    tokens = run_action(var_dir, "setup", "2")["tokens"]
    process = ServerProcess(var_dir)
    process.start()
    try:
        yield Server(process, tokens)
    finally:
        process.stop()


@pytest.fixture
def agent(server: Server, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AgentProcess]:
    agent = AgentProcess(server, tmp_path, request.param)
    assert agent.cli("enroll", "--token", server.tokens[request.param], "--serial", request.param).returncode == 0
    agent.start()
    try:
        wait_for(lambda: agent.status().get("connection", {}).get("state") == "online", what="the agent online")
        yield agent
    finally:
        agent.stop()


def deploy_and_wait(server: Server, agent: AgentProcess, bundle: Path, version: str, final: str) -> dict:
    deployment = e2e_actions.run(server.process.var_dir, "deploy", agent.serial, str(bundle), version)["deployment"]
    assert agent.cli("check-now").returncode == 0
    return wait_for(
        lambda: (s := e2e_actions.run(server.process.var_dir, "state", str(deployment)))["state"] == final and s,
        timeout=60, what=f"the gateway action to reach {final}",
    )


@pytest.mark.parametrize("agent", ["E2E-001"], indirect=True)
def test_real_agent_reports_drive_the_action_to_success(server: Server, agent: AgentProcess, tmp_path: Path):
    state = deploy_and_wait(server, agent, firmware_bundle(tmp_path, "2.0.0", health_check="echo ok\n"), "2.0.0",
                            "success")
    assert state["steps"][-1] == "success" and "installing" in state["steps"]
    assert state["deployment_status"] == "running"  # completes at the next tick
    assert agent.status()["installed"]["firmware"] == "2.0.0"


@pytest.mark.parametrize("agent", ["E2E-002"], indirect=True)
def test_real_agent_rollback_is_recorded_and_pauses_the_rollout(server: Server, agent: AgentProcess, tmp_path: Path):
    bundle = firmware_bundle(tmp_path, "3.0.0", health_check="echo 'bridge down'\nexit 1\n")
    state = deploy_and_wait(server, agent, bundle, "3.0.0", "rolled_back")
    assert state["failure_code"] == "health_check_failed" and "bridge down" in state["log_excerpt"]
    assert state["deployment_status"] == "paused"
    assert agent.status()["installed"]["firmware"] == "1.0.0"
