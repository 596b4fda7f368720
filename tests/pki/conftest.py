"""PKI tests use the fixtures other apps get through `pytest_plugins = ["tests.pki.fixtures"]`."""

from __future__ import annotations

from tests.pki.fixtures import enroll_gateway, enrolled_gateway, pki_ca

__all__ = ["enroll_gateway", "enrolled_gateway", "pki_ca"]
