from __future__ import annotations

from django.urls import path, re_path

from pki import views

urlpatterns = [
    path("", views.OverviewView.as_view(), name="pki-overview"),
    path("certificates/", views.CertificateListView.as_view(), name="pki-certificates"),
    path("certificates/<int:pk>/revoke/", views.RevokeView.as_view(), name="pki-revoke"),
    path("tokens/", views.TokenListView.as_view(), name="pki-tokens"),
    re_path(
        r"^requests/(?P<pk>[0-9]+)/(?P<decision>accept|reject)/$",
        views.EnrollmentDecisionView.as_view(),
        name="pki-enrollment-decision",
    ),
    path("tokens/<int:pk>/withdraw/", views.TokenWithdrawView.as_view(), name="pki-token-withdraw"),
    path("trust-anchors/<int:pk>/remove/", views.TrustAnchorRemoveView.as_view(), name="pki-trust-anchor-remove"),
    path("trust-anchors/import/", views.TrustAnchorImportView.as_view(), name="pki-trust-anchor-import"),
]
