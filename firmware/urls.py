"""Web UI of the firmware app, mounted at /firmware/ (URL names unprefixed, as the navigation expects)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.ArtifactListView.as_view(), name="artifact-list"),
    path("upload/", views.ArtifactUploadView.as_view(), name="artifact-upload"),
    path("artifacts/<int:pk>/", views.ArtifactDetailView.as_view(), name="artifact-detail"),
    path("gateways/<int:pk>/config/", views.GatewayBundleView.as_view(kind="config"), name="gateway-config-build"),
    path("gateways/<int:pk>/license/", views.GatewayBundleView.as_view(kind="license"), name="gateway-license"),
    path("repository/", views.RepositoryView.as_view(), name="tuf-repository"),
]
