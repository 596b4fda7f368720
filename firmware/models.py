"""Artifacts, per-gateway bundles and the rows the TUF publisher turns into signed hash bins."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from fleet.inventory.models import Gateway, Organization, Site

name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]{0,63}$", "Use lowercase letters, digits, '.', '_' and '-' (at most 64)."
)


class ArtifactType(models.TextChoices):
    FIRMWARE = "firmware", "Firmware"
    PATCH = "patch", "Security patch"
    CONFIG = "config", "Configuration"
    LICENSE = "license", "License"


class Blob(models.Model):
    """Content-addressed bytes in Django storage (`blobs/ab/<sha256>`), stored once per content."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256

    @property
    def storage_name(self) -> str:
        return f"blobs/{self.sha256[:2]}/{self.sha256}"


class Artifact(models.Model):
    """An uploaded bundle shared by many gateways; never modified after upload."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="artifacts")
    type = models.CharField(max_length=16, choices=ArtifactType.choices)
    name = models.CharField(max_length=64, validators=[name_validator])
    version = models.CharField(max_length=64)
    hardware_models = models.JSONField(default=list, help_text="Hardware models this bundle may run on.")
    release_notes = models.TextField(blank=True)
    manifest = models.JSONField()
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="artifacts")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "name", "-created"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name", "version"], name="unique_artifact_version")
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def target_path(self) -> str:
        # firmware/*/* in the TUF layout: one segment for the organization, one for the file.
        return f"firmware/{self.organization.slug}/{self.name}-{self.version}.tar"

    def is_compatible_with(self, hardware_model: str) -> bool:
        return hardware_model in self.hardware_models


class UpdateChannel(models.Model):
    """A gateway's opaque token: its targets live under `devices/<token>/` so bins hide serials."""

    gateway = models.OneToOneField(Gateway, on_delete=models.CASCADE, related_name="update_channel")
    token = models.CharField(max_length=32, unique=True)
    # Bumped with every change of the gateway's assignment document.
    sequence = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.gateway} -> {self.token}"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization


class DeviceBundle(models.Model):
    """A file built by the server for one gateway: its assignment document, config or license."""

    class Kind(models.TextChoices):
        ASSIGNMENT = "assignment", "Assignment"
        CONFIG = "config", "Configuration"
        LICENSE = "license", "License"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="device_bundles")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.PositiveIntegerField()
    filename = models.CharField(max_length=100)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="device_bundles")
    source = models.JSONField(default=dict, blank=True, help_text="What the bundle was built from.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gateway", "kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "kind", "version"], name="unique_device_bundle_version")
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.filename}"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization


class Assignment(models.Model):
    """What one gateway must run for one artifact type; the assignment document lists them all."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="assignments")
    artifact_type = models.CharField(max_length=16, choices=ArtifactType.choices)
    artifact = models.ForeignKey(Artifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    bundle = models.ForeignKey(DeviceBundle, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    deployment = models.CharField(max_length=64, blank=True)
    install = models.JSONField(null=True, blank=True, help_text="Install conditions (window, not_before, sun_down).")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "artifact_type"], name="one_assignment_per_type"),
            models.CheckConstraint(
                condition=models.Q(artifact__isnull=True) | models.Q(bundle__isnull=True),
                name="assignment_artifact_or_bundle",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.artifact_type}"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization


class DeviceTarget(models.Model):
    """A target currently listed in a hash bin (`devices/<token>/<file>`)."""

    path = models.CharField(max_length=200, unique=True)
    bin_name = models.CharField(max_length=16, db_index=True)
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="device_targets")
    bundle = models.ForeignKey(DeviceBundle, on_delete=models.PROTECT, related_name="targets")

    def __str__(self) -> str:
        return self.path


class PendingBin(models.Model):
    """A hash bin whose targets changed since it was last signed; the publisher consumes these.

    Not unique on purpose: a change during a publish adds a new row the publisher has not seen,
    so that change is published next time instead of being lost.
    """

    bin_name = models.CharField(max_length=16, db_index=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.bin_name


class ConfigTemplate(models.Model):
    """Files rendered with Django template syntax from values validated by a JSON schema."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="config_templates")
    name = models.CharField(max_length=64, validators=[name_validator])
    schema = models.JSONField(help_text="JSON schema the values must satisfy.")
    files = models.JSONField(help_text='{"relative/path": "template text"}')
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_config_template")]

    def __str__(self) -> str:
        return self.name


class ConfigValues(models.Model):
    """Values for a template at site or gateway level; gateway values override site values."""

    template = models.ForeignKey(ConfigTemplate, on_delete=models.CASCADE, related_name="values")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    gateway = models.ForeignKey(Gateway, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    values = models.JSONField(default=dict)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(site__isnull=True) ^ models.Q(gateway__isnull=True),
                name="config_values_site_xor_gateway",
            ),
            models.UniqueConstraint(fields=["template", "site"], name="unique_site_values"),
            models.UniqueConstraint(fields=["template", "gateway"], name="unique_gateway_values"),
        ]

    def __str__(self) -> str:
        return f"{self.template} values for {self.site or self.gateway}"

    @property
    def organization(self) -> Organization:
        return self.template.organization
