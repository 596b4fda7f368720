"""Authorization for users, the one place it is decided for the REST API and the web UI alike.

Reads are scoped by selectors (a user never gets a queryset with another tenant's rows, so a
guessed id is a 404). Writes need a capability in the organization that owns the object.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from rest_framework import permissions

from .roles import Capability
from .selectors import organizations_where, user_can


def organization_of(obj: Any) -> Any:
    """The organization that owns an object: models expose `organization` (maybe via a property)."""
    return getattr(obj, "organization", None)


def ensure_can(user: Any, capability: Capability, organization: Any) -> None:
    if not user_can(user, capability, organization):
        role_hint = f" in organization '{organization}'" if organization is not None else ""
        raise PermissionDenied(f"Your role does not allow '{capability}'{role_hint}.")


class OrgRolePermission(permissions.BasePermission):
    """Views set `write_capability` (default: manage inventory) and optionally `read_capability`."""

    message = "Your role in this organization does not allow this action."

    def _capability(self, request: Any, view: Any) -> Capability:
        if request.method in permissions.SAFE_METHODS:
            return getattr(view, "read_capability", Capability.VIEW)
        return getattr(view, "write_capability", Capability.MANAGE_INVENTORY)

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and getattr(user, "is_active", False)):
            return False
        return organizations_where(user, self._capability(request, view)).exists()

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return user_can(request.user, self._capability(request, view), organization_of(obj))


class SuperuserOnly(permissions.BasePermission):
    message = "Only superusers may do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return bool(request.user and request.user.is_superuser)


class CapabilityRequiredMixin(LoginRequiredMixin):
    """For UI views: `capability` needed in at least one organization to open the page."""

    capability: Capability = Capability.VIEW

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.user.is_authenticated and not organizations_where(request.user, self.capability).exists():
            if not organizations_where(request.user, Capability.VIEW).exists():
                # No organization at all (a fresh installation, or a user nobody added yet): the
                # first-run page explains what to do instead of a bare 403.
                return HttpResponseRedirect(reverse("first-run"))
            raise PermissionDenied(f"Your role does not allow '{self.capability}'.")
        return super().dispatch(request, *args, **kwargs)
