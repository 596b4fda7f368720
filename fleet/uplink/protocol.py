"""The gateway uplink protocol v1 (docs/protocol/uplink.md) as parsing and validation, no I/O.

The consumer hands every text frame to `parse_frame` and every batch's records to
`parse_records`; both return typed values or raise / report errors carrying the protocol's error
codes, so the wire contract lives in this one module next to the document that describes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeGuard

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1_048_576
MAX_BATCH_RECORDS = 500
MAX_RECORD_BYTES = 65_536
MAX_INFLIGHT_BATCHES = 4
HEARTBEAT_INTERVAL_S = 30
MAX_CLOCK_AHEAD = timedelta(hours=24)
MAX_LOG_MESSAGE_CHARS = 16_384
MAX_SEQ = 2**63 - 1
# Field limits shared by the payload schemas and the hand-written fast path below.
MAX_ID_CHARS = 64  # batch ids, deployment ids, point names
MAX_NAME_CHARS = 200  # device keys, alarm sources and codes, logger names
MAX_POINTS = 256  # telemetry points in one record

CLOSE_PROTOCOL_VIOLATION = 4400
CLOSE_SUPERSEDED = 4409


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


class ProtocolError(Exception):
    """A frame the server refuses; becomes an `error` frame (and a close when fatal)."""

    def __init__(self, code: ErrorCode, message: str, *, batch: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
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


def _string(max_length: int, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


SEVERITIES = ["critical", "major", "minor", "warning", "indeterminate"]
LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]
STATUS_STEPS = [
    "deferred",
    "downloading",
    "downloaded",
    "installing",
    "rebooting",
    "committing",
    "success",
    "failure",
    "rolled_back",
]
FIELD_DEVICE_KINDS = ["inverter", "meter", "battery", "weather_station"]
FIELD_DEVICE_PROTOCOLS = ["sunspec-tcp", "sunspec-rtu", "modbus-tcp", "modbus-rtu", "ieee2030.5", "dnp3-tcp", "other"]

PAYLOAD_SCHEMAS: dict[Kind, dict[str, Any]] = {
    Kind.LOG: {
        "type": "object",
        "required": ["level", "message"],
        "properties": {
            "level": {"enum": LOG_LEVELS},
            "message": {"type": "string"},
            "logger": _string(MAX_NAME_CHARS),
            "fields": {"type": "object"},
        },
    },
    Kind.ALARM: {
        "type": "object",
        "required": ["source", "code", "severity", "state", "message"],
        "properties": {
            "source": _string(200, 1),
            "code": _string(200, 1),
            "severity": {"enum": SEVERITIES},
            "state": {"enum": ["raised", "cleared"]},
            "message": _string(2000),
            "device": _string(200),
            "details": {"type": "object"},
        },
    },
    Kind.TELEMETRY: {
        "type": "object",
        "required": ["device", "points"],
        "properties": {
            "device": _string(MAX_NAME_CHARS, 1),
            "points": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": MAX_POINTS,
                "propertyNames": {"minLength": 1, "maxLength": MAX_ID_CHARS},
                "additionalProperties": {"type": ["number", "null"]},
            },
        },
    },
    Kind.STATUS: {
        "type": "object",
        "required": ["deployment", "step"],
        "properties": {
            "deployment": {"anyOf": [_string(64, 1), {"type": "integer"}]},
            "step": {"enum": STATUS_STEPS},
            "bundle": _string(500),
            "version": _string(100),
            "code": _string(100),
            "message": _string(2000),
            "log_excerpt": _string(16_384),
            "progress": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 100}, {"type": "null"}]},
        },
    },
    Kind.EVENT: {
        "type": "object",
        "required": ["name"],
        "properties": {"name": _string(100, 1), "message": _string(2000), "data": {"type": "object"}},
    },
    Kind.INVENTORY: {
        "type": "object",
        "properties": {
            "hardware_model": _string(100),
            "os": _string(100),
            "agent_version": _string(100),
            "firmware_version": _string(100),
            "attributes": {"type": "object"},
            "field_devices": {
                "type": "array",
                "maxItems": 256,
                "items": {
                    "type": "object",
                    "required": ["key", "kind", "protocol", "address"],
                    "properties": {
                        "key": _string(200, 1),
                        "kind": {"enum": FIELD_DEVICE_KINDS},
                        "protocol": {"enum": FIELD_DEVICE_PROTOCOLS},
                        "address": _string(100, 1),
                        "make": _string(64),
                        "model": _string(64),
                        "serial": _string(64),
                        "firmware_version": _string(64),
                    },
                },
            },
        },
    },
}

_VALIDATORS = {kind: Draft202012Validator(schema) for kind, schema in PAYLOAD_SCHEMAS.items()}

STREAM_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}
_HELLO_VALIDATOR = Draft202012Validator(
    {
        "type": "object",
        "required": ["protocol", "agent_version", "stream"],
        "properties": {
            "protocol": {"type": "integer"},
            "agent_version": _string(64, 1),
            "stream": STREAM_SCHEMA,
            "last_acked_seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
        },
    }
)


class CommandName(StrEnum):
    CHECK_UPDATES = "check_updates"
    UPLOAD_LOGS = "upload_logs"
    REBOOT = "reboot"
    OPEN_TUNNEL = "open_tunnel"
    SET_POWER_LIMIT = "set_power_limit"


_TS = {"type": "string"}  # RFC 3339, checked by command_args_error
COMMAND_ARG_SCHEMAS: dict[CommandName, dict[str, Any]] = {
    CommandName.CHECK_UPDATES: {"type": "object", "additionalProperties": False},
    CommandName.UPLOAD_LOGS: {
        "type": "object",
        "required": ["upload_url"],
        "additionalProperties": False,
        "properties": {"upload_url": _string(2000, 1), "since": _TS, "until": _TS},
    },
    CommandName.REBOOT: {
        "type": "object",
        "additionalProperties": False,
        "properties": {"delay_s": {"type": "integer", "minimum": 0, "maximum": 3600}, "reason": _string(200)},
    },
    CommandName.OPEN_TUNNEL: {
        "type": "object",
        "required": ["url", "expires_at"],
        "additionalProperties": False,
        "properties": {"url": _string(2000, 1), "expires_at": _TS},
    },
    CommandName.SET_POWER_LIMIT: {
        "type": "object",
        "required": ["device", "limit_pct"],
        "additionalProperties": False,
        "properties": {
            "device": _string(200, 1),
            "limit_pct": {"type": "number", "minimum": 0, "maximum": 100},
            "revert_after_s": {"type": "integer", "minimum": 1},
        },
    },
}
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
                parse_timestamp(args[key])
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
    if not _short_string(batch_id, MAX_ID_CHARS, 1):
        raise ProtocolError(
            ErrorCode.MALFORMED_FRAME, f"batch.batch must be a string of 1 to {MAX_ID_CHARS} characters."
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


def parse_timestamp(value: Any) -> datetime:
    """An RFC 3339 timestamp with an offset, as an aware UTC datetime; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("has no UTC offset; use e.g. 2026-11-26T13:00:00Z")
    return parsed.astimezone(UTC)


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
            _short_string(payload.get("device"), MAX_NAME_CHARS, 1)
            and isinstance(points, dict)
            and 1 <= len(points) <= MAX_POINTS
            and all(
                1 <= len(name) <= MAX_ID_CHARS
                and (value is None or (isinstance(value, int | float) and not isinstance(value, bool)))
                for name, value in points.items()
            )
        )
    if kind == Kind.LOG:
        return (
            payload.get("level") in LOG_LEVELS
            and isinstance(payload.get("message"), str)
            and ("logger" not in payload or _short_string(payload["logger"], MAX_NAME_CHARS))
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
        ts = parse_timestamp(raw.get("ts"))
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
