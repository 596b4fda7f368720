"""PKI web UI (admins only): CA overview, certificates, enrollment tokens, trust anchors."""

from __future__ import annotations

import contextlib
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError, PermissionDeniedError
from pki import selectors, services
from pki.api.views import tokens_csv_response
from pki.errors import CANotInitializedError
from pki.filtersets import DeviceCertificateFilterSet
from pki.forms import EnrollmentTokenBatchForm, EnrollmentTokenForm, RevokeForm, TrustAnchorForm
from pki.models import DeviceCertificate, EnrollmentRequest


class PkiAdminMixin(CapabilityRequiredMixin):
    read_capability = Capability.MANAGE_PKI


def _page(request: HttpRequest, rows: Any) -> Any:
    return Paginator(rows, 50).get_page(request.GET.get("page"))


class OverviewView(PkiAdminMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        certificates = selectors.certificates_visible_to(request.user)
        crl = None
        with contextlib.suppress(CANotInitializedError):
            crl = selectors.current_crl()
        return TemplateResponse(
            request,
            "pki/overview.html",
            {
                "authorities": selectors.authorities(),
                "crl": crl,
                "active_count": certificates.filter(status=DeviceCertificate.Status.ACTIVE).count(),
                "revoked_count": certificates.filter(status=DeviceCertificate.Status.REVOKED).count(),
                "pending": selectors.enrollment_requests_visible_to(request.user).filter(
                    status=EnrollmentRequest.Status.PENDING
                ),
                "anchors": selectors.trust_anchors_visible_to(request.user),
            },
        )


class CertificateListView(PkiAdminMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        filterset = DeviceCertificateFilterSet(request.GET, queryset=selectors.certificates_visible_to(request.user))
        rows = filterset.qs if filterset.is_valid() else DeviceCertificate.objects.none()
        return TemplateResponse(
            request, "pki/certificate_list.html", {"filter": filterset, "page": _page(request, rows)}
        )


class RevokeView(PkiAdminMixin, View):
    def _certificate(self, request: HttpRequest, pk: int) -> DeviceCertificate:
        return get_object_or_404(selectors.certificates_visible_to(request.user), pk=pk)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        context = {"certificate": self._certificate(request, pk), "form": RevokeForm()}
        return TemplateResponse(request, "pki/revoke.html", context)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        certificate = self._certificate(request, pk)
        form = RevokeForm(request.POST)
        if not form.is_valid():
            return TemplateResponse(request, "pki/revoke.html", {"certificate": certificate, "form": form}, status=400)
        try:
            services.revoke_certificate(
                certificate=certificate, reason=form.cleaned_data["reason"], user=request.user, ip=request_ip(request)
            )
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as e:
            form.add_error(None, e.message)
            return TemplateResponse(request, "pki/revoke.html", {"certificate": certificate, "form": form}, status=400)
        messages.success(request, f"Revoked certificate {certificate.serial_number} of {certificate.gateway.serial}.")
        return HttpResponseRedirect(reverse("pki-certificates") + f"?gateway={certificate.gateway_id}")


class TokenListView(PkiAdminMixin, View):
    def _render(self, request: HttpRequest, status: int = 200, **forms: Any) -> HttpResponse:
        organizations = selectors.pki_organizations(request.user)
        context = {
            "form": forms.get("form") or EnrollmentTokenForm(organizations=organizations),
            "batch_form": forms.get("batch_form") or EnrollmentTokenBatchForm(organizations=organizations),
            "created": forms.get("created"),
            "page": _page(request, selectors.enrollment_tokens_visible_to(request.user)),
        }
        return TemplateResponse(request, "pki/token_list.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        organizations = selectors.pki_organizations(request.user)
        if "serials" in request.POST:
            batch_form = EnrollmentTokenBatchForm(request.POST, organizations=organizations)
            if not batch_form.is_valid():
                return self._render(request, 400, batch_form=batch_form)
            data = batch_form.cleaned_data
            try:
                tokens = services.create_enrollment_token_batch(
                    organization=data["organization"],
                    serials=data["serials"],
                    user=request.user,
                    batch=data["batch"],
                    valid_hours=data["valid_hours"],
                    ip=request_ip(request),
                )
            except PermissionDeniedError:
                raise  # a refusal by role is a 403 page, not a message
            except DomainError as e:
                batch_form.add_error("serials", e.message)
                return self._render(request, 400, batch_form=batch_form)
            return tokens_csv_response(tokens, filename=data["batch"] or "enrollment-tokens")
        form = EnrollmentTokenForm(request.POST, organizations=organizations)
        if not form.is_valid():
            return self._render(request, 400, form=form)
        data = form.cleaned_data
        try:
            token, secret = services.create_enrollment_token(
                organization=data["organization"],
                serial=data["serial"],
                user=request.user,
                reenroll=data["reenroll"],
                valid_hours=data["valid_hours"],
                ip=request_ip(request),
            )
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as e:
            form.add_error("serial", e.message)
            return self._render(request, 400, form=form)
        return self._render(request, created={"token": token, "secret": secret})


class EnrollmentDecisionView(PkiAdminMixin, View):
    def post(self, request: HttpRequest, pk: int, decision: str) -> HttpResponse:
        enrollment = get_object_or_404(selectors.enrollment_requests_visible_to(request.user), pk=pk)
        decide = services.accept_enrollment_request if decision == "accept" else services.reject_enrollment_request
        try:
            decide(request=enrollment, user=request.user, ip=request_ip(request))
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as e:
            messages.error(request, e.message)
        else:
            messages.success(request, f"Enrollment of {enrollment.gateway.serial}: {decision}ed.")
        return HttpResponseRedirect(reverse("pki-overview"))


class TrustAnchorImportView(PkiAdminMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        form = TrustAnchorForm(organizations=selectors.pki_organizations(request.user))
        return TemplateResponse(request, "pki/trust_anchor_import.html", {"form": form})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TrustAnchorForm(request.POST, organizations=selectors.pki_organizations(request.user))
        if form.is_valid():
            organization = form.cleaned_data["organization"]
            try:
                anchor = services.import_trust_anchor(
                    organization=organization,
                    name=form.cleaned_data["name"],
                    certificate_pem=form.cleaned_data["certificate_pem"],
                    user=request.user,
                    ip=request_ip(request),
                )
            except PermissionDeniedError:
                raise  # a refusal by role is a 403 page, not a message
            except DomainError as e:
                form.add_error("certificate_pem", e.message)
            else:
                messages.success(request, f"Imported trust anchor {anchor.name}.")
                return HttpResponseRedirect(reverse("pki-overview"))
        return TemplateResponse(request, "pki/trust_anchor_import.html", {"form": form}, status=400)


class TokenWithdrawView(PkiAdminMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        token = get_object_or_404(selectors.enrollment_tokens_visible_to(request.user), pk=pk)
        services.withdraw_enrollment_token(token=token, user=request.user, ip=request_ip(request))
        messages.success(request, f"Withdrew the enrollment token for {token.serial}.")
        return HttpResponseRedirect(reverse("pki-tokens"))


class TrustAnchorRemoveView(PkiAdminMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        anchor = get_object_or_404(selectors.trust_anchors_visible_to(request.user), pk=pk)
        services.remove_trust_anchor(anchor=anchor, user=request.user, ip=request_ip(request))
        messages.success(request, f"Removed trust anchor {anchor.name}.")
        return HttpResponseRedirect(reverse("pki-overview"))


def gateway_certificates_panel(request: HttpRequest, gateway: Any) -> tuple[str, dict[str, Any]] | None:
    """The certificates section of the gateway page, for PKI admins of the gateway's organization."""
    if not selectors.pki_organizations(request.user).filter(pk=gateway.organization_id).exists():
        return None
    certificates = selectors.certificates_visible_to(request.user).filter(gateway=gateway)
    return "pki/_gateway_panel.html", {"certificates": certificates, "gateway": gateway}
