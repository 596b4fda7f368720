"""Monitoring tests: enrolled gateways (PKI fixtures) and a gateway-side protocol helper."""

from __future__ import annotations

from tests.pki.fixtures import enroll_gateway, enrolled_gateway, pki_ca

__all__ = ["enroll_gateway", "enrolled_gateway", "pki_ca"]
