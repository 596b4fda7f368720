"""Import signatures made offline, and publish every staged role that reached its threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from firmware import services
from firmware.repo import get_repository, reset
from firmware.tuf.errors import RepositoryError, ThresholdNotMetError
from fleet.audit.services import record


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", help="signed N.role.json files")

    def handle(self, *args: Any, **options: Any) -> None:
        repo = get_repository()
        was_initialized = repo.is_initialized
        for name in options["files"]:
            path = Path(name)
            # "N.role.json" names the role; "role.json" leaves it to the repository to find out.
            rest = path.name.partition(".")[2]
            role = rest.partition(".")[0] if "." in rest else ""
            try:
                status = repo.add_signatures(path.read_bytes(), role)
            except (RepositoryError, OSError, ValueError) as e:
                raise CommandError(f"{path}: {e}") from e
            self.stdout.write(f"{role} v{status.version}: signed by {len(status.signed_by)}, missing {status.missing}")
        try:
            result = repo.publish_staged()
        except ThresholdNotMetError as e:
            self.stdout.write(f"Not published yet: {e}")
            return
        reset()  # online keys may have been rotated
        record(action="firmware.repository.import", detail={"published": result.offline_roles})
        if not was_initialized:
            services.rebin_all()
            services.publish()
        self.stdout.write(f"Published {', '.join(result.offline_roles)}; timestamp v{result.timestamp_version}")
