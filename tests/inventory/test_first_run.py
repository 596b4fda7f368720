"""A fresh installation: the new superuser creates the first organization in the UI and is shown
the next steps; a user nobody added to an organization is told so instead of a bare 403."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from fleet.audit.models import AuditEntry
from fleet.inventory.models import Organization

pytestmark = pytest.mark.django_db


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_new_superuser_is_led_to_create_the_first_organization() -> None:
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "x")
    client = logged_in(admin)
    landing = client.get("/", follow=True)
    assert landing.redirect_chain == [("/welcome/", 302)]
    assert "has no organization yet" in landing.content.decode()

    created = client.post("/welcome/", {"name": "Sunrise Solar", "slug": "sunrise", "kind": "installer"}, follow=True)
    page = created.content.decode()
    assert "Organization Sunrise Solar created." in page
    assert "/sites/import/" in page and "/gateways/import/" in page and "/pki/tokens/" in page
    assert Organization.objects.get().slug == "sunrise"
    assert AuditEntry.objects.filter(action="organization.create", actor_user=admin).count() == 1
    assert client.get("/").status_code == 200  # the dashboard now

    again = client.post("/welcome/", {"name": "Sunrise Solar", "slug": "sunrise", "kind": "installer"})
    assert again.status_code == 400 and Organization.objects.count() == 1


def test_a_user_without_an_organization_is_told_whom_to_ask_and_cannot_create_one() -> None:
    Organization.objects.create(name="Utility", slug="utility")
    nobody = get_user_model().objects.create_user("newcomer", password="x")
    client = logged_in(nobody)
    landing = client.get("/", follow=True)
    assert landing.redirect_chain == [("/welcome/", 302)]
    assert "Ask a Gridfleet administrator" in landing.content.decode()
    assert client.post("/welcome/", {"name": "Mine", "slug": "mine", "kind": "other"}).status_code == 403
    assert not Organization.objects.filter(slug="mine").exists()
