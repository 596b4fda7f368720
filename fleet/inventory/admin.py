from django.contrib import admin

from fleet.audit.admin import AuditedModelAdmin

from .models import FieldDevice, Gateway, GatewayGroup, Organization, Site, Tag

for model in (Organization, Site, Tag, GatewayGroup, FieldDevice):
    admin.site.register(model, AuditedModelAdmin)


@admin.register(Gateway)
class GatewayAdmin(AuditedModelAdmin):
    list_display = ["serial", "organization", "site", "hardware_model", "firmware_version", "status", "last_seen"]
    list_filter = ["status", "organization", "hardware_model"]
    search_fields = ["serial", "name"]
