"""Server-side actions for tests/production: `python actions.py ACTION [ARGS...]` in a Stack's environment.

Each action sets Django up against the stack's own database and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ORG_SLUG = "trial"
HARDWARE_MODEL = "GF-100"


def _gateways(count: int) -> dict[str, Any]:
    """The CA, an organization with `count` gateways enrolled through the enrollment service, their
    bearer tokens, and an operator's session cookie."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from fleet.accounts.authorization import SYSTEM
    from fleet.accounts.models import Membership
    from fleet.accounts.roles import Role
    from fleet.inventory.models import Gateway, Organization, Site
    from pki import services as pki
    from tests.pki.fixtures import csr_pem, mint_access_token

    with open(os.devnull, "w") as quiet:
        call_command("pki_init", "--if-missing", name="Gridfleet Stack", stdout=quiet)
    organization, _ = Organization.objects.get_or_create(slug=ORG_SLUG, defaults={"name": "Trial Solar"})
    site, _ = Site.objects.get_or_create(organization=organization, name="Trial Site")
    gateways = {}
    for n in range(1, count + 1):
        serial = f"STACK-{n:04d}"
        gateway = Gateway.objects.create(
            organization=organization, site=site, serial=serial, hardware_model=HARDWARE_MODEL
        )
        _, token = pki.create_enrollment_token(organization=organization, serial=serial, user=SYSTEM)
        key = ec.generate_private_key(ec.SECP256R1())
        pki.enroll(serial=serial, token=token, csr_pem=csr_pem(key, serial))
        gateway.refresh_from_db()
        gateways[serial] = {"id": gateway.pk, "token": mint_access_token(gateway=gateway)}
    user = get_user_model().objects.create_user(username="operator", password="unused-password-7f3a")
    Membership.objects.create(user=user, organization=organization, role=Role.OPERATOR)
    client = Client()
    client.force_login(user)
    return {"gateways": gateways, "session": client.cookies["sessionid"].value}


def _command(serial: str, name: str) -> dict[str, Any]:
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway
    from fleet.uplink import services as uplink

    command = uplink.send_command(gateway=Gateway.objects.get(serial=serial), name=name, args={}, user=SYSTEM)
    return {"id": str(command.pk)}


def _enrollment_token(serial: str) -> dict[str, Any]:
    """A gateway in the inventory and its one-time enrollment token, as an operator issues them."""
    from fleet.accounts.authorization import SYSTEM
    from fleet.inventory.models import Gateway, Organization, Site
    from pki import services as pki

    organization, _ = Organization.objects.get_or_create(slug=ORG_SLUG, defaults={"name": "Trial Solar"})
    site, _ = Site.objects.get_or_create(organization=organization, name="Trial Site")
    Gateway.objects.create(organization=organization, site=site, serial=serial, hardware_model=HARDWARE_MODEL)
    return {"token": pki.create_enrollment_token(organization=organization, serial=serial, user=SYSTEM)[1]}


def _operator(username: str, password: str) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from fleet.accounts.models import Membership
    from fleet.accounts.roles import Role
    from fleet.inventory.models import Organization

    organization, _ = Organization.objects.get_or_create(slug=ORG_SLUG, defaults={"name": "Trial Solar"})
    user = get_user_model().objects.create_user(username=username, password=password)
    Membership.objects.create(user=user, organization=organization, role=Role.ADMIN)
    return {"user": user.pk}


def _device_target(serial: str) -> dict[str, Any]:
    """The gateway's newest device target (its path under /tuf/targets/) and a bearer token for it."""
    from firmware.models import DeviceBundle
    from fleet.inventory.models import Gateway
    from tests.pki.fixtures import mint_access_token

    gateway = Gateway.objects.select_related("update_channel").get(serial=serial)
    bundle = DeviceBundle.objects.filter(gateway=gateway).select_related("blob").order_by("-pk").first()
    assert bundle is not None, f"{serial} has no device target yet"
    return {
        "path": f"devices/{gateway.update_channel.token}/{bundle.blob.sha256}.{bundle.filename}",
        "size": bundle.blob.size,
        "sha256": bundle.blob.sha256,
        "token": mint_access_token(gateway=gateway),
    }


ACTIONS = {
    "gateways": lambda count: _gateways(int(count)),
    "command": _command,
    "enrollment-token": _enrollment_token,
    "operator": _operator,
    "device-target": _device_target,
}


if __name__ == "__main__":
    import django

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    django.setup()
    action, *rest = sys.argv[1:]
    print(json.dumps(ACTIONS[action](*rest)))
