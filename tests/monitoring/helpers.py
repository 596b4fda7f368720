"""Gateway-side helpers for uplink tests, written from docs/protocol/uplink.md (not from the server code)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from channels.testing.websocket import WebsocketCommunicator

from fleet.routing import build_websocket_router

UPLINK_PATH = "/ws/gateway/v1/"


def ts(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def log(seq: int, message: str = "", level: str = "info", **extra: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": "log",
        "ts": ts(),
        "payload": {"level": level, "message": message or f"line {seq}", **extra},
    }


def telemetry(seq: int, device: str = "INV-1", at: datetime | None = None, **points: float | None) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": "telemetry",
        "ts": ts(at),
        "payload": {"device": device, "points": points or {"W": 1000.0}},
    }


def alarm(
    seq: int,
    code: str = "sunspec.evt1.ground_fault",
    state: str = "raised",
    severity: str = "critical",
    source: str = "device:INV-1",
    device: str = "INV-1",
    message: str = "Ground fault",
) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": "alarm",
        "ts": ts(),
        "payload": {
            "source": source,
            "device": device,
            "code": code,
            "severity": severity,
            "state": state,
            "message": message,
        },
    }


def hello(stream: str = "q-test", last_acked_seq: int = 0) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": 1,
        "agent_version": "0.9.0",
        "stream": stream,
        "last_acked_seq": last_acked_seq,
    }


def batch(batch_id: str, *records: dict[str, Any]) -> dict[str, Any]:
    return {"type": "batch", "batch": batch_id, "records": list(records)}


class GatewaySession:
    """A Channels communicator speaking protocol v1 through the real routing and pki auth."""

    def __init__(self, token: str | None) -> None:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self.communicator = WebsocketCommunicator(build_websocket_router(), UPLINK_PATH, headers=headers)

    async def connect(self) -> None:
        connected, _ = await self.communicator.connect()
        assert connected

    async def start(self, stream: str = "q-test", last_acked_seq: int = 0) -> dict[str, Any]:
        await self.connect()
        await self.send(hello(stream, last_acked_seq))
        welcome = await self.receive()
        assert welcome["type"] == "welcome", welcome
        return welcome

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        await self.send(frame)
        return await self.receive()

    async def close_code(self) -> int:
        message = await self.communicator.receive_output(timeout=5)
        assert message["type"] == "websocket.close", message
        return int(message.get("code", 1000))

    async def nothing_more(self) -> bool:
        return await self.communicator.receive_nothing(timeout=0.2)

    async def disconnect(self) -> None:
        await self.communicator.disconnect()
