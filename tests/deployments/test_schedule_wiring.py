"""The rollout driver is on the periodic schedule that beat (or the embedded timer) runs."""

from __future__ import annotations

from celery import current_app
from django.conf import settings
from django.utils import timezone

from firmware.deployments import services
from firmware.deployments.models import GatewayAction
from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
from fleet.core.scheduler import run_task_by_name
from tests.factories import member


def test_the_beat_entry_runs_the_rollout_driver(organization, make_artifact, fleet):
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "deployments.run_rollouts"]
    current_app.loader.import_default_modules()
    gateway = fleet(1)[0]
    deployment = services.create_deployment(
        organization=organization,
        name="scheduled",
        artifacts=[make_artifact("2.0.0")],
        target=TargetSpec(kind="list", gateways=(gateway,)),
        plan=RolloutPlan(phases=(PhaseSpec("all", percent=100),)),
        actor=member(organization, "operator"),
        now=timezone.now(),
    )
    run_task_by_name(str(entry["task"]))
    assert GatewayAction.objects.get(deployment=deployment).state == "assigned"
