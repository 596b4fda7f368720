"""deploy/nginx/gridfleet.conf run by Debian's nginx in front of two uvicorn workers (issues 14 and 19).

TLS ends at nginx; static files and signed TUF metadata are files nginx serves itself with their
cache headers; TUF targets are authorized by Django and sent by nginx (X-Accel-Redirect); the
uplink WebSocket is proxied; login and gateway endpoints are rate-limited. A real agent enrolls,
connects and installs a firmware deployment through it.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agent.tests.bundles import firmware_bundle
from tests.agent.test_end_to_end import AgentProcess
from tests.production.stack import REPO_ROOT, Stack
from tests.servers import free_port, wait_for

pytestmark = pytest.mark.slow

E2E_ACTIONS = REPO_ROOT / "tests" / "deployments" / "e2e_actions.py"


@dataclass
class Proxied:
    stack: Stack
    url: str  # https://localhost:PORT, through nginx
    http_url: str  # the plain-HTTP listener
    ca: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=self.ca), timeout=30)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    https_port, http_port = free_port(), free_port()
    url = f"https://localhost:{https_port}"
    stack = Stack(
        tmp_path_factory.mktemp("nginx-stack"),
        extra_env={
            "ALLOWED_HOSTS": "localhost",
            "TRUSTED_PROXIES": "127.0.0.1",
            "GRIDFLEET_TUF_ACCEL_REDIRECT": "/_gridfleet/storage/",
            "GRIDFLEET_PKI_PUBLIC_URL": url,
            "CELERY_TASK_ALWAYS_EAGER": "1",  # publishing in-process here; test_production_trial runs workers
        },
    )
    try:
        stack.manage("migrate", "--noinput", "-v0")
        stack.manage("collectstatic", "--noinput", "-v0")
        stack.manage("pki_init", "--if-missing")
        stack.manage("tuf_init", "--dev-offline-keys", str(stack.root / "offline"), "--bit-length", "4")
        ports = [stack.start_uvicorn("asgi-a"), stack.start_uvicorn("asgi-b")]
        ca = stack.start_nginx(asgi_ports=ports, https_port=https_port, http_port=http_port)
        yield Proxied(stack, url, f"http://127.0.0.1:{http_port}", ca)
    finally:
        stack.close()


def python_access_log(stack: Stack) -> str:
    return stack.log_text("asgi-a") + stack.log_text("asgi-b")


def test_static_files_and_tuf_metadata_are_served_as_files_with_their_cache_headers(proxied: Proxied) -> None:
    with proxied.client() as client:
        css = client.get("/static/css/gridfleet.css", headers={"Accept-Encoding": "gzip"})
        assert css.status_code == 200 and css.headers["Content-Encoding"] == "gzip"  # collectstatic's .gz
        assert css.headers["Cache-Control"] == "max-age=86400"

        timestamp = client.get("/tuf/metadata/timestamp.json")
        assert timestamp.status_code == 200 and timestamp.headers["Content-Type"] == "application/json"
        assert timestamp.headers["Cache-Control"] == "public, max-age=10"
        assert timestamp.json()["signed"]["_type"] == "timestamp"

        root = client.get("/tuf/metadata/1.root.json", headers={"Accept-Encoding": "gzip"})
        assert root.status_code == 200 and root.headers["Content-Encoding"] == "gzip"
        assert root.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert json.loads(root.content)["signed"]["_type"] == "root"  # httpx decoded the gzip
        version = json.loads(root.content)["signed"]["version"]

        # Every client refresh probes the next root: a quiet 404, no error-log line.
        probe = f"/tuf/metadata/{version + 1}.root.json"
        assert client.get(probe).status_code == 404
        assert client.get("/tuf/metadata/index.json").status_code == 404  # only TUF names
        assert client.get("/tuf/metadata/../keys/passphrase").status_code == 404
    assert f"{version + 1}.root.json" not in (proxied.stack.root / "nginx-error.log").read_text()
    # Unchanged metadata never reaches Python.
    assert "/tuf/metadata/" not in python_access_log(proxied.stack)


def test_plain_http_redirects_and_the_ui_logs_in_over_tls_on_a_non_default_port(proxied: Proxied) -> None:
    redirect = httpx.get(f"{proxied.http_url}/login/", headers={"Host": "localhost"})
    assert redirect.status_code == 301 and redirect.headers["Location"] == "https://localhost/login/"

    proxied.stack.action("operator", "ops", "correct horse battery staple 42")
    with proxied.client() as client:
        form = client.get("/login/")
        assert form.status_code == 200
        assert "secure" in form.headers["Set-Cookie"].lower()  # the CSRF cookie: TLS only
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        # The CSRF check compares Origin with scheme://Host: it passes only because nginx forwards
        # the port ($http_host) and the scheme (X-Forwarded-Proto).
        login = client.post(
            "/login/",
            data={"username": "ops", "password": "correct horse battery staple 42", "csrfmiddlewaretoken": token[1]},
            headers={"Origin": proxied.url, "Referer": f"{proxied.url}/login/"},
        )
        assert login.status_code == 302, login.text[:500]
        assert client.get("/healthz/ready").status_code == 200
        assert client.get("/").status_code == 200


def test_the_login_form_is_rate_limited(proxied: Proxied) -> None:
    with proxied.client() as client:
        statuses = [client.get("/login/").status_code for _ in range(12)]
    assert 429 in statuses and statuses[0] in (200, 429)


@pytest.mark.parametrize("serial", ["NGINX-001"])
def test_an_agent_enrolls_connects_and_installs_an_update_through_nginx(
    proxied: Proxied, serial: str, tmp_path: Path
) -> None:
    stack = proxied.stack
    token = stack.action("enrollment-token", serial)["token"]
    agent = AgentProcess(proxied, tmp_path, serial, ca_bundle=str(proxied.ca))  # type: ignore[arg-type]
    enrolled = agent.cli("enroll", "--token", token, "--serial", serial)
    assert enrolled.returncode == 0, enrolled.stderr
    agent.start()
    try:
        # Online means the uplink WebSocket is open through nginx (wss://).
        wait_for(lambda: agent.status().get("connection", {}).get("state") == "online", what="the agent online")
        bundle = firmware_bundle(tmp_path, "2.0.0", health_check="echo healthy\n")
        deployment = stack.action("deploy", serial, str(bundle), "2.0.0", script=E2E_ACTIONS, var=True)["deployment"]
        assert agent.cli("check-now").returncode == 0
        wait_for(
            lambda: stack.action("state", str(deployment), script=E2E_ACTIONS, var=True)["state"] == "success",
            what="the deployment to succeed on the gateway",
        )
        assert agent.status()["installed"]["firmware"] == "2.0.0"
    finally:
        agent.stop()

    # The targets the agent fetched went through Django (authorization) and came from nginx.
    assert re.search(r'"GET /tuf/targets/devices/[^ ]+ HTTP/1.1" 200', python_access_log(stack))
    target = stack.action("device-target", serial)
    path = f"/tuf/targets/{target['path']}"
    with proxied.client() as client:
        refused = client.get(path)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {target['token']}", "Accept-Encoding": "gzip"}
        whole = client.get(path, headers=auth)
        assert whole.status_code == 200 and "Content-Encoding" not in whole.headers
        assert hashlib.sha256(whole.content).hexdigest() == target["sha256"]
        assert whole.headers["Cache-Control"] == "private, max-age=31536000, immutable, no-transform"
        assert "X-Accel-Redirect" not in whole.headers
        # nginx's own ETag (mtime-size) for the file, not Django's: nginx sent the bytes.
        assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', whole.headers["ETag"]), whole.headers
        part = client.get(path, headers={**auth, "Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == whole.content[:100]
        assert part.headers["Content-Range"] == f"bytes 0-99/{target['size']}"
