"""URL map: web UI, REST API under /api/, gateway-facing endpoints under /gw/v1/, TUF files under /tuf/."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from fleet.core import health

api_patterns = [
    path("inventory/", include(("fleet.inventory.api.urls", "inventory-api"))),
    path("accounts/", include(("fleet.accounts.api.urls", "accounts-api"))),
    path("audit/", include(("fleet.audit.api.urls", "audit-api"))),
    path("firmware/", include(("firmware.api.urls", "firmware-api"))),
    path("pki/", include(("pki.api.urls", "pki-api"))),
    path("monitoring/", include(("fleet.monitoring.api.urls", "monitoring-api"))),
    path("uplink/", include(("fleet.uplink.api.urls", "uplink-api"))),
    path("deployments/", include(("firmware.deployments.api.urls", "deployments-api"))),
    path("csip/", include(("fleet.csip.api.urls", "csip-api"))),
    path("remote-access/", include(("fleet.remoteaccess.api.urls", "remoteaccess-api"))),
]

gateway_patterns: list[URLPattern | URLResolver] = [
    path("", include("pki.gateway_urls")),
    path("", include("firmware.gateway_urls")),
    path("", include("fleet.uplink.gateway_urls")),
    path("", include("fleet.csip.gateway_urls")),
]

urlpatterns = [
    path("", include("fleet.inventory.urls")),
    path("audit/", include("fleet.audit.urls")),
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz/live", health.live, name="health-live"),
    path("healthz/ready", health.ready, name="health-ready"),
    path("api/", include(api_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("gw/v1/", include(gateway_patterns)),
    path("firmware/", include("firmware.urls")),
    path("pki/", include("pki.urls")),
    path("monitoring/", include("fleet.monitoring.urls")),
    path("uplink/", include("fleet.uplink.urls")),
    path("tuf/", include("firmware.tuf_urls")),
    path("deployments/", include("firmware.deployments.urls")),
    path("remote-access/", include("fleet.remoteaccess.urls")),
    path("csip/", include("fleet.csip.urls")),
    # The IEEE 2030.5 resource tree; answered only through the mutual-TLS head-end (fleet.csip.headend).
    path("sep2/", include("fleet.csip.urls_sep2")),
]
