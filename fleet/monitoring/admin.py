"""Django admin for superusers: per-organization monitoring settings (retention, offline threshold,
shelving limit), notification routes and silences. Alarms are triaged in the console, not here."""

from django.contrib import admin

from fleet.audit.admin import AuditedModelAdmin

from .models import MonitoringSettings, NotificationRoute, Silence


@admin.register(MonitoringSettings)
class MonitoringSettingsAdmin(AuditedModelAdmin):
    list_display = [
        "organization",
        "log_retention_days",
        "telemetry_retention_days",
        "offline_after_seconds",
        "max_shelve_hours",
    ]


@admin.register(NotificationRoute)
class NotificationRouteAdmin(AuditedModelAdmin):
    list_display = ["name", "organization", "channel", "target", "enabled"]
    list_filter = ["channel", "enabled", "organization"]


@admin.register(Silence)
class SilenceAdmin(AuditedModelAdmin):
    list_display = ["organization", "matchers", "starts_at", "ends_at", "created_by"]
