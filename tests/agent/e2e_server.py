"""Runs a real Gridfleet server in its own processes for the agent's end-to-end tests.

``ServerProcess`` starts uvicorn (``fleet.asgi:application``) on a loopback port with its own
SQLite database under a temporary GRIDFLEET_VAR_DIR, and can stop and restart it on the same port.
Server-side set-up (CA, TUF repository, gateways, enrollment tokens, releases) runs through the
server's own management commands and services in a subprocess: ``python e2e_server.py VAR ACTION``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.servers import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PKI_KEK = "e2e-key-encryption-key-0123456789abcdef"
ORG_SLUG = "e2e"
HARDWARE_MODEL = "GF-100"
UPDATE_POLL_SECONDS = 600  # sent in the uplink welcome; differs from the agents' configured 3600


def server_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="fleet.settings",
        GRIDFLEET_VAR_DIR=str(var_dir),
        GRIDFLEET_PKI_KEK=PKI_KEK,
        CELERY_TASK_ALWAYS_EAGER="1",
        GRIDFLEET_INPROCESS_SCHEDULER="0",
        GRIDFLEET_UPDATE_POLL_SECONDS=str(UPDATE_POLL_SECONDS),
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def run_action(var_dir: Path, *args: str, script: str = __file__, env: dict[str, str] | None = None) -> Any:
    """Run an action of `script`'s __main__ (this file's by default) in a server-side process; returns its
    JSON output. `env` adds to the server's environment (e.g. a shared DATABASE_URL)."""
    done = subprocess.run(
        [sys.executable, script, str(var_dir), *args],
        cwd=REPO_ROOT,
        env={**server_env(var_dir), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    if done.returncode != 0:
        raise RuntimeError(f"server action {args} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class ServerProcess:
    def __init__(self, var_dir: Path, env: dict[str, str] | None = None) -> None:
        self.var_dir = var_dir
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = var_dir / "server.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "fleet.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    "--lifespan",
                    "off",
                ],
                cwd=REPO_ROOT,
                env={**server_env(self.var_dir), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.port, self.process, timeout=60)  # generous: CI machines run several suites at once
        except RuntimeError as e:
            raise RuntimeError(f"{e}: {self.log.read_text()[-3000:]}") from e

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read what the server stored (its SQLite database), the way an operator's report would."""
        import sqlite3

        with sqlite3.connect(self.var_dir / "gridfleet.sqlite3", timeout=20) as db:
            return db.execute(sql, params).fetchall()


# --------------------------------------------------------------------- server-side actions


def _setup(gateways: int) -> dict[str, Any]:
    from django.core.management import call_command

    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway, Organization, Site
    from pki import services as pki

    call_command("migrate", verbosity=0)
    var_dir = Path(os.environ["GRIDFLEET_VAR_DIR"])
    with open(os.devnull, "w") as quiet:
        call_command("pki_init", name="Gridfleet E2E", stdout=quiet)
        call_command("tuf_init", dev_offline_keys=str(var_dir / "offline"), bit_length=4, stdout=quiet)
    organization = Organization.objects.create(name="E2E Solar", slug=ORG_SLUG)
    site = Site.objects.create(organization=organization, name="Test Site")
    tokens = {}
    for n in range(1, gateways + 1):
        serial = f"E2E-{n:03d}"
        Gateway.objects.create(organization=organization, site=site, serial=serial, hardware_model=HARDWARE_MODEL)
        tokens[serial] = pki.create_enrollment_token(organization=organization, serial=serial, user=SYSTEM)[1]
    return {"tokens": tokens}


def _release(serial: str, bundle: str, version: str, deployment: str) -> dict[str, Any]:
    from firmware import services as firmware
    from firmware.models import Artifact
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway, Organization

    organization = Organization.objects.get(slug=ORG_SLUG)
    artifact = Artifact.objects.filter(organization=organization, name="gw-os", version=version).first()
    if artifact is None:
        with open(bundle, "rb") as f:
            artifact = firmware.upload_artifact(
                organization=organization,
                type="firmware",
                name="gw-os",
                version=version,
                fileobj=f,
                hardware_models=[HARDWARE_MODEL],
                actor=SYSTEM,
            )
    gateway = Gateway.objects.get(serial=serial)
    firmware.assign(gateway=gateway, artifact_type="firmware", artifact=artifact, deployment=deployment, actor=SYSTEM)
    return {"target": artifact.target_path}


def _config_and_license(serial: str) -> dict[str, Any]:
    from firmware import services as firmware
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway

    gateway = Gateway.objects.get(serial=serial)
    template = firmware.create_config_template(
        organization=gateway.organization,
        name=f"site-default-{serial}",
        schema={
            "type": "object",
            "required": ["export_limit_kw"],
            "properties": {"export_limit_kw": {"type": "number"}},
        },
        files={"limits.conf": "export_limit_kw={{ values.export_limit_kw }}\nserial={{ gateway.serial }}\n"},
        actor=SYSTEM,
    )
    firmware.set_config_values(template=template, values={"export_limit_kw": 7.5}, gateway=gateway, actor=SYSTEM)
    config = firmware.build_config(gateway=gateway, template=template, actor=SYSTEM)
    license_ = firmware.issue_license(
        gateway=gateway, limits={"field_devices": 20}, features=["export_limit"], actor=SYSTEM
    )
    return {"config_version": config.version, "license_version": license_.version}


def _signed_config(serial: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """A configuration bundle for the gateway whose config.json is `values`, signed and delivered
    through TUF like any configuration."""
    from firmware import services as firmware
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway

    gateway = Gateway.objects.get(serial=serial)
    template = firmware.create_config_template(
        organization=gateway.organization, name=name, schema={"type": "object"}, files={}, actor=SYSTEM
    )
    firmware.set_config_values(template=template, values=values, gateway=gateway, actor=SYSTEM)
    return {"config_version": firmware.build_config(gateway=gateway, template=template, actor=SYSTEM).version}


def _scada_config(serial: str, port: str) -> dict[str, Any]:
    """A signed configuration asking the gateway for an IEC 60870-5-104 outstation on loopback."""
    values = {"scada": {"iec104": {"host": "127.0.0.1", "port": int(port), "comm_loss_after": 600}}}
    return _signed_config(serial, f"scada-{serial}", values)


def _field_config(serial: str, field: str, name: str) -> dict[str, Any]:
    """A signed configuration whose config.json is {"field": <field>}: field devices and templates."""
    return _signed_config(serial, name, {"field": json.loads(field)})


def _command(serial: str, name: str, args: str) -> dict[str, Any]:
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway
    from fleet.uplink import services as uplink

    gateway = Gateway.objects.get(serial=serial)
    command = uplink.send_command(gateway=gateway, name=name, args=json.loads(args), user=SYSTEM)
    return {"id": str(command.id)}


if __name__ == "__main__":
    import django

    sys.path.insert(0, str(REPO_ROOT))
    django.setup()
    var, action, *rest = sys.argv[1:]
    if action == "setup":
        result = _setup(int(rest[0]))
    elif action == "release":
        result = _release(*rest)
    elif action == "config-and-license":
        result = _config_and_license(*rest)
    elif action == "scada-config":
        result = _scada_config(*rest)
    elif action == "field-config":
        result = _field_config(*rest)
    elif action == "command":
        result = _command(*rest)
    else:
        raise SystemExit(f"unknown action {action}")
    print(json.dumps(result))
