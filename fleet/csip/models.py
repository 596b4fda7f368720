"""The CSIP head-end's data: EndDevices pre-registered from the inventory, DER programs and their
controls, and what the devices send back (responses, mirrored readings, DER resources, log events).

The sep2 representation of each lives in `fleet.csip.sep`; these models hold only the domain values.
"""

from __future__ import annotations

import functools
import operator
import secrets

from django.db import models

from fleet.inventory.models import Gateway, GatewayGroup, Organization, Site


def new_mrid() -> str:
    """A 128-bit mRID as 32 hex digits (IEEE 2030.5 mRIDType is HexBinary128)."""
    return secrets.token_hex(16).upper()


class EndDevice(models.Model):
    """A gateway's registration on the head-end: LFDI/SFDI of its utility-link certificate and the PIN."""

    gateway = models.OneToOneField(Gateway, on_delete=models.CASCADE, related_name="csip_end_device")
    lfdi = models.CharField("LFDI", max_length=40, unique=True)
    sfdi = models.BigIntegerField("SFDI", db_index=True)
    pin = models.PositiveIntegerField("registration PIN", help_text="Six digits: five plus the check digit.")
    registered_at = models.DateTimeField(help_text="When the EndDevice was created on the head-end.")
    changed_at = models.DateTimeField()
    enabled = models.BooleanField(default=True)
    last_contact = models.DateTimeField(null=True, blank=True)
    # What the gateway's agent reported over the uplink about its utility link.
    link_state = models.CharField(max_length=32, blank=True)
    link_detail = models.JSONField(default=dict, blank=True)
    link_reported_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"EndDevice {self.lfdi[:8]} ({self.gateway.serial})"


class DerProgram(models.Model):
    """A DER program (DERProgram) with its default control, offered to a scope of gateways.

    The scope is a site, a group, or (neither) every gateway of the organization.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="der_programs")
    name = models.CharField(max_length=100)
    mrid = models.CharField("mRID", max_length=32, unique=True, default=new_mrid)
    primacy = models.PositiveSmallIntegerField(default=10, help_text="Lower wins when programs' events overlap.")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.CASCADE, related_name="der_programs")
    group = models.ForeignKey(
        GatewayGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="der_programs"
    )
    # DefaultDERControl: what applies when no event is active (and during comms loss).
    default_max_lim_pct = models.DecimalField(
        "default opModMaxLimW (%)", max_digits=5, decimal_places=2, null=True, blank=True
    )
    default_mrid = models.CharField(max_length=32, default=new_mrid)
    default_version = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["primacy", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="csip_program_name_unique"),
            models.CheckConstraint(
                condition=models.Q(site__isnull=True) | models.Q(group__isnull=True),
                name="csip_program_one_scope",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def scope_label(self) -> str:
        if self.site_id:
            return f"site {self.site}"
        if self.group_id:
            return f"group {self.group}"
        return f"all of {self.organization}"


SETPOINT_FIELDS = ("export_limit_w", "max_lim_pct", "connect", "power_factor")


def _exactly_one(fields: tuple[str, ...]) -> models.Q:
    options = []
    for chosen in fields:
        only = models.Q(**{f"{chosen}__isnull": False})
        for other in fields:
            if other != chosen:
                only &= models.Q(**{f"{other}__isnull": True})
        options.append(only)
    return functools.reduce(operator.or_, options)


class DerControl(models.Model):
    """One DER event (DERControl): an export limit or a curtailment over an interval."""

    class Status(models.IntegerChoices):
        # EventStatus.currentStatus (IEEE 2030.5 table "EventStatus"): the server's view of the event.
        SCHEDULED = 0, "scheduled"
        ACTIVE = 1, "active"
        CANCELLED = 2, "cancelled"
        CANCELLED_RANDOM = 3, "cancelled with randomization"
        SUPERSEDED = 4, "superseded"

    program = models.ForeignKey(DerProgram, on_delete=models.CASCADE, related_name="controls")
    mrid = models.CharField("mRID", max_length=32, unique=True, default=new_mrid)
    description = models.CharField(max_length=32, blank=True, help_text="sep2 limits this to 32 characters.")
    creation_time = models.DateTimeField()
    start = models.DateTimeField(db_index=True)
    duration_s = models.PositiveIntegerField()
    randomize_start_s = models.IntegerField(default=0)
    randomize_duration_s = models.IntegerField(default=0)
    # Exactly one of these: opModMaxLimWInject (2023: an export limit in watts), opModMaxLimW (% of
    # setMaxW), opModConnect (False: disconnect, cease to energize) or opModFixedPFInjectW.
    export_limit_w = models.PositiveIntegerField("export limit (W)", null=True, blank=True)
    max_lim_pct = models.DecimalField("active power limit (%)", max_digits=5, decimal_places=2, null=True, blank=True)
    connect = models.BooleanField("connect", null=True, blank=True, help_text="False disconnects the DER.")
    power_factor = models.DecimalField(
        "fixed power factor (injecting)", max_digits=4, decimal_places=3, null=True, blank=True
    )
    power_factor_absorbing = models.BooleanField(
        default=False, help_text="Under-excited: the DER absorbs reactive power at that power factor."
    )
    cancelled = models.BooleanField(default=False)
    status_changed_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.CheckConstraint(condition=_exactly_one(SETPOINT_FIELDS), name="csip_control_one_setpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.program.name}: {self.setpoint_label} at {self.start:%Y-%m-%d %H:%M}"

    @property
    def organization(self) -> Organization:
        return self.program.organization

    @property
    def setpoint_label(self) -> str:
        if self.export_limit_w is not None:
            return f"export ≤ {self.export_limit_w} W"
        if self.max_lim_pct is not None:
            return f"output ≤ {self.max_lim_pct} %"
        if self.connect is not None:
            return "connect" if self.connect else "disconnect"
        return f"power factor {self.power_factor} {'absorbing' if self.power_factor_absorbing else 'injecting'} vars"


class DerControlResponse(models.Model):
    """A Response a device posted about a control (or the default control), in arrival order."""

    control = models.ForeignKey(DerControl, null=True, blank=True, on_delete=models.CASCADE, related_name="responses")
    subject_mrid = models.CharField(max_length=32, db_index=True)
    end_device = models.ForeignKey(EndDevice, on_delete=models.CASCADE, related_name="responses")
    status = models.PositiveSmallIntegerField(help_text="Response status code (IEEE 2030.5 table 27).")
    created_date_time = models.DateTimeField(help_text="When the device says it happened.")
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.subject_mrid[:8]} {self.status} from {self.end_device.lfdi[:8]}"


class MirrorUsagePoint(models.Model):
    end_device = models.ForeignKey(EndDevice, on_delete=models.CASCADE, related_name="mirror_usage_points")
    mrid = models.CharField("mRID", max_length=32)
    description = models.CharField(max_length=32, blank=True)
    role_flags = models.PositiveIntegerField(default=0)
    service_category_kind = models.PositiveSmallIntegerField(default=0)
    device_lfdi = models.CharField(max_length=40)
    post_rate = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["end_device", "mrid"], name="csip_mup_unique")]

    def __str__(self) -> str:
        return f"MUP {self.mrid[:8]} of {self.end_device}"


class MirrorMeterReading(models.Model):
    """One mirrored quantity (a MirrorMeterReading and its ReadingType) under a MirrorUsagePoint."""

    mirror_usage_point = models.ForeignKey(MirrorUsagePoint, on_delete=models.CASCADE, related_name="meter_readings")
    mrid = models.CharField("mRID", max_length=32)
    description = models.CharField(max_length=32, blank=True)
    uom = models.PositiveSmallIntegerField(null=True, blank=True, help_text="UomType: 38 W, 29 V, 33 Hz, 63 var ...")
    power_of_ten = models.SmallIntegerField(default=0)
    flow_direction = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mirror_usage_point", "mrid"], name="csip_meter_reading_unique")]

    def __str__(self) -> str:
        return self.description or self.mrid


class Reading(models.Model):
    meter_reading = models.ForeignKey(MirrorMeterReading, on_delete=models.CASCADE, related_name="readings")
    value = models.BigIntegerField(help_text="Raw value; the quantity is value x 10^power_of_ten.")
    time = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["time", "id"]

    def __str__(self) -> str:
        return f"{self.value} at {self.time:%Y-%m-%d %H:%M:%S}"


class DerResourceReport(models.Model):
    """The last DERCapability / DERSettings / DERStatus / DERAvailability a device PUT."""

    class Kind(models.TextChoices):
        CAPABILITY = "dercap", "DERCapability"
        SETTINGS = "derg", "DERSettings"
        STATUS = "ders", "DERStatus"
        AVAILABILITY = "dera", "DERAvailability"

    end_device = models.ForeignKey(EndDevice, on_delete=models.CASCADE, related_name="der_resources")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    document = models.TextField(help_text="The sep2 XML as received (schema-valid).")
    updated = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["end_device", "kind"], name="csip_der_resource_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.end_device}"


class LogEvent(models.Model):
    end_device = models.ForeignKey(EndDevice, on_delete=models.CASCADE, related_name="log_events")
    log_event_code = models.PositiveSmallIntegerField()
    log_event_id = models.PositiveIntegerField()
    function_set = models.PositiveSmallIntegerField()
    profile_id = models.PositiveSmallIntegerField()
    created_date_time = models.DateTimeField()
    details = models.CharField(max_length=32, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"LogEvent {self.log_event_code} from {self.end_device}"
