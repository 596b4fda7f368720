"""End-to-end fixtures: a real Gridfleet server in a subprocess, and Debian's chromium via Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class DemoServer:
    url: str
    username: str
    password: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """`manage.py demo_fleet` as `make demo` runs it (with two simulated gateways), on SQLite in a fresh directory."""
    var_dir = tmp_path_factory.mktemp("demo-var")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER"}}
    env |= {"GRIDFLEET_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "fleet.settings", "PYTHONUNBUFFERED": "1"}
    env["GRIDFLEET_DEMO_CURTAILMENT_AFTER_SECONDS"] = "45"  # the demo's curtailment, sooner than a newcomer's 3 min
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    # Closed when the fixture tears the server down.
    log = open(var_dir / "server.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "demo_fleet",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--agents",
            "2",
            "--csip-port",
            str(free_port()),
            "--dnp3-port",
            str(free_port()),
            "--iec104-port",
            str(free_port()),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process)
        password = (var_dir / "demo-credentials.txt").read_text().strip()
        yield DemoServer(url=f"http://127.0.0.1:{port}", username="admin", password=password, env=env)
    finally:
        process.terminate()  # the command stops its simulated agents as it exits
        process.wait(20)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
