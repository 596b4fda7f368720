"""Two independent TUF clients (python-tuf ngclient and tuf-js) against a repository the server built.

The server runs for real (live_server): artifacts are uploaded and assigned through the REST API,
the gateway authenticates with its PKI bearer token, and clients fetch /tuf/metadata/ and
/tuf/targets/ over HTTP. Attacks are made by changing the served files the way someone who took
over the web server or the storage could.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, Signature
from tuf.api.metadata import Metadata, MetaFile, Timestamp

from firmware.models import Assignment, Blob
from firmware.repo import get_keyring, get_repository
from firmware.tuf.keys import key_from_json
from firmware.tuf.layout import SNAPSHOT, TIMESTAMP
from tests.factories import GatewayFactory
from tests.firmware.bundles import make_bundle
from tests.firmware.tuf_clients import ClientRefused, JsTufClient, PythonTufClient, ensure_tuf_js

FIRMWARE_FILES = {"rootfs.img": b"gridfleet os 2.1.0 " * 500, "scripts/install.sh": b"#!/bin/sh\nexit 0\n"}


@dataclass
class ServedDevice:
    base_url: str
    bearer: str
    root: bytes
    channel: dict[str, Any]
    firmware_bundle: bytes


@pytest.fixture
def served_device(
    live_server: Any,
    transactional_db: None,
    tuf_repo: Any,
    organization: Any,
    users: dict[str, Any],
    enroll_gateway: Any,
    api_client_for: Any,
) -> ServedDevice:
    enrolled = enroll_gateway(GatewayFactory.create(organization=organization, hardware_model="GF-100"))
    gateway = enrolled.gateway
    operator = api_client_for(users["operator"])
    firmware = make_bundle(name="gw-os", version="2.1.0", files=FIRMWARE_FILES)
    response = operator.post(
        "/api/firmware/artifacts/",
        {
            "organization": organization.pk,
            "type": "firmware",
            "name": "gw-os",
            "version": "2.1.0",
            "file": io.BytesIO(firmware),
            "size": len(firmware),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    response = operator.post("/api/firmware/assignments/", {"gateway": gateway.pk, "artifact": response.data["id"]})
    assert response.status_code == 201, response.content
    response = operator.post(
        "/api/firmware/config-templates/",
        {
            "organization": organization.pk,
            "name": "site-default",
            "schema": {
                "type": "object",
                "required": ["export_limit_kw"],
                "properties": {"export_limit_kw": {"type": "number", "maximum": 100}, "poll_s": {"type": "integer"}},
            },
            "files": {"limits.conf": "export_limit_kw={{ values.export_limit_kw }}\nserial={{ gateway.serial }}\n"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    template_id = response.data["id"]
    for level in (
        {"site": gateway.site_id, "values": {"export_limit_kw": 10, "poll_s": 300}},
        {"gateway": gateway.pk, "values": {"export_limit_kw": 7.5}},
    ):
        response = operator.post("/api/firmware/config-values/", {"template": template_id, **level}, format="json")
        assert response.status_code == 201, response.content
    response = operator.post("/api/firmware/configs/", {"gateway": gateway.pk, "template": template_id})
    assert response.status_code == 201, response.content
    response = operator.post(
        "/api/firmware/licenses/",
        {"gateway": gateway.pk, "limits": {"field_devices": 20}, "features": ["export_limit"]},
        format="json",
    )
    assert response.status_code == 201, response.content

    bearer = enrolled.access_token()
    channel = httpx.get(f"{live_server.url}/gw/v1/updates/channel", headers={"Authorization": f"Bearer {bearer}"})
    assert channel.status_code == 200, channel.text
    root = httpx.get(f"{live_server.url}/tuf/metadata/1.root.json")
    assert root.status_code == 200
    return ServedDevice(live_server.url, bearer, root.content, channel.json(), firmware)


@pytest.fixture(params=["python-tuf", "tuf-js"])
def client_class(request: Any) -> type:
    if request.param == "tuf-js":
        reason = ensure_tuf_js()
        if reason:
            pytest.skip(f"tuf-js client unavailable: {reason}")
        return JsTufClient
    return PythonTufClient


def new_client(client_class: type, device: ServedDevice, workdir: Path) -> Any:
    client = client_class(workdir, device.channel["metadata_url"], device.channel["targets_url"], device.bearer)
    client.init(device.root)
    return client


def assignment_of(client: Any, device: ServedDevice) -> dict[str, Any]:
    return json.loads(client.download(device.channel["assignment_target"]))


def tar_member(bundle: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(bundle)) as archive:
        member = archive.extractfile(name)
        assert member is not None
        return member.read()


def test_client_downloads_and_verifies_assignment_firmware_config_and_license(
    served_device: ServedDevice, client_class: type, tmp_path: Path
) -> None:
    client = new_client(client_class, served_device, tmp_path)
    assignment = assignment_of(client, served_device)
    assert assignment["format"] == "gridfleet-assignment/1"
    assert assignment["firmware"]["version"] == "2.1.0"
    assert assignment["patch"] is None

    assert client.download(assignment["firmware"]["target"]) == served_device.firmware_bundle

    config = client.download(assignment["config"]["target"])
    assert json.loads(tar_member(config, "config.json")) == {"export_limit_kw": 7.5, "poll_s": 300}
    assert tar_member(config, "files/limits.conf").decode().startswith("export_limit_kw=7.5\n")

    license_document = json.loads(tar_member(client.download(assignment["license"]["target"]), "license.json"))
    assert license_document["signed"]["limits"] == {"field_devices": 20}
    key = key_from_json(served_device.channel["license_public_key"])
    canonical = encode_canonical(license_document["signed"])
    assert canonical is not None
    key.verify_signature(Signature.from_dict(license_document["signatures"][0]), canonical.encode())


def test_device_targets_are_served_only_to_their_gateway(
    served_device: ServedDevice, enroll_gateway: Any, organization: Any
) -> None:
    repo = get_repository()
    path = served_device.channel["assignment_target"]
    info = repo.load(repo.bin_for(path)).signed.targets[path]
    url = f"{served_device.channel['targets_url']}{path.rsplit('/', 1)[0]}/{info.hashes['sha256']}.assignment.json"
    assert httpx.get(url).status_code == 401
    other = enroll_gateway(GatewayFactory.create(organization=organization))
    assert httpx.get(url, headers={"Authorization": f"Bearer {other.access_token()}"}).status_code == 404
    own = httpx.get(url, headers={"Authorization": f"Bearer {served_device.bearer}", "Accept-Encoding": "gzip"})
    assert own.status_code == 200
    assert "content-encoding" not in own.headers  # targets never: TUF hashes the stored bytes
    partial = httpx.get(url, headers={"Authorization": f"Bearer {served_device.bearer}", "Range": "bytes=0-9"})
    assert partial.status_code == 206
    assert partial.content == own.content[:10]
    assert partial.headers["content-range"] == f"bytes 0-9/{len(own.content)}"


def test_update_channel_needs_the_gateways_bearer_token(served_device: ServedDevice) -> None:
    refused = httpx.get(f"{served_device.base_url}/gw/v1/updates/channel")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_access_token"
    token = served_device.channel["token"]
    assert len(token) == 32
    assert served_device.channel["assignment_target"] == f"devices/{token}/assignment.json"


def test_metadata_is_served_with_cache_headers_and_404_for_missing_files(served_device: ServedDevice) -> None:
    base = served_device.channel["metadata_url"]
    assert "immutable" in httpx.get(f"{base}1.root.json").headers["cache-control"]
    assert httpx.get(f"{base}timestamp.json").headers["cache-control"] == "public, max-age=10"
    assert httpx.get(f"{base}2.root.json").status_code == 404
    assert httpx.get(f"{base}../keys/online.json").status_code == 404
    # Metadata may be compressed for clients that accept it; timestamp.json stays tiny and plain.
    snapshot_name = f"{get_repository().version(SNAPSHOT)}.snapshot.json"
    compressed = httpx.get(f"{base}{snapshot_name}", headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.content == httpx.get(f"{base}{snapshot_name}", headers={"Accept-Encoding": "identity"}).content
    assert "content-encoding" not in httpx.get(f"{base}timestamp.json", headers={"Accept-Encoding": "gzip"}).headers


# ----------------------------------------------------------------------- attacks


def test_client_refuses_a_tampered_target(served_device: ServedDevice, client_class: type, tmp_path: Path) -> None:
    client = new_client(client_class, served_device, tmp_path)
    target = assignment_of(client, served_device)["config"]
    blob = Blob.objects.get(sha256=target["sha256"])
    stored = Path(settings.MEDIA_ROOT) / blob.storage_name
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF  # same length, one flipped byte: only the hash can tell
    stored.write_bytes(bytes(data))
    with pytest.raises(ClientRefused, match=r"(?i)hash"):
        client.download(target["target"])


def test_client_refuses_a_tampered_bin(served_device: ServedDevice, client_class: type, tmp_path: Path) -> None:
    repo = get_repository()
    path = served_device.channel["assignment_target"]
    bin_name = repo.bin_for(path)
    served = repo.store.path(bin_name, repo.version(bin_name))
    md = json.loads(served.read_bytes())
    md["signed"]["targets"][path]["length"] += 1
    served.write_text(json.dumps(md))
    client = new_client(client_class, served_device, tmp_path)
    with pytest.raises(ClientRefused, match=r"bins-[0-9a-f] was signed by 0/1 keys"):
        client.download(path)


def _write_timestamp(*, snapshot_version: int, signer: Any, expires: datetime) -> None:
    repo = get_repository()
    timestamp = Timestamp(
        version=repo.version(TIMESTAMP) + 1,
        expires=expires,
        snapshot_meta=MetaFile.from_data(snapshot_version, repo.store.read(SNAPSHOT, snapshot_version), ["sha256"]),
    )
    md = Metadata(timestamp)
    md.sign(signer)
    repo.store.write_timestamp(md.to_bytes())


def test_client_refuses_metadata_signed_by_the_wrong_key(
    served_device: ServedDevice, client_class: type, tmp_path: Path
) -> None:
    client = new_client(client_class, served_device, tmp_path)
    client.refresh()
    _write_timestamp(
        snapshot_version=get_repository().version(SNAPSHOT),
        signer=CryptoSigner.generate_ed25519(),
        expires=datetime.now(UTC) + timedelta(days=1),
    )
    with pytest.raises(ClientRefused, match="timestamp was signed by 0/1 keys"):
        client.refresh()


def test_client_refuses_an_expired_timestamp(served_device: ServedDevice, client_class: type, tmp_path: Path) -> None:
    client = new_client(client_class, served_device, tmp_path)
    _write_timestamp(
        snapshot_version=get_repository().version(SNAPSHOT),
        signer=get_keyring().signer(TIMESTAMP),
        expires=datetime.now(UTC) - timedelta(minutes=5),
    )
    with pytest.raises(ClientRefused, match=r"timestamp\.json is expired"):
        client.refresh()


def test_client_refuses_a_rolled_back_snapshot(served_device: ServedDevice, client_class: type, tmp_path: Path) -> None:
    client = new_client(client_class, served_device, tmp_path)
    client.refresh()
    current = get_repository().version(SNAPSHOT)
    assert current > 1
    # Correctly signed by the real timestamp key, but naming an older snapshot.
    _write_timestamp(
        snapshot_version=current - 1,
        signer=get_keyring().signer(TIMESTAMP),
        expires=datetime.now(UTC) + timedelta(days=1),
    )
    with pytest.raises(ClientRefused, match=r"(?i)snapshot.*version|version.*snapshot"):
        client.refresh()


# ------------------------------------------------------------------ key rotation


def _sign_offline_and_import(out: Path, files: list[str], keys: list[Path], monkeypatch: Any) -> None:
    """What operators do: export, sign on the offline machine with the offline CLI, import."""
    from django.core.management import call_command

    from firmware import conf
    from firmware.tuf import offline

    call_command("tuf_export", str(out), stdout=io.StringIO())
    monkeypatch.setenv("GRIDFLEET_KEY_PASSPHRASE", conf.key_passphrase())
    for name in files:
        for key in keys:
            assert offline.main(["sign", str(out / name), "--key", str(key)]) == 0
    output = io.StringIO()
    call_command("tuf_import", *[str(out / name) for name in files], stdout=output)
    assert "Published" in output.getvalue(), output.getvalue()


def test_client_trusting_root_1_follows_root_and_online_key_rotations(
    served_device: ServedDevice, client_class: type, tmp_path: Path, isolated_var_dir: Path, monkeypatch: Any
) -> None:
    from django.core.management import call_command

    from firmware import conf
    from firmware.tuf import offline

    client = new_client(client_class, served_device, tmp_path / "client")
    client.refresh()
    offline_dir = isolated_var_dir / "offline"
    root_keys = [offline_dir / f"root-{i}.pem" for i in (1, 2)]

    # Root v2: new timestamp and snapshot keys.
    call_command("tuf_stage", "root", rotate_online=["timestamp", "snapshot"], stdout=io.StringIO())
    _sign_offline_and_import(tmp_path / "v2", ["2.root.json"], root_keys, monkeypatch)

    # Root v3: replace root key 3 by a new one made on the offline machine.
    monkeypatch.setenv("GRIDFLEET_KEY_PASSPHRASE", conf.key_passphrase())
    assert offline.main(["keygen", str(offline_dir / "root-new.pem")]) == 0
    old_key = json.loads((offline_dir / "root-3.pem.pub.json").read_text())["keyid"]
    call_command(
        "tuf_stage",
        "root",
        add_key=[str(offline_dir / "root-new.pem.pub.json")],
        remove_keyid=[old_key],
        stdout=io.StringIO(),
    )
    _sign_offline_and_import(tmp_path / "v3", ["3.root.json"], root_keys, monkeypatch)

    # New online key for the hash bins: devices v2 signed by the targets key, every bin re-signed.
    call_command("tuf_stage", "bins-key", stdout=io.StringIO())
    _sign_offline_and_import(tmp_path / "devices", ["2.devices.json"], [offline_dir / "targets-1.pem"], monkeypatch)

    assignment = assignment_of(client, served_device)
    assert assignment["firmware"]["version"] == "2.1.0"
    trusted_root = json.loads((client.metadata_dir / "root.json").read_bytes())
    assert trusted_root["signed"]["version"] == 3
    assert old_key not in trusted_root["signed"]["keys"]


def test_target_ranges_follow_rfc_9110(served_device: ServedDevice) -> None:
    artifact_path = "firmware/sunrise/gw-os-2.1.0.tar"
    repo = get_repository()
    info = repo.load("firmware").signed.targets[artifact_path]
    url = f"{served_device.channel['targets_url']}firmware/sunrise/{info.hashes['sha256']}.gw-os-2.1.0.tar"
    whole = httpx.get(url)  # shared targets are public, like the metadata
    assert whole.status_code == 200
    assert whole.content == served_device.firmware_bundle
    tail = httpx.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206
    assert tail.content == served_device.firmware_bundle[-100:]
    resumed = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert resumed.content == served_device.firmware_bundle[1000:]
    beyond = httpx.get(url, headers={"Range": f"bytes={len(whole.content)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(whole.content)}"
    assert httpx.get(url.replace(info.hashes["sha256"], "0" * 64)).status_code == 404


def test_behind_nginx_django_authorizes_a_target_and_nginx_sends_the_file(
    served_device: ServedDevice, settings: Any
) -> None:
    settings.GRIDFLEET_TUF_ACCEL_REDIRECT = "/_gridfleet/storage/"  # deploy/nginx/gridfleet.conf
    info = get_repository().load("firmware").signed.targets["firmware/sunrise/gw-os-2.1.0.tar"]
    sha256 = info.hashes["sha256"]
    url = f"{served_device.channel['targets_url']}firmware/sunrise/{sha256}.gw-os-2.1.0.tar"
    redirected = httpx.get(url)
    assert redirected.status_code == 200 and redirected.content == b""
    assert redirected.headers["x-accel-redirect"] == f"/_gridfleet/storage/blobs/{sha256[:2]}/{sha256}"
    assert redirected.headers["cache-control"] == "public, max-age=31536000, immutable, no-transform"
    # Refusals stay Django's own answers: nothing is redirected.
    device_path = served_device.channel["assignment_target"]
    refused = httpx.get(f"{served_device.channel['targets_url']}{device_path.rsplit('/', 1)[0]}/{'0' * 64}.x.json")
    assert refused.status_code == 401 and "x-accel-redirect" not in refused.headers
    assert httpx.get(url.replace(sha256, "0" * 64)).status_code == 404


def test_client_sees_the_new_assignment_on_the_next_poll(
    served_device: ServedDevice,
    client_class: type,
    tmp_path: Path,
    organization: Any,
    users: dict[str, Any],
    api_client_for: Any,
) -> None:
    client = new_client(client_class, served_device, tmp_path)
    assert assignment_of(client, served_device)["firmware"]["version"] == "2.1.0"
    operator = api_client_for(users["operator"])
    newer = make_bundle(name="gw-os", version="2.2.0")
    artifact = operator.post(
        "/api/firmware/artifacts/",
        {
            "organization": organization.pk,
            "type": "firmware",
            "name": "gw-os",
            "version": "2.2.0",
            "file": io.BytesIO(newer),
        },
        format="multipart",
    ).json()
    gateway_id = Assignment.objects.get(artifact_type="firmware").gateway_id
    assert (
        operator.post("/api/firmware/assignments/", {"gateway": gateway_id, "artifact": artifact["id"]}).status_code
        == 201
    )

    assignment = assignment_of(client, served_device)
    assert assignment["firmware"]["version"] == "2.2.0"
    assert assignment["sequence"] > 1
    assert client.download(assignment["firmware"]["target"]) == newer


def test_reissued_token_moves_the_gateways_targets_and_retires_the_old_path(
    served_device: ServedDevice, client_class: type, tmp_path: Path, users: dict[str, Any], api_client_for: Any
) -> None:
    gateway_id = Assignment.objects.get(artifact_type="firmware").gateway_id
    old_target = served_device.channel["assignment_target"]
    response = api_client_for(users["operator"]).post(f"/api/firmware/gateways/{gateway_id}/reissue-token/")
    assert response.status_code == 200, response.content
    headers = {"Authorization": f"Bearer {served_device.bearer}"}
    served_device.channel = httpx.get(f"{served_device.base_url}/gw/v1/updates/channel", headers=headers).json()
    assert served_device.channel["assignment_target"] != old_target

    client = new_client(client_class, served_device, tmp_path)
    assert assignment_of(client, served_device)["token"] == served_device.channel["token"]
    with pytest.raises(ClientRefused):
        client.download(old_target)
