from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability

from .filtersets import AuditEntryFilterSet
from .selectors import audit_entries_visible_to


class AuditLogView(CapabilityRequiredMixin, View):
    read_capability = Capability.VIEW_AUDIT

    def get(self, request: HttpRequest) -> HttpResponse:
        filterset = AuditEntryFilterSet(request.GET, queryset=audit_entries_visible_to(request.user))
        page = Paginator(filterset.qs.select_related("organization"), 50).get_page(request.GET.get("page"))
        template = "audit/_entries.html" if request.htmx else "audit/entry_list.html"  # type: ignore[attr-defined]
        return TemplateResponse(request, template, {"filter": filterset, "page": page})
