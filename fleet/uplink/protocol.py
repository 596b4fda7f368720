"""The gateway uplink protocol v1 (docs/protocol/uplink.md) as parsing and validation, no I/O.

The consumer hands every text frame to `parse_frame` and every batch's records to
`parse_records`; both return typed values or raise / report errors carrying the protocol's error
codes, so the wire contract lives in this one module next to the document that describes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, TypeGuard

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from fleet.core import protocol_schemas
from fleet.core.errors import DomainError
from fleet.core.protocol_schemas import check_vocabulary
from fleet.core.timestamps import parse_rfc3339

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1_048_576
MAX_BATCH_RECORDS = 500
MAX_RECORD_BYTES = 65_536
MAX_INFLIGHT_BATCHES = 4
HEARTBEAT_INTERVAL_S = 30
MAX_CLOCK_AHEAD = timedelta(hours=24)
MAX_LOG_MESSAGE_CHARS = 16_384
MAX_SEQ = 2**63 - 1
MAX_BATCH_ID_CHARS = 64


class CloseCode(IntEnum):
    """WebSocket close codes of the uplink (docs/protocol/uplink.md, close codes)."""

    PROTOCOL_VIOLATION = 4400
    UNAUTHENTICATED = 4401
    SUPERSEDED = 4409


CLOSE_PROTOCOL_VIOLATION = CloseCode.PROTOCOL_VIOLATION
CLOSE_UNAUTHENTICATED = CloseCode.UNAUTHENTICATED
CLOSE_SUPERSEDED = CloseCode.SUPERSEDED


class ErrorCode(StrEnum):
    HELLO_REQUIRED = "hello_required"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    INVALID_HELLO = "invalid_hello"
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_TYPE = "unknown_type"
    OUT_OF_PROTOCOL = "out_of_protocol"
    FRAME_TOO_LARGE = "frame_too_large"
    BATCH_TOO_LARGE = "batch_too_large"
    INTERNAL_ERROR = "internal_error"
    # Record level, reported in ack.rejected.
    INVALID_RECORD = "invalid_record"
    UNKNOWN_KIND = "unknown_kind"
    RECORD_TOO_LARGE = "record_too_large"
    TS_IN_FUTURE = "ts_in_future"
    OUT_OF_ORDER = "out_of_order"


# Errors after which the connection is closed: the peer does not speak this protocol.
FATAL_ERRORS = frozenset({ErrorCode.HELLO_REQUIRED, ErrorCode.UNSUPPORTED_PROTOCOL, ErrorCode.INVALID_HELLO})


class Kind(StrEnum):
    LOG = "log"
    ALARM = "alarm"
    TELEMETRY = "telemetry"
    STATUS = "status"
    EVENT = "event"
    INVENTORY = "inventory"


class ProtocolError(DomainError):
    """A frame the server refuses; becomes an `error` frame (and a close when fatal)."""

    def __init__(self, code: ErrorCode, message: str, *, batch: str | None = None) -> None:
        super().__init__(message, code=code)
        self.batch = batch

    @property
    def fatal(self) -> bool:
        return self.code in FATAL_ERRORS

    def frame(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "code": str(self.code), "message": self.message}
        if self.batch is not None:
            body["batch"] = self.batch
        return body


@dataclass(frozen=True)
class Hello:
    protocol: int
    agent_version: str
    stream: str
    last_acked_seq: int


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class Batch:
    batch: str
    records: list[Any]


Frame = Hello | Heartbeat | Batch


@dataclass(frozen=True)
class Record:
    seq: int
    kind: Kind
    ts: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    index: int
    seq: int | None
    code: ErrorCode
    message: str

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"seq": self.seq, "code": str(self.code), "message": self.message}
        if self.seq is None:
            body["index"] = self.index
        return body


@dataclass
class ParsedRecords:
    records: list[Record] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


# The payload schemas are the published files (docs/protocol/schemas/<kind>.json), one per kind.
PAYLOAD_SCHEMAS: dict[Kind, dict[str, Any]] = {kind: protocol_schemas.schema(kind.value) for kind in Kind}
check_vocabulary("record kinds", Kind, protocol_schemas.RECORD_KINDS)
SEVERITIES = protocol_schemas.SEVERITIES
LOG_LEVELS = protocol_schemas.LOG_LEVELS
STATUS_STEPS = protocol_schemas.STATUS_STEPS
FIELD_DEVICE_KINDS = protocol_schemas.FIELD_DEVICE_KINDS
FIELD_DEVICE_PROTOCOLS = protocol_schemas.FIELD_DEVICE_PROTOCOLS

_VALIDATORS = {kind: Draft202012Validator(schema) for kind, schema in PAYLOAD_SCHEMAS.items()}
_HELLO_VALIDATOR = Draft202012Validator(protocol_schemas.schema("hello"))

# Limits of the hand-written fast path (_plainly_valid), read from the schemas it mirrors.
_TELEMETRY = PAYLOAD_SCHEMAS[Kind.TELEMETRY]["properties"]
MAX_DEVICE_CHARS = _TELEMETRY["device"]["maxLength"]
MAX_POINTS = _TELEMETRY["points"]["maxProperties"]
MAX_POINT_NAME_CHARS = _TELEMETRY["points"]["propertyNames"]["maxLength"]
MAX_LOGGER_CHARS = PAYLOAD_SCHEMAS[Kind.LOG]["properties"]["logger"]["maxLength"]


class CommandName(StrEnum):
    CHECK_UPDATES = "check_updates"
    UPLOAD_LOGS = "upload_logs"
    REBOOT = "reboot"
    OPEN_TUNNEL = "open_tunnel"
    SET_POWER_LIMIT = "set_power_limit"


COMMAND_ARG_SCHEMAS: dict[CommandName, dict[str, Any]] = {
    name: protocol_schemas.command_args_schema(name.value) for name in CommandName
}
check_vocabulary("commands", CommandName, protocol_schemas.COMMAND_NAMES, ordered=False)
_COMMAND_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in COMMAND_ARG_SCHEMAS.items()}
_TIMESTAMP_ARGS = ("since", "until", "expires_at")


def _first_error(validator: Draft202012Validator, instance: Any, prefix: str) -> str | None:
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = prefix + error.json_path.removeprefix("$")
    return f"{where}: {error.message}"


def command_args_error(name: CommandName, args: Any) -> str | None:
    """Why `args` is not valid for command `name`, or None."""
    problem = _first_error(_COMMAND_VALIDATORS[name], args, "args")
    if problem:
        return problem
    for key in _TIMESTAMP_ARGS:
        if key in args:
            try:
                parse_rfc3339(args[key])
            except ValueError as exc:
                return f"args.{key}: {exc}."
    return None


def _non_finite_as_null(_constant: str) -> None:
    # NaN and Infinity are not JSON, but Python's json.dumps writes them: read them as "missing".
    return None


def decode_json(text: str) -> Any:
    return json.loads(text, parse_constant=_non_finite_as_null)


def parse_frame(text: str | None, *, expecting_hello: bool) -> Frame:
    """Decode one gateway frame. Raises ProtocolError with the code the protocol defines."""
    if text is None:
        raise ProtocolError(ErrorCode.MALFORMED_FRAME, "Binary frames are not part of the protocol; send JSON text.")
    size = len(text.encode("utf-8"))
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"Frame is {size} bytes; the limit is {MAX_FRAME_BYTES}.")
    try:
        message = decode_json(text)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.MALFORMED_FRAME, f"Frame is not valid JSON: {exc}.") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError(ErrorCode.MALFORMED_FRAME, "A frame is a JSON object with a string 'type'.")
    frame_type = message["type"]
    if expecting_hello and frame_type != "hello":
        raise ProtocolError(ErrorCode.HELLO_REQUIRED, f"The first frame must be 'hello', not '{frame_type}'.")
    if frame_type == "hello":
        if not expecting_hello:
            raise ProtocolError(ErrorCode.OUT_OF_PROTOCOL, "'hello' was already received on this connection.")
        return _parse_hello(message)
    if frame_type == "heartbeat":
        return Heartbeat()
    if frame_type == "batch":
        return _parse_batch(message)
    if frame_type in {"welcome", "ack", "command", "error"}:
        raise ProtocolError(ErrorCode.OUT_OF_PROTOCOL, f"'{frame_type}' frames are sent by the server only.")
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type '{frame_type}'.")


def _parse_hello(message: dict[str, Any]) -> Hello:
    if isinstance(message.get("protocol"), int) and message["protocol"] != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_PROTOCOL,
            f"Protocol {message['protocol']} is not served here; this endpoint speaks {PROTOCOL_VERSION}.",
        )
    problem = _first_error(_HELLO_VALIDATOR, message, "hello")
    if problem:
        raise ProtocolError(ErrorCode.INVALID_HELLO, problem)
    return Hello(
        protocol=message["protocol"],
        agent_version=message["agent_version"],
        stream=message["stream"],
        last_acked_seq=message.get("last_acked_seq", 0),
    )


def _parse_batch(message: dict[str, Any]) -> Batch:
    batch_id = message.get("batch")
    if not _short_string(batch_id, MAX_BATCH_ID_CHARS, 1):
        raise ProtocolError(
            ErrorCode.MALFORMED_FRAME, f"batch.batch must be a string of 1 to {MAX_BATCH_ID_CHARS} characters."
        )
    records = message.get("records")
    if not isinstance(records, list) or not records:
        raise ProtocolError(ErrorCode.MALFORMED_FRAME, "batch.records must be a non-empty array.", batch=batch_id)
    if len(records) > MAX_BATCH_RECORDS:
        raise ProtocolError(
            ErrorCode.BATCH_TOO_LARGE,
            f"Batch has {len(records)} records; the limit is {MAX_BATCH_RECORDS}.",
            batch=batch_id,
        )
    return Batch(batch=batch_id, records=records)


class _Rejected(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _short_string(value: Any, max_length: int, min_length: int = 0) -> TypeGuard[str]:
    return isinstance(value, str) and min_length <= len(value) <= max_length


def _plainly_valid(kind: Kind, payload: dict[str, Any]) -> bool:
    """The common telemetry and log payloads checked by hand, exactly as strictly as their schemas.

    jsonschema costs most of the parsing time; it still runs for every other kind and whenever
    this check says no, so refusal messages come from the schema alone.
    """
    if kind == Kind.TELEMETRY:
        points = payload.get("points")
        return (
            _short_string(payload.get("device"), MAX_DEVICE_CHARS, 1)
            and isinstance(points, dict)
            and 1 <= len(points) <= MAX_POINTS
            and all(
                1 <= len(name) <= MAX_POINT_NAME_CHARS
                and (value is None or (isinstance(value, int | float) and not isinstance(value, bool)))
                for name, value in points.items()
            )
        )
    if kind == Kind.LOG:
        return (
            payload.get("level") in LOG_LEVELS
            and isinstance(payload.get("message"), str)
            and ("logger" not in payload or _short_string(payload["logger"], MAX_LOGGER_CHARS))
            and ("fields" not in payload or isinstance(payload["fields"], dict))
        )
    return False


def _parse_record(raw: Any, *, now: datetime) -> Record:
    if not isinstance(raw, dict):
        raise _Rejected(ErrorCode.INVALID_RECORD, "A record is a JSON object.")
    kind_value = raw.get("kind")
    if not isinstance(kind_value, str):
        raise _Rejected(ErrorCode.INVALID_RECORD, "kind: required string.")
    try:
        kind = Kind(kind_value)
    except ValueError:
        raise _Rejected(
            ErrorCode.UNKNOWN_KIND, f"kind: '{kind_value}' is not one of {', '.join(k.value for k in Kind)}."
        ) from None
    try:
        ts = parse_rfc3339(raw.get("ts"))
    except ValueError as exc:
        raise _Rejected(ErrorCode.INVALID_RECORD, f"ts: {exc}.") from None
    if ts > now + MAX_CLOCK_AHEAD:
        raise _Rejected(ErrorCode.TS_IN_FUTURE, f"ts: {ts.isoformat()} is more than 24 h ahead of the server clock.")
    payload = raw.get("payload")
    if not isinstance(payload, dict):
        raise _Rejected(ErrorCode.INVALID_RECORD, "payload: required object.")
    size = len(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    if size > MAX_RECORD_BYTES:
        raise _Rejected(ErrorCode.RECORD_TOO_LARGE, f"payload is {size} bytes; the limit is {MAX_RECORD_BYTES}.")
    if not _plainly_valid(kind, payload):
        problem = _first_error(_VALIDATORS[kind], payload, "payload")
        if problem:
            raise _Rejected(ErrorCode.INVALID_RECORD, problem)
    if kind == Kind.LOG and len(payload["message"]) > MAX_LOG_MESSAGE_CHARS:
        payload = {**payload, "message": payload["message"][:MAX_LOG_MESSAGE_CHARS], "truncated": True}
    if kind == Kind.STATUS:
        payload = {**payload, "deployment": str(payload["deployment"])}
    return Record(seq=raw["seq"], kind=kind, ts=ts, payload=payload)


def _read_seq(raw: Any) -> int | None:
    seq = raw.get("seq") if isinstance(raw, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= MAX_SEQ:
        return seq
    return None


def parse_records(raw_records: list[Any], *, now: datetime) -> ParsedRecords:
    """Validate each record on its own: good ones are kept, bad ones rejected with a reason."""
    result = ParsedRecords()
    previous_seq = 0
    for index, raw in enumerate(raw_records):
        seq = _read_seq(raw)
        if seq is None:
            result.rejected.append(
                Rejection(index, None, ErrorCode.INVALID_RECORD, f"seq: required integer from 1 to {MAX_SEQ}.")
            )
            continue
        if seq <= previous_seq:
            result.rejected.append(
                Rejection(
                    index,
                    seq,
                    ErrorCode.OUT_OF_ORDER,
                    f"seq {seq} is not above the previous record's {previous_seq}.",
                )
            )
            continue
        previous_seq = seq
        try:
            result.records.append(_parse_record(raw, now=now))
        except _Rejected as exc:
            result.rejected.append(Rejection(index, seq, exc.code, exc.message))
    return result
