"""The head-end's HTTPS front: TLS 1.2 with mutual authentication, as IEEE 2030.5 / CSIP asks.

A threading WSGI server (the standard library's wsgiref) wraps each accepted connection in TLS
in its own worker thread, verifies the client certificate against the utility CA, and hands the
request to Django with the certificate in the environ as `SSL_CLIENT_CERT` (mod_ssl's name), so
`fleet.csip.resource_views` can find the EndDevice by LFDI. Handshake refusals (certificate from
another CA, expired, none) never reach HTTP: they are logged and audited here.

Cipher suite: ECDHE-ECDSA-AES128-CCM8 (the CSIP suite) first and preferred; OpenSSL 3 needs
`@SECLEVEL=0` for an 8-byte tag. ECDHE-ECDSA-AES128-GCM-SHA256 stays as a fallback for clients
whose TLS library lacks CCM8 (py20305 offers both CCM8 and AES256-GCM).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from django import db
from django.core.handlers.wsgi import WSGIHandler

from . import services
from .utility_pki import UtilityPki

logger = logging.getLogger(__name__)

CSIP_CIPHER = "ECDHE-ECDSA-AES128-CCM8"
FALLBACK_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
HANDSHAKE_TIMEOUT = 10.0


def server_ssl_context(*, certificate: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 would ignore the 1.2 suite list
    try:
        context.set_ciphers(f"{CSIP_CIPHER}:{FALLBACK_CIPHERS}:@SECLEVEL=0")
    except ssl.SSLError:  # an OpenSSL build without CCM
        logger.warning("this OpenSSL build has no %s; serving %s only", CSIP_CIPHER, FALLBACK_CIPHERS)
        context.set_ciphers(FALLBACK_CIPHERS)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_ecdh_curve("prime256v1")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(certificate), str(key))
    context.load_verify_locations(str(client_ca))
    return context


class _RequestHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        connection = self.connection
        if isinstance(connection, ssl.SSLSocket):
            der = connection.getpeercert(binary_form=True)
            if der:
                environ["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der)
            cipher = connection.cipher()
            if cipher:
                environ["SSL_CIPHER"], environ["SSL_PROTOCOL"] = cipher[0], cipher[1]
        environ["wsgi.url_scheme"] = "https"
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.tls = context
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # In the worker thread: a slow or failing handshake never holds up accept().
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
            try:
                services.refuse(
                    reason=f"TLS handshake refused: {reason}", path="(tls)", lfdi=None, ip=client_address[0], status=0
                )
            finally:
                db.connections.close_all()
            return
        connection.settimeout(None)
        try:
            self.RequestHandlerClass(connection, client_address, self)  # type: ignore[arg-type]
        finally:
            db.connections.close_all()  # this worker thread ends here; so does its database connection
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("CSIP head-end: request from %s failed", client_address)


class HeadEnd:
    """The mutual-TLS head-end on (host, port); port 0 picks a free one (see `port`)."""

    def __init__(self, *, pki: UtilityPki, host: str = "127.0.0.1", port: int = 0) -> None:
        context = server_ssl_context(
            certificate=pki.server_certificate_path, key=pki.server_key_path, client_ca=pki.ca_certificate_path
        )
        self._server = _Server((host, port), context)
        self._server.set_app(WSGIHandler())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"https://{host!s}:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.5)

    def start(self) -> HeadEnd:
        self._thread = threading.Thread(target=self.serve_forever, name="csip-headend", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
