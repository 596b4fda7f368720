from __future__ import annotations

from typing import Any

from rest_framework import serializers

from fleet.core.api import StrictFieldsMixin
from fleet.uplink.api.serializers import VisibleGatewayField

from ..models import MaintenanceSession, SessionConnection


class SessionConnectionSerializer(serializers.ModelSerializer[SessionConnection]):
    class Meta:
        model = SessionConnection
        fields = ["stream", "opened_at", "closed_at", "bytes_up", "bytes_down", "close_reason"]


class SerialFramingSerializer(serializers.Serializer[Any]):
    baudrate = serializers.IntegerField(required=False, min_value=50, max_value=4_000_000)
    bytesize = serializers.ChoiceField(choices=[5, 6, 7, 8], required=False)
    parity = serializers.ChoiceField(choices=["N", "E", "O", "M", "S"], required=False)
    stopbits = serializers.ChoiceField(choices=[1, 1.5, 2], required=False)


class MaintenanceSessionSerializer(StrictFieldsMixin, serializers.ModelSerializer[MaintenanceSession]):
    gateway = VisibleGatewayField()
    gateway_serial = serializers.CharField(source="gateway.serial", read_only=True)
    target = serializers.CharField(
        write_only=True,
        required=False,
        default="",
        help_text="TCP: DEVICE, DEVICE:PORT or HOST:PORT; serial: the port (e.g. /dev/ttyS1); terminal: empty.",
    )
    serial = SerialFramingSerializer(write_only=True, required=False)
    duration_minutes = serializers.IntegerField(write_only=True, required=False, min_value=1, max_value=7 * 24 * 60)
    requested_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    approved_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    connection_log = SessionConnectionSerializer(many=True, read_only=True)
    technician_url = serializers.SerializerMethodField()
    recording_url = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceSession
        fields = [
            "id",
            "gateway",
            "gateway_serial",
            "kind",
            "target",
            "serial",
            "target_label",
            "reason",
            "duration_minutes",
            "state",
            "requested_by",
            "approved_by",
            "created",
            "approved_at",
            "expires_at",
            "connected_at",
            "ended_at",
            "end_reason",
            "bytes_up",
            "bytes_down",
            "connections",
            "connection_log",
            "technician_url",
            "recording_url",
        ]
        read_only_fields = [
            f for f in fields if f not in {"gateway", "kind", "target", "serial", "reason", "duration_minutes"}
        ]

    def get_technician_url(self, session: MaintenanceSession) -> str:
        """Where the technician's tool connects (WebSocket, same host)."""
        return f"/ws/remote/v1/sessions/{session.pk}/"

    def get_recording_url(self, session: MaintenanceSession) -> str | None:
        return f"/api/remote-access/sessions/{session.pk}/recording/" if session.recording else None
