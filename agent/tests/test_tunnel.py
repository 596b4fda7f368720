"""The gateway's end of maintenance tunnels: what it refuses, and how streams share one tunnel.

The multiplexer runs here over an in-memory pipe standing in for the WebSocket; the end-to-end
path (server, CLI, real sockets) is tested in tests/remoteaccess/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gridfleet_agent.config import RemoteAccessSection
from gridfleet_agent.tunnel import AllowList, TunnelRefused, authorize, parse_request
from gridfleet_agent.tunnel.endpoints import TerminalEndpoint
from gridfleet_tunnel import MAX_DATA_BYTES, WINDOW_BYTES, Mux, StreamRefused
from gridfleet_tunnel.frames import Frame

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
FIELD = [{"key": "INV-1", "kind": "inverter", "protocol": "sunspec-tcp", "address": "10.0.0.7:502/1"}]
SIGNED = {
    "remote_access": {
        "targets": [{"device": "INV-1"}, {"device": "INV-1", "port": 80}, {"serial": "/dev/ttyS1", "baudrate": 19200}],
        "terminal": False,
    }
}


def request(kind: str = "tcp", target: dict[str, Any] | None = None, expires: timedelta = timedelta(hours=1)) -> Any:
    return parse_request(
        {
            "session": "5d0c8f8e-6a0e-4f8e-8a3c-0f0e3a0a1b2c",
            "url": "/ws/gateway/v1/tunnel/5d0c8f8e-6a0e-4f8e-8a3c-0f0e3a0a1b2c/",
            "kind": kind,
            "target": {"device": "INV-1", "port": None} if target is None else target,
            "expires_at": (NOW + expires).isoformat(),
            "idle_timeout_s": 600,
        }
    )


def decide(req: Any, *, local: RemoteAccessSection | None = None, open_sessions: int = 0) -> Any:
    return authorize(
        req,
        local=local or RemoteAccessSection(),
        allowed=AllowList.from_config(SIGNED),
        field_devices=FIELD,
        open_sessions=open_sessions,
        now=NOW,
    )


def test_a_field_device_on_the_signed_allow_list_is_reached_at_its_own_address() -> None:
    target = decide(request())
    assert (target.kind, target.host, target.port) == ("tcp", "10.0.0.7", 502)
    web = decide(request(target={"device": "INV-1", "port": 80}))
    assert (web.host, web.port, web.label) == ("10.0.0.7", 80, "INV-1:80")


@pytest.mark.parametrize(
    ("req", "local", "open_sessions", "why"),
    [
        (request(target={"host": "10.0.0.7", "port": 22}), None, 0, "10.0.0.7:22 is not on this gateway's allow-list"),
        (request(target={"device": "INV-1", "port": 22}), None, 0, "INV-1:22 is not on this gateway's allow-list"),
        (request(expires=timedelta(seconds=-1)), None, 0, "the session expired"),
        (request(), RemoteAccessSection(enabled=False), 0, "switched off on this gateway by its site owner"),
        (request(), RemoteAccessSection(max_sessions=2), 2, "2 tunnels are open; this gateway allows 2 at once"),
        (request("terminal", {}), None, 0, "does not allow a terminal"),
        (request("serial", {"serial": "/dev/ttyUSB0"}), None, 0, "serial port /dev/ttyUSB0 is not on"),
        (request("serial", {"serial": "/dev/ttyS1", "parity": "X"}), None, 0, "target.parity one of"),
    ],
)
def test_the_gateway_refuses_and_says_why(req: Any, local: Any, open_sessions: int, why: str) -> None:
    with pytest.raises(TunnelRefused, match=why):
        decide(req, local=local, open_sessions=open_sessions)


def test_serial_framing_comes_from_the_allow_list_unless_the_technician_asks_otherwise() -> None:
    target = decide(request("serial", {"serial": "/dev/ttyS1"}))
    assert target.serial == {"port": "/dev/ttyS1", "baudrate": 19200, "bytesize": 8, "parity": "N", "stopbits": 1}
    assert decide(request("serial", {"serial": "/dev/ttyS1", "baudrate": 9600, "parity": "E"})).label == (
        "/dev/ttyS1 9600 8E1"
    )


def test_malformed_requests_are_refused() -> None:
    with pytest.raises(TunnelRefused, match=r"args\.session"):
        parse_request({"session": "x", "url": "/", "kind": "tcp", "target": {}, "expires_at": NOW.isoformat()})
    with pytest.raises(TunnelRefused, match="UTC offset"):
        parse_request({**vars(request()), "target": {}, "expires_at": "2026-12-02T09:00:00"})


# --- the multiplexer ------------------------------------------------------------------------------


class Pipe:
    """Both directions of an in-memory WebSocket between two muxes."""

    def __init__(self) -> None:
        self.a: Mux | None = None
        self.b: Mux | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def link(self, a: Mux, b: Mux, to_a: asyncio.Queue[bytes], to_b: asyncio.Queue[bytes]) -> None:
        async def pump(queue: asyncio.Queue[bytes], mux: Mux) -> None:
            while True:
                await mux.feed(await queue.get())

        self.tasks = [asyncio.create_task(pump(to_a, a)), asyncio.create_task(pump(to_b, b))]


def wired(opener: Any) -> tuple[Mux, Mux, Pipe]:
    to_technician: asyncio.Queue[bytes] = asyncio.Queue()
    to_gateway: asyncio.Queue[bytes] = asyncio.Queue()

    async def send_to_gateway(message: bytes) -> None:
        await to_gateway.put(message)

    async def send_to_technician(message: bytes) -> None:
        await to_technician.put(message)

    technician = Mux(send_to_gateway)
    gateway = Mux(send_to_technician, opener=opener)
    pipe = Pipe()
    pipe.link(technician, gateway, to_technician, to_gateway)
    return technician, gateway, pipe


class Echo:
    """A device that answers every write with the same bytes."""

    def __init__(self) -> None:
        self.pending: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    async def read(self, limit: int) -> bytes:
        return await self.pending.get()

    async def write(self, data: bytes) -> None:
        await self.pending.put(data)

    async def close(self) -> None:
        self.closed = True
        self.pending.put_nowait(b"")

    def resize(self, columns: int, rows: int) -> None:
        pass


class Tool:
    """The technician's tool: what it sends, what it got back."""

    def __init__(self, outgoing: list[bytes]) -> None:
        self.outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        for chunk in outgoing:
            self.outgoing.put_nowait(chunk)
        self.received = bytearray()
        self.closed = asyncio.Event()

    async def read(self, limit: int) -> bytes:
        return await self.outgoing.get()

    async def write(self, data: bytes) -> None:
        self.received.extend(data)

    async def close(self) -> None:
        self.closed.set()

    def resize(self, columns: int, rows: int) -> None:
        pass


async def test_two_tool_connections_share_one_tunnel_without_mixing_bytes() -> None:
    async def opener(frame: Frame) -> Echo:
        return Echo()

    technician, _gateway, pipe = wired(opener)
    first, second = Tool([b"read 40000"]), Tool([b"read 40002", b" and more"])
    await technician.open(first)
    await technician.open(second)
    for _ in range(100):
        if bytes(first.received) == b"read 40000" and bytes(second.received) == b"read 40002 and more":
            break
        await asyncio.sleep(0.01)
    assert bytes(first.received) == b"read 40000"
    assert bytes(second.received) == b"read 40002 and more"
    assert technician.streams_opened == 2
    await technician.close()
    for task in pipe.tasks:
        task.cancel()


async def test_a_refused_stream_reports_the_gateways_reason() -> None:
    async def opener(frame: Frame) -> Echo:
        raise StreamRefused("10.0.0.7:502 did not answer")

    technician, _gateway, pipe = wired(opener)
    with pytest.raises(StreamRefused, match="did not answer"):
        await technician.open(Tool([]))
    for task in pipe.tasks:
        task.cancel()


class Flood:
    """A device that sends as fast as it is read, counting what was taken from it."""

    def __init__(self) -> None:
        self.produced = 0

    async def read(self, limit: int) -> bytes:
        await asyncio.sleep(0)
        self.produced += limit
        return b"x" * limit

    async def write(self, data: bytes) -> None:
        pass

    async def close(self) -> None:
        pass

    def resize(self, columns: int, rows: int) -> None:
        pass


class StalledTool(Tool):
    async def write(self, data: bytes) -> None:
        self.received.extend(data)
        await asyncio.Event().wait()  # the tool stopped reading its socket


async def test_a_stalled_reader_stops_a_fast_writer_after_one_window() -> None:
    flood = Flood()

    async def opener(frame: Frame) -> Flood:
        return flood

    technician, _gateway, pipe = wired(opener)
    stalled = StalledTool([])
    await technician.open(stalled)
    await asyncio.sleep(0.5)
    # Everything the device produced is either in the tool's first write or within one window.
    assert flood.produced <= WINDOW_BYTES
    assert flood.produced >= WINDOW_BYTES - MAX_DATA_BYTES  # it did run until the window was used up
    before = flood.produced
    await asyncio.sleep(0.3)
    assert flood.produced == before
    await technician.close()
    for task in pipe.tasks:
        task.cancel()


async def test_the_terminal_runs_its_command_in_a_pseudo_terminal_of_the_asked_size() -> None:
    terminal = TerminalEndpoint(("/bin/sh", "-c", "stty size; tty"), 100, 30)
    output = b""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while chunk := await terminal.read(4096):
                output += chunk
    await terminal.close()
    lines = output.decode().split()
    assert lines[:2] == ["30", "100"]
    assert lines[2].startswith("/dev/pts/")


async def test_a_quiet_serial_port_is_not_mistaken_for_its_end() -> None:
    from gridfleet_agent.tunnel.endpoints import SerialEndpoint

    device, replica = os.openpty()
    port = SerialEndpoint({"port": os.ttyname(replica), "baudrate": 19200, "bytesize": 8, "parity": "E", "stopbits": 1})
    try:
        reading = asyncio.create_task(port.read(64))
        await asyncio.sleep(0.2)
        assert not reading.done()  # nothing on the line yet: still waiting, not b""
        os.write(device, b"\x01\x03\x04")
        assert await asyncio.wait_for(reading, 5) == b"\x01\x03\x04"
        await port.write(b"\x01\x03")
        assert os.read(device, 16) == b"\x01\x03"
    finally:
        await port.close()
        os.close(device)
        os.close(replica)
