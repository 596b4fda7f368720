"""Copy staged offline-role metadata to a directory (e.g. a USB stick) for signing elsewhere."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from firmware.repo import get_repository


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out", help="directory to write N.role.json files to")
        parser.add_argument("roles", nargs="*", help="default: every staged role")

    def handle(self, *args: Any, **options: Any) -> None:
        repo = get_repository()
        roles = options["roles"] or repo.staged_roles()
        if not roles:
            raise CommandError("nothing is staged")
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        for role in roles:
            md = repo.staged(role)
            if md is None:
                raise CommandError(f"no staged {role}")
            target = out / f"{md.signed.version}.{role}.json"
            shutil.copyfile(repo.staging_dir / target.name, target)
            status = repo.signing_status(role)
            self.stdout.write(f"{target}  ({len(status.signed_by)} signature(s), {status.missing} missing)")
        self.stdout.write("Sign with: python -m firmware.tuf.offline sign FILE --key KEYFILE")
