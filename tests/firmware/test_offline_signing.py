"""The production path: offline keys made and used only by the offline CLI, the server holds public keys.

tuf_init with public keys -> tuf_export -> `python -m firmware.tuf.offline sign` -> tuf_import, and
a firmware release that waits for the release key's signature before it can be assigned.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from firmware.repo import get_repository, reset
from firmware.tuf import offline
from tests.factories import GatewayFactory
from tests.firmware.bundles import make_bundle

PASSPHRASE = "offline machine passphrase"


def run(*args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def offline_dir(tmp_path: Path, monkeypatch: Any) -> Path:
    monkeypatch.setenv("GRIDFLEET_KEY_PASSPHRASE", PASSPHRASE)
    keys = tmp_path / "offline-machine"
    for name in ("root-1", "root-2", "root-3", "targets-1", "release-1"):
        assert offline.main(["keygen", str(keys / f"{name}.pem")]) == 0
    return keys


def sign(files: list[Path], key: Path) -> None:
    for file in files:
        assert offline.main(["sign", str(file), "--key", str(key)]) == 0


@pytest.mark.django_db(transaction=True)
def test_repository_initialised_and_released_with_offline_keys_only(
    offline_dir: Path, tmp_path: Path, organization: Any, users: dict[str, Any], api_client_for: Any
) -> None:
    reset()
    pub = {p.name.removesuffix(".pem.pub.json"): str(p) for p in offline_dir.glob("*.pub.json")}
    run(
        "tuf_init",
        root_key=[pub["root-1"], pub["root-2"], pub["root-3"]],
        targets_key=[pub["targets-1"]],
        release_key=[pub["release-1"]],
        expected_gateways=50,
    )
    usb = tmp_path / "usb"
    run("tuf_export", str(usb))
    assert sorted(p.name for p in usb.iterdir()) == [
        "1.devices.json",
        "1.firmware.json",
        "1.root.json",
        "1.targets.json",
    ]
    sign([usb / "1.root.json"], offline_dir / "root-1.pem")
    # One root signature is not enough: nothing is published, and it says what is missing.
    assert "root needs 1 more signature" in run("tuf_import", *[str(p) for p in sorted(usb.iterdir())])
    assert not get_repository().is_initialized
    sign([usb / "1.root.json"], offline_dir / "root-2.pem")
    sign([usb / "1.targets.json", usb / "1.devices.json"], offline_dir / "targets-1.pem")
    sign([usb / "1.firmware.json"], offline_dir / "release-1.pem")
    assert "Published root, targets, firmware, devices" in run("tuf_import", *[str(p) for p in usb.iterdir()])
    repo = get_repository()
    assert repo.is_initialized
    assert not list((tmp_path / "var" / "tuf" / "keys").glob("root-*"))  # offline keys never reached the server

    operator = api_client_for(users["operator"])
    artifact = operator.post(
        "/api/firmware/artifacts/",
        {
            "organization": organization.pk,
            "type": "firmware",
            "name": "gw-os",
            "version": "2.1.0",
            "file": io.BytesIO(make_bundle()),
        },
        format="multipart",
    ).json()
    gateway = GatewayFactory.create(organization=organization)
    refused = operator.post("/api/firmware/assignments/", {"gateway": gateway.pk, "artifact": artifact["id"]})
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_released"

    release = tmp_path / "release"
    run("tuf_export", str(release), "firmware")
    staged = json.loads((release / "2.firmware.json").read_text())
    assert list(staged["signed"]["targets"]) == ["firmware/sunrise/gw-os-2.1.0.tar"]
    sign([release / "2.firmware.json"], offline_dir / "release-1.pem")
    run("tuf_import", str(release / "2.firmware.json"))
    assert (
        operator.post("/api/firmware/assignments/", {"gateway": gateway.pk, "artifact": artifact["id"]}).status_code
        == 201
    )


@pytest.mark.django_db
def test_import_refuses_a_file_that_differs_from_what_was_staged(offline_dir: Path, tmp_path: Path) -> None:
    reset()
    pub = {p.name.removesuffix(".pem.pub.json"): str(p) for p in offline_dir.glob("*.pub.json")}
    run(
        "tuf_init",
        root_key=[pub["root-1"], pub["root-2"], pub["root-3"]],
        targets_key=[pub["targets-1"]],
        release_key=[pub["release-1"]],
    )
    usb = tmp_path / "usb"
    run("tuf_export", str(usb), "root")
    document = json.loads((usb / "1.root.json").read_text())
    document["signed"]["roles"]["root"]["threshold"] = 1  # someone "simplifies" the policy before signing
    (usb / "1.root.json").write_text(json.dumps(document))
    sign([usb / "1.root.json"], offline_dir / "root-1.pem")
    with pytest.raises(CommandError, match="differs from staged version 1"):
        run("tuf_import", str(usb / "1.root.json"))


def test_tuf_init_refuses_to_reinitialise_unless_told_to_skip(tuf_repo: Any, isolated_var_dir: Path) -> None:
    with pytest.raises(CommandError, match="already initialised"):
        run("tuf_init", dev_offline_keys=str(isolated_var_dir / "offline"))
    assert "already initialised" in run(
        "tuf_init", dev_offline_keys=str(isolated_var_dir / "x"), skip_if_initialized=True
    )
    assert get_repository().version("root") == 1
