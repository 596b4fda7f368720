"""Account pages that Django's own views do not cover: the explanation of a refused form."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: say why a form was refused instead of a bare 403.

    In production the session and CSRF cookies are Secure, so a browser never sends them back over
    plain HTTP and every login fails this check: that case gets its own message."""
    plain_http = not request.is_secure() and settings.CSRF_COOKIE_SECURE
    response = TemplateResponse(
        request,
        "accounts/csrf_failure.html",
        {"plain_http": plain_http, "reason": reason, "https_url": f"https://{request.get_host()}{request.path}"},
        status=403,
    )
    return response.render()
