"""Who acts, and whether they may: the check every state-changing service makes itself.

Services take the acting party as `actor` and call `authorize(actor, capability, organization)`
before they change anything. Views, consumers, serializers and tasks only parse, call the service
with `request.user` (or `SYSTEM`) and render the refusal, so a new entry point cannot forget the
check. What each role may do is the table in `fleet/accounts/roles.py`.

Gateways act on themselves only; their services take the authenticated `gateway` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeAlias

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from fleet.core.errors import PermissionDeniedError

from .roles import Capability
from .selectors import user_can

if TYPE_CHECKING:
    from fleet.inventory.models import Organization


class SystemActor:
    """The server itself: rollouts, schedules, gateway reports, management commands.

    Not subject to roles; audit entries name it "system". Pass `SYSTEM` explicitly, never `None`,
    so that a caller that forgets to name the actor fails instead of acting as the server.
    """

    is_authenticated: Final = False
    is_superuser: Final = False

    def __str__(self) -> str:
        return "system"


SYSTEM: Final = SystemActor()

# A signed-in person (or the anonymous one, refused everything), or the server itself.
Actor: TypeAlias = AbstractBaseUser | AnonymousUser | SystemActor


def authorize(actor: Actor, capability: Capability, organization: Organization | int | None) -> None:
    """Refuse with `PermissionDeniedError` (403) unless `actor` holds `capability` in `organization`.

    `organization` None means a deployment-wide object (a root CA, a shared trust anchor):
    only superusers change those.
    """
    if isinstance(actor, SystemActor):
        return
    if not user_can(actor, capability, organization):
        where = f" in organization '{organization}'" if organization is not None else " for the whole deployment"
        raise PermissionDeniedError(f"Your role does not allow '{capability}'{where}.")


def authorize_superuser(actor: Actor, what: str) -> None:
    """Refuse unless `actor` is a superuser (or the server): for deployment-wide changes."""
    if isinstance(actor, SystemActor) or getattr(actor, "is_superuser", False):
        return
    raise PermissionDeniedError(f"Only superusers may {what}.")


def person(actor: Actor) -> User | None:
    """The signed-in person behind an actor, for `created_by`-style fields; None for the server."""
    return actor if isinstance(actor, User) and actor.is_authenticated else None
