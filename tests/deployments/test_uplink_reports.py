"""Agent `status` records that arrive over the gateway uplink move the deployment (no extra wiring)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firmware.deployments import services
from firmware.deployments.models import GatewayAction
from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
from fleet.uplink import services as uplink
from fleet.uplink.protocol import Hello, parse_records
from tests.conftest import NOON_PACIFIC
from tests.factories import member

pytestmark = pytest.mark.usefixtures("clock")


def status(seq: int, deployment: int, step: str, **extra: object) -> dict[str, object]:
    return {
        "seq": seq,
        "kind": "status",
        "ts": "2026-11-26T20:01:00Z",
        "payload": {"deployment": deployment, "step": step, **extra},
    }


def test_status_records_from_the_uplink_drive_the_gateway_action(organization, make_artifact, fleet):
    gateway = fleet(1)[0]
    deployment = services.create_deployment(
        organization=organization,
        name="via uplink",
        artifacts=[make_artifact("2.0.0")],
        target=TargetSpec(kind="list", gateways=(gateway,)),
        plan=RolloutPlan(phases=(PhaseSpec("all", percent=100),)),
        actor=member(organization, "operator"),
        now=NOON_PACIFIC,
    )
    services.run_rollouts(now=NOON_PACIFIC)
    uplink.open_stream(gateway=gateway, hello=Hello(protocol=1, agent_version="0.4.2", stream="q-1", last_acked_seq=0))
    steps = ["downloading", "downloaded", "installing", "rebooting", "committing", "success", "downloading"]
    records = [status(i + 1, deployment.pk, step) for i, step in enumerate(steps)]
    now = NOON_PACIFIC + timedelta(minutes=1)
    result = uplink.ingest_batch(gateway=gateway, stream="q-1", parsed=parse_records(records, now=now), now=now)

    assert result.last_seq == 7 and not result.rejected  # a refused step is the deployment's business, not the ack's
    action = GatewayAction.objects.get(deployment=deployment)
    assert action.state == "success"
    # The receiver stamps reports with the server clock, so order the agent's reports by arrival.
    history = list(action.events.filter(source="agent").order_by("id").values_list("step", "accepted"))
    assert history[-1] == ("downloading", False)  # the late report was refused and kept in the history
    assert [s for s, ok in history if ok] == steps[:-1]
