from django.urls import path

from . import views

urlpatterns = [
    path("alarms/", views.AlarmConsoleView.as_view(), name="alarm-console"),
    path("alarms/summary/", views.OpenAlarmSummaryView.as_view(), name="alarm-summary"),
    path("alarms/bulk/", views.AlarmBulkActionView.as_view(), name="alarm-bulk-action"),
    path("alarms/<int:pk>/", views.AlarmDetailView.as_view(), name="alarm-detail"),
    path("alarms/<int:pk>/<slug:action>/", views.AlarmActionView.as_view(), name="alarm-action"),
    path("logs/", views.LogSearchView.as_view(), name="log-search"),
    path("gateways/<int:pk>/logs/", views.LogSearchView.as_view(), name="gateway-logs"),
    path("gateways/<int:pk>/telemetry/", views.GatewayTelemetryView.as_view(), name="gateway-telemetry"),
]
