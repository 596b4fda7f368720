"""The main navigation, as a context processor; entries appear once their app's URL exists."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# (label, URL name); an entry is active when the current path starts with its URL.
NAVIGATION = [
    ("Dashboard", "dashboard"),
    ("Gateways", "gateway-list"),
    ("Sites", "site-list"),
    ("Groups", "group-list"),
    ("Alarms", "alarm-console"),
    ("Logs", "log-search"),
    ("Artifacts", "artifact-list"),
    ("Deployments", "deployment-list"),
    ("Remote access", "remoteaccess-sessions"),
    ("Utility link", "csip-programs"),
    ("PKI", "pki-overview"),
    ("Audit", "audit-log"),
]


def url_if_installed(url_name: str) -> str | None:
    """The URL of a page another app provides, or None when that app is not installed."""
    try:
        return reverse(url_name)
    except NoReverseMatch:
        return None


def navigation(request: HttpRequest) -> dict[str, Any]:
    items = []
    for label, url_name in NAVIGATION:
        url = url_if_installed(url_name)
        if url is None:
            continue
        active = request.path == url if url == "/" else request.path.startswith(url)
        items.append({"label": label, "url": url, "active": active})
    return {"navigation": items}
