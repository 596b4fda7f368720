"""Site logic: rules from the field configuration run on the gateway. The pure engine with an
injected clock, then whole rules against simulated devices over Modbus on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gridfleet_agent.field import FieldConfigError, FieldStack
from gridfleet_agent.field.logic import RuleEngine, RuleState, parse_site_logic
from gridfleet_agent.field.templates import parse_template, shipped_templates
from gridfleet_agent_simulators.sunspec import SimulatedSite, TemplateSimulator

from .fixtures import RecordingSink

DEVICES = {"mtr-1": "meter", "inv-1": "inverter", "inv-2": "inverter", "io-1": "io_module"}
EXPORT_LIMIT = {
    "name": "export-limit",
    "when": {"device": "mtr-1", "point": "W", "below": -5000, "for_s": 10},
    "then": {"setpoint": "power_limit", "percent": 50, "kind": "inverter"},
    "otherwise": {"setpoint": "power_limit", "percent": None, "kind": "inverter"},
    "stale_after_s": 30,
    "on_stale": {"setpoint": "power_limit", "percent": 0, "kind": "inverter"},
}


def engine(*rules: dict[str, Any]) -> RuleEngine:
    problems: list[str] = []
    config = parse_site_logic({"rules": list(rules)}, DEVICES, problems)
    assert problems == []
    return RuleEngine(config.rules)


def fired(firings: list[Any]) -> list[tuple[str, str]]:
    return [(f.rule.name, f.transition) for f in firings]


def test_a_condition_must_hold_for_its_duration_before_the_rule_acts() -> None:
    rules = engine(EXPORT_LIMIT)
    assert rules.observe("mtr-1", {"W": -6000}, now=0) == []
    assert rules.observe("mtr-1", {"W": -6000}, now=9.9) == []
    assert rules.observe("mtr-1", {"W": -4000}, now=10.5) == []  # dipped: the 10 s start over
    assert rules.observe("mtr-1", {"W": -6000}, now=11) == []
    assert fired(rules.tick(now=21)) == [("export-limit", "then")]
    assert rules.state("export-limit") is RuleState.ACTIVE
    assert rules.tick(now=22) == []  # once per activation
    rules.observe("mtr-1", {"W": -1000}, now=23)
    (back,) = rules.observe("mtr-1", {"W": -1000}, now=33)
    assert (back.transition, back.action.args) == ("otherwise", {"limit_pct": None})
    assert back.reason == "mtr-1.W=-1000 no longer below -5000 for 10 s"


def test_a_stale_input_runs_the_safe_action_once_and_fresh_readings_start_over() -> None:
    rules = engine(EXPORT_LIMIT)
    rules.observe("mtr-1", {"W": -1000}, now=0)
    (stale,) = rules.tick(now=31)
    assert stale.transition == "on_stale" and stale.action.args == {"limit_pct": 0}
    assert stale.reason == "input stale: no reading of mtr-1.W for 31 s"
    assert rules.tick(now=60) == []  # once
    assert fired(rules.observe("mtr-1", {"W": -6000}, now=61)) == [("export-limit", "fresh")]
    assert rules.state("export-limit") is RuleState.INACTIVE  # must hold 10 s again before acting
    assert fired(rules.tick(now=71)) == [("export-limit", "then")]


def test_communication_loss_makes_the_input_stale_at_once() -> None:
    rules = engine({**EXPORT_LIMIT, "on_stale": None})
    rules.observe("mtr-1", {"W": -1000}, now=0)
    (stale,) = rules.comm_lost("mtr-1", now=1)
    assert stale.action is None  # no on_stale: hold, and say so
    assert stale.reason == "input stale: communication with the device lost; holding (no on_stale action)"


def test_rules_with_mistakes_name_each_one() -> None:
    problems: list[str] = []
    parse_site_logic(
        {
            "rules": [
                {"name": "a", "when": {"device": "nope", "point": "W", "above": 1}, "then": {"setpoint": "x"}},
                {
                    "name": "b",
                    "when": {"device": "mtr-1", "point": "W", "above": 1, "below": 2, "for_s": -1},
                    "then": {"setpoint": "power_limit", "percent": 150, "kind": "inverter"},
                    "otherwise": {"setpoint": "connection", "connected": True, "kind": "weather_station"},
                },
            ]
        },
        DEVICES,
        problems,
    )
    assert problems == [
        "site_logic.rules[0].when.device: one of the configured devices (mtr-1, inv-1, inv-2, io-1), got 'nope'",
        "site_logic.rules[0].then.setpoint: one of power_limit, connection, power_factor, point (got 'x')",
        "site_logic.rules[1].when: exactly one of above, below, equals",
        "site_logic.rules[1].when.for_s: seconds 0..86400 (got -1)",
        "site_logic.rules[1].then: power limit must be 0..100 % of WMax (got 150.0)",
        "site_logic.rules[1].otherwise.kind: no configured device is of kind 'weather_station'",
    ]


async def test_meter_export_above_the_site_limit_lowers_the_inverters_power_limit() -> None:
    sink = RecordingSink()
    rule = {**EXPORT_LIMIT, "when": {"device": "S-MTR1", "point": "W", "below": -5000, "for_s": 0.5}}
    rule["then"] = {"setpoint": "power_limit", "percent": 40, "kind": "inverter"}
    rule["otherwise"] = rule["on_stale"] = None
    site = SimulatedSite(sink, name="S", poll_interval=0.1, load_w=1000, extra={"site_logic": {"rules": [rule]}})
    await site.start()
    try:
        site.simulator.set_available_power(8000)  # sunny: the site exports 7 kW, over the 5 kW limit
        site.update_meter()
        action = await sink.wait_for("event", name="site_logic.action", timeout=10)
        site.update_meter()
        limited = await sink.wait_for_points(W=-3000, after=action, timeout=10)  # only the meter reads < 0
    finally:
        await site.stop()

    data = action["payload"]["data"]
    assert (data["rule"], data["transition"], data["dry_run"]) == ("export-limit", "then", False)
    assert data["results"] == [
        {"device": "S-INV1", "status": "succeeded", "readback": {"WMaxLimPct": 40.0, "WMaxLimPctEna": 1}}
    ]
    assert site.simulator.power_limit_pct() == 40.0  # read from the inverter's registers
    assert limited["payload"]["device"] == "S-MTR1"  # 4 kW produced, 1 kW consumed: 3 kW exported
    setpoint = next(e for e in sink.of_kind("event") if e["payload"]["name"] == "field.setpoint")
    assert setpoint["payload"]["data"]["source"] == "site-logic:export-limit"


async def test_a_digital_input_toggles_a_contactor_and_dry_run_only_reports() -> None:
    io_template = parse_template("generic-io-module", shipped_templates()["generic-io-module"])

    async def run(dry_run: bool) -> tuple[RecordingSink, TemplateSimulator]:
        sink = RecordingSink()
        rule = {
            "name": "contactor",
            "when": {"device": "io-1", "point": "DI1", "equals": 1},
            "then": {"setpoint": "connection", "connected": True, "devices": ["io-1"]},
            "otherwise": {"setpoint": "connection", "connected": False, "devices": ["io-1"]},
        }
        async with TemplateSimulator(io_template) as io:
            device = {"id": "io-1", "protocol": "modbus-tcp", "template": "generic-io-module"}
            device.update(host=io.host, port=io.port, poll_interval=0.05)
            config = {"devices": [device], "site_logic": {"dry_run": dry_run, "rules": [rule]}}
            async with FieldStack(config, sink):
                io.tables["discrete"][0] = 1  # the operator turns the key switch
                on = await sink.wait_for("event", name="site_logic.action")
                if not dry_run:
                    await sink.wait_for_points(DO1=1)
                io.tables["discrete"][0] = 0
                await sink.wait_for("event", name="site_logic.action", after=on, timeout=5)
                await asyncio.sleep(0.2)
        return sink, io

    sink, io = await run(dry_run=False)
    actions = [e["payload"]["data"] for e in sink.of_kind("event") if e["payload"]["name"] == "site_logic.action"]
    assert [(a["transition"], a["results"][0]["readback"]) for a in actions] == [
        ("then", {"DO1": 1}),
        ("otherwise", {"DO1": 0}),
    ]
    assert io.tables["coil"][0] == 0

    sink, io = await run(dry_run=True)
    actions = [e["payload"] for e in sink.of_kind("event") if e["payload"]["name"] == "site_logic.action"]
    assert [a["data"]["results"][0]["status"] for a in actions] == ["dry_run", "dry_run"]
    assert actions[0]["message"] == "rule contactor: io-1.DI1=1 equals 1 for 0 s; then would run"
    assert not any(e["payload"]["name"] == "field.setpoint" for e in sink.of_kind("event"))
    assert io.tables["coil"][0] == 0  # never written


def test_an_invalid_rule_refuses_the_whole_field_configuration() -> None:
    with pytest.raises(FieldConfigError, match=r"site_logic.rules\[0\].then: required"):
        FieldStack(
            {
                "devices": [{"id": "inv-1", "protocol": "sunspec-tcp", "host": "127.0.0.1"}],
                "site_logic": {"rules": [{"name": "r", "when": {"device": "inv-1", "point": "W", "above": 1}}]},
            },
            RecordingSink(),
        )
