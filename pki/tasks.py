"""Periodic PKI work; each task is one service call. The lead's beat schedule runs them."""

from __future__ import annotations

from celery import shared_task

from pki import services


@shared_task(name="pki.publish_crl")
def publish_crl() -> int:
    """Re-sign the CRLs so nextUpdate never passes (hourly; CRLs are valid 24 h)."""
    return len(services.publish_crls())


@shared_task(name="pki.purge_expired_credentials")
def purge_expired_credentials() -> int:
    return services.purge_expired_credentials()
