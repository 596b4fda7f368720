"""A refused form explains itself; in production over plain HTTP it says that TLS is required."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_login_over_plain_http_in_production_says_tls_is_required(settings: Any) -> None:
    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = True  # what DEBUG=0 sets
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")
    # The browser never sends a Secure cookie back over HTTP: the POST arrives without it.
    refused = client.post("/login/", {"username": "ops", "password": "x"})
    assert refused.status_code == 403
    text = refused.content.decode()
    assert "Gridfleet needs HTTPS" in text and "https://testserver/login/" in text


def test_over_https_a_stale_token_gets_the_general_explanation(settings: Any) -> None:
    settings.CSRF_COOKIE_SECURE = True
    refused = Client(enforce_csrf_checks=True).post("/login/", {"username": "ops"}, secure=True)
    assert refused.status_code == 403
    assert "Form refused" in refused.content.decode() and "needs HTTPS" not in refused.content.decode()
