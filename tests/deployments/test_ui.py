"""The web UI at /deployments/: list, create form with per-phase preview, live detail, operations."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client

from firmware.deployments import services
from firmware.deployments.models import Deployment, GatewayAction
from fleet.audit.models import AuditEntry
from tests.conftest import NOON_PACIFIC

pytestmark = pytest.mark.usefixtures("clock")


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def form_data(organization, make_artifact, fleet) -> dict[str, Any]:
    artifact = make_artifact("2.0.0")
    gateways = fleet(4)
    odd = fleet(1, hardware_model="GX-999")[0]
    return {
        "organization": organization.pk,
        "name": "UI rollout",
        "artifacts": [artifact.pk],
        "target_kind": "list",
        "target_gateways": " ".join(g.serial for g in [*gateways, odd]),
        "include_new_gateways": "on",
        "phases": "canary 1 soak=0\nall 100%",
        "jitter_seconds": 0,
        "gateway_timeout_minutes": 60,
        "max_retries": 0,
        "retry_backoff_minutes": 5,
        "success_threshold_pct": 100,
        "failure_threshold_pct": 50,
        "failure_min_sample": 1,
        "window_start": "",
        "window_end": "",
    }


def test_operator_previews_creates_and_follows_a_deployment(users, form_data, agent):
    client = logged_in(users["operator"])
    assert "Deployments" in client.get("/").content.decode()  # the navigation entry
    assert client.get("/deployments/new/").status_code == 200

    preview = client.post("/deployments/preview/", form_data).content.decode()
    assert "4 compatible gateways" in preview and "1 excluded" in preview and "incompatible" in preview

    response = client.post("/deployments/new/", form_data)
    deployment = Deployment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/deployments/{deployment.pk}/"

    services.run_rollouts(now=NOON_PACIFIC)
    canary = GatewayAction.objects.get(deployment=deployment, state="assigned")
    agent(canary.gateway).install(NOON_PACIFIC, fail="flash_error")
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert "flash_error" in page and "Paused automatically" in page and "<progress" in page
    assert client.get(f"/deployments/{deployment.pk}/progress/").status_code == 200
    history = client.get(f"/deployments/actions/{canary.pk}/").content.decode()
    assert "downloading" in history and "flash_error" in history

    response = client.post(f"/deployments/{deployment.pk}/resume/")
    assert response.status_code == 302
    assert Deployment.objects.get().status == "running"
    assert AuditEntry.objects.filter(action="deployment.resume", actor_user=users["operator"]).exists()
    assert "UI rollout" in client.get("/deployments/").content.decode()


def test_form_errors_are_shown_not_raised(users, form_data):
    client = logged_in(users["operator"])
    response = client.post("/deployments/new/", {**form_data, "phases": "canary lots"})
    assert response.status_code == 400 and "write e.g." in response.content.decode()
    response = client.post("/deployments/new/", {**form_data, "window_start": "01:00"})
    assert response.status_code == 400 and "both the start and the end" in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "technician"])
def test_viewers_and_technicians_cannot_create_or_operate_in_the_ui(users, form_data, role):
    logged_in(users["operator"]).post("/deployments/new/", form_data)
    deployment = Deployment.objects.get()
    client = logged_in(users[role])
    assert client.get(f"/deployments/{deployment.pk}/").status_code == 200
    assert client.get("/deployments/new/").status_code == 403
    assert client.post("/deployments/new/", {**form_data, "name": "again"}).status_code == 403
    assert client.post(f"/deployments/{deployment.pk}/cancel/").status_code == 403
    assert Deployment.objects.get().status == "running" and Deployment.objects.count() == 1


def test_an_artifact_without_its_release_signature_is_warned_about_before_and_after_creating(users, form_data):
    from firmware import bundles
    from firmware import services as firmware
    from firmware.models import Artifact

    existing = Artifact.objects.get(pk=form_data["artifacts"][0])
    data = bundles.build_bundle(
        type="firmware", name="gw-os", version="2.1.0", files={"rootfs.img": b"rootfs"}, hardware_models=["GF-100"]
    )
    # Uploaded, never published: the release signature is still to come (offline release key).
    pending = firmware.upload_artifact(
        organization=existing.organization,
        type="firmware",
        name="gw-os",
        version="2.1.0",
        fileobj=io.BytesIO(data),
        actor=users["operator"],
    )
    client = logged_in(users["operator"])
    preview = client.post("/deployments/preview/", {**form_data, "artifacts": [pending.pk]}).content.decode()
    assert "gw-os 2.1.0 is not signed into the firmware role yet" in preview
    assert "not signed" not in client.post("/deployments/preview/", form_data).content.decode()

    created = client.post("/deployments/new/", {**form_data, "artifacts": [pending.pk]}, follow=True)
    assert "is not signed into the firmware role yet" in created.content.decode()
