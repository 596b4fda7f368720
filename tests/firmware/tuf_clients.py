"""Two independent TUF clients with one interface: python-tuf's ngclient and tuf-js (node).

Each client keeps its trusted metadata in its own directory, like a gateway across polls; every
call is a fresh process-like Updater that loads that state. Refusals raise `ClientRefused`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import urllib3
from tuf.ngclient import Updater
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

JS_DIR = Path(__file__).parent / "js"


class ClientRefused(Exception):
    """The client refused the repository's metadata or a target."""


class BearerFetcher(Urllib3Fetcher):
    def __init__(self, bearer: str | None) -> None:
        super().__init__(socket_timeout=10)
        self._pool = urllib3.PoolManager(headers={"Authorization": f"Bearer {bearer}"} if bearer else {})

    def _fetch(self, url: str) -> Iterator[bytes]:
        from tuf.api import exceptions

        response = self._pool.request("GET", url, preload_content=False, timeout=10)
        if response.status >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(f"HTTP {response.status}", response.status)
        return self._chunks(response)


class PythonTufClient:
    name = "python-tuf"

    def __init__(self, workdir: Path, metadata_url: str, targets_url: str, bearer: str | None) -> None:
        self.metadata_dir = workdir / "metadata"
        self.targets_dir = workdir / "targets"
        self.metadata_url, self.targets_url, self.bearer = metadata_url, targets_url, bearer

    def init(self, root: bytes) -> None:
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        (self.metadata_dir / "root.json").write_bytes(root)

    def _updater(self) -> Updater:
        return Updater(
            str(self.metadata_dir),
            self.metadata_url,
            str(self.targets_dir),
            self.targets_url,
            fetcher=BearerFetcher(self.bearer),
            bootstrap=None,
        )

    def refresh(self) -> None:
        try:
            self._updater().refresh()
        except Exception as e:  # ngclient raises RepositoryError subclasses and download errors
            raise ClientRefused(f"{type(e).__name__}: {e}") from e

    def download(self, target: str) -> bytes:
        shutil.rmtree(self.targets_dir, ignore_errors=True)
        self.targets_dir.mkdir(parents=True)
        try:
            updater = self._updater()
            updater.refresh()
            info = updater.get_targetinfo(target)
            if info is None:
                raise ClientRefused(f"{target} is not in the repository")
            path = updater.download_target(info, str(self.targets_dir / "file"))
        except ClientRefused:
            raise
        except Exception as e:
            raise ClientRefused(f"{type(e).__name__}: {e}") from e
        return Path(path).read_bytes()


class JsTufClient:
    name = "tuf-js"

    def __init__(self, workdir: Path, metadata_url: str, targets_url: str, bearer: str | None) -> None:
        self.metadata_dir = workdir / "metadata"
        self.targets_dir = workdir / "targets"
        self.metadata_url, self.targets_url, self.bearer = metadata_url, targets_url, bearer

    def _run(self, *args: str) -> None:
        env = {**os.environ, "GRIDFLEET_BEARER": self.bearer or ""}
        command = ["node", str(JS_DIR / "client.mjs"), "--metadata-dir", str(self.metadata_dir), *args]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
        if done.returncode != 0:
            raise ClientRefused(done.stderr.strip() or f"exit {done.returncode}")

    def init(self, root: bytes) -> None:
        root_file = self.metadata_dir.parent / "trusted-root.bin"
        root_file.parent.mkdir(parents=True, exist_ok=True)
        root_file.write_bytes(root)
        self._run("init", str(root_file))

    def refresh(self) -> None:
        self._run("--metadata-url", self.metadata_url, "refresh")

    def download(self, target: str) -> bytes:
        shutil.rmtree(self.targets_dir, ignore_errors=True)
        self._run(
            "--metadata-url",
            self.metadata_url,
            "--target-name",
            target,
            "--target-base-url",
            self.targets_url,
            "--target-dir",
            str(self.targets_dir),
            "download",
        )
        return (self.targets_dir / target.replace("/", "%2F")).read_bytes()


def ensure_tuf_js() -> str | None:
    """Install tuf-js from npm (once) into tests/firmware/js/node_modules; the reason if impossible."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed"
    if (JS_DIR / "node_modules" / "tuf-js").exists():
        return None
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return f"npm could not install tuf-js (registry unreachable?): {done.stderr.strip()[-300:]}"
    return None
