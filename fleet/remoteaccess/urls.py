from django.urls import path

from . import views

urlpatterns = [
    path("", views.SessionListView.as_view(), name="remoteaccess-sessions"),
    path("sessions/<uuid:pk>/", views.SessionDetailView.as_view(), name="remoteaccess-session"),
    path("sessions/<uuid:pk>/<str:action>/", views.SessionActionView.as_view(), name="remoteaccess-session-action"),
    path("gateways/<int:pk>/open/", views.OpenSessionView.as_view(), name="remoteaccess-open"),
]
