"""The base of domain errors: a rule refused an operation. The API turns these into 4xx responses."""

from __future__ import annotations


class DomainError(Exception):
    """An operation refused by a domain rule; becomes a 400 (or `status_code`) with its message."""

    status_code = 400

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
