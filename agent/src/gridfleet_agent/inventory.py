"""Facts about the gateway itself for the ``inventory`` record (docs/protocol/uplink.md 3.6)."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path


def os_name(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')[:100]
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"[:100]


def mem_total_mb(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def disk_free_mb(path: Path) -> int:
    return shutil.disk_usage(path).free // (1024 * 1024)
