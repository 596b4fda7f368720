"""Terminal sessions recorded as asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/).

A header line, then one JSON array per event: ``[seconds since start, "o", text]`` for output and
``[t, "r", "COLSxROWS"]`` for a resize. Keystrokes are not recorded (they may hold passwords,
which the terminal does not echo); what the technician saw is.
"""

from __future__ import annotations

import codecs
import json
import time
from pathlib import Path
from typing import IO, Any

from django.conf import settings


def recordings_dir() -> Path:
    return Path(settings.GRIDFLEET_VAR_DIR) / "recordings"


def recording_path(name: str) -> Path:
    return recordings_dir() / Path(name).name


class AsciicastRecorder:
    def __init__(self, name: str, *, title: str) -> None:
        self.path = recording_path(name)
        self.title = title
        self._file: IO[str] | None = None
        self._started = 0.0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def start(self, columns: int, rows: int) -> None:
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._started = time.monotonic()
        header: dict[str, Any] = {
            "version": 2,
            "width": columns,
            "height": rows,
            "timestamp": int(time.time()),
            "title": self.title,
            "env": {"TERM": "xterm-256color"},
        }
        self._write(header)

    def output(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if text:
            self._event("o", text)

    def resize(self, columns: int, rows: int) -> None:
        self._event("r", f"{columns}x{rows}")

    def _event(self, code: str, text: str) -> None:
        if self._file is None:
            self.start(80, 24)
        self._write([round(time.monotonic() - self._started, 6), code, text])

    def _write(self, item: Any) -> None:
        assert self._file is not None
        self._file.write(json.dumps(item, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            rest = self._decoder.decode(b"", final=True)
            if rest:
                self._event("o", rest)
            self._file.close()
            self._file = None
