"""Where the server is and who we are (GRIDFLEET_URL/GRIDFLEET_TOKEN or the config file), and the
REST calls. The config file is ``$GRIDFLEET_CLI_CONFIG``, else ``~/.config/gridfleet/cli.toml``."""

from __future__ import annotations

import json
import os
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CliError(Exception):
    """Something the user must fix; printed without a traceback."""


def config_path() -> Path:
    configured = os.environ.get("GRIDFLEET_CLI_CONFIG")
    return Path(configured) if configured else Path.home() / ".config" / "gridfleet" / "cli.toml"


def save_login(url: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)  # the token is a password
    path.write_text(f"url = {json.dumps(url)}\ntoken = {json.dumps(token)}\n")
    return path


@dataclass(frozen=True)
class Server:
    url: str
    token: str

    @classmethod
    def configured(cls) -> Server:
        stored: dict[str, Any] = {}
        path = config_path()
        if path.exists():
            try:
                stored = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as e:
                raise CliError(f"{path} is not valid TOML: {e}") from e
        url = os.environ.get("GRIDFLEET_URL") or stored.get("url", "")
        token = os.environ.get("GRIDFLEET_TOKEN") or stored.get("token", "")
        if not url or not token:
            raise CliError("Not logged in: run `gridfleet login`, or set GRIDFLEET_URL and GRIDFLEET_TOKEN.")
        return cls(str(url).rstrip("/"), str(token))

    def websocket_url(self, path: str) -> str:
        scheme, _, rest = self.url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        return request(self.url, method, path, body, token=self.token, **query)

    def list(self, path: str, **query: Any) -> list[dict[str, Any]]:
        """Every page of a paginated list."""
        rows: list[dict[str, Any]] = []
        page = self.call("GET", path, **query)
        while True:
            rows.extend(page["results"] if isinstance(page, dict) else page)
            if not isinstance(page, dict) or not page.get("next"):
                return rows
            page = self.call(
                "GET", urllib.parse.urlsplit(page["next"]).path + "?" + urllib.parse.urlsplit(page["next"]).query
            )


def request(
    base: str, method: str, path: str, body: dict[str, Any] | None = None, *, token: str = "", **query: Any
) -> Any:
    url = base + path
    wanted = {k: v for k, v in query.items() if v is not None}
    if wanted:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(wanted)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{base} is not an http(s) URL")
    # The scheme was checked above: no file:// or custom schemes reach urlopen.
    call = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310  # nosec B310
    try:
        with urllib.request.urlopen(call, timeout=30) as answer:  # noqa: S310  # nosec B310
            text = answer.read()
    except urllib.error.HTTPError as e:
        raise CliError(f"{method} {path}: HTTP {e.code}: {_explain(e.read())}") from None
    except urllib.error.URLError as e:
        raise CliError(f"cannot reach {base}: {e.reason}") from None
    return json.loads(text) if text else None


def _explain(body: bytes) -> str:
    """The API's one error body: {"code", "detail", "fields"?}."""
    try:
        problem = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:300]
    if not isinstance(problem, dict):
        return str(problem)
    detail = str(problem.get("detail") or "")
    fields = problem.get("fields") or {}
    more = [f"{name}: {'; '.join(map(str, errors))}" for name, errors in fields.items() if errors != [detail]]
    return " ".join([detail, *more]).strip()
