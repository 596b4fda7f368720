"""HTTP fetcher for python-tuf's ngclient: gateway bearer token, TLS options, and resumed downloads.

ngclient has no hook for authentication or client certificates, so the agent plugs in its own
``FetcherInterface``. A download interrupted mid-stream is resumed with a ``Range`` request from
the byte already received (servers that ignore ranges answer 200 and the received prefix is
skipped), so a flaky cellular link does not restart a large firmware download from zero.
ngclient still checks length and hashes of the assembled file before anything uses it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from http import HTTPStatus

import urllib3
from tuf.api import exceptions
from tuf.ngclient.fetcher import FetcherInterface

from gridfleet_agent import __version__

logger = logging.getLogger(__name__)

TokenProvider = Callable[[], str | None]

_STREAM_ERRORS = (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError)


class AgentFetcher(FetcherInterface):
    """urllib3 fetcher that authenticates as the gateway and resumes interrupted transfers."""

    def __init__(
        self,
        *,
        token: TokenProvider | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        max_resumes: int = 5,
        chunk_size: int = 64 * 1024,
    ) -> None:
        self._token = token
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._max_resumes = max_resumes
        self._chunk_size = chunk_size
        self._pool = urllib3.PoolManager(ssl_context=ssl_context, retries=urllib3.Retry(0, redirect=3))

    def _fetch(self, url: str) -> Iterator[bytes]:
        return self.fetch_from(url, 0)

    def fetch_from(self, url: str, offset: int) -> Iterator[bytes]:
        """The bytes of ``url`` from ``offset`` on (a partial file kept across restarts continues)."""
        return self._stream(url, self._open(url, offset=offset), offset)

    def _open(self, url: str, *, offset: int) -> urllib3.BaseHTTPResponse:
        headers = {"User-Agent": f"gridfleet-agent/{__version__}"}
        if self._token is not None and (token := self._token()):
            headers["Authorization"] = f"Bearer {token}"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = self._pool.request("GET", url, headers=headers, preload_content=False, timeout=self._timeout)
        except urllib3.exceptions.MaxRetryError as e:
            if isinstance(e.reason, urllib3.exceptions.TimeoutError):
                raise exceptions.SlowRetrievalError(f"timed out fetching {url}") from e
            raise exceptions.DownloadError(f"cannot reach {url}: {e.reason}") from e
        if response.status >= HTTPStatus.BAD_REQUEST:
            _discard(response)
            raise exceptions.DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
        return response

    def _stream(self, url: str, response: urllib3.BaseHTTPResponse, offset: int) -> Iterator[bytes]:
        received = offset
        resumes = 0
        skip = self._check_resumed(url, response, offset)
        while True:
            complete = False
            try:
                for piece in response.stream(self._chunk_size):
                    chunk = piece
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    if chunk:
                        received += len(chunk)
                        yield chunk
                complete = True
                return
            except _STREAM_ERRORS as e:
                if resumes >= self._max_resumes:
                    raise exceptions.DownloadError(f"{url}: gave up after {resumes} resumes") from e
                resumes += 1
                logger.info("download of %s interrupted at byte %d, resuming", url, received)
            finally:
                if complete:
                    response.release_conn()
                else:  # broken, or abandoned by the caller (e.g. longer than allowed)
                    response.close()
            response = self._open(url, offset=received)
            skip = self._check_resumed(url, response, received)

    @staticmethod
    def _check_resumed(url: str, response: urllib3.BaseHTTPResponse, offset: int) -> int:
        """How many leading bytes to drop: all ``offset`` of them if the server ignored the Range."""
        if not offset or response.status != HTTPStatus.PARTIAL_CONTENT:
            return offset
        if not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            response.close()
            raise exceptions.DownloadError(f"{url}: server resumed at the wrong offset")
        return 0


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Read away an unwanted body before the connection goes back to the pool.

    Releasing it unread would let the next request on that keep-alive connection read the old
    body as its status line (the 404 of every idle poll's root probe carries an HTML page).
    """
    try:
        response.drain_conn()
    finally:
        response.release_conn()
