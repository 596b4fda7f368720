"""Reads for the uplink; tenancy through the inventory's gateway selector."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from fleet.inventory.selectors import gateways_visible_to

from .models import Command


def commands_visible_to(user: Any) -> QuerySet[Command]:
    return Command.objects.filter(gateway__in=gateways_visible_to(user)).select_related("gateway", "created_by")
