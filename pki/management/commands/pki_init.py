"""`manage.py pki_init`: create the root and issuing CA (or rotate the issuing CA)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fleet.core.errors import DomainError
from pki import services
from pki.models import CertificateAuthority


class Command(BaseCommand):
    help = "Create Gridfleet's root and issuing CA (ECDSA P-256, keys encrypted with GRIDFLEET_PKI_KEK)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="Gridfleet", help="Organization name put in the CA subjects.")
        parser.add_argument(
            "--rotate-issuing", action="store_true", help="Create a new issuing CA under the existing root."
        )
        parser.add_argument("--if-missing", action="store_true", help="Do nothing (exit 0) when the CA already exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        exists = CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ROOT).exists()
        if exists and options["if_missing"] and not options["rotate_issuing"]:
            self.stdout.write("The CA already exists; nothing to do.")
            return
        try:
            issuing = services.initialize_ca(name=options["name"], rotate_issuing=options["rotate_issuing"])
        except DomainError as e:
            raise CommandError(e.message) from e
        root = issuing.parent
        assert root is not None
        self.stdout.write(self.style.SUCCESS(f"Root CA:    {root.name}  sha256={root.sha256}"))
        self.stdout.write(self.style.SUCCESS(f"Issuing CA: {issuing.name}  sha256={issuing.sha256}"))
        self.stdout.write(f"Valid until {issuing.not_after:%Y-%m-%d}; chain at /gw/v1/pki/ca-chain.pem")
