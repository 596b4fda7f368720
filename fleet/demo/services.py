"""The demo `make demo` shows: two organizations, sites across California, gateways and groups, a CA, a TUF
repository, simulated agents enrolling with one-time tokens, and a firmware rollout to them."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from fleet.accounts.authorization import SYSTEM
from fleet.accounts.models import Membership
from fleet.accounts.roles import Role
from fleet.inventory.models import Gateway, GatewayGroup, Organization, Site, Tag

# The first gateways of each site carry the `pilot` tag, the first phase of the demo rollout.
PILOT_GATEWAYS = 2
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


DEMO_REMOTE_ACCESS_TEMPLATE = "demo-remote-access"
DEMO_SCADA_TEMPLATE = "demo-scada"


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
        for slug, name, kind in [
            ("sunrise-solar", "Sunrise Solar Installers", Organization.Kind.INSTALLER),
            ("valley-der", "Valley DER Aggregator", Organization.Kind.AGGREGATOR),
        ]
    }
    pilot = Tag.objects.get_or_create(slug="pilot", defaults={"name": "pilot"})[0]
    gateways: list[Gateway] = []
    number = 0
    for org_slug, name, address, lat, lon, kw in DEMO_SITES:
        organization = organizations[org_slug]
        site = Site.objects.get_or_create(
            organization=organization,
            name=name,
            defaults={
                "address": address,
                "latitude": Decimal(lat),
                "longitude": Decimal(lon),
                "timezone": "America/Los_Angeles",
                "nameplate_kw": Decimal(kw),
                "utility_account": f"PGE-{secrets.randbelow(10**8):08d}",
            },
        )[0]
        for _ in range(gateways_per_site):
            number += 1
            gateway = Gateway.objects.get_or_create(
                serial=f"DEMO-GW-{number:04d}",
                defaults={
                    "organization": organization,
                    "site": site,
                    "hardware_model": "GF-100" if number % 3 else "GF-200",
                    "firmware_version": "1.0.0",
                },
            )[0]
            if number <= PILOT_GATEWAYS:
                gateway.tags.add(pilot)
            gateways.append(gateway)
    for organization in organizations.values():
        GatewayGroup.objects.get_or_create(
            organization=organization,
            name="Pilot gateways",
            defaults={
                "kind": GatewayGroup.Kind.DYNAMIC,
                "filter": {"tags": ["pilot"]},
                "description": "Canary wave for new firmware.",
            },
        )
        GatewayGroup.objects.get_or_create(
            organization=organization,
            name="All GF-100",
            defaults={"kind": GatewayGroup.Kind.DYNAMIC, "filter": {"hardware_model": ["GF-100"]}},
        )
    return gateways


def ensure_demo_memberships(admin: Any) -> None:
    for organization in Organization.objects.filter(slug__in=["sunrise-solar", "valley-der"]):
        Membership.objects.get_or_create(user=admin, organization=organization, defaults={"role": Role.ADMIN})


DEMO_HARDWARE_MODEL = "GF-100"
DEMO_RELEASE = "1.1.0"
# Gateways check for updates this often in the demo, so a rollout is visible within a minute or two.
DEMO_POLL_SECONDS = 20


def agent_state_dir() -> Path:
    return Path(settings.GRIDFLEET_VAR_DIR) / "demo-agents"


def ensure_identity_and_repository() -> None:
    """The CA and the TUF repository; the demo signs the offline roles with keys kept in var/."""
    from django.core.management import call_command

    from firmware.repo import get_repository

    call_command("pki_init", if_missing=True, name="Gridfleet Demo", verbosity=0)
    if not get_repository().is_initialized:
        offline_keys = Path(settings.GRIDFLEET_VAR_DIR) / "demo-offline-keys"
        call_command("tuf_init", dev_offline_keys=str(offline_keys), expected_gateways=1000, verbosity=0)


def write_enrollment_tokens(*, gateways: list[Gateway], admin: Any) -> Path:
    """A CSV `serial,token` for the simulated agents not enrolled yet (the factory export's format)."""
    from pki import services as pki

    state_dir = agent_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    for organization in {gateway.organization for gateway in gateways}:
        serials = [
            g.serial
            for g in gateways
            if g.organization == organization and not (state_dir / g.serial / "identity" / "identity.json").exists()
        ]
        if serials:
            issued = pki.create_enrollment_token_batch(
                organization=organization, serials=serials, user=admin, batch="demo"
            )
            rows += [(token.serial, secret) for token, secret in issued]
    path = state_dir / "tokens.csv"
    path.write_text("serial,token\n" + "".join(f"{serial},{secret}\n" for serial, secret in rows))
    path.chmod(0o600)
    return path


def write_agent_config(*, server_url: str) -> Path:
    """The simulated agents' configuration (how often they poll comes from the server: DEMO_POLL_SECONDS)."""
    path = Path(settings.GRIDFLEET_VAR_DIR) / "demo-agent.toml"
    path.write_text(
        f'[agent]\nserver_url = "{server_url}"\nstate_dir = "{agent_state_dir()}"\n'
        f'hardware_model = "{DEMO_HARDWARE_MODEL}"\n\n'
        '[updates]\nhealth_timeout = 30.0\nfactory_firmware_version = "1.0.0"\n\n'
        # The utility link: each simulated gateway gets a utility-link certificate by CSR from this
        # server's test utility PKI and follows the demo head-end's programs with its inverter.
        '[csip]\nder = [{ kind = "inverter", rated_w = 10000 }]\npost_rate = 30\n'
    )
    return path


def ensure_demo_rollout(*, admin: Any, now: datetime) -> Any:
    """Firmware 1.1.0 for GF-100, rolled out to the installer's GF-100 gateways: a canary, then the rest."""
    from firmware import bundles
    from firmware import services as firmware
    from firmware.deployments import services as deployments
    from firmware.deployments.models import Deployment
    from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
    from firmware.models import Artifact

    organization = Organization.objects.get(slug="sunrise-solar")
    existing = Deployment.objects.filter(organization=organization, name="gw-os 1.1.0 to GF-100").first()
    if existing is not None:
        return existing
    artifact = Artifact.objects.filter(organization=organization, name="gw-os", version=DEMO_RELEASE).first()
    if artifact is None:
        bundle = bundles.build_bundle(
            type="firmware",
            name="gw-os",
            version=DEMO_RELEASE,
            hardware_models=[DEMO_HARDWARE_MODEL],
            files={"app.txt": b"gateway application 1.1.0\n"},
        )
        artifact = firmware.upload_artifact(
            organization=organization,
            type="firmware",
            name="gw-os",
            version=DEMO_RELEASE,
            fileobj=io.BytesIO(bundle),
            hardware_models=[DEMO_HARDWARE_MODEL],
            actor=admin,
            release_notes="Demo release: faster SunSpec polling.",
        )
    group = GatewayGroup.objects.get(organization=organization, name="All GF-100")
    plan = RolloutPlan(
        phases=(
            PhaseSpec(name="canary", count=1, min_soak=timedelta(minutes=1)),
            PhaseSpec(name="everyone", percent=100),
        )
    )
    return deployments.create_deployment(
        organization=organization,
        name="gw-os 1.1.0 to GF-100",
        artifacts=[artifact],
        target=TargetSpec(kind="group", group=group),
        plan=plan,
        actor=admin,
        now=now,
    )


DEMO_PROGRAM = "Demo Rule 21 curtailment"  # sep2 descriptions hold 32 characters
DEMO_CURTAILMENT_PCT = Decimal(30)
DEMO_CURTAILMENT_SECONDS = 10 * 60


def ensure_demo_curtailment(*, gateways: list[Gateway], admin: Any, now: datetime) -> list[Any]:
    """A DER program for the simulated gateways' organizations (default: no limit) with a curtailment
    to 30 % of WMax a few minutes from now, unless one is still to come."""
    from fleet.csip import services as csip
    from fleet.csip.models import DerProgram

    start = now + timedelta(seconds=settings.GRIDFLEET_DEMO_CURTAILMENT_AFTER_SECONDS)
    controls = []
    for organization in sorted({g.organization for g in gateways}, key=lambda o: o.pk):
        program = DerProgram.objects.filter(organization=organization, name=DEMO_PROGRAM).first()
        if program is None:
            program = csip.create_program(
                organization=organization, name=DEMO_PROGRAM, user=admin, default_max_lim_pct=Decimal(100)
            )
        upcoming = program.controls.filter(start__gt=now, cancelled=False).order_by("start").first()
        controls.append(
            upcoming
            or csip.create_control(
                program=program,
                start=start,
                duration_s=DEMO_CURTAILMENT_SECONDS,
                max_lim_pct=DEMO_CURTAILMENT_PCT,
                description="demo curtailment",
                user=admin,
                now=now,
            )
        )
    return controls


def ensure_demo_scada(*, gateway: Gateway, host: str, dnp3_port: int, iec104_port: int) -> Any:
    """A signed configuration giving one simulated gateway a DNP3 outstation (MESA-DER) and an
    IEC 60870-5-104 outstation on loopback, so its page shows live protocol links and a SCADA
    client (dnp3py, c104) can limit its inverter through them."""
    from firmware import services as firmware
    from firmware.models import ConfigTemplate, DeviceBundle

    template = ConfigTemplate.objects.filter(organization=gateway.organization, name=DEMO_SCADA_TEMPLATE).first()
    if template is None:
        template = firmware.create_config_template(
            organization=gateway.organization,
            name=DEMO_SCADA_TEMPLATE,
            schema={"type": "object"},
            files={},
            actor=SYSTEM,
        )
    values = {
        "scada": {
            "dnp3_outstation": {"host": host, "port": dnp3_port, "address": 10, "master_address": 1},
            "iec104": {"host": host, "port": iec104_port, "common_address": 1},
        }
    }
    latest = DeviceBundle.objects.filter(gateway=gateway, kind=DeviceBundle.Kind.CONFIG).order_by("-version").first()
    if latest is not None and latest.source.get("values") == values:
        return latest
    firmware.set_config_values(template=template, values=values, gateway=gateway, actor=SYSTEM)
    return firmware.build_config(gateway=gateway, template=template, actor=SYSTEM)


def ensure_demo_remote_access(*, gateways: list[Gateway]) -> None:
    """Every simulated gateway's signed configuration allows a maintenance tunnel to its inverter's
    Modbus TCP port (the simulator's), so a newcomer can open one from the gateway page or with
    `gridfleet tunnel open SERIAL --target SERIAL-INV1 --local 1502 --reason demo`. Added to the
    gateway's current configuration values (one config bundle per gateway), not replacing them."""
    from firmware import services as firmware
    from firmware.models import ConfigTemplate, DeviceBundle

    for gateway in gateways:
        latest = (
            DeviceBundle.objects.filter(gateway=gateway, kind=DeviceBundle.Kind.CONFIG).order_by("-version").first()
        )
        values = dict(latest.source.get("values") or {}) if latest is not None else {}
        wanted = {"targets": [{"device": f"{gateway.serial}-INV1"}], "terminal": False}
        if values.get("remote_access") == wanted:
            continue
        values["remote_access"] = wanted
        template_id = latest.source.get("template") if latest is not None else None
        template = ConfigTemplate.objects.filter(pk=template_id).first() if template_id else None
        if template is None:
            template, _ = ConfigTemplate.objects.get_or_create(
                organization=gateway.organization,
                name=DEMO_REMOTE_ACCESS_TEMPLATE,
                defaults={"schema": {"type": "object"}, "files": {}},
            )
        firmware.set_config_values(template=template, values=values, gateway=gateway, actor=SYSTEM)
        firmware.build_config(gateway=gateway, template=template, actor=SYSTEM)
