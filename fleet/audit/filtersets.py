import django_filters

from .models import AuditEntry


class AuditEntryFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(lookup_expr="startswith")
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains")
    organization = django_filters.CharFilter(field_name="organization__slug")
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["action", "actor", "organization", "target_type", "target_id", "ip"]
