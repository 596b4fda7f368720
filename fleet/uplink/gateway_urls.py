"""Gateway-facing uplink endpoints, mounted at /gw/v1/."""

from django.urls import path

from . import gateway_views

app_name = "uplink-gw"

urlpatterns = [path("logs/<uuid:command_id>", gateway_views.LogUploadView.as_view(), name="log-upload")]
