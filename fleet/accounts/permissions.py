"""The edge of authorization: who may open an area of the REST API or the web UI to read it.

Writes are not decided here: every state-changing service checks its actor itself
(`fleet.accounts.authorization.authorize`). Rows are scoped by selectors (a user never gets a
queryset with another tenant's rows, so a guessed id is a 404). What is left at the edge is
authentication and the area gate: an area that needs more than VIEW to be seen at all (PKI,
audit, members, the forms of writers) declares its `read_capability`, and a user who holds it in
no organization gets 403 for anything in that area rather than empty pages and 404s. Whether a
user who may be in the area may make a given change is the service's decision.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponseRedirect
from django.urls import reverse
from rest_framework import permissions

from fleet.core.errors import PermissionDeniedError

from .roles import Capability
from .selectors import organizations_where


def may_read_area(user: Any, capability: Capability) -> bool:
    return organizations_where(user, capability).exists()


class ReadCapability(permissions.BasePermission):
    """DRF default: an authenticated, active user holding the view's `read_capability` somewhere."""

    message = "Your role does not allow this area."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and getattr(user, "is_active", False)):
            return False
        return may_read_area(user, getattr(view, "read_capability", Capability.VIEW))


class SuperuserOrReadCapability(ReadCapability):
    """The organizations area: a superuser with no organization yet must reach it to create the first."""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if user and user.is_authenticated and user.is_active and user.is_superuser:
            return True
        return super().has_permission(request, view)


class CapabilityRequiredMixin(LoginRequiredMixin):
    """For UI views: the area gate, `read_capability` in at least one organization.

    Whether a form post may change what it names is decided by the service it calls (403).
    """

    read_capability: Capability = Capability.VIEW

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.user.is_authenticated and not may_read_area(request.user, self.read_capability):
            if not may_read_area(request.user, Capability.VIEW):
                # No organization at all (a fresh installation, or a user nobody added yet): the
                # first-run page explains what to do instead of a bare 403.
                return HttpResponseRedirect(reverse("first-run"))
            raise PermissionDeniedError(f"Your role does not allow '{self.read_capability}'.")
        return super().dispatch(request, *args, **kwargs)
