"""Roles and what each may do. This table is the single statement of the role model.

Capabilities are checked per organization: a user may be an admin of one installer and a viewer
of a utility. Superusers hold every capability everywhere.
"""

from __future__ import annotations

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    TECHNICIAN = "technician", "Technician"
    VIEWER = "viewer", "Viewer"


class Capability(StrEnum):
    VIEW = "view"
    VIEW_AUDIT = "view_audit"
    MANAGE_INVENTORY = "manage_inventory"
    TRIAGE_ALARMS = "triage_alarms"
    MANAGE_DEPLOYMENTS = "manage_deployments"
    MANAGE_ARTIFACTS = "manage_artifacts"
    OPEN_REMOTE_SESSION = "open_remote_session"
    APPROVE_REMOTE_SESSION = "approve_remote_session"
    MANAGE_PKI = "manage_pki"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_SETTINGS = "manage_settings"
    DISPATCH_DER = "dispatch_der"  # create DER programs and controls (utility link, fleet/csip)


ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.ADMIN: frozenset(Capability),
    Role.OPERATOR: frozenset(
        {
            Capability.VIEW,
            Capability.VIEW_AUDIT,
            Capability.MANAGE_INVENTORY,
            Capability.TRIAGE_ALARMS,
            Capability.MANAGE_DEPLOYMENTS,
            Capability.MANAGE_ARTIFACTS,
            Capability.DISPATCH_DER,
        }
    ),
    Role.TECHNICIAN: frozenset({Capability.VIEW, Capability.OPEN_REMOTE_SESSION}),
    Role.VIEWER: frozenset({Capability.VIEW}),
}


def roles_with(capability: Capability) -> list[str]:
    return [role for role, capabilities in ROLE_CAPABILITIES.items() if capability in capabilities]
