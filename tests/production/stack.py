"""A Gridfleet installation made of real processes on loopback ports, as an operator runs it.

`Stack` gives each test module its own PostgreSQL database (created and dropped here) on the
server of the test run's DATABASE_URL, the test run's Redis (REDIS_URL), and starts what the
module asks for: uvicorn processes (one worker each, as the systemd units in deploy/ run them),
a Celery worker and beat, nginx with deploy/'s configuration. Server-side set-up runs through
`tests/production/actions.py` in the same environment. Everything started is stopped by `close()`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.servers import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ACTIONS = Path(__file__).with_name("actions.py")
PKI_KEK = "stack-key-encryption-key-0123456789abcdef"


def require_postgres_and_redis() -> tuple[str, str]:
    """The test run's PostgreSQL and Redis URLs, or skip: these tests are about those engines."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not redis_url:
        pytest.skip("needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), as `make test` uses when they answer")
    return database_url, redis_url


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Stack:
    def __init__(self, root: Path, *, production: bool = True, extra_env: dict[str, str] | None = None) -> None:
        base_database_url, self.redis_url = require_postgres_and_redis()
        self.root = root
        self.var_dir = root / "var"
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.database = f"gridfleet_stack_{secrets.token_hex(4)}"
        parts = urlsplit(base_database_url)
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.database_url = urlunsplit(parts._replace(path=f"/{self.database}"))
        self._execute_admin(f'CREATE DATABASE "{self.database}"')
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logs: dict[str, Path] = {}
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_", "GRIDFLEET_", "DJANGO_", "DEBUG"))
        }
        self.env = inherited | {
            "DJANGO_SETTINGS_MODULE": "fleet.settings",
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "GRIDFLEET_VAR_DIR": str(self.var_dir),
            "GRIDFLEET_PKI_KEK": PKI_KEK,
            "GRIDFLEET_INPROCESS_SCHEDULER": "0",
            "STATIC_ROOT": str(root / "static"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        if production:
            self.env |= {"GRIDFLEET_ENV": "production", "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(48)}
        self.env |= extra_env or {}

    # ------------------------------------------------------------------ processes

    def start(self, name: str, argv: list[str], *, port: int | None = None, timeout: float = 60) -> None:
        log_path = self.root / f"{name}.log"
        self.logs[name] = log_path
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append((name, process))
        if port is not None:
            try:
                wait_for_port(port, process, timeout=timeout)
            except (RuntimeError, TimeoutError) as e:
                raise RuntimeError(f"{name}: {e}\n{log_path.read_text()[-4000:]}") from e

    def start_uvicorn(self, name: str) -> int:
        port = free_port()
        self.start(
            name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fleet.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--proxy-headers",
                "--forwarded-allow-ips",
                "127.0.0.1",
                "--lifespan",
                "off",
                "--log-level",
                "warning",
            ],
            port=port,
        )
        return port

    def start_celery(self) -> None:
        celery = str(Path(sys.executable).parent / "celery")
        self.start("celery-worker", [celery, "-A", "fleet", "worker", "-l", "info", "--concurrency", "2"])
        schedule = self.var_dir / "celerybeat-schedule"
        self.start("celery-beat", [celery, "-A", "fleet", "beat", "-l", "info", "--schedule", str(schedule)])

    def action(self, *args: str) -> Any:
        """Run one action of tests/production/actions.py in a server-side process; its JSON result."""
        done = subprocess.run(
            [sys.executable, str(ACTIONS), *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"action {args} failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done

    def log_text(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()

    def close(self) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _name, process in reversed(self.processes):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        self._execute_admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def _execute_admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql)  # type: ignore[arg-type]
