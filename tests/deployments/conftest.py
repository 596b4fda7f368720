"""Deployments test set-up: a real TUF repository (dev offline keys), released artifacts, a fleet,
and a simulated agent that answers with `status` reports the way gridfleet_agent does."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from firmware import bundles
from firmware import services as firmware
from firmware.deployments import services
from firmware.models import Artifact, Assignment
from firmware.repo import reset
from fleet.accounts.authorization import SYSTEM
from tests.agent.test_end_to_end import online_agent, server  # noqa: F401 - fixtures for test_real_agent.py
from tests.factories import GatewayFactory, SiteFactory


@pytest.fixture
def repository(isolated_var_dir: Path, db: None) -> Iterator[None]:
    reset()
    call_command(
        "tuf_init", "--dev-offline-keys", str(isolated_var_dir / "offline"), "--bit-length", "4", stdout=io.StringIO()
    )
    yield
    reset()


@pytest.fixture
def make_artifact(repository: None, organization: Any) -> Callable[..., Artifact]:
    def make(version: str, models: tuple[str, ...] = ("GF-100",), name: str = "gw-os", org: Any = None) -> Artifact:
        org = org or organization
        data = bundles.build_bundle(
            type="firmware",
            name=name,
            version=version,
            files={"rootfs.img": f"rootfs {version}".encode()},
            hardware_models=list(models),
        )
        artifact = firmware.upload_artifact(
            organization=org,
            type="firmware",
            name=name,
            version=version,
            fileobj=io.BytesIO(data),
            actor=SYSTEM,
        )
        firmware.publish()  # signs it into the firmware role (online release key in the dev repository)
        return artifact

    return make


@pytest.fixture
def fleet(organization: Any) -> Callable[..., list[Any]]:
    """fleet(n, hardware_model=..., site=...) -> n gateways at one Fresno site."""
    site = SiteFactory(organization=organization)

    def make(n: int, **kwargs: Any) -> list[Any]:
        kwargs.setdefault("site", site)
        return [GatewayFactory(organization=organization, status="active", **kwargs) for _ in range(n)]

    return make


class SimulatedAgent:
    """Reports the steps an agent reports for its assignment (docs/protocol/uplink.md 3.4)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def assignment(self) -> Assignment | None:
        return Assignment.objects.filter(gateway=self.gateway, artifact_type="firmware").first()

    def report(self, step: str, now: datetime, **fields: Any) -> services.ReportOutcome:
        current = self.assignment()
        assert current is not None, f"{self.gateway} has no assignment"
        payload = {
            "deployment": current.deployment,
            "step": step,
            "bundle": current.artifact.target_path,
            "version": current.artifact.version,
            **fields,
        }
        return services.apply_gateway_report(gateway=self.gateway, report=payload, now=now)

    def install(self, now: datetime, *, fail: str = "") -> list[services.ReportOutcome]:
        steps = ["downloading", "downloaded", "installing", "rebooting"]
        outcomes = [self.report(step, now) for step in steps]
        if fail:
            outcomes.append(
                self.report("failure", now, code=fail, message=f"{fail} on purpose", log_excerpt="tail of install.log")
            )
        else:
            outcomes.append(self.report("success", now))
        return outcomes


@pytest.fixture
def agent() -> Callable[[Any], SimulatedAgent]:
    return SimulatedAgent
