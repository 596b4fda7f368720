"""OPC UA server on the gateway exposing the site's information model (asyncua).

Only secured endpoints: Basic256Sha256 with Sign&Encrypt (and Sign, if configured). A client
is accepted only if its application certificate chains to one of the CA certificates the
gateway's signed configuration lists (`opcua.trusted_ca_pem`, normally Gridfleet's CA, or the
utility's), within its validity, with the client-auth usage and an application URI matching
its certificate (asyncua's TRUSTED_VALIDATION). Basic256Sha256 needs RSA keys, and the
gateway's own Gridfleet identity is ECDSA P-256, so the server keeps a separate RSA-2048
application certificate (asyncua's `setup_self_signed_certificate`, in the state directory);
its SHA-256 fingerprint is reported with the link status so a SCADA operator can pin it.

Address space (namespace `urn:gridfleet:site`), under Objects/Site:
    <device id>/<point>          Double or Boolean variables, one per site point
    Site/<point>                 site totals and states (limit_pct, limit_enabled, connected...)
    Controls/SetPowerLimit(Double percent) -> String    0..100 % of WMax on every inverter
    Controls/ClearPowerLimit() -> String
    Controls/SetConnected(Boolean connected) -> String
Methods answer only after the inverters read the value back; BadOutOfRange when refused
(nothing changed), BadDeviceFailure when an inverter did not take it, the reason in the link
status.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.node import Node
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from gridfleet_agent.field.errors import ControlError, ControlRejected
from gridfleet_agent.scada.site import SiteControls, SiteImage, Value
from gridfleet_agent.scada.status import LinkStatus

NAMESPACE = "urn:gridfleet:site"
STATUS_CHECK = 0.2


@dataclass(frozen=True)
class OpcUaConfig:
    host: str = "127.0.0.1"  # set to the SCADA-facing interface; loopback keeps a bare config closed
    port: int = 4840
    trusted_ca_pem: tuple[str, ...] = ()
    allow_sign_only: bool = False
    comm_loss_after: float = 120.0


class OpcUaServer:
    def __init__(
        self, config: OpcUaConfig, *, site: SiteImage, controls: SiteControls, state_dir: Path, gateway: str
    ) -> None:
        self.config = config
        self.site = site
        self.controls = controls
        self.dir = state_dir / "opcua"
        self.gateway = gateway
        self.application_uri = f"urn:gridfleet:gateway:{gateway}"
        self.status = LinkStatus(
            name="opcua",
            protocol="opcua",
            role="server",
            endpoint=f"opc.tcp://{config.host}:{config.port}",
            points=len(site.points) + 3,
            comm_loss_after=config.comm_loss_after,
        )
        self._nodes: dict[str, Node] = {}
        self._changes: asyncio.Queue[Mapping[str, Value]] = asyncio.Queue()
        self.certificate_sha256 = ""

    async def run(self) -> None:
        if not self.config.trusted_ca_pem:
            raise ValueError("opcua.trusted_ca_pem is empty: no client could ever be trusted")
        server = Server()
        await server.init()
        server.set_endpoint(self.status.endpoint)
        server.set_server_name(f"Gridfleet gateway {self.gateway}")
        await server.set_application_uri(self.application_uri)
        policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        if self.config.allow_sign_only:
            policies.append(ua.SecurityPolicyType.Basic256Sha256_Sign)
        server.set_security_policy(policies)
        await self._load_certificate(server)
        server.set_certificate_validator(await self._validator())
        await self._build_model(server)
        unsubscribe = self.site.subscribe(self._changes.put_nowait)
        await server.start()
        try:
            self.status.set_state("listening")
            while True:
                try:
                    changes = await asyncio.wait_for(self._changes.get(), STATUS_CHECK)
                except TimeoutError:
                    changes = {}
                for key, value in changes.items():
                    if key in self._nodes:
                        await self._nodes[key].write_value(_data_value(value, self.site.point(key).binary))
                clients = _clients(server)
                if clients:
                    self.status.set_state("connected", ", ".join(clients))
                else:
                    self.status.set_state("listening")
        finally:
            unsubscribe()
            await server.stop()
            self.status.set_state("down")

    async def _load_certificate(self, server: Server) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file, cert_file = self.dir / "server-key.pem", self.dir / "server-cert.der"
        await setup_self_signed_certificate(
            key_file,
            cert_file,
            self.application_uri,
            socket.gethostname(),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"organizationName": "Gridfleet", "commonName": f"gridfleet-opcua-{self.gateway}"},
        )
        await server.load_certificate(str(cert_file))
        await server.load_private_key(str(key_file))
        certificate = x509.load_der_x509_certificate(cert_file.read_bytes())
        self.certificate_sha256 = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
        self.status.extra["certificate_sha256"] = self.certificate_sha256

    async def _validator(self) -> CertificateValidator:
        trusted = self.dir / "trusted"
        trusted.mkdir(parents=True, exist_ok=True)
        for old in trusted.glob("*.pem"):
            old.unlink()
        for number, pem in enumerate(self.config.trusted_ca_pem):
            (trusted / f"ca-{number}.pem").write_text(pem)
        store = TrustStore([trusted], [])
        await store.load()
        validator = CertificateValidator(
            CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store
        )

        async def validate(certificate: x509.Certificate, description: ua.ApplicationDescription) -> None:
            try:
                await validator.validate(certificate, description)
            except Exception as exc:  # refused: count it with the reason, the client gets the status code
                self.status.error(f"client certificate {certificate.subject.rfc4514_string()} refused: {exc}")
                raise

        return validate  # type: ignore[return-value]

    async def _build_model(self, server: Server) -> None:
        ns = await server.register_namespace(NAMESPACE)
        root = await server.get_objects_node().add_object(ns, "Site")
        folders: dict[str, Node] = {}
        for point in self.site.points:
            owner, name = point.key.split(".", 1)
            if owner not in folders:
                folders[owner] = await root.add_object(ns, owner) if owner != "site" else root
            node = await folders[owner].add_variable(
                _node_id(point.key, ns),
                ua.QualifiedName(name, ns),
                _data_value(self.site.values.get(point.key), point.binary),
                varianttype=ua.VariantType.Boolean if point.binary else ua.VariantType.Double,
            )
            description = ua.DataValue(ua.Variant(ua.LocalizedText(point.description)))
            await node.write_attribute(ua.AttributeIds.Description, description)
            self._nodes[point.key] = node
        controls = await root.add_object(ns, "Controls")
        readback = [_argument("readback", ua.ObjectIds.String)]
        for method, callback, arguments in (
            ("SetPowerLimit", self._set_power_limit, [_argument("percent", ua.ObjectIds.Double)]),
            ("ClearPowerLimit", self._clear_power_limit, []),
            ("SetConnected", self._set_connected, [_argument("connected", ua.ObjectIds.Boolean)]),
        ):
            await controls.add_method(
                _node_id(f"Controls.{method}", ns), ua.QualifiedName(method, ns), callback, arguments, readback
            )

    async def _set_power_limit(self, parent: ua.NodeId, percent: ua.Variant) -> list[ua.Variant] | ua.StatusCode:
        value = percent.Value
        if not isinstance(value, float | int) or isinstance(value, bool):
            return self._refused(ua.StatusCodes.BadTypeMismatch, f"SetPowerLimit: {value!r} is not a number")
        return await self._control(self.controls.set_power_limit(float(value), source="opcua"))

    async def _clear_power_limit(self, parent: ua.NodeId) -> list[ua.Variant] | ua.StatusCode:
        return await self._control(self.controls.set_power_limit(None, source="opcua"))

    async def _set_connected(self, parent: ua.NodeId, connected: ua.Variant) -> list[ua.Variant] | ua.StatusCode:
        if not isinstance(connected.Value, bool):
            return self._refused(ua.StatusCodes.BadTypeMismatch, f"SetConnected: {connected.Value!r} is not a Boolean")
        return await self._control(self.controls.set_connected(connected.Value, source="opcua"))

    async def _control(self, work: Any) -> list[ua.Variant] | ua.StatusCode:
        try:
            outcome = await work
        except ControlRejected as exc:
            return self._refused(ua.StatusCodes.BadOutOfRange, str(exc))
        except ControlError as exc:
            return self._refused(ua.StatusCodes.BadDeviceFailure, str(exc))
        return [ua.Variant(outcome.message, ua.VariantType.String)]

    def _refused(self, code: int, reason: str) -> ua.StatusCode:
        """asyncua answers a method call with the status code its callback returns (a raise: BadUnexpectedError)."""
        self.status.error(f"control refused: {reason}")
        return ua.StatusCode(ua.UInt32(code))


def _node_id(name: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(ns))


def _argument(name: str, data_type: int) -> ua.Argument:
    return ua.Argument(Name=name, DataType=ua.NodeId(ua.Int32(data_type)), ValueRank=-1)


def _data_value(value: Value, binary: bool) -> ua.DataValue:
    kind = ua.VariantType.Boolean if binary else ua.VariantType.Double
    if value is None:  # no reading yet (or the device is silent): a typed placeholder with a Bad status
        placeholder = ua.Variant(False if binary else 0.0, kind)
        return ua.DataValue(placeholder, StatusCode=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadWaitingForInitialData)))
    return ua.DataValue(ua.Variant(bool(value) if binary else float(value), kind))


def _clients(server: Server) -> list[str]:
    """Peers with an open connection (asyncua's binary server keeps them in `clients`)."""
    connected = getattr(server.bserver, "clients", None) or []
    return [f"{c.peer_name[0]}:{c.peer_name[1]}" for c in connected if getattr(c, "peer_name", None)]
