from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("welcome/", views.FirstRunView.as_view(), name="first-run"),
    path("gateways/", views.GatewayListView.as_view(), name="gateway-list"),
    path("gateways/<int:pk>/", views.GatewayDetailView.as_view(), name="gateway-detail"),
    path("sites/", views.SiteListView.as_view(), name="site-list"),
    path("sites/<int:pk>/", views.SiteDetailView.as_view(), name="site-detail"),
    path("groups/", views.GroupListView.as_view(), name="group-list"),
    path("groups/<int:pk>/", views.GroupDetailView.as_view(), name="group-detail"),
    re_path(r"^(?P<kind>sites|gateways)/import/$", views.InventoryImportView.as_view(), name="inventory-import"),
    re_path(r"^(?P<kind>sites|gateways)/export\.csv$", views.InventoryExportView.as_view(), name="inventory-export"),
]
