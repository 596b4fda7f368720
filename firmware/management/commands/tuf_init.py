"""Stage version 1 of the offline roles (root, targets, firmware, devices) for signing.

Production: pass the public keys made on the offline machine (`python -m firmware.tuf.offline
keygen`), then export, sign and import (docs/tuf-repository.md). Demo/tests: `--dev-offline-keys
DIR` generates the offline keys in DIR and does every step here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from firmware import conf, services
from firmware.repo import RELEASE, get_keyring, get_repository
from firmware.tuf.bootstrap import generate_offline_keys, initialise
from firmware.tuf.errors import RepositoryError
from firmware.tuf.keys import load_public_key
from firmware.tuf.layout import recommended_bit_length
from firmware.tuf.repository import TufRepository
from fleet.audit.services import record


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--root-key", action="append", default=[], help="public key JSON (repeat)")
        parser.add_argument("--root-threshold", type=int, default=2)
        parser.add_argument("--targets-key", action="append", default=[])
        parser.add_argument("--targets-threshold", type=int, default=1)
        parser.add_argument("--release-key", action="append", default=[])
        parser.add_argument("--release-threshold", type=int, default=1)
        parser.add_argument(
            "--online-release-key",
            action="store_true",
            help="the server holds a release key and signs the firmware role itself",
        )
        parser.add_argument("--expected-gateways", type=int, default=10_000, help="sizes the hash bins")
        parser.add_argument("--bit-length", type=int, help="2^N hash bins (default: from --expected-gateways)")
        parser.add_argument("--dev-offline-keys", metavar="DIR", help="generate offline keys here and sign (demo)")
        parser.add_argument(
            "--skip-if-initialized", action="store_true", help="exit quietly if a root is already published (make demo)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if get_repository().is_initialized:
            if options["skip_if_initialized"]:
                self.stdout.write("The TUF repository is already initialised.")
                return
            raise CommandError("the repository is already initialised; use tuf_stage to rotate keys")
        bit_length = options["bit_length"] or recommended_bit_length(options["expected_gateways"])
        release_keys = [load_public_key(Path(p)) for p in options["release_key"]]
        if options["online_release_key"] or options["dev_offline_keys"]:
            release_keys.append(get_keyring().ensure([RELEASE])[RELEASE])
        repo = get_repository()  # holds the release signer if one was just created
        try:
            if options["dev_offline_keys"]:
                self._initialise_for_demo(repo, Path(options["dev_offline_keys"]), bit_length, options)
                return
            paths = repo.draft_initial(
                root_keys=[load_public_key(Path(p)) for p in options["root_key"]],
                root_threshold=options["root_threshold"],
                targets_keys=[load_public_key(Path(p)) for p in options["targets_key"]],
                targets_threshold=options["targets_threshold"],
                release_keys=release_keys,
                release_threshold=options["release_threshold"],
                bit_length=bit_length,
            )
        except RepositoryError as e:
            raise CommandError(str(e)) from e
        record(action="firmware.repository.init_staged", detail={"bins": 2**bit_length})
        self.stdout.write("Staged for offline signing:\n" + "\n".join(f"  {p}" for p in paths))
        self.stdout.write("Next: tuf_export, sign each file offline, tuf_import the signed files.")

    def _initialise_for_demo(self, repo: TufRepository, keys_dir: Path, bit_length: int, options: Any) -> None:
        keys = generate_offline_keys(keys_dir, conf.key_passphrase(), release=0)
        result = initialise(
            repo,
            keys,
            bit_length=bit_length,
            root_threshold=options["root_threshold"],
            release_signers=repo.release_signers,
        )
        record(action="firmware.repository.init_demo", detail={"bins": len(result.bins)})
        services.rebin_all()
        services.publish()
        self.stdout.write(
            f"Published root v1 and {len(result.bins)} hash bins; offline keys (demo only!) in {keys_dir}"
        )
