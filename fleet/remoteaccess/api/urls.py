from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("sessions", views.MaintenanceSessionViewSet, basename="maintenancesession")

urlpatterns = router.urls
