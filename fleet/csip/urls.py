from django.urls import path

from . import views

urlpatterns = [
    path("", views.ProgramListView.as_view(), name="csip-programs"),
    path("programs/<int:pk>/controls", views.ControlCreateView.as_view(), name="csip-control-create"),
    path("controls/<int:pk>", views.ControlDetailView.as_view(), name="csip-control"),
]
