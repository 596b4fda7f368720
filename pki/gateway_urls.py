"""Gateway-facing identity endpoints, mounted at /gw/v1/ (docs/protocol/identity.md)."""

from __future__ import annotations

from django.urls import path

from pki import gateway_views

app_name = "pki-gw"

urlpatterns = [
    path("enroll", gateway_views.EnrollView.as_view(), name="enroll"),
    path("enroll/<uuid:request_id>", gateway_views.EnrollmentStatusView.as_view(), name="enroll-status"),
    path("auth/token", gateway_views.AccessTokenView.as_view(), name="auth-token"),
    path("identity", gateway_views.IdentityView.as_view(), name="identity"),
    path("certificate/renew", gateway_views.RenewView.as_view(), name="renew"),
    path("pki/ca-chain.pem", gateway_views.CAChainView.as_view(), name="ca-chain"),
    path("pki/crl.der", gateway_views.CRLView.as_view(), name="crl-der"),
    path("pki/crl.pem", gateway_views.CRLView.as_view(pem=True), name="crl-pem"),
    path("pki/ca-bundle.pem", gateway_views.CABundleView.as_view(), name="ca-bundle"),
    path("pki/crl/<int:authority_id>.der", gateway_views.AuthorityCRLView.as_view(), name="crl-authority-der"),
    path(
        "pki/crl/<int:authority_id>.pem",
        gateway_views.AuthorityCRLView.as_view(pem=True),
        name="crl-authority-pem",
    ),
]
