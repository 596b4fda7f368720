from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("entries", views.AuditEntryViewSet, basename="auditentry")

urlpatterns = router.urls
