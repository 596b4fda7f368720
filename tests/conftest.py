"""Shared test set-up. The database is SQLite unless DATABASE_URL points at PostgreSQL (`make test` does
that when PostgreSQL answers locally)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from fleet.accounts.roles import Role
from tests.factories import OrganizationFactory, member

pytest_plugins = ["tests.pki.fixtures"]

# The one instant that date-dependent tests live at: a Thursday noon in California (20:00 UTC), outside
# a 01:00-04:00 window, sun up in Fresno. Tests that compare it with objects created "now" take the
# `clock` fixture, so the literal never falls into the past.
NOON_PACIFIC = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    """This process's clock, ticking from a minute before NOON_PACIFIC (`clock.shift()` moves it).

    Only this process is moved: tests whose subprocesses check times against ours use the real clock.
    """
    with time_machine.travel(NOON_PACIFIC - timedelta(minutes=1), tick=True) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def isolated_var_dir(settings: Any, tmp_path: Path) -> Path:
    """Each test writes keys, repositories and uploads into its own directory (and hashes passwords fast)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    settings.GRIDFLEET_VAR_DIR = var_dir
    settings.MEDIA_ROOT = var_dir / "media"
    return var_dir


@pytest.fixture
def organization(db: None) -> Any:
    return OrganizationFactory(name="Sunrise Installers", slug="sunrise")


@pytest.fixture
def other_organization(db: None) -> Any:
    return OrganizationFactory(name="Other Utility", slug="other", kind="utility")


@pytest.fixture
def api_client_for() -> Any:
    """api_client_for(user) -> an APIClient authenticated as that user (session-less, forced)."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def users(organization: Any) -> dict[str, Any]:
    """One user per role in `organization`."""
    return {role: member(organization, role) for role in Role.values}
