"""Certificate authorities, device certificates, enrollment and the short-lived gateway tokens."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography import x509
from django.conf import settings
from django.db import models
from django.utils import timezone


class CertificateAuthority(models.Model):
    """Gridfleet's own root and issuing CA. The private key is stored encrypted with the KEK."""

    class Kind(models.TextChoices):
        ROOT = "root", "Root CA"
        ISSUING = "issuing", "Issuing CA"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    certificate_pem = models.TextField()
    encrypted_key_pem = models.BinaryField(help_text="PKCS#8, encrypted with GRIDFLEET_PKI_KEK.")
    serial_number = models.CharField(max_length=64, help_text="Hex.")
    sha256 = models.CharField(max_length=64, unique=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    is_active = models.BooleanField(default=True, help_text="The CA new certificates are issued from.")
    crl_number = models.PositiveBigIntegerField(default=0, help_text="Number of the last CRL published.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "certificate authorities"

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem.encode())


class TrustAnchor(models.Model):
    """An external root or intermediate (utility, SunSpec, manufacturer) whose device certs we accept.

    Scoped to one organization (its gateways only) or, with no organization, deployment-wide
    (superusers only).
    """

    organization = models.ForeignKey(
        "inventory.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="trust_anchors"
    )
    name = models.CharField(max_length=200)
    certificate_pem = models.TextField()
    subject = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    not_after = models.DateTimeField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "sha256"], name="unique_trust_anchor_per_org"),
        ]

    def __str__(self) -> str:
        return self.name

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem.encode())


class RevocationReason(models.TextChoices):
    """RFC 5280 CRLReason values an admin may choose (the CA-level ones are not device reasons)."""

    UNSPECIFIED = "unspecified", "Unspecified"
    KEY_COMPROMISE = "key_compromise", "Key compromise"
    AFFILIATION_CHANGED = "affiliation_changed", "Affiliation changed"
    SUPERSEDED = "superseded", "Superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation", "Cessation of operation"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn", "Privilege withdrawn"

    @property
    def crl_reason(self) -> x509.ReasonFlags:
        return {
            "unspecified": x509.ReasonFlags.unspecified,
            "key_compromise": x509.ReasonFlags.key_compromise,
            "affiliation_changed": x509.ReasonFlags.affiliation_changed,
            "superseded": x509.ReasonFlags.superseded,
            "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
            "privilege_withdrawn": x509.ReasonFlags.privilege_withdrawn,
        }[self.value]


class DeviceCertificate(models.Model):
    """A gateway's certificate: issued by our CA, or seen from an external trust anchor."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    gateway = models.ForeignKey("inventory.Gateway", on_delete=models.CASCADE, related_name="certificates")
    issuer = models.ForeignKey(
        CertificateAuthority, null=True, blank=True, on_delete=models.PROTECT, related_name="issued"
    )
    trust_anchor = models.ForeignKey(
        TrustAnchor, null=True, blank=True, on_delete=models.SET_NULL, related_name="certificates"
    )
    certificate_pem = models.TextField()
    serial_number = models.CharField(max_length=64, db_index=True, help_text="Hex.")
    sha256 = models.CharField(max_length=64, unique=True)
    public_key_sha256 = models.CharField(max_length=64, db_index=True)
    lfdi = models.CharField("LFDI", max_length=40, db_index=True)
    sfdi = models.CharField("SFDI", max_length=12, db_index=True)
    subject = models.CharField(max_length=500)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=32, choices=RevocationReason.choices, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-not_before", "-id"]

    def __str__(self) -> str:
        return f"{self.gateway.serial} #{self.serial_number[:16]}"

    @property
    def organization(self) -> Any:
        return self.gateway.organization

    @property
    def is_external(self) -> bool:
        return self.issuer_id is None

    @property
    def is_expired(self) -> bool:
        return timezone.now() > self.not_after

    @property
    def state(self) -> str:
        """What an admin wants to read in a list: active, expired or revoked."""
        if self.status == self.Status.REVOKED:
            return "revoked"
        return "expired" if self.is_expired else "active"

    @property
    def renew_after(self) -> Any:
        return self.not_before + (self.not_after - self.not_before) * 2 / 3


class EnrollmentToken(models.Model):
    """A one-time, expiring secret that lets one serial enroll. Only its SHA-256 is stored."""

    organization = models.ForeignKey(
        "inventory.Organization", on_delete=models.CASCADE, related_name="enrollment_tokens"
    )
    serial = models.CharField(max_length=64, db_index=True)
    token_sha256 = models.CharField(max_length=64, unique=True)
    reenroll = models.BooleanField(default=False, help_text="Allows a new key for a serial already enrolled.")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    batch = models.CharField(max_length=100, blank=True, help_text="Label of the batch this token came from.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"enrollment token for {self.serial}"

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        return "expired" if timezone.now() > self.expires_at else "unused"


class EnrollmentRequest(models.Model):
    """A CSR waiting for an operator's acceptance (only when GRIDFLEET_PKI_REQUIRE_ACCEPTANCE is on)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    gateway = models.ForeignKey("inventory.Gateway", on_delete=models.CASCADE, related_name="enrollment_requests")
    csr_pem = models.TextField()
    reenroll = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    certificate = models.ForeignKey(
        DeviceCertificate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"enrollment of {self.gateway.serial} ({self.status})"

    @property
    def organization(self) -> Any:
        return self.gateway.organization


class AuthNonce(models.Model):
    """Nonces of accepted signed auth requests, kept for the skew window to refuse replays."""

    nonce = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.nonce


class AccessToken(models.Model):
    """A short-lived bearer token bound to the certificate that proved possession of its key."""

    token_sha256 = models.CharField(max_length=64, unique=True)
    certificate = models.ForeignKey(DeviceCertificate, on_delete=models.CASCADE, related_name="access_tokens")
    gateway = models.ForeignKey("inventory.Gateway", on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"access token of {self.gateway_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class RevocationList(models.Model):
    """The latest signed CRL of an issuing CA, served as is at a stable URL."""

    authority = models.OneToOneField(CertificateAuthority, on_delete=models.CASCADE, related_name="crl")
    number = models.PositiveBigIntegerField()
    der = models.BinaryField()
    this_update = models.DateTimeField()
    next_update = models.DateTimeField()

    def __str__(self) -> str:
        return f"CRL #{self.number} of {self.authority_id}"
