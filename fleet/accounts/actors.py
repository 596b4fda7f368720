"""Who acts on the fleet: an operator's user account as a request carries it (possibly anonymous).

Selectors and services take the acting user typed as `Actor`, so a forgotten permission check
cannot hide behind `Any`. Gateways act through their own identity (pki.authentication).
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

Actor = User | AnonymousUser
