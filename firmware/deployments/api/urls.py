"""Mounted at /api/deployments/."""

from __future__ import annotations

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from ..services import OPERATIONS
from . import views

router = SimpleRouter()
router.register("", views.DeploymentViewSet, basename="deployment")

urlpatterns = [
    path("actions/<int:pk>/", views.GatewayActionView.as_view(), name="deployment-action-api"),
    re_path(
        rf"^(?P<pk>\d+)/(?P<operation>{'|'.join(OPERATIONS)})/$",
        views.DeploymentOperationView.as_view(),
        name="deployment-operation",
    ),
    *router.urls,
]
