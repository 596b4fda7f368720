"""The Celery application. Tasks are thin wrappers around services; see each app's tasks.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")

app = Celery("gridfleet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
