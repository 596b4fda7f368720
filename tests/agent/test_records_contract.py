"""Contract: what the agent actually emits matches the published schemas (docs/protocol/schemas/).

The agent imports nothing from the server, so it keeps its own copy of the protocol's limits and
vocabularies (log levels, status steps, severities). This test runs the agent's real emitters
(its log handler and durable outbox, its status reporter, its field stack against the SunSpec
simulator) and validates every record, envelope and payload, against the files the server
validates with. A drift on either side fails here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from gridfleet_agent.daemon import QueueLogHandler
from gridfleet_agent.field import FieldStack
from gridfleet_agent.field.setpoints import PowerLimit
from gridfleet_agent.installers import runner
from gridfleet_agent.queue import Outbox
from gridfleet_agent.reporting import queue_status_reporter
from gridfleet_agent.update_state import InstallJob, Step
from gridfleet_agent_simulators.sunspec import SunSpecSimulator
from jsonschema import Draft202012Validator

from agent.tests.field.fixtures import RecordingSink, device_entry, simulator, sink
from fleet.core.protocol_schemas import SCHEMA_DIR, schema

__all__ = ["device_entry", "simulator", "sink"]  # the field stack fixtures used below


def problems(record: dict[str, Any]) -> list[str]:
    """Every way `record` breaks record.json or its kind's payload schema."""
    found = [f"envelope: {e.message}" for e in Draft202012Validator(schema("record")).iter_errors(record)]
    if (SCHEMA_DIR / f"{record.get('kind')}.json").exists():
        payload_schema = Draft202012Validator(schema(record["kind"]))
        found += [f"{record['kind']} payload: {e.message}" for e in payload_schema.iter_errors(record["payload"])]
    return found


def sent(outbox: Outbox) -> list[dict[str, Any]]:
    """The records as the uplink sends them in a batch."""
    return [record.as_message() for record in outbox.pending(limit=10_000)]


def test_the_agents_own_log_lines_are_valid_log_records(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    logger = logging.getLogger("gridfleet_agent." + "x" * 300)  # longer than the schema allows a name
    handler = QueueLogHandler(outbox, 1)
    logger.addHandler(handler)
    logger.setLevel(1)
    logger.propagate = False
    try:
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL, 5, 25):
            logger.log(level, "line at level %s", level)
        logger.warning("long " * 4_000)  # beyond the agent's 16,000-character cut
    finally:
        logger.removeHandler(handler)

    records = sent(outbox)
    assert len(records) == 8
    assert {r["kind"] for r in records} == {"log"}
    assert [p for r in records for p in problems(r)] == []


@pytest.mark.parametrize("result", list(runner._FINAL_STEP))
def test_every_deployment_status_report_is_a_valid_status_record(tmp_path: Path, result: Any) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    report = queue_status_reporter(outbox)
    job = InstallJob(
        deployment="42",
        kind="firmware",
        target="firmware/acme/gw-os-2.1.0.tar",
        version="2.1.0",
        step=Step.DOWNLOADING,
        started_at="2026-11-26T13:00:00Z",
    )
    # The progress steps the runner reports on its way, then the final one for this result.
    for step in ("downloading", "downloaded", "installing", "rebooting", "committing"):
        report(job, step)
    report(job, runner._FINAL_STEP[result], code="install_failed", message="m" * 5000, log="l" * 40_000)

    records = sent(outbox)
    assert {r["kind"] for r in records} == {"status"}
    assert [p for r in records for p in problems(r)] == []


async def test_field_telemetry_alarms_inventory_and_setpoint_events_are_valid_records(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: Any
) -> None:
    simulator.update(1, {"Mn": "Acme Solar", "Md": "AS-10K", "SN": "AS10K-0042", "Vr": "3.2.1"})
    async with FieldStack({"devices": [device_entry(simulator, debounce_polls=1)]}, sink) as stack:
        await sink.wait_for("inventory")
        await sink.wait_for("telemetry")
        simulator.raise_event(0)
        raised = await sink.wait_for("alarm", state="raised")
        simulator.clear_event(0)
        await sink.wait_for("alarm", state="cleared", after=raised)
        await stack.apply_setpoint("inv-1", PowerLimit(50), source="test")

    kinds = {r["kind"] for r in sink.records}
    assert {"inventory", "telemetry", "alarm"} <= kinds
    # The field stack hands records without a seq; the outbox numbers them.
    numbered = [{"seq": seq, **record} for seq, record in enumerate(sink.records, start=1)]
    assert [p for r in numbered for p in problems(r)] == []
