from __future__ import annotations

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("authorities", views.CertificateAuthorityViewSet, basename="pki-authority")
router.register("certificates", views.DeviceCertificateViewSet, basename="pki-certificate")
router.register("enrollment-tokens", views.EnrollmentTokenViewSet, basename="pki-enrollment-token")
router.register("enrollment-requests", views.EnrollmentRequestViewSet, basename="pki-enrollment-request")
router.register("trust-anchors", views.TrustAnchorViewSet, basename="pki-trust-anchor")

urlpatterns = router.urls
