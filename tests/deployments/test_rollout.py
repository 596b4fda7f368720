"""Full rollouts driven by the periodic task and simulated agent reports; time is injected."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest

from firmware.deployments import services
from firmware.deployments.models import ActionState, Deployment, Exclusion, GatewayAction, RolloutPhase
from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
from firmware.models import Assignment
from fleet.audit.models import AuditEntry
from fleet.inventory.models import GatewayGroup
from tests.conftest import NOON_PACIFIC
from tests.factories import GatewayGroupFactory, member

pytestmark = pytest.mark.usefixtures("clock")

T0 = NOON_PACIFIC
CANARY_THEN_ALL = (PhaseSpec("canary", count=2, min_soak=timedelta(minutes=30)), PhaseSpec("all", percent=100))


def deploy(organization: Any, artifacts: list[Any], gateways: list[Any], now: Any = T0, **plan: Any) -> Deployment:
    plan.setdefault("phases", CANARY_THEN_ALL)
    plan.setdefault("failure_min_sample", 1)
    return services.create_deployment(
        organization=organization,
        name="gw-os rollout",
        artifacts=artifacts,
        target=TargetSpec(kind="list", gateways=tuple(gateways)),
        plan=RolloutPlan(**plan),
        actor=member(organization, "operator"),
        now=now,
    )


def states(deployment: Deployment) -> dict[str, str]:
    return dict(GatewayAction.objects.filter(deployment=deployment).values_list("gateway__serial", "state"))


def assigned_gateways(deployment: Deployment) -> list[Any]:
    return [a.gateway for a in GatewayAction.objects.filter(deployment=deployment, state="assigned")]


def test_canary_succeeds_soaks_and_advances_to_the_next_phase(organization, make_artifact, fleet, agent):
    artifact = make_artifact("2.0.0")
    gateways = fleet(10)
    deployment = deploy(organization, [artifact], gateways)

    services.run_rollouts(now=T0)
    canary = assigned_gateways(deployment)
    assert len(canary) == 2
    for gateway in canary:
        assignment = Assignment.objects.get(gateway=gateway, artifact_type="firmware")
        assert (assignment.artifact, assignment.deployment) == (artifact, str(deployment.pk))
        assert all(o.accepted for o in agent(gateway).install(T0 + timedelta(minutes=5)))

    services.run_rollouts(now=T0 + timedelta(minutes=6))  # threshold reached, soak starts
    assert len(assigned_gateways(deployment)) == 0
    services.run_rollouts(now=T0 + timedelta(minutes=20))  # still soaking
    assert deployment.phases.get(index=1).status == RolloutPhase.Status.PENDING
    services.run_rollouts(now=T0 + timedelta(minutes=37))  # soaked 31 min: phase 2 starts and assigns
    assert deployment.phases.get(index=0).status == RolloutPhase.Status.COMPLETED
    rest = assigned_gateways(deployment)
    assert len(rest) == 8
    for gateway in rest:
        agent(gateway).install(T0 + timedelta(minutes=40))
    services.run_rollouts(now=T0 + timedelta(minutes=41))
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.COMPLETED
    assert set(states(deployment).values()) == {"success"}


def test_phase_with_operator_approval_waits_for_it(organization, make_artifact, fleet, agent, users):
    phases = (PhaseSpec("canary", count=1, auto_advance=False), PhaseSpec("all", percent=100))
    deployment = deploy(organization, [make_artifact("2.0.0")], fleet(3), phases=phases)
    services.run_rollouts(now=T0)
    agent(assigned_gateways(deployment)[0]).install(T0)
    services.run_rollouts(now=T0 + timedelta(minutes=1))
    services.run_rollouts(now=T0 + timedelta(hours=5))
    assert deployment.phases.get(index=0).status == RolloutPhase.Status.AWAITING_APPROVAL
    assert assigned_gateways(deployment) == []

    services.approve_phase(deployment=deployment, actor=users["operator"], now=T0 + timedelta(hours=6))
    services.run_rollouts(now=T0 + timedelta(hours=6))
    assert len(assigned_gateways(deployment)) == 2
    assert AuditEntry.objects.filter(action="deployment.phase.approve", actor_user=users["operator"]).exists()


def test_rollout_pauses_when_failure_threshold_is_crossed_and_says_why(organization, make_artifact, fleet, agent):
    gateways = fleet(20)
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        gateways,
        phases=(PhaseSpec("canary", count=5), PhaseSpec("all", percent=100)),
        failure_threshold_pct=20,
        failure_min_sample=5,
        max_retries=0,
    )
    services.run_rollouts(now=T0)
    canary = assigned_gateways(deployment)
    for i, gateway in enumerate(canary):
        agent(gateway).install(T0, fail="health_check_failed" if i < 2 else "")
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.PAUSED
    assert "2 of 5 finished gateways failed (40%)" in deployment.status_reason
    services.run_rollouts(now=T0 + timedelta(days=1))
    assert GatewayAction.objects.filter(deployment=deployment, state="scheduled").count() == 15  # nothing new

    detail = services_progress(deployment)
    assert detail.failure_reasons[0]["code"] == "health_check_failed"
    assert detail.failure_reasons[0]["count"] == 2
    failed = GatewayAction.objects.filter(deployment=deployment, state="failed").first()
    assert failed.log_excerpt == "tail of install.log"
    entry = AuditEntry.objects.get(action="deployment.pause", target_id=str(deployment.pk))
    assert entry.actor_label == "system"


def services_progress(deployment: Deployment) -> Any:
    from firmware.deployments.selectors import progress

    return progress(deployment)


def test_failures_below_the_minimum_sample_do_not_pause(organization, make_artifact, fleet, agent):
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        fleet(10),
        phases=(PhaseSpec("all", percent=100),),
        failure_threshold_pct=10,
        failure_min_sample=5,
        max_retries=0,
    )
    services.run_rollouts(now=T0)
    agent(assigned_gateways(deployment)[0]).install(T0, fail="disk_full")
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.RUNNING


def test_maintenance_window_holds_installs_until_it_opens(organization, make_artifact, fleet, agent):
    gateway = fleet(1)[0]  # Fresno, America/Los_Angeles
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        [gateway],
        phases=(PhaseSpec("all", percent=100),),
        window_start=time(1, 0),
        window_end=time(4, 0),
        gateway_timeout=timedelta(hours=1),
    )
    services.run_rollouts(now=T0)
    install = Assignment.objects.get(gateway=gateway, artifact_type="firmware").install
    assert install["window"] == {"start": "01:00", "end": "04:00", "timezone": "America/Los_Angeles"}

    sim = agent(gateway)
    assert sim.report("downloading", T0).accepted and sim.report("downloaded", T0).accepted
    assert sim.report("deferred", T0, code="install_window", message="outside the window").accepted
    refused = sim.report("installing", T0)  # noon in California
    assert (refused.accepted, refused.code) == (False, "outside_window")

    # Waiting for the window is not a timeout: 12 h later (04:00 local... no, 00:00 local) still downloaded.
    services.run_rollouts(now=T0 + timedelta(hours=12))
    action = GatewayAction.objects.get(deployment=deployment)
    assert action.state == ActionState.DOWNLOADED

    opens = T0 + timedelta(hours=13, minutes=1)  # 01:01 local
    assert sim.report("installing", opens).accepted
    assert sim.report("rebooting", opens).accepted
    assert sim.report("success", opens).state == "success"


def test_sun_down_rule_follows_the_site_position(organization, make_artifact, fleet, agent):
    gateway = fleet(1)[0]
    deployment = deploy(
        organization, [make_artifact("2.0.0")], [gateway], phases=(PhaseSpec("all", percent=100),), sun_down_only=True
    )
    services.run_rollouts(now=T0)
    install = Assignment.objects.get(gateway=gateway, artifact_type="firmware").install
    assert install["sun_down"] is True and install["location"]["latitude"] == 36.7378
    sim = agent(gateway)
    sim.report("downloaded", T0)
    assert sim.report("installing", T0).code == "outside_window"  # noon: sun up
    night = T0 + timedelta(hours=8)  # 20:00 local, late November: dark
    assert sim.report("installing", night).accepted
    assert GatewayAction.objects.get(deployment=deployment).state == "installing"


@pytest.mark.parametrize("rule", [{"sun_down_only": True}, {"window_start": time(1), "window_end": time(4)}])
def test_install_rules_exclude_gateways_without_a_site(organization, make_artifact, fleet, rule):
    placed, unplaced = fleet(1)[0], fleet(1, site=None)[0]
    deployment = deploy(
        organization, [make_artifact("2.0.0")], [placed, unplaced], phases=(PhaseSpec("all", percent=100),), **rule
    )
    exclusion = Exclusion.objects.get(deployment=deployment)
    assert (exclusion.gateway, exclusion.reason) == (unplaced, "no_location")


def test_incompatible_gateway_is_listed_and_never_assigned(organization, make_artifact, fleet, agent):
    compatible = fleet(3)
    other = fleet(1, hardware_model="GX-999")[0]
    deployment = deploy(
        organization, [make_artifact("2.0.0")], [*compatible, other], phases=(PhaseSpec("all", percent=100),)
    )
    for minute in range(3):
        services.run_rollouts(now=T0 + timedelta(minutes=minute))
    exclusion = Exclusion.objects.get(deployment=deployment)
    assert (exclusion.gateway, exclusion.reason) == (other, "incompatible")
    assert not GatewayAction.objects.filter(gateway=other).exists()
    assert not Assignment.objects.filter(gateway=other).exists()
    assert Assignment.objects.filter(gateway__in=compatible).count() == 3


def test_one_deployment_can_carry_builds_for_several_hardware_models(organization, make_artifact, fleet):
    gx100 = make_artifact("2.0.0", models=("GF-100",))
    gx200 = make_artifact("2.0.0", models=("GF-200",), name="gw-os-200")
    a, b = fleet(1)[0], fleet(1, hardware_model="GF-200")[0]
    deploy(organization, [gx100, gx200], [a, b], phases=(PhaseSpec("all", percent=100),))
    services.run_rollouts(now=T0)
    assert Assignment.objects.get(gateway=a).artifact == gx100
    assert Assignment.objects.get(gateway=b).artifact == gx200


def test_out_of_order_and_unknown_reports_are_refused_and_logged(organization, make_artifact, fleet, agent, caplog):
    gateway, stranger = fleet(2)
    deployment = deploy(organization, [make_artifact("2.0.0")], [gateway], phases=(PhaseSpec("all", percent=100),))
    before = services.apply_gateway_report(
        gateway=gateway, report={"deployment": str(deployment.pk), "step": "installing"}, now=T0
    )
    assert (before.accepted, before.code) == (False, "out_of_order")  # still scheduled: nothing was assigned
    services.run_rollouts(now=T0)
    sim = agent(gateway)
    skipped = sim.report("success", T0)
    assert (skipped.accepted, skipped.code) == (False, "out_of_order")
    assert "'success' is out of order in state 'assigned'" in skipped.message
    assert sim.report("bogus", T0).code == "out_of_order"
    unknown = services.apply_gateway_report(
        gateway=stranger, report={"deployment": str(deployment.pk), "step": "downloading"}, now=T0
    )
    assert unknown.code == "unknown_deployment"
    malformed = services.apply_gateway_report(gateway=gateway, report={"step": "downloading"}, now=T0)
    assert malformed.code == "invalid_report"
    assert GatewayAction.objects.get(deployment=deployment).state == "assigned"
    assert "refused (out_of_order)" in caplog.text
    history = GatewayAction.objects.get(deployment=deployment).events.filter(accepted=False)
    assert history.count() == 3

    sim.install(T0)
    assert sim.report("success", T0).code == "duplicate"
    late = sim.report("downloading", T0)
    assert (late.accepted, late.code) == (False, "out_of_order")


def test_a_gateway_that_goes_silent_times_out_after_bounded_retries(organization, make_artifact, fleet, agent):
    gateway = fleet(1)[0]
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        [gateway],
        phases=(PhaseSpec("all", percent=100),),
        gateway_timeout=timedelta(minutes=30),
        max_retries=1,
        retry_backoff=timedelta(minutes=10),
        failure_threshold_pct=100,
    )
    services.run_rollouts(now=T0)
    agent(gateway).report("downloading", T0 + timedelta(minutes=5))
    services.run_rollouts(now=T0 + timedelta(minutes=36))
    action = GatewayAction.objects.get(deployment=deployment)
    assert (action.state, action.attempt) == ("scheduled", 2)
    services.run_rollouts(now=T0 + timedelta(minutes=40))  # backoff not over
    assert GatewayAction.objects.get(deployment=deployment).state == "scheduled"
    services.run_rollouts(now=T0 + timedelta(minutes=47))
    assert GatewayAction.objects.get(deployment=deployment).state == "assigned"
    services.run_rollouts(now=T0 + timedelta(minutes=80))
    action = GatewayAction.objects.get(deployment=deployment)
    assert (action.state, action.failure_code) == ("timed_out", "timeout")


def test_rate_limit_spreads_assignments_over_minutes(organization, make_artifact, fleet):
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        fleet(7),
        phases=(PhaseSpec("all", percent=100),),
        rate_limit_per_minute=3,
    )
    counts = []
    for minute in range(4):
        services.run_rollouts(now=T0 + timedelta(minutes=minute, seconds=1))
        counts.append(GatewayAction.objects.filter(deployment=deployment, state="assigned").count())
    assert counts == [3, 6, 7, 7]


def test_cancel_leaves_every_gateway_on_a_defined_version(organization, make_artifact, fleet, agent, users):
    old, new = make_artifact("1.0.0"), make_artifact("2.0.0")
    gateways = fleet(6)
    first = deploy(organization, [old], gateways, phases=(PhaseSpec("all", percent=100),))
    services.run_rollouts(now=T0)
    for gateway in gateways:
        agent(gateway).install(T0)
    services.run_rollouts(now=T0 + timedelta(minutes=30))
    deployment = deploy(
        organization,
        [new],
        gateways,
        phases=(PhaseSpec("all", percent=100),),
        now=T0 + timedelta(hours=1),
        rate_limit_per_minute=5,
    )
    assert Deployment.objects.get(pk=first.pk).status == "completed"
    services.run_rollouts(now=T0 + timedelta(hours=1))
    g_done, g_installing, g_failing, g_downloaded, g_assigned = assigned_gateways(deployment)
    agent(g_done).install(T0)
    for g in (g_installing, g_failing):
        agent(g).report("downloaded", T0)
        agent(g).report("installing", T0)
    agent(g_downloaded).report("downloaded", T0)

    later = T0 + timedelta(hours=2)
    services.cancel(deployment=deployment, reason="wrong build", actor=users["operator"], now=later)
    agent(g_installing).report("success", later)  # mid-install when canceled: it finishes
    agent(g_failing).report("failure", later, code="flash_error")

    final = states(deployment)
    assert set(final.values()) <= {"success", "failed", "canceled"}
    versions = {a.gateway.serial: a.artifact.version for a in Assignment.objects.filter(gateway__in=gateways)}
    assert versions[g_done.serial] == versions[g_installing.serial] == "2.0.0"
    for g in (g_failing, g_downloaded, g_assigned):
        assert versions[g.serial] == "1.0.0", g  # previous assignment restored
    untouched = set(versions) - {g.serial for g in (g_done, g_installing, g_failing, g_downloaded, g_assigned)}
    assert [versions[s] for s in untouched] == ["1.0.0"]
    assert final[next(iter(untouched))] == "canceled"
    assert AuditEntry.objects.filter(action="deployment.cancel", actor_user=users["operator"]).exists()


def test_rollback_deploys_the_previous_version_to_gateways_that_got_the_new_one(
    organization, make_artifact, fleet, agent, users
):
    old, new = make_artifact("1.0.0"), make_artifact("2.0.0")
    gateways = fleet(4)
    deploy(organization, [old], gateways, phases=(PhaseSpec("all", percent=100),))
    services.run_rollouts(now=T0)
    for gateway in gateways:
        agent(gateway).install(T0)
    deployment = deploy(
        organization, [new], gateways, phases=(PhaseSpec("canary", count=2), PhaseSpec("all", percent=100))
    )
    services.run_rollouts(now=T0)
    got_new = assigned_gateways(deployment)
    for gateway in got_new:
        agent(gateway).install(T0)

    rollback = services.rollback(deployment=deployment, actor=users["operator"], now=T0 + timedelta(minutes=10))
    assert rollback.rollback_of == deployment
    assert set(rollback.target_gateways.all()) == set(got_new)
    services.run_rollouts(now=T0 + timedelta(minutes=10))
    for gateway in got_new:
        assert agent(gateway).assignment().artifact == old
        agent(gateway).install(T0 + timedelta(minutes=11))
    services.run_rollouts(now=T0 + timedelta(minutes=12))
    rollback.refresh_from_db()
    assert rollback.status == "completed"
    assert {a.artifact.version for a in Assignment.objects.filter(gateway__in=gateways)} == {"1.0.0"}
    assert Deployment.objects.get(pk=deployment.pk).status == "canceled"
    assert AuditEntry.objects.filter(action="deployment.rollback", actor_user=users["operator"]).exists()


def test_a_newer_deployment_supersedes_the_older_one_with_a_reason(organization, make_artifact, fleet):
    gateways = fleet(3)
    older = deploy(organization, [make_artifact("2.0.0")], gateways, phases=(PhaseSpec("all", percent=100),))
    services.run_rollouts(now=T0)
    newer = deploy(organization, [make_artifact("2.0.1")], gateways, phases=(PhaseSpec("all", percent=100),))
    older.refresh_from_db()
    assert (older.status, older.superseded_by) == ("superseded", newer)
    assert "superseded by deployment" in older.status_reason
    assert set(states(older).values()) == {"canceled"}
    assert AuditEntry.objects.filter(action="deployment.superseded", target_id=str(older.pk)).exists()


def test_gateways_joining_a_dynamic_group_are_included(organization, make_artifact, fleet, agent):
    fleet(2, tags=["pilot"])
    group = GatewayGroupFactory(organization=organization, kind=GatewayGroup.Kind.DYNAMIC, filter={"tags": ["pilot"]})
    deployment = services.create_deployment(
        organization=organization,
        name="pilot",
        artifacts=[make_artifact("2.0.0")],
        target=TargetSpec(kind="group", group=group),
        plan=RolloutPlan(phases=(PhaseSpec("all", percent=100),)),
        actor=member(organization, "operator"),
        now=T0,
    )
    services.run_rollouts(now=T0)
    newcomer = fleet(1, tags=["pilot"])[0]
    services.run_rollouts(now=T0 + timedelta(minutes=1))
    assert GatewayAction.objects.get(deployment=deployment, gateway=newcomer).state == "assigned"
    assert GatewayAction.objects.filter(deployment=deployment).count() == 3


def test_jitter_spreads_the_start_of_a_phase(organization, make_artifact, fleet):
    deployment = deploy(
        organization, [make_artifact("2.0.0")], fleet(20), phases=(PhaseSpec("all", percent=100),), jitter_seconds=600
    )
    starts = list(GatewayAction.objects.filter(deployment=deployment).values_list("not_before", flat=True))
    assert all(T0 <= start <= T0 + timedelta(seconds=600) for start in starts)
    assert len(set(starts)) > 10
    services.run_rollouts(now=T0 + timedelta(seconds=300))
    halfway = GatewayAction.objects.filter(deployment=deployment, state="assigned").count()
    assert 0 < halfway < 20
    services.run_rollouts(now=T0 + timedelta(seconds=601))
    assert GatewayAction.objects.filter(deployment=deployment, state="assigned").count() == 20


def test_resume_accepts_the_failures_so_far_and_the_threshold_watches_what_follows(
    organization, make_artifact, fleet, agent, users
):
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        fleet(12),
        phases=(PhaseSpec("all", percent=100),),
        failure_threshold_pct=25,
        failure_min_sample=4,
        max_retries=0,
        rate_limit_per_minute=4,
    )
    services.run_rollouts(now=T0)
    for i, gateway in enumerate(assigned_gateways(deployment)):
        agent(gateway).install(T0, fail="flash_error" if i < 2 else "")
    assert Deployment.objects.get(pk=deployment.pk).status == "paused"  # 2 of 4 failed

    services.resume(deployment=deployment, actor=users["operator"], now=T0 + timedelta(minutes=2))
    services.run_rollouts(now=T0 + timedelta(minutes=2))
    for i, gateway in enumerate(assigned_gateways(deployment)):
        agent(gateway).install(T0, fail="flash_error" if i < 1 else "")
    assert Deployment.objects.get(pk=deployment.pk).status == "running"  # 1 of 4 since the resume: 25%, not over
    services.run_rollouts(now=T0 + timedelta(minutes=4))
    agent(assigned_gateways(deployment)[0]).install(T0, fail="flash_error")
    paused = Deployment.objects.get(pk=deployment.pk)  # 2 of the 5 since the resume: 40%
    assert paused.status == "paused" and "2 of 5 finished gateways failed" in paused.status_reason


def test_retry_failed_schedules_the_failed_gateways_again(organization, make_artifact, fleet, agent, users):
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        fleet(2),
        phases=(PhaseSpec("all", percent=100),),
        max_retries=0,
        failure_threshold_pct=100,
        success_threshold_pct=50,
    )
    services.run_rollouts(now=T0)
    failing, fine = assigned_gateways(deployment)
    agent(failing).install(T0, fail="disk_full")
    agent(fine).install(T0)
    services.run_rollouts(now=T0 + timedelta(minutes=1))
    assert Deployment.objects.get(pk=deployment.pk).status == "completed"

    assert services.retry_failed(deployment=deployment, actor=users["admin"], now=T0 + timedelta(hours=1)) == 1
    assert Deployment.objects.get(pk=deployment.pk).status == "running"
    services.run_rollouts(now=T0 + timedelta(hours=1))
    action = GatewayAction.objects.get(deployment=deployment, gateway=failing)
    assert (action.state, action.attempt) == ("assigned", 2)
    agent(failing).install(T0 + timedelta(hours=1))
    services.run_rollouts(now=T0 + timedelta(hours=1, minutes=1))
    assert Deployment.objects.get(pk=deployment.pk).status == "completed"
    assert AuditEntry.objects.filter(action="deployment.retry_failed", actor_user=users["admin"]).exists()


def test_a_phase_that_ends_below_the_success_threshold_pauses_with_the_reason(
    organization, make_artifact, fleet, agent
):
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        fleet(4),
        max_retries=0,
        failure_threshold_pct=100,
        success_threshold_pct=95,
    )
    services.run_rollouts(now=T0)
    first, second = assigned_gateways(deployment)
    agent(first).install(T0)
    agent(second).install(T0, fail="flash_error")
    services.run_rollouts(now=T0 + timedelta(hours=1))
    paused = Deployment.objects.get(pk=deployment.pk)
    assert paused.status == "paused"
    assert paused.status_reason == "Phase 'canary' ended below the success threshold: 1 of 2 succeeded (50% < 95%)."
    assert GatewayAction.objects.filter(deployment=deployment, state="scheduled").count() == 2


def test_a_gateway_canceled_mid_install_that_goes_silent_times_out_back_to_its_previous_version(
    organization, make_artifact, fleet, agent, users
):
    old, new = make_artifact("1.0.0"), make_artifact("2.0.0")
    gateway = fleet(1)[0]
    deploy(organization, [old], [gateway], phases=(PhaseSpec("all", percent=100),))
    services.run_rollouts(now=T0)
    agent(gateway).install(T0)
    deployment = deploy(
        organization, [new], [gateway], phases=(PhaseSpec("all", percent=100),), gateway_timeout=timedelta(minutes=30)
    )
    services.run_rollouts(now=T0)
    agent(gateway).report("installing", T0)
    services.cancel(deployment=deployment, actor=users["operator"], now=T0 + timedelta(minutes=1))
    assert GatewayAction.objects.get(deployment=deployment).cancel_requested

    services.run_rollouts(now=T0 + timedelta(hours=1))
    action = GatewayAction.objects.get(deployment=deployment)
    assert (action.state, action.attempt) == ("timed_out", 1)  # no retry for a canceled deployment
    assert Assignment.objects.get(gateway=gateway).artifact == old


def test_a_gateway_whose_hardware_changed_after_planning_fails_alone_and_is_not_assigned(
    organization, make_artifact, fleet
):
    steady, changed = fleet(2)
    deployment = deploy(
        organization,
        [make_artifact("2.0.0")],
        [steady, changed],
        phases=(PhaseSpec("all", percent=100),),
        max_retries=0,
        failure_threshold_pct=100,
    )
    changed.hardware_model = "GX-999"
    changed.save()
    services.run_rollouts(now=T0)
    assert states(deployment) == {steady.serial: "assigned", changed.serial: "failed"}
    assert GatewayAction.objects.get(gateway=changed).failure_code == "incompatible"
    assert not Assignment.objects.filter(gateway=changed).exists()


@pytest.mark.django_db(transaction=True)  # the nudge goes out when the assignment commits
def test_connected_gateways_are_told_to_check_for_updates_as_soon_as_they_are_assigned(
    organization, make_artifact, fleet
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from fleet.uplink.models import Command
    from fleet.uplink.services import gateway_group

    online, offline = fleet(2)
    online.last_seen = T0 - timedelta(minutes=1)
    online.save(update_fields=["last_seen"])
    layer = get_channel_layer()
    connection = async_to_sync(layer.new_channel)()  # stands in for the gateway's live uplink
    async_to_sync(layer.group_add)(gateway_group(online.pk), connection)
    deployment = deploy(
        organization, [make_artifact("2.0.0")], [online, offline], phases=(PhaseSpec("all", percent=100),)
    )

    services.run_rollouts(now=T0)

    assert {a.gateway for a in GatewayAction.objects.filter(deployment=deployment, state="assigned")} == {
        online,
        offline,
    }
    (command,) = Command.objects.all()
    assert (command.gateway, command.name, command.state) == (online, "check_updates", Command.State.PENDING)
    delivered = async_to_sync(layer.receive)(connection)
    assert delivered == {"type": "command.deliver", "command_id": str(command.pk)}
    async_to_sync(layer.group_discard)(gateway_group(online.pk), connection)
    assert AuditEntry.objects.filter(action="gateway.command.check_updates.bulk").count() == 1
