"""The demo fleet `make demo` shows: two installers, a utility, sites across California, gateways, groups."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from fleet.accounts.models import Membership
from fleet.accounts.roles import Role

from .models import Gateway, GatewayGroup, Organization, Site, Tag

DEMO_SITES = [
    # (organization slug, site name, address, lat, lon, kW)
    ("sunrise-solar", "Fresno Dairy", "4312 E Jensen Ave, Fresno, CA", "36.706", "-119.735", "250"),
    ("sunrise-solar", "Clovis School", "1450 Herndon Ave, Clovis, CA", "36.836", "-119.700", "120"),
    ("sunrise-solar", "Visalia Home 17", "17 Mooney Blvd, Visalia, CA", "36.314", "-119.313", "9.6"),
    ("valley-der", "Bakersfield Warehouse", "3100 Pegasus Dr, Bakersfield, CA", "35.420", "-119.074", "480"),
    ("valley-der", "Tulare Orchard", "22 Road 132, Tulare, CA", "36.207", "-119.347", "60"),
]


@dataclass(frozen=True)
class DemoCredentials:
    username: str
    password: str
    created: bool


def _credentials_file() -> Path:
    return Path(settings.GRIDFLEET_VAR_DIR) / "demo-credentials.txt"


def ensure_demo_admin() -> DemoCredentials:
    """A superuser `admin` with a random password kept in var/, so re-running the demo keeps the login."""
    path = _credentials_file()
    password = path.read_text().strip() if path.exists() else secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    path.write_text(password + "\n")
    path.chmod(0o600)
    return DemoCredentials(username="admin", password=password, created=created)


@transaction.atomic
def ensure_demo_fleet(*, gateways_per_site: int = 2) -> list[Gateway]:
    organizations = {
        slug: Organization.objects.get_or_create(slug=slug, defaults={"name": name, "kind": kind})[0]
        for slug, name, kind in [("sunrise-solar", "Sunrise Solar Installers", Organization.Kind.INSTALLER),
                                 ("valley-der", "Valley DER Aggregator", Organization.Kind.AGGREGATOR)]
    }
    pilot = Tag.objects.get_or_create(slug="pilot", defaults={"name": "pilot"})[0]
    gateways: list[Gateway] = []
    number = 0
    for org_slug, name, address, lat, lon, kw in DEMO_SITES:
        organization = organizations[org_slug]
        site = Site.objects.get_or_create(organization=organization, name=name, defaults={
            "address": address, "latitude": Decimal(lat), "longitude": Decimal(lon), "timezone": "America/Los_Angeles",
            "nameplate_kw": Decimal(kw), "utility_account": f"PGE-{secrets.randbelow(10**8):08d}",
        })[0]
        for _ in range(gateways_per_site):
            number += 1
            gateway = Gateway.objects.get_or_create(serial=f"DEMO-GW-{number:04d}", defaults={
                "organization": organization, "site": site, "hardware_model": "GF-100" if number % 3 else "GF-200",
                "firmware_version": "1.0.0",
            })[0]
            if number <= 2:
                gateway.tags.add(pilot)
            gateways.append(gateway)
    for organization in organizations.values():
        GatewayGroup.objects.get_or_create(organization=organization, name="Pilot gateways", defaults={
            "kind": GatewayGroup.Kind.DYNAMIC, "filter": {"tags": ["pilot"]},
            "description": "Canary wave for new firmware."})
        GatewayGroup.objects.get_or_create(organization=organization, name="All GF-100", defaults={
            "kind": GatewayGroup.Kind.DYNAMIC, "filter": {"hardware_model": ["GF-100"]}})
    return gateways


def ensure_demo_memberships(admin: Any) -> None:
    for organization in Organization.objects.filter(slug__in=["sunrise-solar", "valley-der"]):
        Membership.objects.get_or_create(user=admin, organization=organization, defaults={"role": Role.ADMIN})
