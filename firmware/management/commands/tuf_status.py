"""Print role versions and expiries, and what waits for offline signatures."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from firmware.repo import get_repository


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(get_repository().status(), indent=2))
