from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fleet.accounts.models import Membership
from fleet.accounts.roles import Role
from fleet.accounts.selectors import organizations_visible_to
from fleet.core.api import StrictFieldsMixin


@extend_schema_field(OpenApiTypes.STR)
class ManagedOrganizationField(serializers.SlugRelatedField[Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", **kwargs)

    def get_queryset(self) -> Any:
        return organizations_visible_to(self.context["request"].user)


class MembershipSerializer(StrictFieldsMixin, serializers.ModelSerializer[Membership]):
    user = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all())
    organization = ManagedOrganizationField()

    class Meta:
        model = Membership
        fields = ["id", "user", "organization", "role", "created"]
        read_only_fields = ["created"]


class NewUserSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    password = serializers.CharField(write_only=True, min_length=8, style={"input_type": "password"})
    organization = ManagedOrganizationField()
    role = serializers.ChoiceField(choices=Role.choices)

    def validate_username(self, value: str) -> str:
        if get_user_model().objects.filter(username=value).exists():
            raise serializers.ValidationError("A user with this username exists; add a membership instead.")
        return value


class CurrentUserSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    is_superuser = serializers.BooleanField()
    memberships = serializers.SerializerMethodField()

    def get_memberships(self, user: Any) -> list[dict[str, str]]:
        return [
            {"organization": m.organization.slug, "role": m.role}
            for m in user.memberships.select_related("organization")
        ]
