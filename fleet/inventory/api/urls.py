from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("organizations", views.OrganizationViewSet, basename="organization")
router.register("sites", views.SiteViewSet, basename="site")
router.register("gateways", views.GatewayViewSet, basename="gateway")
router.register("groups", views.GatewayGroupViewSet, basename="gatewaygroup")
router.register("field-devices", views.FieldDeviceViewSet, basename="fielddevice")

urlpatterns = router.urls
