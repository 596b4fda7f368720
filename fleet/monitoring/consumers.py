"""The browser WebSocket at /ws/console/: live alarm changes and log tails for an operator's session.

The socket joins one group per organization the user may see (fleet.accounts selectors decide),
so an alarm change reaches exactly the consoles of its organization. A log tail is joined on
request, after checking the gateway is visible to the user.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from fleet.accounts.selectors import organizations_visible_to
from fleet.inventory.selectors import gateways_visible_to

from .live import gateway_logs_group, organization_group


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        organization_ids = await database_sync_to_async(
            lambda: list(organizations_visible_to(user).values_list("pk", flat=True))
        )()
        for organization_id in organization_ids:
            await self._join(organization_group(organization_id))
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("subscribe") != "logs":
            await self.send_json({"type": "error", "message": 'Send {"subscribe": "logs", "gateway": <id>}.'})
            return
        gateway_id = content.get("gateway")
        if not isinstance(gateway_id, int) or not await self._can_see(gateway_id):
            await self.send_json({"type": "error", "message": "No such gateway."})
            return
        await self._join(gateway_logs_group(gateway_id))
        await self.send_json({"type": "subscribed", "logs": gateway_id})

    async def _can_see(self, gateway_id: int) -> bool:
        user = self.scope["user"]
        return bool(await database_sync_to_async(lambda: gateways_visible_to(user).filter(pk=gateway_id).exists())())

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return None

    async def alarm_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "alarm", "alarm": event["alarm"]})

    async def logs_appended(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "logs", "entries": event["entries"]})
