"""Mounted at /tuf/: the TUF repository as plain files (see firmware/tuf_views.py)."""

from django.urls import path

from . import tuf_views

app_name = "tuf"

urlpatterns = [
    path("metadata/<str:name>", tuf_views.metadata, name="metadata"),
    path("targets/<path:path>", tuf_views.target, name="target"),
]
