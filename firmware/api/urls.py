"""Mounted at /api/firmware/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("artifacts", views.ArtifactViewSet, basename="artifact")
router.register("assignments", views.AssignmentViewSet, basename="assignment")
router.register("device-bundles", views.DeviceBundleViewSet, basename="device-bundle")
router.register("config-templates", views.ConfigTemplateViewSet, basename="config-template")
router.register("config-values", views.ConfigValuesViewSet, basename="config-values")

urlpatterns = [
    path("licenses/", views.LicenseView.as_view(), name="license-issue"),
    path("configs/", views.ConfigBuildView.as_view(), name="config-build"),
    path("gateways/<int:gateway_id>/reissue-token/", views.ChannelReissueView.as_view(), name="channel-reissue"),
    path("repository/", views.RepositoryStatusView.as_view(), name="repository-status"),
    *router.urls,
]
