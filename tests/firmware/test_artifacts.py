"""Artifacts, assignments, config and license bundles through the REST API and the web UI."""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any

import pytest
from django.test import Client

from firmware.models import Artifact, Assignment, Blob, DeviceTarget, PendingBin
from firmware.repo import get_repository
from firmware.services import publish
from firmware.storage import open_blob
from fleet.accounts.authorization import SYSTEM
from fleet.audit.models import AuditEntry
from tests.factories import GatewayFactory, OrganizationFactory, member
from tests.firmware.bundles import make_bundle


def read_blob(blob: Blob) -> bytes:
    with open_blob(blob) as f:
        return f.read()


ARTIFACTS = "/api/firmware/artifacts/"


def upload(client: Any, organization: Any, bundle: bytes, **fields: Any) -> Any:
    data = {
        "organization": organization.pk,
        "type": "firmware",
        "name": "gw-os",
        "version": "2.1.0",
        "file": io.BytesIO(bundle),
        **fields,
    }
    return client.post(ARTIFACTS, data, format="multipart")


@pytest.fixture
def operator(api_client_for: Any, users: dict[str, Any]) -> Any:
    return api_client_for(users["operator"])


@pytest.mark.parametrize(
    ("bundle", "fields", "reason"),
    [
        (make_bundle(type="patch"), {}, "declared type 'firmware' but the manifest says 'patch'"),
        (make_bundle(), {"size": 12}, "declared size 12 bytes but received"),
        (make_bundle(), {"sha256": "0" * 64}, "declared sha256 0000"),
        (make_bundle(version="2.0.0"), {}, "declared version '2.1.0' but the manifest says '2.0.0'"),
        (make_bundle(extra_members={"evil.sh": b"rm -rf /"}), {}, "evil.sh is in the archive but not listed"),
        (
            make_bundle(
                manifest_overrides={"files": {"rootfs.img": {"sha256": "1" * 64, "length": 1024}}},
                files={"rootfs.img": b"x" * 1024},
            ),
            {},
            "rootfs.img does not match its sha256",
        ),
        (b"definitely not a tar archive", {}, "not a tar archive"),
        (make_bundle(), {"version": "2.1"}, "not a semantic version"),
    ],
)
def test_upload_is_refused_with_the_reason(
    operator: Any, organization: Any, bundle: bytes, fields: dict[str, Any], reason: str
) -> None:
    response = upload(operator, organization, bundle, **fields)
    assert response.status_code == 400
    assert response.json()["code"] == "artifact_rejected"
    assert reason in response.json()["detail"]
    assert not Artifact.objects.exists()


def test_upload_stores_content_addressed_and_records_audit(operator: Any, organization: Any, settings: Any) -> None:
    bundle = make_bundle(hardware_models=["GF-100", "GF-200"])
    response = upload(operator, organization, bundle, sha256=hashlib.sha256(bundle).hexdigest(), size=len(bundle))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sha256"] == hashlib.sha256(bundle).hexdigest()
    assert body["hardware_models"] == ["GF-100", "GF-200"]  # taken from the manifest
    assert body["target_path"] == "firmware/sunrise/gw-os-2.1.0.tar"
    stored = settings.MEDIA_ROOT / f"blobs/{body['sha256'][:2]}/{body['sha256']}"
    assert stored.read_bytes() == bundle
    assert AuditEntry.objects.filter(action="firmware.artifact.upload", target_id=str(body["id"])).exists()


def test_identical_content_is_stored_once(operator: Any, organization: Any, api_client_for: Any) -> None:
    other = OrganizationFactory.create(slug="other-installer")
    bundle = make_bundle()
    assert upload(operator, organization, bundle).status_code == 201
    assert upload(api_client_for(member(other, "admin")), other, bundle).status_code == 201
    assert Artifact.objects.count() == 2
    assert Blob.objects.count() == 1


def test_artifacts_are_immutable(operator: Any, organization: Any) -> None:
    artifact_id = upload(operator, organization, make_bundle()).json()["id"]
    again = upload(operator, organization, make_bundle())
    assert again.status_code == 409
    assert "immutable" in again.json()["detail"]
    for method in (operator.put, operator.patch, operator.delete):
        assert method(f"{ARTIFACTS}{artifact_id}/", {"release_notes": "x"}).status_code == 405


def test_viewers_cannot_upload_and_other_tenants_cannot_see_artifacts(
    api_client_for: Any, users: dict[str, Any], operator: Any, organization: Any
) -> None:
    assert upload(api_client_for(users["viewer"]), organization, make_bundle()).status_code == 403
    artifact_id = upload(operator, organization, make_bundle()).json()["id"]
    stranger = api_client_for(member(OrganizationFactory.create(slug="elsewhere"), "admin"))
    assert stranger.get(f"{ARTIFACTS}{artifact_id}/").status_code == 404
    assert stranger.get(ARTIFACTS).json()["results"] == []


def test_upload_through_the_web_ui_shows_refusals(users: dict[str, Any], organization: Any) -> None:
    browser = Client()
    browser.force_login(users["operator"])
    refused = browser.post(
        "/firmware/upload/",
        {
            "organization": organization.pk,
            "type": "config",
            "name": "gw-os",
            "version": "2.1.0",
            "file": io.BytesIO(make_bundle()),
        },
    )
    assert refused.status_code == 400
    assert "declared type &#x27;config&#x27; but the manifest says &#x27;firmware&#x27;" in refused.content.decode()
    accepted = browser.post(
        "/firmware/upload/",
        {
            "organization": organization.pk,
            "type": "firmware",
            "name": "gw-os",
            "version": "2.1.0",
            "file": io.BytesIO(make_bundle()),
        },
    )
    assert accepted.status_code == 302
    assert "gw-os" in browser.get(accepted["Location"]).content.decode()
    assert "gw-os" in browser.get("/firmware/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_assignment_is_refused_for_incompatible_hardware(tuf_repo: Any, operator: Any, organization: Any) -> None:
    artifact_id = upload(operator, organization, make_bundle(hardware_models=["GF-200"])).json()["id"]
    gateway = GatewayFactory.create(organization=organization, hardware_model="GF-100")
    response = operator.post("/api/firmware/assignments/", {"gateway": gateway.pk, "artifact": artifact_id})
    assert response.status_code == 400
    assert response.json() == {"code": "incompatible", "detail": "gw-os 2.1.0 supports GF-200, not 'GF-100'"}
    assert not Assignment.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_assignment_marks_only_the_gateways_bins_and_publish_signs_them(
    tuf_repo: Any, operator: Any, organization: Any, users: dict[str, Any], api_client_for: Any
) -> None:
    artifact_id = upload(operator, organization, make_bundle()).json()["id"]
    gateway = GatewayFactory.create(organization=organization)
    assert (
        api_client_for(users["viewer"])
        .post("/api/firmware/assignments/", {"gateway": gateway.pk, "artifact": artifact_id})
        .status_code
        == 403
    )
    response = operator.post("/api/firmware/assignments/", {"gateway": gateway.pk, "artifact": artifact_id})
    assert response.status_code == 201, response.content
    # The publish task ran on commit (eager in the embedded default).
    assert not PendingBin.objects.exists()
    repo = get_repository()
    (row,) = DeviceTarget.objects.filter(gateway=gateway)
    assert row.path.endswith("/assignment.json")
    signed = repo.load(row.bin_name).signed.targets[row.path]
    assert signed.hashes["sha256"] == row.bundle.blob_id
    assert AuditEntry.objects.filter(action="firmware.assignment.set").exists()


@pytest.mark.django_db(transaction=True)
def test_config_values_that_break_the_schema_are_refused_with_the_path(
    tuf_repo: Any, operator: Any, organization: Any
) -> None:
    gateway = GatewayFactory.create(organization=organization)
    template = operator.post(
        "/api/firmware/config-templates/",
        {
            "organization": organization.pk,
            "name": "limits",
            "schema": {"type": "object", "properties": {"export_limit_kw": {"type": "number", "maximum": 100}}},
            "files": {"limits.conf": "{{ values.export_limit_kw }}"},
        },
        format="json",
    ).json()
    assert (
        operator.post(
            "/api/firmware/config-values/",
            {
                "template": template["id"],
                "gateway": gateway.pk,
                "values": {"export_limit_kw": 250},
            },
            format="json",
        ).status_code
        == 201
    )
    response = operator.post("/api/firmware/configs/", {"gateway": gateway.pk, "template": template["id"]})
    assert response.status_code == 400
    assert response.json()["code"] == "config_invalid"
    assert "export_limit_kw" in response.json()["detail"]
    bad_schema = operator.post(
        "/api/firmware/config-templates/",
        {
            "organization": organization.pk,
            "name": "broken",
            "schema": {"type": "nonsense"},
            "files": {},
        },
        format="json",
    )
    assert bad_schema.status_code == 400


def test_repository_status_reports_roles_after_init(tuf_repo: Any, operator: Any) -> None:
    status = operator.get("/api/firmware/repository/").json()
    assert status["initialized"] is True
    assert status["bins"] == 16
    assert json.dumps(status)  # JSON-serialisable for the UI as well
    assert publish() is not None


@pytest.mark.django_db(transaction=True)
def test_assign_many_refuses_the_batch_with_an_incompatible_gateway_else_publishes_all(
    tuf_repo: Any, operator: Any, organization: Any, users: dict[str, Any]
) -> None:
    from firmware.services import assign_many

    artifact = Artifact.objects.get(pk=upload(operator, organization, make_bundle()).json()["id"])
    gateways = GatewayFactory.create_batch(30, organization=organization, hardware_model="GF-100")
    odd_one = GatewayFactory.create(organization=organization, hardware_model="GF-900")
    with pytest.raises(Exception, match="not 'GF-900'"):
        assign_many(gateways=[*gateways, odd_one], artifact=artifact, deployment="7", actor=users["operator"])
    assert not Assignment.objects.exists()

    assert assign_many(gateways=gateways, artifact=artifact, deployment="7", actor=users["operator"]) == 30
    assert Assignment.objects.filter(deployment="7").count() == 30
    assert AuditEntry.objects.filter(action="firmware.assignment.bulk_set").count() == 1
    assert not PendingBin.objects.exists()
    repo = get_repository()
    for row in DeviceTarget.objects.filter(gateway__in=gateways).select_related("bundle"):
        published = repo.load(row.bin_name).signed.targets[row.path]
        assert published.hashes["sha256"] == row.bundle.blob_id
        assert json.loads(read_blob(row.bundle.blob))["firmware"]["deployment"] == "7"


def test_upload_over_the_size_limit_is_refused(operator: Any, organization: Any, settings: Any) -> None:
    settings.GRIDFLEET_ARTIFACT_MAX_BYTES = 100
    response = upload(operator, organization, make_bundle())
    assert response.status_code == 400
    assert "the limit is 100 (GRIDFLEET_ARTIFACT_MAX_BYTES)" in response.json()["detail"]


def test_large_uploads_stream_through_a_temporary_file(operator: Any, organization: Any, settings: Any) -> None:
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    payload = os.urandom(3 * 1024 * 1024)
    bundle = make_bundle(files={"rootfs.img": payload})
    response = upload(operator, organization, bundle, size=len(bundle))
    assert response.status_code == 201, response.content
    assert read_blob(Blob.objects.get(sha256=response.json()["sha256"])) == bundle


@pytest.mark.django_db(transaction=True)
def test_gateway_page_shows_what_the_gateway_must_run(
    tuf_repo: Any, operator: Any, organization: Any, users: dict[str, Any]
) -> None:
    artifact_id = upload(operator, organization, make_bundle()).json()["id"]
    gateway = GatewayFactory.create(organization=organization)
    operator.post("/api/firmware/assignments/", {"gateway": gateway.pk, "artifact": artifact_id})
    browser = Client()
    browser.force_login(users["viewer"])
    page = browser.get(f"/gateways/{gateway.pk}/").content.decode()
    assert "Updates" in page
    assert "gw-os 2.1.0" in page


@pytest.mark.django_db(transaction=True)
def test_install_conditions_follow_the_documented_shape(tuf_repo: Any, operator: Any, organization: Any) -> None:
    from firmware.errors import FirmwareError
    from firmware.services import assign

    artifact = Artifact.objects.get(pk=upload(operator, organization, make_bundle()).json()["id"])
    gateway = GatewayFactory.create(organization=organization)
    with pytest.raises(FirmwareError, match="install conditions at window/start"):
        assign(
            gateway=gateway,
            artifact_type="firmware",
            artifact=artifact,
            install={"window": {"start": "25:00", "end": "04:00", "timezone": "America/Los_Angeles"}},
            actor=SYSTEM,
        )
    window = {"start": "01:00", "end": "04:00", "timezone": "America/Los_Angeles"}
    assign(
        gateway=gateway,
        artifact_type="firmware",
        artifact=artifact,
        deployment="9",
        install={"window": window, "not_before": None, "sun_down": True},
        actor=SYSTEM,
    )
    (row,) = DeviceTarget.objects.filter(gateway=gateway).select_related("bundle__blob")
    entry = json.loads(read_blob(row.bundle.blob))["firmware"]
    assert entry["install"] == {"window": window, "not_before": None, "sun_down": True}
    assert entry["deployment"] == "9"


def test_artifacts_and_repository_pages_are_in_the_navigation(users: dict[str, Any], tuf_repo: Any) -> None:
    browser = Client()
    browser.force_login(users["viewer"])
    page = browser.get("/firmware/").content.decode()
    assert '<a href="/firmware/" class="active">Artifacts</a>' in page
    repository = browser.get("/firmware/repository/")
    assert repository.status_code == 200
    assert "bins" in repository.content.decode()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"files": {"a.conf": "{% if %}"}}, "template syntax error"),
        ({"files": {"../etc/passwd": "x"}}, "relative path"),
        ({"files": ["a.conf"]}, "relative/path"),
    ],
)
def test_config_templates_with_bad_files_are_refused(
    operator: Any, organization: Any, payload: dict[str, Any], message: str
) -> None:
    response = operator.post(
        "/api/firmware/config-templates/",
        {"organization": organization.pk, "name": "t", "schema": {"type": "object"}, **payload},
        format="json",
    )
    assert response.status_code == 400
    assert message in json.dumps(response.json())


def test_config_values_must_be_an_object(operator: Any, organization: Any) -> None:
    template = operator.post(
        "/api/firmware/config-templates/",
        {"organization": organization.pk, "name": "t", "schema": {"type": "object"}, "files": {}},
        format="json",
    ).json()
    gateway = GatewayFactory.create(organization=organization)
    response = operator.post(
        "/api/firmware/config-values/",
        {"template": template["id"], "gateway": gateway.pk, "values": [1, 2]},
        format="json",
    )
    assert response.status_code == 400
    assert "give an object of values" in json.dumps(response.json())


@pytest.mark.django_db(transaction=True)
def test_config_and_license_are_built_from_the_gateway_page(
    tuf_repo: Any, operator: Any, organization: Any, users: dict[str, Any]
) -> None:
    gateway = GatewayFactory.create(organization=organization)
    template = operator.post(
        "/api/firmware/config-templates/",
        {
            "organization": organization.pk,
            "name": "limits",
            "files": {"limits.conf": "{{ values.kw }}"},
            "schema": {"type": "object", "required": ["kw"], "properties": {"kw": {"type": "number"}}},
        },
        format="json",
    ).json()
    browser = Client()
    browser.force_login(users["operator"])
    page = browser.get(f"/gateways/{gateway.pk}/").content.decode()
    assert "Build config bundle" in page and "Issue license" in page

    refused = browser.post(f"/firmware/gateways/{gateway.pk}/config/", {"template": template["id"]}, follow=True)
    assert "Not built: values for" in refused.content.decode()  # "kw" is required and not set yet
    operator.post(
        "/api/firmware/config-values/",
        {"template": template["id"], "gateway": gateway.pk, "values": {"kw": 5}},
        format="json",
    )
    built = browser.post(f"/firmware/gateways/{gateway.pk}/config/", {"template": template["id"]}, follow=True)
    assert "Built config-1.tar" in built.content.decode()
    issued = browser.post(
        f"/firmware/gateways/{gateway.pk}/license/",
        {"field_devices": 12, "features": "export_limit", "valid_days": 30},
        follow=True,
    )
    assert "Built license-1.tar" in issued.content.decode()
    assert set(Assignment.objects.filter(gateway=gateway).values_list("artifact_type", flat=True)) == {
        "config",
        "license",
    }

    viewer = Client()
    viewer.force_login(users["viewer"])
    assert "Issue license" not in viewer.get(f"/gateways/{gateway.pk}/").content.decode()
    assert viewer.post(f"/firmware/gateways/{gateway.pk}/license/", {"field_devices": 1}).status_code == 403
