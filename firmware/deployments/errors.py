"""Domain errors of deployments; the API answers each with a 4xx and its message."""

from __future__ import annotations

from fleet.core.errors import DomainError


class DeploymentError(DomainError):
    """A deployment request or operation refused by a rule; the message says what to change."""


class InvalidPlanError(DeploymentError):
    """The rollout plan (phases, thresholds, window) is inconsistent."""


class OperationNotAllowedError(DeploymentError):
    """The operation does not apply in the deployment's current status (e.g. resume a running one)."""

    status_code = 409
