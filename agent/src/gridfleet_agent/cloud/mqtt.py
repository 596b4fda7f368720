"""MQTT to cloud platforms: AWS IoT Core, Azure IoT Hub, or any broker, over mutual TLS (aiomqtt).

The gateway authenticates with its Gridfleet identity (`<state>/identity/cert.pem` and
`key.pem`, ECDSA P-256, which AWS IoT Core, Azure IoT Hub (X.509 CA-signed devices) and
Mosquitto accept) and trusts the broker by the CA certificate its signed configuration gives.

Every field record (telemetry, alarms) goes first into a durable queue of its own per broker
(the agent's `Outbox`, SQLite) and leaves it only once the broker acknowledged it (QoS 1
PUBACK), so while the broker or the link is down records wait there, in order, bounded like
the uplink queue (the oldest telemetry goes first when full). The site's current state
(`site.*` points) is not queued: the latest is published on (re)connect and every
`state_interval` seconds, to the platform's device state (AWS shadow, Azure twin reported
properties, a retained topic on a generic broker).

Topic and payload conventions per platform: see `topics_for` and docs/field-devices.md.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiomqtt

from gridfleet_agent.backoff import Backoff
from gridfleet_agent.queue import Outbox, Record, RecordKind
from gridfleet_agent.scada.site import SiteImage
from gridfleet_agent.scada.status import LinkStatus

Platform = Literal["aws-iot-core", "azure-iot-hub", "generic"]
PLATFORMS: tuple[Platform, ...] = ("aws-iot-core", "azure-iot-hub", "generic")
AZURE_API_VERSION = "2021-04-12"
FORWARDED_KINDS = frozenset({RecordKind.TELEMETRY, RecordKind.ALARM})
SEND_BATCH = 100


@dataclass(frozen=True)
class BrokerConfig:
    name: str
    platform: Platform
    host: str
    ca_pem: str
    port: int = 8883
    #: AWS: the thing name; Azure: the device id; generic: the MQTT client id. Default: the gateway serial.
    client_id: str | None = None
    topic_prefix: str = "gridfleet"  # generic broker only
    state_interval: float = 60.0
    keepalive: int = 60
    max_queued: int = 10_000
    publish_timeout: float = 10.0
    reconnect_max: float = 60.0
    comm_loss_after: float = 300.0


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


class Conventions:
    """Topics and payloads of one platform for one gateway (pure; unit-tested)."""

    def __init__(self, config: BrokerConfig, gateway: str) -> None:
        self.config = config
        self.gateway = gateway
        self.client_id = config.client_id or gateway
        self._rid = itertools.count(1)

    @property
    def username(self) -> str | None:
        if self.config.platform == "azure-iot-hub":  # X.509 auth still names the hub and device
            return f"{self.config.host}/{self.client_id}/?api-version={AZURE_API_VERSION}"
        return None

    def record(self, record: Record) -> Message:
        payload = dict(record.payload)
        device = str(payload.get("device", "gateway"))
        body = json.dumps({"ts": record.ts, "gateway": self.gateway, "kind": str(record.kind), **payload}).encode()
        kind = "telemetry" if record.kind == RecordKind.TELEMETRY else "alarm"
        match self.config.platform:
            case "aws-iot-core":  # AWS's recommended telemetry shape: dt/<application>/<thing>/<type>
                return Message(f"dt/gridfleet/{self.client_id}/{kind}/{device}", body)
            case "azure-iot-hub":  # device-to-cloud messages with a property bag for routing
                props = f"kind={kind}&device={quote(device, safe='')}&$.ct=application%2Fjson&$.ce=utf-8"
                return Message(f"devices/{self.client_id}/messages/events/{props}", body)
        prefix = f"{self.config.topic_prefix}/{self.gateway}"
        if kind == "alarm":
            return Message(f"{prefix}/alarm/{device}/{payload.get('code', 'unknown')}", body, retain=True)
        return Message(f"{prefix}/telemetry/{device}", body, retain=True)

    def state(self, values: Mapping[str, Any]) -> Message:
        reported = {key.removeprefix("site."): value for key, value in values.items() if key.startswith("site.")}
        match self.config.platform:
            case "aws-iot-core":
                body = {"state": {"reported": {"gridfleet": reported}}}
                return Message(f"$aws/things/{self.client_id}/shadow/update", json.dumps(body).encode())
            case "azure-iot-hub":
                topic = f"$iothub/twin/PATCH/properties/reported/?$rid={next(self._rid)}"
                return Message(topic, json.dumps({"gridfleet": reported}).encode())
        return Message(f"{self.config.topic_prefix}/{self.gateway}/state", json.dumps(reported).encode(), retain=True)

    def online(self, online: bool) -> Message | None:
        """Generic brokers get a retained online flag (the will says false); platforms have their own presence."""
        if self.config.platform != "generic":
            return None
        return Message(
            f"{self.config.topic_prefix}/{self.gateway}/online", b"true" if online else b"false", retain=True
        )


class CloudLink:
    """One broker connection: a supervised protocol service with its own durable queue."""

    def __init__(self, config: BrokerConfig, *, site: SiteImage, state_dir: Path, gateway: str) -> None:
        self.config = config
        self.site = site
        self.identity_dir = state_dir / "identity"
        self.conventions = Conventions(config, gateway)
        queue_dir = state_dir / "cloud"
        queue_dir.mkdir(parents=True, exist_ok=True)
        self.queue = Outbox(queue_dir / f"{config.name}.sqlite3", max_records=config.max_queued)
        self.status = LinkStatus(
            name=f"mqtt:{config.name}",
            protocol="mqtt",
            role=f"client ({config.platform})",
            endpoint=f"mqtts://{config.host}:{config.port}",
            state="down",
            points=len(site.points),
            comm_loss_after=config.comm_loss_after,
        )
        self._wake = asyncio.Event()

    def observe(self, record: Mapping[str, Any]) -> None:
        """Queue a field record for the broker (called for every record the field stack emits)."""
        if record.get("kind") in FORWARDED_KINDS:
            self.queue.put(record["kind"], record["payload"], ts=record.get("ts"))
            self._wake.set()

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.config.ca_pem)
        context.load_cert_chain(self.identity_dir / "cert.pem", self.identity_dir / "key.pem")
        return context

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=self.config.reconnect_max)
        try:
            while True:
                try:
                    await self._session()
                except (aiomqtt.MqttError, ssl.SSLError, OSError) as exc:
                    self.status.error(f"{self.config.host}:{self.config.port}: {exc}")
                self.status.set_state("down")
                self.status.extra["queued"] = self.queue.depth().total
                await asyncio.sleep(backoff.next_delay())
        finally:
            self.status.set_state("down")
            self.queue.close()

    async def _session(self) -> None:
        will = self.conventions.online(False)
        async with aiomqtt.Client(
            self.config.host,
            self.config.port,
            identifier=self.conventions.client_id,
            username=self.conventions.username,
            tls_context=self.tls_context(),
            keepalive=self.config.keepalive,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=True) if will else None,
            timeout=self.config.publish_timeout,
        ) as client:
            self.status.set_state("connected", f"{self.config.host}:{self.config.port}")
            online = self.conventions.online(True)
            if online is not None:
                await self._publish(client, online)
            # aiomqtt reports a lost connection through its message iterator (even with no
            # subscription), so a watcher ends the session as soon as the broker goes away.
            watcher = asyncio.create_task(_until_disconnected(client))
            try:
                await self._serve(client, watcher)
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _serve(self, client: aiomqtt.Client, watcher: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        next_state = loop.time()
        while True:
            if loop.time() >= next_state:
                await self._publish(client, self.conventions.state(self.site.values))
                next_state = loop.time() + self.config.state_interval
            await self._drain(client)
            self._wake.clear()
            if self.queue.pending(limit=1):
                continue
            woken = asyncio.create_task(self._wake.wait())
            await asyncio.wait(
                {woken, watcher}, timeout=max(0.0, next_state - loop.time()), return_when=asyncio.FIRST_COMPLETED
            )
            woken.cancel()
            if watcher.done():
                watcher.result()  # raises the MqttError that ended the connection
                raise aiomqtt.MqttError("the broker closed the connection")

    async def _drain(self, client: aiomqtt.Client) -> None:
        while batch := self.queue.pending(limit=SEND_BATCH):
            for record in batch:
                await self._publish(client, self.conventions.record(record))
                self.queue.ack_through(record.seq)  # only after the broker's PUBACK
            self.status.extra["published"] = self.status.extra.get("published", 0) + len(batch)
            self.status.extra["queued"] = self.queue.depth().total

    async def _publish(self, client: aiomqtt.Client, message: Message) -> None:
        await client.publish(
            message.topic, message.payload, qos=1, retain=message.retain, timeout=self.config.publish_timeout
        )


async def _until_disconnected(client: aiomqtt.Client) -> None:
    async for _message in client.messages:  # nothing is subscribed; this only waits for the end
        pass
