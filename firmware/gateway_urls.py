"""Gateway-facing update endpoints, mounted at /gw/v1/ (docs/protocol/updates.md)."""

from __future__ import annotations

from django.urls import path

from . import gateway_views

app_name = "firmware-gw"

urlpatterns = [
    path("updates/channel", gateway_views.UpdateChannelView.as_view(), name="update-channel"),
]
