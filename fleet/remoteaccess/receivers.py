"""Sessions end at once when what they stand on goes: the gateway's certificate, the gateway, the
technician's role or account. And the gateway's answer to `open_tunnel` reaches its session."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from fleet.accounts.models import Membership
from fleet.inventory.models import Gateway
from fleet.uplink.models import Command
from fleet.uplink.protocol import CommandName
from fleet.uplink.signals import command_result_received
from pki.models import DeviceCertificate

from . import services


@receiver(command_result_received, sender=Command)
def tunnel_answered(sender: Any, gateway: Gateway, command: Command, **kwargs: Any) -> None:
    if command.name == CommandName.OPEN_TUNNEL and isinstance(command.args, dict):
        services.gateway_answered(
            session_id=command.args.get("session"),
            status=command.state,
            message=command.result_message,
            result=command.result,
        )


@receiver(post_save, sender=DeviceCertificate)
def certificate_revoked(sender: Any, instance: DeviceCertificate, **kwargs: Any) -> None:
    if instance.status == DeviceCertificate.Status.REVOKED and instance.gateway_id is not None:
        gateway_id = instance.gateway_id
        transaction.on_commit(
            lambda: services.revoke_gateway_sessions(
                gateway_id=gateway_id, reason="the gateway's certificate was revoked"
            )
        )


@receiver(post_save, sender=Gateway)
def gateway_decommissioned(sender: Any, instance: Gateway, **kwargs: Any) -> None:
    if instance.status == Gateway.Status.DECOMMISSIONED:
        gateway_id = instance.pk
        transaction.on_commit(
            lambda: services.revoke_gateway_sessions(gateway_id=gateway_id, reason="the gateway was decommissioned")
        )


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
def role_changed(sender: Any, instance: Membership, **kwargs: Any) -> None:
    user = instance.user
    transaction.on_commit(
        lambda: services.revoke_sessions_of_user(user=user, reason="the technician's access was withdrawn")
    )


@receiver(post_save, sender=get_user_model())
def account_deactivated(sender: Any, instance: Any, **kwargs: Any) -> None:
    if not instance.is_active:
        transaction.on_commit(
            lambda: services.revoke_sessions_of_user(user=instance, reason="the technician's account was deactivated")
        )
