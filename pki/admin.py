"""Read-only views of the PKI in the Django admin (superusers); changes go through pki.services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from pki.models import CertificateAuthority, DeviceCertificate, EnrollmentRequest, EnrollmentToken, TrustAnchor


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "is_active", "not_after", "sha256"]
    exclude = ["encrypted_key_pem"]


@admin.register(DeviceCertificate)
class DeviceCertificateAdmin(ReadOnlyAdmin):
    list_display = ["gateway", "serial_number", "lfdi", "sfdi", "status", "not_after"]
    list_filter = ["status"]
    search_fields = ["gateway__serial", "lfdi", "sfdi", "serial_number"]


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(ReadOnlyAdmin):
    list_display = ["serial", "organization", "reenroll", "expires_at", "used_at"]
    exclude = ["token_sha256"]


@admin.register(EnrollmentRequest)
class EnrollmentRequestAdmin(ReadOnlyAdmin):
    list_display = ["gateway", "status", "created", "decided_by"]


@admin.register(TrustAnchor)
class TrustAnchorAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "subject", "not_after"]
