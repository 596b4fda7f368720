"""The gateway's ends of tunnel streams: a TCP connection, a serial port (pyserial), a terminal (PTY)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import subprocess
import termios
from typing import Any

from gridfleet_tunnel import StreamEndpoint

from gridfleet_agent.tunnel.policy import Target

DIAL_TIMEOUT = 10.0


async def dial_tcp(target: Target) -> StreamEndpoint:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), DIAL_TIMEOUT)
    return StreamEndpoint(reader, writer)


class FdEndpoint:
    """A non-blocking file descriptor (a serial port, a PTY master) driven by the event loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._loop = asyncio.get_running_loop()
        self.closed = False

    async def _ready(self, add: Any, remove: Any) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        add(self.fd, ready)
        try:
            await waiter
        finally:
            remove(self.fd)

    async def read(self, limit: int) -> bytes:
        # Wait for readability first: a serial port opened with timeout=0 (VMIN=0) answers an
        # empty read with b"" rather than EAGAIN, which would look like the end of the stream.
        while not self.closed:
            await self._ready(self._loop.add_reader, self._loop.remove_reader)
            try:
                return os.read(self.fd, limit)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the terminal's process ended
                return b""
        return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await self._ready(self._loop.add_writer, self._loop.remove_writer)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.fd)
            self._loop.remove_writer(self.fd)
            os.close(self.fd)

    def resize(self, columns: int, rows: int) -> None:
        pass


class SerialEndpoint(FdEndpoint):
    """An RS-485/RS-232 port opened with pyserial (termios settings), then read and written by fd."""

    def __init__(self, settings: dict[str, Any]) -> None:
        import serial  # pyserial: only gateways that bridge serial ports need it loaded

        self.port = serial.Serial(
            settings["port"],
            baudrate=settings["baudrate"],
            bytesize=settings["bytesize"],
            parity=settings["parity"],
            stopbits=settings["stopbits"],
            timeout=0,
            exclusive=True,  # a programming port is the technician's alone while the session lasts
        )
        super().__init__(self.port.fileno())

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.fd)
            self._loop.remove_writer(self.fd)
            self.port.close()


class TerminalEndpoint(FdEndpoint):
    """The configured login command in a pseudo-terminal, as its controlling terminal."""

    def __init__(self, command: tuple[str, ...], columns: int, rows: int) -> None:
        master, replica = os.openpty()
        _set_size(replica, columns, rows)
        env = {**os.environ, "TERM": "xterm-256color"}
        self.process = subprocess.Popen(
            list(command),
            stdin=replica,
            stdout=replica,
            stderr=replica,
            start_new_session=True,
            # Only an ioctl between fork and exec (no locks, no allocation): safe with threads around.
            preexec_fn=_take_controlling_terminal,  # noqa: PLW1509
            env=env,
            close_fds=True,
        )
        os.close(replica)
        super().__init__(master)

    def resize(self, columns: int, rows: int) -> None:
        if not self.closed:
            _set_size(self.fd, columns, rows)

    async def close(self) -> None:
        if not self.closed:
            await super().close()
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(self.process.wait), 5)
            except TimeoutError:
                self.process.kill()


def _take_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
