"""`manage.py pki_rotate_kek`: re-encrypt the CA keys from an old KEK to GRIDFLEET_PKI_KEK.

The old KEK is read from an environment variable (never a command-line argument, which other
users of the machine could read in the process list).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fleet.core.errors import DomainError
from pki import services


class Command(BaseCommand):
    help = "Re-encrypt the CA private keys from the old key-encryption key to the current GRIDFLEET_PKI_KEK."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--old-kek-env", default="GRIDFLEET_PKI_OLD_KEK", help="Environment variable holding the old KEK."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        old = os.environ.get(options["old_kek_env"], "")
        if not old:
            raise CommandError(f"Set {options['old_kek_env']} to the old key-encryption key.")
        try:
            count = services.rotate_kek(old_kek=old.encode())
        except DomainError as e:
            raise CommandError(e.message) from e
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} CA keys with the current GRIDFLEET_PKI_KEK."))
