from __future__ import annotations

from typing import Any

from rest_framework import serializers

from fleet.inventory.models import Organization
from pki.models import (
    CertificateAuthority,
    DeviceCertificate,
    EnrollmentRequest,
    EnrollmentToken,
    RevocationReason,
    TrustAnchor,
)

MAX_TOKEN_HOURS = 90 * 24


class CertificateAuthoritySerializer(serializers.ModelSerializer[CertificateAuthority]):
    class Meta:
        model = CertificateAuthority
        fields = [
            "id",
            "kind",
            "name",
            "parent",
            "serial_number",
            "sha256",
            "not_before",
            "not_after",
            "is_active",
            "crl_number",
            "certificate_pem",
        ]
        read_only_fields = fields


class DeviceCertificateSerializer(serializers.ModelSerializer[DeviceCertificate]):
    gateway_serial = serializers.CharField(source="gateway.serial", read_only=True)
    organization: serializers.SlugRelatedField[Organization] = serializers.SlugRelatedField(
        source="gateway.organization", slug_field="slug", read_only=True
    )
    state = serializers.CharField(read_only=True, help_text="active, expired or revoked")
    renew_after = serializers.DateTimeField(read_only=True)
    issuer_name = serializers.CharField(source="issuer.name", read_only=True, default=None)
    trust_anchor_name = serializers.CharField(source="trust_anchor.name", read_only=True, default=None)
    external = serializers.BooleanField(source="is_external", read_only=True)
    # A plain string here so the schema has one enum for revocation reasons (RevokeSerializer's).
    revocation_reason = serializers.CharField(read_only=True, help_text="RFC 5280 reason; empty unless revoked")

    class Meta:
        model = DeviceCertificate
        fields = [
            "id",
            "gateway",
            "gateway_serial",
            "organization",
            "serial_number",
            "lfdi",
            "sfdi",
            "subject",
            "not_before",
            "not_after",
            "renew_after",
            "status",
            "state",
            "revoked_at",
            "revocation_reason",
            "issuer_name",
            "external",
            "trust_anchor_name",
            "certificate_pem",
            "created",
        ]
        read_only_fields = fields


class RevokeSerializer(serializers.Serializer[Any]):
    reason = serializers.ChoiceField(choices=RevocationReason.choices, default=RevocationReason.UNSPECIFIED)


class EnrollmentTokenSerializer(serializers.ModelSerializer[EnrollmentToken]):
    organization: serializers.SlugRelatedField[Organization] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    state = serializers.CharField(read_only=True, help_text="unused, used or expired")
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = EnrollmentToken
        fields = [
            "id",
            "organization",
            "serial",
            "reenroll",
            "batch",
            "expires_at",
            "used_at",
            "state",
            "created_by",
            "created",
        ]
        read_only_fields = fields


class _TokenRequestSerializer(serializers.Serializer[Any]):
    organization = serializers.SlugRelatedField(slug_field="slug", queryset=Organization.objects.all())
    valid_hours = serializers.IntegerField(min_value=1, max_value=MAX_TOKEN_HOURS, required=False)


class EnrollmentTokenCreateSerializer(_TokenRequestSerializer):
    serial = serializers.CharField(max_length=64)
    reenroll = serializers.BooleanField(default=False, help_text="Allow a new key for an enrolled serial.")


class EnrollmentTokenBatchSerializer(_TokenRequestSerializer):
    serials = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, max_length=10_000)
    batch = serializers.CharField(max_length=100, required=False, default="")


class EnrollmentRequestSerializer(serializers.ModelSerializer[EnrollmentRequest]):
    gateway_serial = serializers.CharField(source="gateway.serial", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None)

    class Meta:
        model = EnrollmentRequest
        fields = [
            "id",
            "public_id",
            "gateway",
            "gateway_serial",
            "reenroll",
            "status",
            "certificate",
            "decided_by",
            "decided_at",
            "created",
        ]
        read_only_fields = fields


class TrustAnchorSerializer(serializers.ModelSerializer[TrustAnchor]):
    organization = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Organization.objects.all(),
        allow_null=True,
        required=False,
        help_text="Empty for a deployment-wide anchor (superusers only).",
    )
    certificate_pem = serializers.CharField(max_length=20_000)

    class Meta:
        model = TrustAnchor
        fields = ["id", "organization", "name", "certificate_pem", "subject", "sha256", "not_after", "created"]
        read_only_fields = ["subject", "sha256", "not_after", "created"]
        extra_kwargs = {"name": {"required": False, "allow_blank": True}}
