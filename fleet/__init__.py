"""Gridfleet server: project configuration (settings, URLs, ASGI, Celery, routing), `core` (code the
apps share) and the core apps.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
