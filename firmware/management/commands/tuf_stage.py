"""Stage a new version of an offline role for signing: root rotation, online key rotation, re-sign.

tuf_stage root --add-key new.pub.json --remove-keyid ID --threshold 2
tuf_stage root --rotate-online timestamp --rotate-online snapshot
tuf_stage bins-key            new online key for the hash bins (devices role N+1)
tuf_stage resign targets      same content, new version and expiry
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from firmware.repo import get_repository
from firmware.tuf.errors import RepositoryError
from firmware.tuf.keys import load_public_key
from fleet.audit.services import record


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("what", choices=["root", "bins-key", "resign"])
        parser.add_argument("role", nargs="?", help="for resign: root, targets, firmware or devices")
        parser.add_argument("--add-key", action="append", default=[])
        parser.add_argument("--remove-keyid", action="append", default=[])
        parser.add_argument("--threshold", type=int)
        parser.add_argument("--rotate-online", action="append", default=[], choices=["timestamp", "snapshot"])

    def handle(self, *args: Any, **options: Any) -> None:
        repo = get_repository()
        try:
            if options["what"] == "root":
                path = repo.draft_root(
                    add_keys=[load_public_key(Path(p)) for p in options["add_key"]],
                    remove_keyids=options["remove_keyid"],
                    threshold=options["threshold"],
                    rotate_online=options["rotate_online"],
                )
            elif options["what"] == "bins-key":
                path = repo.draft_bins_rotation()
            else:
                if not options["role"]:
                    raise CommandError("name the role to re-sign")
                path = repo.draft_resign(options["role"])
        except RepositoryError as e:
            raise CommandError(str(e)) from e
        record(
            action="firmware.repository.stage",
            detail={"file": path.name, **{k: options[k] for k in ("remove_keyid", "threshold", "rotate_online")}},
        )
        self.stdout.write(f"Staged {path}; export it, sign it offline and import it.")
