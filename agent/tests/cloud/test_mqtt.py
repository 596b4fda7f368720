"""Cloud MQTT links against a real Mosquitto with TLS and required client certificates."""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from gridfleet_agent.cloud.mqtt import BrokerConfig, CloudLink, Conventions
from gridfleet_agent.queue import Record, RecordKind
from gridfleet_agent.scada.site import SiteDevice, SiteImage

GATEWAY = "GW-CLOUD-1"
NOW = datetime.now(UTC).replace(microsecond=0)  # certificates valid around the test run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pem(obj: Any) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Authority:
    """An ECDSA P-256 CA like Gridfleet's, issuing the broker's and the gateways' certificates."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = self._sign(self.name, self.key.public_key(), ca=True, extra=[])

    def _sign(
        self, subject: x509.Name, public_key: Any, *, ca: bool, extra: list[x509.ExtensionType]
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for extension in extra:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, common_name: str, *, server: bool = False) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        extra: list[x509.ExtensionType] = [
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH])
        ]
        if server:
            extra.append(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
        cert = self._sign(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]), key.public_key(), ca=False, extra=extra
        )
        return pem(cert), pem(key)


class Mosquitto:
    """Our own Mosquitto on a free port: TLS only, client certificate required, sessions persisted."""

    def __init__(self, directory: Path, ca: Authority) -> None:
        self.dir = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = ca.issue("broker", server=True)
        (directory / "ca.pem").write_bytes(pem(ca.certificate))
        (directory / "server.pem").write_bytes(cert)
        (directory / "server-key.pem").write_bytes(key)
        (directory / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {directory / 'ca.pem'}\n"
            f"certfile {directory / 'server.pem'}\n"
            f"keyfile {directory / 'server-key.pem'}\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "log_dest stderr\n"
            # Started as root, Mosquitto drops to the `mosquitto` user, which cannot read pytest's tmp dir.
            f"user {getpass.getuser()}\n"
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.dir / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError as exc:
                if self.process.poll() is not None:
                    raise RuntimeError("mosquitto exited at start") from exc
                time.sleep(0.05)
        raise TimeoutError("mosquitto did not listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # writes the persistent sessions
            self.process.wait(10)
        self.process = None


@pytest.fixture
def ca() -> Authority:
    return Authority("Gridfleet test CA")


@pytest.fixture
def broker(tmp_path: Path, ca: Authority) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "broker", ca)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def gateway_state(tmp_path: Path, ca: Authority) -> Path:
    """A state directory holding a gateway identity issued by the CA (as enrollment leaves it)."""
    state = tmp_path / "state"
    (state / "identity").mkdir(parents=True, exist_ok=True)
    cert, key = ca.issue(GATEWAY)
    (state / "identity" / "cert.pem").write_bytes(cert)
    (state / "identity" / "key.pem").write_bytes(key)
    return state


def site() -> SiteImage:
    image = SiteImage([SiteDevice("inv-1", "inverter")])
    image.update({"site.limit_pct": 100.0, "site.connected": True})
    return image


class Subscriber:
    """A cloud-side consumer with its own client certificate and a persistent session."""

    def __init__(self, broker: Mosquitto, ca: Authority, topics: list[str]) -> None:
        self.broker, self.topics = broker, topics
        cert, key = ca.issue("cloud-consumer")
        (broker.dir / "consumer.pem").write_bytes(cert)
        (broker.dir / "consumer-key.pem").write_bytes(key)
        self.tls = ssl.create_default_context(cadata=pem(ca.certificate).decode())
        self.tls.load_cert_chain(broker.dir / "consumer.pem", broker.dir / "consumer-key.pem")
        self.messages: list[tuple[str, bytes, bool]] = []
        self.task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.broker.port, identifier="consumer", clean_session=False, tls_context=self.tls
                ) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.messages.append((str(message.topic), bytes(message.payload), message.retain))  # type: ignore[arg-type]
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.1)

    async def __aenter__(self) -> Subscriber:
        self.task = asyncio.create_task(self.run())
        await asyncio.wait_for(self.subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def wait_for(self, topic: str, timeout: float = 10.0) -> dict[str, Any]:
        async def until() -> dict[str, Any]:
            while True:
                for seen, payload, _retain in self.messages:
                    if seen == topic:
                        return json.loads(payload) if payload[:1] in b"{[" else {"raw": payload.decode()}
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(until(), timeout)


def link_for(broker: Mosquitto, ca: Authority, state: Path, platform: str, **overrides: Any) -> CloudLink:
    config = BrokerConfig(
        name=platform,
        platform=platform,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=broker.port,
        ca_pem=pem(ca.certificate).decode(),
        reconnect_max=1.0,
        **overrides,
    )
    return CloudLink(config, site=site(), state_dir=state, gateway=GATEWAY)


def telemetry(w: float, ts: str = "2026-12-02T08:00:00.000Z") -> dict[str, Any]:
    return {"kind": "telemetry", "ts": ts, "payload": {"device": "inv-1", "points": {"W": w}}}


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_until(condition: Any, timeout: float = 10.0) -> None:
    async def until() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until(), timeout)


async def test_generic_broker_gets_telemetry_alarms_state_and_presence_over_mutual_tls(
    broker: Mosquitto, ca: Authority, tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    link = link_for(broker, ca, gateway_state(tmp_path, ca), "generic")
    async with Subscriber(broker, ca, ["gridfleet/#"]) as consumer:
        running.append(asyncio.create_task(link.run()))
        link.observe(telemetry(4100.0))
        alarm = {"device": "inv-1", "code": "sunspec.evt1.ground_fault", "severity": "critical", "state": "raised"}
        link.observe({"kind": "alarm", "ts": "2026-12-02T08:00:01.000Z", "payload": alarm})
        link.observe({"kind": "log", "ts": "2026-12-02T08:00:01.000Z", "payload": {"message": "not forwarded"}})

        sent = await consumer.wait_for(f"gridfleet/{GATEWAY}/telemetry/inv-1")
        assert sent == {
            "ts": "2026-12-02T08:00:00.000Z",
            "gateway": GATEWAY,
            "kind": "telemetry",
            "device": "inv-1",
            "points": {"W": 4100.0},
        }
        assert (await consumer.wait_for(f"gridfleet/{GATEWAY}/alarm/inv-1/sunspec.evt1.ground_fault"))[
            "state"
        ] == "raised"
        state = await consumer.wait_for(f"gridfleet/{GATEWAY}/state")
        assert state["limit_pct"] == 100.0 and state["connected"] is True
        assert (await consumer.wait_for(f"gridfleet/{GATEWAY}/online")) == {"raw": "true"}
    assert link.status.state == "connected"
    assert link.status.extra["published"] == 2  # the log record stayed home
    assert link.queue.depth().total == 0


async def test_records_wait_in_the_queue_while_the_broker_is_down_and_arrive_in_order(
    broker: Mosquitto, ca: Authority, tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    link = link_for(broker, ca, gateway_state(tmp_path, ca), "generic")
    async with Subscriber(broker, ca, [f"gridfleet/{GATEWAY}/telemetry/#"]) as consumer:
        running.append(asyncio.create_task(link.run()))
        await wait_until(lambda: link.status.state == "connected")
        broker.stop()
        await wait_until(lambda: link.status.state == "down")
        for watts in (1000.0, 2000.0, 3000.0):
            link.observe(telemetry(watts))
        await asyncio.sleep(0.5)
        assert link.queue.depth().total == 3  # nothing lost, nothing sent
        assert link.status.errors >= 1
        broker.start()  # the consumer's persistent session comes back with the broker
        await wait_until(lambda: link.queue.depth().total == 0, timeout=15)
        await wait_until(lambda: len([m for m in consumer.messages if b'"W"' in m[1] and not m[2]]) >= 3, timeout=15)
    # Deliveries of the queued messages, not the retained copy a reconnecting subscriber also gets;
    # QoS 1 is at-least-once, so a repeat of the same message is allowed, a reordering is not.
    live = [
        json.loads(p)["points"]["W"] for t, p, retained in consumer.messages if t.endswith("/inv-1") and not retained
    ]
    in_order = [w for i, w in enumerate(live) if i == 0 or live[i - 1] != w]
    assert in_order[-3:] == [1000.0, 2000.0, 3000.0]


async def test_aws_iot_core_topics_and_device_shadow(
    broker: Mosquitto, ca: Authority, tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    link = link_for(broker, ca, gateway_state(tmp_path, ca), "aws-iot-core", client_id="thing-42")
    async with Subscriber(broker, ca, ["dt/#", "$aws/things/+/shadow/update"]) as consumer:
        running.append(asyncio.create_task(link.run()))
        link.observe(telemetry(1234.0))
        assert (await consumer.wait_for("dt/gridfleet/thing-42/telemetry/inv-1"))["points"] == {"W": 1234.0}
        shadow = await consumer.wait_for("$aws/things/thing-42/shadow/update")
        assert shadow["state"]["reported"]["gridfleet"]["limit_pct"] == 100.0


async def test_azure_iot_hub_device_to_cloud_messages_and_reported_properties(
    broker: Mosquitto, ca: Authority, tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    link = link_for(broker, ca, gateway_state(tmp_path, ca), "azure-iot-hub")
    async with Subscriber(broker, ca, ["devices/#", "$iothub/#"]) as consumer:
        running.append(asyncio.create_task(link.run()))
        link.observe(telemetry(555.0))
        topic = f"devices/{GATEWAY}/messages/events/kind=telemetry&device=inv-1&$.ct=application%2Fjson&$.ce=utf-8"
        assert (await consumer.wait_for(topic))["points"] == {"W": 555.0}
        reported = await consumer.wait_for("$iothub/twin/PATCH/properties/reported/?$rid=1")
        assert reported["gridfleet"]["connected"] is True
    assert link.conventions.username == f"127.0.0.1/{GATEWAY}/?api-version=2021-04-12"


async def test_a_gateway_certificate_the_broker_does_not_trust_is_refused_and_reported(
    broker: Mosquitto, ca: Authority, tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    stranger = Authority("Not the broker's CA")
    link = link_for(broker, ca, gateway_state(tmp_path, stranger), "generic", publish_timeout=1.0)
    running.append(asyncio.create_task(link.run()))
    link.observe(telemetry(1.0))
    await wait_until(lambda: link.status.errors >= 1)
    assert link.status.state == "down"
    assert f"127.0.0.1:{broker.port}" in link.status.last_error
    assert link.queue.depth().total == 1  # kept for when the certificate is fixed


def test_conventions_name_topics_per_platform() -> None:
    record = Record(seq=1, kind=RecordKind.ALARM, ts="t", payload={"device": "inv 1", "code": "x"})
    generic = Conventions(BrokerConfig(name="g", platform="generic", host="h", ca_pem=""), "GW")
    assert generic.record(record).topic == "gridfleet/GW/alarm/inv 1/x"
    azure = Conventions(BrokerConfig(name="a", platform="azure-iot-hub", host="hub.azure-devices.net", ca_pem=""), "GW")
    assert (
        azure.record(record).topic
        == "devices/GW/messages/events/kind=alarm&device=inv%201&$.ct=application%2Fjson&$.ce=utf-8"
    )
    assert azure.username == "hub.azure-devices.net/GW/?api-version=2021-04-12"
    assert azure.online(True) is None
