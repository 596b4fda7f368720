"""Publish pending changes now (what the Celery task does), or re-sign roles near expiry."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from firmware import services


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--resign", action="store_true", help="re-sign roles close to expiry instead")

    def handle(self, *args: Any, **options: Any) -> None:
        result = services.resign() if options["resign"] else services.publish()
        if result is None:
            self.stdout.write("The repository is not initialised (tuf_init).")
            return
        self.stdout.write(
            f"bins {len(result.bins)}, snapshot v{result.snapshot_version}, timestamp v{result.timestamp_version}"
            + "".join(f"\nwarning: {w}" for w in result.warnings)
        )
