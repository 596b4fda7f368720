from __future__ import annotations

from collections.abc import Iterator

import pytest

from .tuf_repository import RepositoryServer, TufRepository


@pytest.fixture
def tuf_repository() -> TufRepository:
    return TufRepository()


@pytest.fixture
def tuf_server(tuf_repository: TufRepository) -> Iterator[RepositoryServer]:
    with RepositoryServer(tuf_repository).running() as server:
        yield server
