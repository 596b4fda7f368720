"""Gateway-facing utility-link endpoints, mounted at /gw/v1/."""

from django.urls import path

from . import gateway_views

app_name = "csip-gw"

urlpatterns = [
    path("csip/certificate", gateway_views.UtilityCertificateView.as_view(), name="utility-certificate"),
]
