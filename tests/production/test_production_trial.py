"""The production trial of issue 19 as a test: Gridfleet installed the way docs/install.md says.

GRIDFLEET_ENV=production on PostgreSQL and Redis; two uvicorn workers, a real Celery worker and
one beat; nginx with TLS from deploy/; the TUF repository initialised and the firmware release
signed in the offline key ceremony (keys made and used by `python -m firmware.tuf.offline` in a
separate "offline machine" process, never on the server); the organization, gateway and
enrollment token made through the REST API; a real agent enrolled through nginx, its uplink idle
for 30 s without a drop; a deployment created through the API, advanced by beat, published by
the worker, and installed by the agent.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.tests.bundles import firmware_bundle
from tests.agent.test_end_to_end import AgentProcess
from tests.production.stack import REPO_ROOT, Stack
from tests.servers import free_port, wait_for

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "trial-admin-password-5d1c"
OFFLINE_PASSPHRASE = "passphrase of the offline machine"
IDLE_S = 30


def offline_machine(*args: str, cwd: Path) -> None:
    """`python -m firmware.tuf.offline ...` in its own process, with nothing of the server's environment."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT), "GRIDFLEET_KEY_PASSPHRASE": OFFLINE_PASSPHRASE}
    done = subprocess.run(
        [sys.executable, "-m", "firmware.tuf.offline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def api(client: httpx.Client, method: str, path: str, expected: int = 201, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text[:1000]}"
    return response.json()


def test_installed_by_the_book_a_gateway_enrolls_through_nginx_stays_connected_and_installs_a_signed_release(
    tmp_path: Path,
) -> None:
    https_port, http_port = free_port(), free_port()
    url = f"https://localhost:{https_port}"
    stack = Stack(
        tmp_path / "server",
        extra_env={
            "ALLOWED_HOSTS": "localhost",
            "CSRF_TRUSTED_ORIGINS": url,
            "TRUSTED_PROXIES": "127.0.0.1",
            "GRIDFLEET_PKI_PUBLIC_URL": url,
            "GRIDFLEET_TUF_PUBLIC_URL": f"{url}/tuf/",
            "GRIDFLEET_TUF_ACCEL_REDIRECT": "/_gridfleet/storage/",
            "GRIDFLEET_TUF_KEY_PASSPHRASE": "online-keys-passphrase-0123456789",
            # An hour between polls: the install below can only come from the server's nudge.
            "GRIDFLEET_UPDATE_POLL_SECONDS": "3600",
            "DJANGO_SUPERUSER_USERNAME": "admin",
            "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
            "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        },
    )
    assert "CELERY_TASK_ALWAYS_EAGER" not in stack.env  # tasks go through Redis to the real worker
    try:
        # First start, as docs/install.md runs it; every command may be run again.
        for _ in range(2):
            stack.manage("migrate", "--noinput", "-v0")
            stack.manage("collectstatic", "--noinput", "-v0")
            stack.manage("pki_init", "--if-missing", "--name", "Trial Utility")
            stack.manage("createsuperuser", "--noinput", check=False)  # the second run says it exists
        offline_ceremony_initialises_the_repository(stack, tmp_path / "offline-machine", tmp_path / "usb")

        ports = [stack.start_uvicorn("asgi-a"), stack.start_uvicorn("asgi-b")]
        stack.start_celery()
        ca = stack.start_nginx(asgi_ports=ports, https_port=https_port, http_port=http_port)

        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=ca), timeout=60) as client:
            token = api(
                client, "POST", "/api/accounts/token/", 200, data={"username": "admin", "password": ADMIN_PASSWORD}
            )
            client.headers["Authorization"] = f"Token {token['token']}"
            organization = api(client, "POST", "/api/inventory/organizations/", json={"name": "Trial", "slug": "trial"})
            site = api(client, "POST", "/api/inventory/sites/", json={"organization": "trial", "name": "Feeder 7"})
            serial = "TRIAL-0001"
            api(
                client,
                "POST",
                "/api/inventory/gateways/",
                json={"organization": "trial", "site": site["id"], "serial": serial, "hardware_model": "GF-100"},
            )
            enrollment = api(
                client, "POST", "/api/pki/enrollment-tokens/", json={"organization": "trial", "serial": serial}
            )

            (tmp_path / "gateway").mkdir()
            agent = AgentProcess(Server(url), tmp_path / "gateway", serial, ca_bundle=str(ca))  # type: ignore[arg-type]
            enrolled = agent.cli("enroll", "--token", enrollment["token"], "--serial", serial)
            assert enrolled.returncode == 0, enrolled.stderr
            agent.start()
            try:
                online = wait_for(
                    lambda: (s := agent.status()).get("connection", {}).get("state") == "online" and s,
                    what="the agent online",
                )
                # Idle for 30 s: the uplink through nginx, uvicorn and the Redis channel layer stays open.
                time.sleep(IDLE_S)
                after = agent.status()["connection"]
                assert after["state"] == "online" and after["since"] == online["connection"]["since"], after

                artifact = upload_and_release(client, stack, organization["id"], tmp_path)
                deployment = api(
                    client,
                    "POST",
                    "/api/deployments/",
                    json={
                        "organization": organization["id"],
                        "name": "gw-os 2.0.0",
                        "artifacts": [artifact["id"]],
                        "target_kind": "list",
                        "target_gateways": [serial],
                        "phases": [{"name": "all", "percent": 100}],
                        "max_retries": 0,
                    },
                )
                # Beat advances the rollout, the worker publishes, the gateway is told to check at
                # once over its uplink; nobody runs `check-now` here.
                wait_for(
                    lambda: agent.status()["installed"].get("firmware") == "2.0.0",
                    timeout=180,
                    what="the agent to install 2.0.0",
                )
                wait_for(
                    lambda: api(client, "GET", f"/api/deployments/{deployment['id']}/", 200)["status"] == "completed",
                    timeout=120,
                    what="the deployment to complete",
                )
                assert agent.status()["connection"]["since"] == online["connection"]["since"]  # never dropped
            finally:
                agent.stop()
        for name in ("asgi-a", "asgi-b", "celery-worker", "celery-beat"):
            assert "Traceback" not in stack.log_text(name), f"{name}:\n{stack.log_text(name)[-4000:]}"
        assert "firmware.publish_repository" in stack.log_text("celery-worker")
        assert "deployments.run_rollouts" in stack.log_text("celery-beat")
    finally:
        stack.close()


class Server:
    def __init__(self, url: str) -> None:
        self.url = url


def offline_ceremony_initialises_the_repository(stack: Stack, keys: Path, usb: Path) -> None:
    for name in ("root-1", "root-2", "root-3", "targets-1", "release-1"):
        offline_machine("keygen", str(keys / f"{name}.pem"), cwd=keys.parent)
    stack.manage(
        "tuf_init",
        *("--root-key", str(keys / "root-1.pem.pub.json")),
        *("--root-key", str(keys / "root-2.pem.pub.json")),
        *("--root-key", str(keys / "root-3.pem.pub.json")),
        *("--targets-key", str(keys / "targets-1.pem.pub.json")),
        *("--release-key", str(keys / "release-1.pem.pub.json")),
        "--expected-gateways",
        "100",
    )
    stack.manage("tuf_export", str(usb))
    for role, signers in {
        "root": ["root-1", "root-2"],
        "targets": ["targets-1"],
        "devices": ["targets-1"],
        "firmware": ["release-1"],
    }.items():
        for signer in signers:
            offline_machine("sign", str(usb / f"1.{role}.json"), "--key", str(keys / f"{signer}.pem"), cwd=keys.parent)
    imported = stack.manage("tuf_import", *sorted(str(p) for p in usb.glob("*.json")))
    assert "Published" in imported.stdout, imported.stdout
    assert "No signature for keyid" not in imported.stdout + imported.stderr  # no per-key noise
    assert not list((stack.var_dir / "tuf" / "keys").glob("root-*"))  # offline keys never reached the server


def upload_and_release(client: httpx.Client, stack: Stack, organization_id: int, tmp_path: Path) -> dict[str, Any]:
    """Upload through the API; the worker stages the firmware role; it is signed offline and imported."""
    bundle = firmware_bundle(tmp_path, "2.0.0", health_check="echo healthy\n")
    with bundle.open("rb") as f:
        artifact = api(
            client,
            "POST",
            "/api/firmware/artifacts/",
            data={"organization": organization_id, "type": "firmware", "name": "gw-os", "version": "2.0.0"},
            files={"file": (bundle.name, f, "application/gzip")},
        )
    release = tmp_path / "release"
    keys = tmp_path / "offline-machine"

    def staged() -> Path | None:
        exported = stack.manage("tuf_export", str(release), "firmware", check=False)
        files = sorted(release.glob("*.firmware.json")) if exported.returncode == 0 else []
        if files and artifact["target_path"] in json.loads(files[-1].read_text())["signed"]["targets"]:
            return files[-1]
        return None

    staged_file = wait_for(staged, timeout=60, what="the worker to stage the firmware role")
    offline_machine("sign", str(staged_file), "--key", str(keys / "release-1.pem"), cwd=keys.parent)
    stack.manage("tuf_import", str(staged_file))
    return dict(artifact)
