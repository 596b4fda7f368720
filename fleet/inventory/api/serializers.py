from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.text import slugify
from rest_framework import serializers

from fleet.accounts.selectors import organizations_visible_to
from fleet.core.api import StrictFieldsMixin
from fleet.inventory.group_filters import validate_group_filter
from fleet.inventory.models import (
    FieldDevice,
    Gateway,
    GatewayAttributeChange,
    GatewayGroup,
    Organization,
    Site,
    Tag,
)
from fleet.inventory.selectors import gateways_visible_to, sites_visible_to


def _request_user(serializer: serializers.BaseSerializer[Any] | None) -> Any:
    request = serializer.context.get("request") if serializer is not None else None
    return getattr(request, "user", None)


class WritableOrganizationField(serializers.SlugRelatedField[Organization]):
    """An organization by slug, limited to those where the user may manage the inventory."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", **kwargs)

    def get_queryset(self) -> Any:
        return organizations_visible_to(_request_user(self.parent))


class VisibleSiteField(serializers.PrimaryKeyRelatedField[Site]):
    def get_queryset(self) -> Any:
        return sites_visible_to(_request_user(self.parent))


class VisibleGatewayField(serializers.PrimaryKeyRelatedField[Gateway]):
    def get_queryset(self) -> Any:
        return gateways_visible_to(_request_user(self.root))


class TagListField(serializers.ListField):
    """Tags by slug; unknown tags are created, as an operator labelling gateways would expect."""

    child = serializers.SlugField(max_length=50)

    def to_internal_value(self, data: Any) -> list[Tag]:
        slugs = super().to_internal_value(data)
        return [Tag.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug in dict.fromkeys(slugs)]

    def to_representation(self, value: Any) -> list[str]:
        return [tag.slug for tag in value.all()]


def _ensure_same_organization(attrs: dict[str, Any], instance: Any, related: str) -> None:
    organization = attrs.get("organization") or getattr(instance, "organization", None)
    related_object = attrs.get(related)
    if related_object is not None and organization is not None and related_object.organization != organization:
        raise serializers.ValidationError({related: f"This {related} belongs to another organization."})


class OrganizationSerializer(StrictFieldsMixin, serializers.ModelSerializer[Organization]):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "kind", "description", "created"]
        read_only_fields = ["created"]
        extra_kwargs = {"slug": {"required": False}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "slug" not in attrs and "name" in attrs and self.instance is None:
            attrs["slug"] = slugify(attrs["name"])
        return attrs


class SiteSerializer(StrictFieldsMixin, serializers.ModelSerializer[Site]):
    organization = WritableOrganizationField()
    gateway_count = serializers.IntegerField(source="gateways.count", read_only=True)

    class Meta:
        model = Site
        fields = [
            "id",
            "organization",
            "name",
            "address",
            "latitude",
            "longitude",
            "timezone",
            "utility_account",
            "nameplate_kw",
            "gateway_count",
            "created",
            "updated",
        ]
        read_only_fields = ["created", "updated"]


class GatewaySerializer(StrictFieldsMixin, serializers.ModelSerializer[Gateway]):
    organization = WritableOrganizationField()
    site = VisibleSiteField(allow_null=True, required=False)
    tags = TagListField(required=False)

    class Meta:
        model = Gateway
        fields = [
            "id",
            "serial",
            "name",
            "organization",
            "site",
            "hardware_model",
            "firmware_version",
            "status",
            "tags",
            "last_seen",
            "attributes",
            "created",
            "updated",
        ]
        read_only_fields = ["last_seen", "attributes", "created", "updated"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _ensure_same_organization(attrs, self.instance, "site")
        return attrs


class GatewayAttributeChangeSerializer(serializers.ModelSerializer[GatewayAttributeChange]):
    class Meta:
        model = GatewayAttributeChange
        fields = ["id", "gateway", "changed_at", "source", "changes"]


class GatewayGroupSerializer(StrictFieldsMixin, serializers.ModelSerializer[GatewayGroup]):
    organization = WritableOrganizationField()
    members = VisibleGatewayField(many=True, required=False)
    member_count = serializers.SerializerMethodField()

    class Meta:
        model = GatewayGroup
        fields = ["id", "organization", "name", "description", "kind", "members", "filter", "member_count", "created"]
        read_only_fields = ["created"]

    def get_member_count(self, group: GatewayGroup) -> int:
        from fleet.inventory.selectors import group_members

        return group_members(group).count()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind", getattr(self.instance, "kind", GatewayGroup.Kind.STATIC))
        organization = attrs.get("organization") or getattr(self.instance, "organization", None)
        if kind == GatewayGroup.Kind.DYNAMIC:
            if attrs.get("members"):
                raise serializers.ValidationError({"members": "Dynamic groups take a filter, not members."})
            try:
                validate_group_filter(attrs.get("filter", getattr(self.instance, "filter", None)))
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from exc
        elif attrs.get("filter"):
            raise serializers.ValidationError({"filter": "Only dynamic groups have a filter."})
        foreign = [g.serial for g in attrs.get("members", []) if g.organization != organization]
        if foreign:
            raise serializers.ValidationError({"members": f"Gateways of another organization: {', '.join(foreign)}."})
        return attrs


class FieldDeviceSerializer(StrictFieldsMixin, serializers.ModelSerializer[FieldDevice]):
    gateway = VisibleGatewayField()

    class Meta:
        model = FieldDevice
        fields = [
            "id",
            "gateway",
            "kind",
            "protocol",
            "address",
            "make",
            "model",
            "serial",
            "firmware_version",
            "last_seen",
            "created",
        ]
        read_only_fields = ["last_seen", "created"]
