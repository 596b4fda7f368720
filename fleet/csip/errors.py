"""Refusals of the CSIP head-end, under the one domain error root."""

from __future__ import annotations

from fleet.core.errors import DomainError


class CsipError(DomainError):
    """A CSIP operation refused by a rule; `status_code` is the HTTP status CSIP expects."""


class InvalidControlError(CsipError):
    status_code = 400
