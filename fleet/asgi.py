"""ASGI entry point: Django for HTTP, Channels for WebSockets (see fleet.routing).

Run with `uvicorn fleet.asgi:application` (or daphne).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from fleet.core.scheduler import with_inprocess_scheduler  # noqa: E402
from fleet.routing import build_websocket_router  # noqa: E402

application = with_inprocess_scheduler(
    ProtocolTypeRouter({"http": django_asgi_app, "websocket": build_websocket_router()})
)
