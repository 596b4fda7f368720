from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("commands", views.CommandViewSet, basename="command")

urlpatterns = router.urls
