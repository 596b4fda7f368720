from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("programs", views.DerProgramViewSet, basename="program")
router.register("controls", views.DerControlViewSet, basename="control")
router.register("end-devices", views.EndDeviceViewSet, basename="end-device")

urlpatterns = router.urls
