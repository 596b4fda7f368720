"""The utility link's state reaches the server as `csip.link` events, and a lost link is an alarm
that clears when the link is back (docs/utility-link.md, docs/protocol/uplink.md 3.5)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("py20305")

from gridfleet_agent.daemon import Agent


class FakeOutbox:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def put(self, kind: str, payload: dict[str, Any]) -> None:
        self.records.append((str(kind), payload))


def status(state: str, detail: str = "") -> dict[str, Any]:
    return {"state": state, "detail": detail, "server": "https://utility.example", "responses": []}


def test_a_lost_utility_link_raises_an_alarm_once_and_clears_it_when_following_again() -> None:
    agent: Any = SimpleNamespace(
        outbox=FakeOutbox(), uplink=SimpleNamespace(wake=lambda: None), _link_alarm_raised=False
    )
    for state in ("discovering", "registered", "following", "comms_lost", "comms_lost", "following"):
        Agent._report_link(agent, status(state, "no answer" if state == "comms_lost" else ""))
    events = [p["data"]["state"] for kind, p in agent.outbox.records if kind == "event"]
    alarms = [(p["code"], p["state"]) for kind, p in agent.outbox.records if kind == "alarm"]
    assert events == ["discovering", "registered", "following", "comms_lost", "comms_lost", "following"]
    assert alarms == [("csip.link_lost", "raised"), ("csip.link_lost", "cleared")]
