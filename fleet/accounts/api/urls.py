from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("memberships", views.MembershipViewSet, basename="membership")

urlpatterns = [
    path("me/", views.CurrentUserView.as_view(), name="current-user"),
    path("users/", views.UserCreateView.as_view(), name="user-create"),
    path("token/", obtain_auth_token, name="api-token"),
    *router.urls,
]
