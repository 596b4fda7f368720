from django.contrib import admin

from .models import MaintenanceSession, RemoteAccessPolicy


@admin.register(RemoteAccessPolicy)
class RemoteAccessPolicyAdmin(admin.ModelAdmin[RemoteAccessPolicy]):
    list_display = ["organization", "require_approval", "max_duration", "idle_timeout"]


@admin.register(MaintenanceSession)
class MaintenanceSessionAdmin(admin.ModelAdmin[MaintenanceSession]):
    list_display = ["created", "gateway", "requested_by", "target_label", "state", "bytes_up", "bytes_down"]
    list_filter = ["state", "kind"]
    readonly_fields = [f.name for f in MaintenanceSession._meta.fields]
