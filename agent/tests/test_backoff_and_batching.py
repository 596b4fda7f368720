"""Reconnect/poll backoff and how queued records are cut into uplink frames."""

from __future__ import annotations

import json
import random

from gridfleet_agent.backoff import Backoff, jittered
from gridfleet_agent.queue import Record, RecordKind
from gridfleet_agent.uplink import batch_frame, websocket_url


def test_backoff_grows_exponentially_to_its_cap_with_full_jitter():
    backoff = Backoff(base=1.0, cap=300.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(300.0, 2.0**n) for n in range(12)]
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))
    assert max(delays[9:]) > 16  # it does reach the long delays
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_poll_interval_jitter_only_adds_up_to_the_fraction():
    rng = random.Random(3)
    values = [jittered(300.0, 0.1, rng) for _ in range(200)]
    assert min(values) >= 300.0 and max(values) <= 330.0


def record(seq: int, size: int) -> Record:
    return Record(seq, RecordKind.LOG, "2026-11-26T13:00:00Z", {"level": "info", "message": "x" * size})


def testbatch_frame_holds_as_many_records_as_fit_in_the_frame_limit():
    records = [record(seq, 1000) for seq in range(1, 11)]

    frame, last_seq = batch_frame("b-1", records, max_frame_bytes=3500)

    message = json.loads(frame)
    assert message["type"] == "batch" and message["batch"] == "b-1"
    assert [r["seq"] for r in message["records"]] == [1, 2, 3]
    assert last_seq == 3
    assert len(frame.encode()) <= 3500


def test_websocket_url_follows_the_server_scheme():
    assert websocket_url("https://fleet.example.com/") == "wss://fleet.example.com/ws/gateway/v1/"
    assert websocket_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws/gateway/v1/"
