"""User and membership management; admins of an organization manage its people."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from fleet.audit.services import record

from .models import Membership


@transaction.atomic
def create_user_with_membership(
    *, username: str, email: str, password: str, organization: Any, role: str, actor: Any, ip: str | None = None
) -> Any:
    user_model = get_user_model()
    user = user_model(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    membership = Membership.objects.create(user=user, organization=organization, role=role)
    record(
        action="user.create",
        target=membership,
        organization=organization,
        user=actor,
        ip=ip,
        after={"username": username, "email": email, "role": role},
    )
    return user
