"""`manage.py demo_fleet`: create the demo fleet and an admin, print the login, and serve on HOST:PORT."""

from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fleet.inventory import demo


class Command(BaseCommand):
    help = "Create a demo fleet and admin user, then start the server (development only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--agents", type=int, default=6, help="Simulated gateway agents to run (0 for none).")
        parser.add_argument("--no-serve", action="store_true", help="Only create the data.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_fleet is for development; it refuses to run with DEBUG off.")
        credentials = demo.ensure_demo_admin()
        gateways = demo.ensure_demo_fleet()
        demo.ensure_demo_memberships(get_user_model().objects.get(username=credentials.username))
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(
            f"\nGridfleet demo: {len(gateways)} gateways in 2 organizations.\n"
            f"  Open {url} and log in as  {credentials.username} / {credentials.password}\n"
            f"  REST API docs: {url}api/docs/\n"
        ))
        if options["no_serve"]:
            return
        uvicorn.run("fleet.asgi:application", host=options["host"], port=options["port"], log_level="info")
