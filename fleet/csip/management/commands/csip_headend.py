"""Serve the CSIP head-end over mutual TLS (docs/utility-link.md)."""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from fleet.csip.headend import HeadEnd
from fleet.csip.utility_pki import test_utility_pki


class Command(BaseCommand):
    help = "Serve the IEEE 2030.5 / CSIP resource tree over HTTPS with mutual TLS (TLS 1.2, CCM8)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.GRIDFLEET_CSIP_HOST)
        parser.add_argument("--port", type=int, default=settings.GRIDFLEET_CSIP_PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        pki = test_utility_pki(now=timezone.now())
        headend = HeadEnd(pki=pki, host=options["host"], port=options["port"])
        self.stdout.write(f"CSIP head-end on {headend.url}/sep2/dcap (client CA {pki.ca_certificate_path})")
        with contextlib.suppress(KeyboardInterrupt):
            headend.serve_forever()
