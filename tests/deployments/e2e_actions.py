"""Server-side steps of the real-agent deployment test, run in a server process:
``python e2e_actions.py VAR ACTION ...`` (environment from tests.agent.e2e_server.server_env)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(var_dir: Path, *args: str) -> Any:
    from tests.agent.e2e_server import run_action

    return run_action(var_dir, *args, script=__file__)


def _deploy(serial: str, bundle: str, version: str) -> dict[str, Any]:
    """Upload the bundle, deploy it to one gateway (one 100% phase) and run the rollout tick."""
    from django.utils import timezone

    from firmware import services as firmware
    from firmware.deployments import services
    from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway

    gateway = Gateway.objects.get(serial=serial)
    with open(bundle, "rb") as f:
        artifact = firmware.upload_artifact(
            organization=gateway.organization,
            type="firmware",
            name="gw-os",
            version=version,
            fileobj=f,
            actor=SYSTEM,
        )
    deployment = services.create_deployment(
        organization=gateway.organization,
        name=f"gw-os {version}",
        artifacts=[artifact],
        target=TargetSpec(kind="list", gateways=(gateway,)),
        plan=RolloutPlan(phases=(PhaseSpec("all", percent=100),), max_retries=0, failure_min_sample=1),
        actor=SYSTEM,
        now=timezone.now(),
    )
    services.run_rollouts(now=timezone.now())
    return {"deployment": deployment.pk}


def _state(deployment: str) -> dict[str, Any]:
    from firmware.deployments.models import Deployment, GatewayAction

    action = GatewayAction.objects.get(deployment_id=int(deployment))
    return {
        "state": action.state,
        "failure_code": action.failure_code,
        "log_excerpt": action.log_excerpt,
        "deployment_status": Deployment.objects.get(pk=int(deployment)).status,
        "steps": list(action.events.filter(accepted=True).exclude(step="").values_list("step", flat=True)),
    }


if __name__ == "__main__":
    import django

    sys.path.insert(0, str(REPO_ROOT))
    django.setup()
    _var, action, *rest = sys.argv[1:]
    actions: dict[str, Callable[..., dict[str, Any]]] = {"deploy": _deploy, "state": _state}
    if action not in actions:
        raise SystemExit(f"unknown action {action}")
    print(json.dumps(actions[action](*rest)))
