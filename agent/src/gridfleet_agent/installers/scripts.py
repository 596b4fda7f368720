"""Running a bundle's own scripts (install, health check) with a timeout and a captured log."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from gridfleet_agent.installers.runner import InstallError

LOG_EXCERPT_CHARS = 16_000

logger = logging.getLogger(__name__)


def run_script(script: Path, *, cwd: Path, env: Mapping[str, str], timeout: float, code: str) -> str:
    """Run ``script``; raise ``InstallError(code)`` unless it exits 0. Returns its output."""
    if not script.is_file():
        raise InstallError(code, f"{script.name} is missing from the bundle")
    try:
        done = subprocess.run(
            ["/bin/sh", str(script)],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        output = e.output if isinstance(e.output, str) else (e.output or b"").decode(errors="replace")
        raise InstallError(
            code, f"{script.name} timed out after {timeout:.0f} s", log_excerpt=output[-LOG_EXCERPT_CHARS:]
        ) from e
    # Into the agent's rotated log (logs/agent.log), so an uploaded log shows what the script said.
    logger.info("%s exited with status %s; output:\n%s", script.name, done.returncode, done.stdout.rstrip())
    if done.returncode != 0:
        raise InstallError(
            code,
            f"{script.name} exited with status {done.returncode}",
            log_excerpt=done.stdout[-LOG_EXCERPT_CHARS:],
        )
    return done.stdout
