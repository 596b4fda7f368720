"""The store-and-forward queue (``gridfleet_agent.queue.Outbox``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gridfleet_agent.queue import Outbox, RecordKind, RecordTooLarge


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite3", max_records=5)


def test_records_come_out_in_sequence_order_with_their_payload(outbox: Outbox):
    first = outbox.put(RecordKind.LOG, {"msg": "boot"}, ts="2026-01-01T00:00:00.000Z")
    second = outbox.put(RecordKind.ALARM, {"code": "ground_fault"})

    records = outbox.pending()

    assert [r.seq for r in records] == [first, second]
    assert records[0].as_message() == {
        "seq": first,
        "kind": "log",
        "ts": "2026-01-01T00:00:00.000Z",
        "payload": {"msg": "boot"},
    }
    assert records[1].kind is RecordKind.ALARM


def test_records_stay_until_acknowledged(outbox: Outbox):
    seqs = [outbox.put(RecordKind.LOG, {"n": n}) for n in range(3)]

    assert outbox.ack_through(seqs[1]) == 2

    assert [r.seq for r in outbox.pending()] == [seqs[2]]
    assert outbox.depth().last_acked_seq == seqs[1]


def test_acknowledging_twice_or_an_older_position_is_harmless(outbox: Outbox):
    first = outbox.put(RecordKind.STATUS, {"step": "installing"})
    second = outbox.put(RecordKind.STATUS, {"step": "success"})
    assert outbox.ack_through(second) == 2
    assert outbox.ack_through(second) == 0
    assert outbox.ack_through(first) == 0
    assert outbox.depth().last_acked_seq == second


def test_stream_id_is_created_once_with_the_database(tmp_path: Path):
    path = tmp_path / "outbox.sqlite3"
    stream = Outbox(path).stream
    assert stream.startswith("q-")
    assert Outbox(path).stream == stream
    assert Outbox(tmp_path / "other.sqlite3").stream != stream


def test_sequence_numbers_are_never_reused_after_acknowledgement(tmp_path: Path):
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    seq = outbox.put(RecordKind.LOG, {})
    outbox.ack_through(seq)
    outbox.close()

    assert Outbox(path).put(RecordKind.LOG, {}) > seq


def test_full_queue_drops_oldest_telemetry_first(outbox: Outbox):
    alarm = outbox.put(RecordKind.ALARM, {"code": 1})
    telemetry = [outbox.put(RecordKind.TELEMETRY, {"w": n}) for n in range(4)]

    newest = outbox.put(RecordKind.TELEMETRY, {"w": 99})

    assert [r.seq for r in outbox.pending()] == [alarm, *telemetry[1:], newest]
    assert outbox.depth().telemetry_dropped == 1


def test_alarms_logs_and_status_are_never_dropped_even_beyond_the_bound(outbox: Outbox):
    kept = [outbox.put(kind, {}) for kind in (RecordKind.ALARM, RecordKind.STATUS, RecordKind.LOG)]
    kept += [outbox.put(RecordKind.ALARM, {"n": n}) for n in range(4)]
    assert outbox.put(RecordKind.TELEMETRY, {"w": 1}) is None

    assert [r.seq for r in outbox.pending()] == kept
    depth = outbox.depth()
    assert depth.total == 7
    assert depth.by_kind == {"alarm": 5, "status": 1, "log": 1}
    assert depth.telemetry_dropped == 1


def test_pending_pages_after_a_sequence_number(outbox: Outbox):
    seqs = [outbox.put(RecordKind.LOG, {"n": n}) for n in range(4)]
    assert [r.seq for r in outbox.pending(limit=2, after_seq=seqs[0])] == seqs[1:3]


def test_payload_larger_than_the_server_accepts_is_refused_at_queue_time(outbox: Outbox):
    with pytest.raises(RecordTooLarge):
        outbox.put(RecordKind.LOG, {"level": "info", "message": "x" * 70_000})
    assert outbox.depth().total == 0


def test_unknown_kind_is_refused(outbox: Outbox):
    with pytest.raises(ValueError):
        outbox.put("gossip", {})


def test_queued_alarm_survives_the_process_being_killed(tmp_path: Path):
    path = tmp_path / "outbox.sqlite3"
    script = (
        "import os, signal, sys\n"
        "from gridfleet_agent.queue import Outbox\n"
        "seq = Outbox(sys.argv[1]).put('alarm', {'code': 'over_temperature'})\n"
        "print(seq, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == -9

    records = Outbox(path).pending()

    assert [(r.seq, r.payload) for r in records] == [(int(result.stdout), {"code": "over_temperature"})]
