from __future__ import annotations

from rest_framework import serializers

from fleet.inventory.models import GatewayGroup, Organization, Site

from ..models import DerControl, DerControlResponse, DerProgram, EndDevice
from ..responses import response_label


class DerProgramSerializer(serializers.ModelSerializer[DerProgram]):
    organization = serializers.SlugRelatedField(slug_field="slug", queryset=Organization.objects.all())
    site = serializers.PrimaryKeyRelatedField(queryset=Site.objects.all(), required=False, allow_null=True)
    group = serializers.PrimaryKeyRelatedField(queryset=GatewayGroup.objects.all(), required=False, allow_null=True)
    scope = serializers.CharField(source="scope_label", read_only=True)

    class Meta:
        model = DerProgram
        fields = ["id", "organization", "name", "mrid", "primacy", "site", "group", "scope", "default_max_lim_pct"]
        read_only_fields = ["mrid"]


class DerControlSerializer(serializers.ModelSerializer[DerControl]):
    program = serializers.PrimaryKeyRelatedField(queryset=DerProgram.objects.all())
    setpoint = serializers.CharField(source="setpoint_label", read_only=True)

    class Meta:
        model = DerControl
        fields = [
            "id",
            "program",
            "mrid",
            "description",
            "start",
            "duration_s",
            "randomize_start_s",
            "randomize_duration_s",
            "export_limit_w",
            "max_lim_pct",
            "connect",
            "power_factor",
            "power_factor_absorbing",
            "setpoint",
            "cancelled",
            "creation_time",
            "created_by",
        ]
        read_only_fields = ["mrid", "cancelled", "creation_time", "created_by"]


class DerControlResponseSerializer(serializers.ModelSerializer[DerControlResponse]):
    gateway = serializers.CharField(source="end_device.gateway.serial", read_only=True)
    lfdi = serializers.CharField(source="end_device.lfdi", read_only=True)
    status_label = serializers.SerializerMethodField()

    class Meta:
        model = DerControlResponse
        fields = [
            "id",
            "control",
            "subject_mrid",
            "gateway",
            "lfdi",
            "status",
            "status_label",
            "created_date_time",
            "received_at",
        ]

    def get_status_label(self, obj: DerControlResponse) -> str:
        return response_label(obj.status)


class EndDeviceSerializer(serializers.ModelSerializer[EndDevice]):
    gateway = serializers.CharField(source="gateway.serial", read_only=True)

    class Meta:
        model = EndDevice
        fields = [
            "id",
            "gateway",
            "lfdi",
            "sfdi",
            "pin",
            "registered_at",
            "last_contact",
            "link_state",
            "link_detail",
            "link_reported_at",
        ]
