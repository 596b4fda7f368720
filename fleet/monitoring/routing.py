"""Browser WebSocket routes of monitoring, mounted by fleet.routing (session auth + Origin check)."""

from django.urls import path

from .consumers import ConsoleConsumer

websocket_urlpatterns = [path("ws/console/", ConsoleConsumer.as_asgi())]
