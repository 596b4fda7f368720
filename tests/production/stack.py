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
import shutil
import signal
import subprocess
import sys
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


def replace_exactly(text: str, replacements: dict[str, str]) -> str:
    """`text` with each key replaced; a key that is missing fails (the file changed under the test)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the file"
        text = text.replace(old, new)
    return text


def write_tls_files(directory: Path, *, host: str) -> Path:
    """A test CA and a server certificate for `host` and 127.0.0.1: fullchain.pem and privkey.pem
    where nginx reads them; returns the CA certificate's path (ca.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stack test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "fullchain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    return directory / "ca.pem"


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
                "info",  # with the access log: tests check which requests reach Python
            ],
            port=port,
        )
        return port

    def start_nginx(self, *, asgi_ports: list[int], https_port: int, http_port: int) -> Path:
        """Debian's nginx with Debian's nginx.conf and deploy/nginx/gridfleet.conf, changed only where
        that file says an operator adapts it; returns the CA certificate clients must trust."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            pytest.skip("Debian's nginx is not installed (make test installs it with apt-get)")
        tls = self.root / "tls"
        ca_pem = write_tls_files(tls, host="localhost")
        site = (REPO_ROOT / "deploy" / "nginx" / "gridfleet.conf").read_text()
        upstreams = "".join(f"    server 127.0.0.1:{port};\n" for port in asgi_ports)
        site = replace_exactly(
            site,
            {
                "    server 127.0.0.1:8001;\n    server 127.0.0.1:8002;\n": upstreams,
                "listen 80;": f"listen 127.0.0.1:{http_port};",
                "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
                "    listen [::]:80;\n": "",
                "    listen [::]:443 ssl http2;\n": "",
                "fleet.example.com": "localhost",
                "/etc/gridfleet/tls/": f"{tls}/",
                "/srv/gridfleet/static/": f"{self.env['STATIC_ROOT']}/",
                "/var/lib/gridfleet/": f"{self.var_dir}/",
            },
        )
        (self.root / "gridfleet.conf").write_text(site)
        main = replace_exactly(
            Path("/etc/nginx/nginx.conf").read_text(),
            {
                "user www-data;": "user root;" if os.geteuid() == 0 else "",
                "worker_processes auto;": "worker_processes 1;",
                "pid /run/nginx.pid;": f"pid {self.root}/nginx.pid;",
                "error_log /var/log/nginx/error.log;": f"error_log {self.root}/nginx-error.log;",
                "access_log /var/log/nginx/access.log;": f"access_log {self.root}/nginx-access.log;",
                "include /etc/nginx/sites-enabled/*;": f"include {self.root}/gridfleet.conf;",
            },
        )
        (self.root / "nginx.conf").write_text(main)
        argv = [nginx, "-e", str(self.root / "nginx-error.log"), "-c", str(self.root / "nginx.conf")]
        checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        self.start("nginx", [*argv, "-g", "daemon off;"], port=https_port)
        return ca_pem

    def start_celery(self) -> None:
        celery = str(Path(sys.executable).parent / "celery")
        self.start("celery-worker", [celery, "-A", "fleet", "worker", "-l", "info", "--concurrency", "2"])
        schedule = self.var_dir / "celerybeat-schedule"
        self.start("celery-beat", [celery, "-A", "fleet", "beat", "-l", "info", "--schedule", str(schedule)])

    def action(self, *args: str, script: Path = ACTIONS, var: bool = False) -> Any:
        """Run one action of `script` (tests/production/actions.py by default) in a server-side process;
        its JSON result. `var`: the script takes GRIDFLEET_VAR_DIR first (tests/deployments/e2e_actions.py)."""
        done = subprocess.run(
            [sys.executable, str(script), *([str(self.var_dir)] if var else []), *args],
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
