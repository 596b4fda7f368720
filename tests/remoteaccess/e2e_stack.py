"""A real fleet for the remote-access end-to-end tests: two uvicorn servers sharing PostgreSQL and
the Redis channel layer (so a session's two ends land on different ASGI processes), one agent
daemon with a SunSpec simulator behind it, and server-side actions run in subprocesses
(``python e2e_stack.py VAR ACTION ...``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.agent.e2e_server import ORG_SLUG, REPO_ROOT, run_action

E2E_DATABASE_SUFFIX = "_remoteaccess_e2e"


def shared_env() -> dict[str, str]:
    """PostgreSQL and Redis of this test run (their own database), or {} when the run has none."""
    database, redis = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database.startswith("postgres") or not redis:
        return {}
    parts = urlsplit(database)
    name = parts.path.lstrip("/") + E2E_DATABASE_SUFFIX
    return {"DATABASE_URL": urlunsplit(parts._replace(path="/" + name)), "REDIS_URL": redis}


def fresh_database(env: dict[str, str]) -> None:
    import psycopg

    parts = urlsplit(env["DATABASE_URL"])
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


def action(var_dir: Path, env: dict[str, str], *args: str) -> Any:
    return run_action(var_dir, *args, script=__file__, env=env)


# --------------------------------------------------------------------- server-side actions

PEOPLE = {
    "tech": ("technician", ORG_SLUG),
    "admin": ("admin", ORG_SLUG),
    "operator": ("operator", ORG_SLUG),
    "viewer": ("viewer", ORG_SLUG),
    "stranger": ("technician", "elsewhere"),
}


def _setup() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from fleet.accounts.models import Membership
    from fleet.inventory.models import Organization
    from tests.agent.e2e_server import _setup as fleet_setup

    result = fleet_setup(2)
    Organization.objects.create(name="Elsewhere Energy", slug="elsewhere")
    api_tokens = {}
    for name, (role, slug) in PEOPLE.items():
        user = get_user_model().objects.create_user(username=name, password=f"{name}-password-1")
        Membership.objects.create(user=user, organization=Organization.objects.get(slug=slug), role=role)
        api_tokens[name] = Token.objects.create(user=user).key
    return {**result, "api_tokens": api_tokens}


def _allow(serial: str, remote_access: str) -> dict[str, Any]:
    """Sign a configuration for the gateway whose `remote_access` is the given JSON."""
    from firmware import services as firmware
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway

    gateway = Gateway.objects.get(serial=serial)
    template = firmware.create_config_template(
        organization=gateway.organization,
        name=f"remote-access-{serial}",
        schema={"type": "object", "required": ["remote_access"]},
        files={},
        actor=SYSTEM,
    )
    firmware.set_config_values(
        template=template, values={"remote_access": json.loads(remote_access)}, gateway=gateway, actor=SYSTEM
    )
    return {"version": firmware.build_config(gateway=gateway, template=template, actor=SYSTEM).version}


def _policy(require_approval: str) -> dict[str, Any]:
    from fleet.inventory.models import Organization
    from fleet.remoteaccess.models import RemoteAccessPolicy

    organization = Organization.objects.get(slug=ORG_SLUG)
    RemoteAccessPolicy.objects.update_or_create(
        organization=organization, defaults={"require_approval": require_approval == "on"}
    )
    return {"require_approval": require_approval == "on"}


def _force(serial: str, target: str) -> dict[str, Any]:
    """What a compromised server could do: a session row and an open_tunnel for an off-list target."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from fleet.inventory.models import Gateway
    from fleet.remoteaccess.models import MaintenanceSession
    from fleet.remoteaccess.services import _start

    gateway = Gateway.objects.get(serial=serial)
    host, port = target.rsplit(":", 1)
    session = MaintenanceSession.objects.create(
        gateway=gateway,
        requested_by=get_user_model().objects.get(username="tech"),
        kind="tcp",
        target={"host": host, "port": int(port)},
        target_label=target,
        reason="forced past the server's checks",
        state=MaintenanceSession.State.OPENING,
        duration=timedelta(minutes=5),
        idle_timeout=timedelta(minutes=5),
    )
    _start(session, timezone.now())
    return {"session": str(session.pk)}


def _expire_in(session: str, seconds: str) -> dict[str, Any]:
    from datetime import timedelta

    from django.utils import timezone

    from fleet.remoteaccess.models import MaintenanceSession

    MaintenanceSession.objects.filter(pk=session).update(expires_at=timezone.now() + timedelta(seconds=float(seconds)))
    return {"session": session}


def _revoke(serial: str) -> dict[str, Any]:
    from fleet.accounts.authorization import SYSTEM
    from pki import services as pki
    from pki.models import DeviceCertificate

    certificate = DeviceCertificate.objects.get(gateway__serial=serial, status=DeviceCertificate.Status.ACTIVE)
    pki.revoke_certificate(certificate=certificate, reason="key_compromise", user=SYSTEM)
    return {"revoked": certificate.serial_number}


def _audit(session: str) -> dict[str, Any]:
    from fleet.audit.models import AuditEntry

    entries = AuditEntry.objects.filter(target_type="remoteaccess.maintenancesession", target_id=session).order_by("id")
    return {"entries": [{"action": e.action, "actor": e.actor_label, "detail": e.detail} for e in entries]}


if __name__ == "__main__":
    import django

    sys.path.insert(0, str(REPO_ROOT))
    django.setup()
    var, name, *rest = sys.argv[1:]
    actions = {
        "setup": _setup,
        "allow": _allow,
        "policy": _policy,
        "force": _force,
        "expire-in": _expire_in,
        "revoke": _revoke,
        "audit": _audit,
    }
    print(json.dumps(actions[name](*rest)))
