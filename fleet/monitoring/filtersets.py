import django_filters
from django.db.models import Q, QuerySet

from .lifecycle import OPEN_STATES, AlarmState, Severity
from .models import LOG_LEVEL_RANK, Alarm, LogEntry, LogLevel


class AlarmFilterSet(django_filters.FilterSet):
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    state = django_filters.MultipleChoiceFilter(choices=AlarmState.choices)
    open = django_filters.BooleanFilter(method="filter_open", label="Open (not closed)")
    organization = django_filters.CharFilter(field_name="organization__slug")
    site = django_filters.NumberFilter(field_name="site_id")
    gateway = django_filters.NumberFilter(field_name="gateway_id")
    gateway_serial = django_filters.CharFilter(field_name="gateway__serial", lookup_expr="icontains")
    code = django_filters.CharFilter(lookup_expr="icontains")
    source = django_filters.CharFilter()
    device = django_filters.CharFilter()
    raised_after = django_filters.IsoDateTimeFilter(field_name="last_raised_at", lookup_expr="gte")
    raised_before = django_filters.IsoDateTimeFilter(field_name="last_raised_at", lookup_expr="lt")
    hidden = django_filters.BooleanFilter(method="filter_hidden", label="Shelved, suppressed or out of service")

    class Meta:
        model = Alarm
        fields = ["severity", "state", "site", "gateway", "code", "source", "device"]

    def filter_open(self, queryset: QuerySet[Alarm], name: str, value: bool | None) -> QuerySet[Alarm]:
        if value is None:
            return queryset
        return queryset.filter(state__in=OPEN_STATES) if value else queryset.filter(state=AlarmState.CLOSED)

    def filter_hidden(self, queryset: QuerySet[Alarm], name: str, value: bool | None) -> QuerySet[Alarm]:
        from django.utils import timezone

        if value is None:
            return queryset
        hidden = Q(shelved_until__gt=timezone.now()) | Q(suppressed=True) | Q(out_of_service=True)
        return queryset.filter(hidden) if value else queryset.exclude(hidden)


class LogEntryFilterSet(django_filters.FilterSet):
    gateway = django_filters.NumberFilter(field_name="gateway_id")
    gateway_serial = django_filters.CharFilter(field_name="gateway__serial")
    level = django_filters.MultipleChoiceFilter(choices=LogLevel.choices)
    min_level = django_filters.ChoiceFilter(choices=LogLevel.choices, method="filter_min_level")
    q = django_filters.CharFilter(field_name="message", lookup_expr="icontains", label="Text")
    logger = django_filters.CharFilter(lookup_expr="startswith")
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = LogEntry
        fields = ["gateway", "level", "logger"]

    def filter_min_level(self, queryset: QuerySet[LogEntry], name: str, value: str) -> QuerySet[LogEntry]:
        if not value:
            return queryset
        return queryset.filter(level__in=[lvl for lvl, rank in LOG_LEVEL_RANK.items() if rank >= LOG_LEVEL_RANK[value]])
