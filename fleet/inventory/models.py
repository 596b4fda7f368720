"""The fleet inventory: tenants, sites, gateways, their groups and the field devices behind them."""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

serial_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
    "A serial is 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.",
)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone (e.g. America/Los_Angeles).")


class Organization(models.Model):
    """A tenant: a utility, an aggregator or an installer. Every other object belongs to one."""

    class Kind(models.TextChoices):
        UTILITY = "utility", "Utility"
        AGGREGATOR = "aggregator", "Aggregator"
        INSTALLER = "installer", "Installer"
        OTHER = "other", "Other"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.INSTALLER)
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def organization(self) -> Organization:
        return self


class Site(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sites")
    name = models.CharField(max_length=100)
    address = models.CharField(max_length=300, blank=True)
    latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(-90)), MaxValueValidator(Decimal(90))],
    )
    longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(-180)), MaxValueValidator(Decimal(180))],
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    utility_account = models.CharField(max_length=64, blank=True)
    nameplate_kw = models.DecimalField(
        max_digits=10, decimal_places=3, null=True, blank=True, validators=[MinValueValidator(Decimal(0))]
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_site_name_per_org")]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)
    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug


class Gateway(models.Model):
    class Status(models.TextChoices):
        REGISTERED = "registered", "Registered"
        ACTIVE = "active", "Active"
        DECOMMISSIONED = "decommissioned", "Decommissioned"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="gateways")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="gateways")
    serial = models.CharField(max_length=64, unique=True, validators=[serial_validator])
    name = models.CharField(max_length=100, blank=True)
    hardware_model = models.CharField(max_length=64)
    firmware_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REGISTERED, db_index=True)
    last_seen = models.DateTimeField(null=True, blank=True, db_index=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="Attributes the gateway last reported.")
    tags = models.ManyToManyField(Tag, blank=True, related_name="gateways")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["serial"]

    def __str__(self) -> str:
        return self.serial

    def clean(self) -> None:
        if self.site is not None and self.organization_id and self.site.organization_id != self.organization_id:
            raise ValidationError({"site": "The site belongs to another organization."})


class GatewayAttributeChange(models.Model):
    """History of reported attributes: one row per report that changed something."""

    class Source(models.TextChoices):
        GATEWAY = "gateway", "Reported by the gateway"
        USER = "user", "Set by a user"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="attribute_changes")
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    changes = models.JSONField(help_text='{"key": [old, new]}; a removed key has new = null.')

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.gateway} {', '.join(self.changes)} changed"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization


class GatewayGroup(models.Model):
    """A set of gateways: listed explicitly (static) or matched by a filter (dynamic)."""

    class Kind(models.TextChoices):
        STATIC = "static", "Static"
        DYNAMIC = "dynamic", "Dynamic"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="gateway_groups")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STATIC)
    members = models.ManyToManyField(Gateway, blank=True, related_name="static_groups")
    filter = models.JSONField(
        default=dict, blank=True, help_text="For dynamic groups; see fleet.inventory.group_filters."
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_group_name_per_org")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .group_filters import validate_group_filter

        if self.kind == self.Kind.DYNAMIC:
            validate_group_filter(self.filter)
        elif self.filter:
            raise ValidationError({"filter": "Only dynamic groups have a filter."})


class FieldDevice(models.Model):
    """An inverter, meter, battery, weather station or I/O module the gateway talks to on site."""

    class Kind(models.TextChoices):
        INVERTER = "inverter", "Inverter"
        METER = "meter", "Meter"
        BATTERY = "battery", "Battery"
        WEATHER_STATION = "weather_station", "Weather station"
        IO_MODULE = "io_module", "I/O module"  # digital/analog inputs, relays, contactors

    class Protocol(models.TextChoices):
        SUNSPEC_TCP = "sunspec-tcp", "SunSpec Modbus TCP"
        SUNSPEC_RTU = "sunspec-rtu", "SunSpec Modbus RTU"
        MODBUS_TCP = "modbus-tcp", "Modbus TCP"
        MODBUS_RTU = "modbus-rtu", "Modbus RTU"
        IEEE2030_5 = "ieee2030.5", "IEEE 2030.5"
        DNP3_TCP = "dnp3-tcp", "DNP3 TCP"
        IEC61850 = "iec61850", "IEC 61850 MMS"
        OTHER = "other", "Other"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="field_devices")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    protocol = models.CharField(max_length=16, choices=Protocol.choices)
    address = models.CharField(max_length=100, help_text="host:port/unit or serial-port/unit")
    make = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=64, blank=True)
    serial = models.CharField(max_length=64, blank=True)
    firmware_version = models.CharField(max_length=64, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gateway__serial", "address"]
        constraints = [models.UniqueConstraint(fields=["gateway", "protocol", "address"], name="unique_device_address")]

    def __str__(self) -> str:
        label = " ".join(part for part in (self.make, self.model) if part) or self.get_kind_display()
        return f"{label} @ {self.address}"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization
