"""Shared test set-up. The database is SQLite unless DATABASE_URL points at PostgreSQL (`make test` does
that when PostgreSQL answers locally)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from fleet.accounts.roles import Role
from tests.factories import OrganizationFactory, member

pytest_plugins = ["tests.pki.fixtures"]


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
