from django.contrib import admin

from fleet.audit.admin import AuditedModelAdmin

from .models import Membership


@admin.register(Membership)
class MembershipAdmin(AuditedModelAdmin):
    list_display = ["user", "organization", "role", "created"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "organization__name"]
