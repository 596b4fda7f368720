"""Web UI of deployments, mounted at /deployments/ (URL names unprefixed, as the navigation expects)."""

from __future__ import annotations

from django.urls import path, re_path

from . import views
from .services import OPERATIONS

urlpatterns = [
    path("", views.DeploymentListView.as_view(), name="deployment-list"),
    path("new/", views.DeploymentCreateView.as_view(), name="deployment-create"),
    path("preview/", views.DeploymentPreviewView.as_view(), name="deployment-preview"),
    path("<int:pk>/", views.DeploymentDetailView.as_view(), name="deployment-detail"),
    path("<int:pk>/progress/", views.DeploymentProgressView.as_view(), name="deployment-progress"),
    re_path(
        rf"^(?P<pk>\d+)/(?P<operation>{'|'.join(OPERATIONS)})/$",
        views.DeploymentOperationView.as_view(),
        name="deployment-operate",
    ),
    path("actions/<int:pk>/", views.GatewayActionView.as_view(), name="deployment-action"),
]
