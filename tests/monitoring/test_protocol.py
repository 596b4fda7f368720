"""Uplink protocol v1 parsing: what the server accepts, refuses and why (docs/protocol/uplink.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from fleet.uplink.protocol import (
    MAX_BATCH_RECORDS,
    MAX_FRAME_BYTES,
    Batch,
    CommandName,
    ErrorCode,
    Heartbeat,
    Hello,
    Kind,
    ProtocolError,
    command_args_error,
    parse_frame,
    parse_records,
)
from tests.conftest import NOON_PACIFIC

NOW = NOON_PACIFIC.replace(hour=13, minute=0)


def hello(**overrides: Any) -> str:
    return json.dumps({"type": "hello", "protocol": 1, "agent_version": "0.4.2", "stream": "q-1", **overrides})


def record(seq: int, kind: str = "log", **payload: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": kind,
        "ts": "2026-11-26T12:59:59.5Z",
        "payload": payload or {"level": "info", "message": f"record {seq}"},
    }


def test_hello_is_parsed_with_its_defaults() -> None:
    assert parse_frame(hello(), expecting_hello=True) == Hello(
        protocol=1, agent_version="0.4.2", stream="q-1", last_acked_seq=0
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"type": "heartbeat"}', ErrorCode.HELLO_REQUIRED),
        (hello(protocol=2), ErrorCode.UNSUPPORTED_PROTOCOL),
        (hello(stream="has spaces"), ErrorCode.INVALID_HELLO),
        (hello(agent_version=7), ErrorCode.INVALID_HELLO),
    ],
)
def test_fatal_hello_errors(text: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame(text, expecting_hello=True)
    assert caught.value.code == code
    assert caught.value.fatal


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (None, ErrorCode.MALFORMED_FRAME),
        ("{not json", ErrorCode.MALFORMED_FRAME),
        ("[1, 2]", ErrorCode.MALFORMED_FRAME),
        ('{"type": "gossip"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "ack"}', ErrorCode.OUT_OF_PROTOCOL),
        (hello(), ErrorCode.OUT_OF_PROTOCOL),
        ('{"type": "batch", "batch": "b1", "records": []}', ErrorCode.MALFORMED_FRAME),
        ('{"type": "batch", "records": [{}]}', ErrorCode.MALFORMED_FRAME),
        (
            json.dumps({"type": "batch", "batch": "b", "records": [{}] * (MAX_BATCH_RECORDS + 1)}),
            ErrorCode.BATCH_TOO_LARGE,
        ),
        (
            json.dumps({"type": "batch", "batch": "b", "pad": "x" * MAX_FRAME_BYTES}),
            ErrorCode.FRAME_TOO_LARGE,
        ),
    ],
)
def test_non_fatal_frame_errors(text: str | None, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame(text, expecting_hello=False)
    assert caught.value.code == code
    assert not caught.value.fatal


def test_heartbeat_and_batch_frames() -> None:
    assert parse_frame('{"type": "heartbeat"}', expecting_hello=False) == Heartbeat()
    frame = parse_frame(json.dumps({"type": "batch", "batch": "b1", "records": [record(1)]}), expecting_hello=False)
    assert isinstance(frame, Batch) and frame.batch == "b1" and len(frame.records) == 1


def test_bad_records_are_rejected_one_by_one_and_the_rest_kept() -> None:
    raw = [
        record(1),
        {"seq": "two", "kind": "log"},
        record(3, "alarm", source="agent", code="x", severity="huge", state="raised", message=""),
        record(4, "gossip"),
        {**record(5), "ts": "2026-11-26T12:00:00"},
        {**record(6), "ts": (NOW + timedelta(days=2)).isoformat()},
        record(6),
        record(8, "telemetry", device="INV-1", points={"W": 4100.5, "TmpCab": None}),
        record(9, "telemetry", device="INV-1", points={"W": "high"}),
        record(10, "log", level="info", message="x" * 70_000),
    ]
    parsed = parse_records(raw, now=NOW)
    assert [r.seq for r in parsed.records] == [1, 8]
    assert parsed.records[1].kind == Kind.TELEMETRY
    rejected = {(r.seq, r.code) for r in parsed.rejected}
    assert rejected == {
        (None, ErrorCode.INVALID_RECORD),
        (3, ErrorCode.INVALID_RECORD),
        (4, ErrorCode.UNKNOWN_KIND),
        (5, ErrorCode.INVALID_RECORD),
        (6, ErrorCode.TS_IN_FUTURE),
        (6, ErrorCode.OUT_OF_ORDER),
        (9, ErrorCode.INVALID_RECORD),
        (10, ErrorCode.RECORD_TOO_LARGE),
    }
    messages = {r.seq: r.message for r in parsed.rejected}
    assert "payload.severity" in messages[3]
    assert "payload.points.W" in messages[9]
    assert "UTC offset" in messages[5]
    assert parsed.rejected[0].as_dict() == {
        "seq": None,
        "index": 1,
        "code": "invalid_record",
        "message": parsed.rejected[0].message,
    }


def test_overlong_log_messages_are_truncated_not_lost() -> None:
    parsed = parse_records([record(1, level="error", message="y" * 20_000)], now=NOW)
    payload = parsed.records[0].payload
    assert len(payload["message"]) == 16_384 and payload["truncated"] is True


def test_nan_in_telemetry_reads_as_missing() -> None:
    frame = parse_frame(
        '{"type": "batch", "batch": "b", "records": [{"seq": 1, "kind": "telemetry",'
        ' "ts": "2026-11-26T12:00:00Z",'
        ' "payload": {"device": "INV-1", "points": {"W": NaN, "Hz": 60.0}}}]}',
        expecting_hello=False,
    )
    assert isinstance(frame, Batch)
    parsed = parse_records(frame.records, now=NOW)
    assert parsed.records[0].payload["points"] == {"W": None, "Hz": 60.0}


@pytest.mark.parametrize(
    ("name", "args", "problem"),
    [
        (CommandName.CHECK_UPDATES, {}, None),
        (CommandName.CHECK_UPDATES, {"now": True}, "Additional properties"),
        (CommandName.SET_POWER_LIMIT, {"device": "INV-1", "limit_pct": 60}, None),
        (CommandName.SET_POWER_LIMIT, {"device": "INV-1", "limit_pct": 160}, "args.limit_pct"),
        (CommandName.REBOOT, {"delay_s": -1}, "args.delay_s"),
        (CommandName.UPLOAD_LOGS, {"upload_url": "https://x/y", "since": "yesterday"}, "args.since"),
    ],
)
def test_command_arguments_are_checked_before_sending(name: CommandName, args: Any, problem: str | None) -> None:
    error = command_args_error(name, args)
    if problem is None:
        assert error is None
    else:
        assert error is not None and problem in error
