from typing import Any

from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    list_display = ["timestamp", "actor_label", "action", "target_repr", "organization_id", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_label", "action", "target_repr"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class AuditedModelAdmin(admin.ModelAdmin[Any]):
    """Django admin is a write path like any other: its saves and deletes are audited too."""

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        from .services import record, request_ip, snapshot

        before = snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        action = "update" if change else "create"
        record(
            action=f"{obj._meta.model_name}.{action}",
            target=obj,
            user=request.user,
            ip=request_ip(request),
            before=before,
            after=snapshot(obj),
            detail={"via": "admin"},
        )

    def delete_model(self, request: Any, obj: Any) -> None:
        from .services import record, request_ip, snapshot

        record(
            action=f"{obj._meta.model_name}.delete",
            target=obj,
            user=request.user,
            ip=request_ip(request),
            before=snapshot(obj),
            detail={"via": "admin"},
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
