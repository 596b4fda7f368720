from __future__ import annotations

from django.conf import settings
from django.db import models

from .roles import Role


class Membership(models.Model):
    """A user's role in one organization; the only source of tenancy for users."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey("inventory.Organization", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")]
        ordering = ["organization__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.organization}"
