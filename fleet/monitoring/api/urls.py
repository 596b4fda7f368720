from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("alarms", views.AlarmViewSet, basename="alarm")
router.register("logs", views.LogEntryViewSet, basename="logentry")
router.register("telemetry/latest", views.TelemetryLatestViewSet, basename="telemetry-latest")
router.register("notification-routes", views.NotificationRouteViewSet, basename="notificationroute")
router.register("silences", views.SilenceViewSet, basename="silence")
router.register("settings", views.MonitoringSettingsViewSet, basename="monitoringsettings")

urlpatterns = [
    path("telemetry/series/", views.TelemetrySeriesView.as_view(), name="telemetry-series"),
    *router.urls,
]
