from django.urls import path

from . import views

urlpatterns = [path("gateways/<int:pk>/commands/", views.GatewayCommandView.as_view(), name="gateway-command")]
