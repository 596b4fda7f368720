"""Firmware test set-up: a repository initialised through `tuf_init`, and PKI-enrolled gateways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from firmware.repo import get_repository, reset
from firmware.tuf.repository import TufRepository
from tests.pki.fixtures import enroll_gateway, enrolled_gateway, pki_ca

__all__ = ["enroll_gateway", "enrolled_gateway", "pki_ca"]


@pytest.fixture
def tuf_repo(db: None, isolated_var_dir: Path) -> TufRepository:
    """A repository with 16 bins whose offline keys were generated in var/offline (demo mode)."""
    reset()
    call_command("tuf_init", dev_offline_keys=str(isolated_var_dir / "offline"), bit_length=4, stdout=_Null())
    return get_repository()


class _Null:
    def write(self, *_args: Any) -> None:
        pass
