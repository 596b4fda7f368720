"""WebSocket routes of the uplink, mounted by fleet.routing under /ws/gateway/ (behind pki's auth)."""

from django.urls import path

from .consumer import GatewayConsumer

websocket_urlpatterns = [path("v1/", GatewayConsumer.as_asgi())]
