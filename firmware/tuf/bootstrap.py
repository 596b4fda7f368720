"""Create a repository whose offline keys are generated locally: for demos, tests and benchmarks.

Production repositories are initialised with public keys only (`tuf_init --root-key ...`) and
signed on the offline machine; this does the same steps in one process, so it exercises the
same export/sign/import path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from securesystemslib.signer import Signer

from .keys import generate_key_file, load_file_signer
from .layout import DEVICES, FIRMWARE, ROOT, TARGETS
from .repository import PublishResult, TufRepository


@dataclass
class OfflineKeys:
    root: list[Signer]
    targets: list[Signer]
    release: list[Signer]


def generate_offline_keys(
    directory: Path, passphrase: str, *, root: int = 3, targets: int = 1, release: int = 1
) -> OfflineKeys:
    def make(name: str, count: int) -> list[Signer]:
        signers = []
        for i in range(1, count + 1):
            path = directory / f"{name}-{i}.pem"
            if not path.exists():
                generate_key_file(path, passphrase)
            signers.append(load_file_signer(path, passphrase))
        return signers

    return OfflineKeys(root=make("root", root), targets=make("targets", targets), release=make("release", release))


def sign_staged(repo: TufRepository, role: str, signers: list[Signer]) -> None:
    """What an offline signer does to an exported file, then importing the result."""
    md = repo.staged(role)
    if md is None:
        raise ValueError(f"no staged {role}")
    for signer in signers:
        md.sign(signer, append=True)
    repo.add_signatures(md.to_bytes(), role)


def initialise(
    repo: TufRepository,
    keys: OfflineKeys,
    *,
    bit_length: int,
    root_threshold: int = 2,
    release_signers: list[Signer] | None = None,
) -> PublishResult:
    """Stage, sign (a threshold of root keys) and publish version 1. `release_signers` replaces
    `keys.release` when the server holds the release key itself."""
    release = keys.release if release_signers is None else release_signers
    repo.draft_initial(
        root_keys=[s.public_key for s in keys.root],
        root_threshold=root_threshold,
        targets_keys=[s.public_key for s in keys.targets],
        targets_threshold=1,
        release_keys=[s.public_key for s in release],
        release_threshold=1,
        bit_length=bit_length,
    )
    sign_staged(repo, ROOT, keys.root[:root_threshold])
    sign_staged(repo, TARGETS, keys.targets)
    sign_staged(repo, DEVICES, keys.targets)
    sign_staged(repo, FIRMWARE, release)
    return repo.publish_staged()
