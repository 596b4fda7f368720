"""Site logic: small rules in the field configuration, run on the gateway.

    "site_logic": {
      "dry_run": false,
      "rules": [
        {"name": "export-limit",
         "when": {"device": "mtr-1", "point": "W", "below": -5000, "for_s": 10},
         "then": {"setpoint": "power_limit", "percent": 50, "kind": "inverter"},
         "otherwise": {"setpoint": "power_limit", "percent": null, "kind": "inverter"},
         "stale_after_s": 30,
         "on_stale": {"setpoint": "power_limit", "percent": 0, "kind": "inverter"}},
        {"name": "contactor",
         "when": {"device": "io-1", "point": "DI1", "equals": 1},
         "then": {"setpoint": "connection", "connected": true, "devices": ["io-1"]},
         "otherwise": {"setpoint": "connection", "connected": false, "devices": ["io-1"]}}
      ]
    }

A rule watches one point. When its condition has held for `for_s` seconds the rule becomes
active and runs `then` once; when the condition has been false for `clear_for_s` (default
`for_s`) it becomes inactive and runs `otherwise`, if given. An input is stale when no reading
of it arrived for `stale_after_s` (default 30 s) or its device lost communication; the rule then
runs `on_stale` once if given (the safe state: e.g. curtail when the meter is blind) and otherwise
holds, doing nothing, until fresh readings return, when it starts over from "inactive".

`RuleEngine` is the pure core (readings and the clock in, actions out); the field stack feeds it
every telemetry record, ticks it every second and carries out its actions through the one
setpoint path (`apply_setpoint(..., source="site-logic")`), reporting each one as a
`site_logic.action` event; with `dry_run` the action is reported but not applied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gridfleet_agent.field.errors import ControlRejected
from gridfleet_agent.field.setpoints import Setpoint, setpoint_from_command

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_STALE_AFTER_S = 30.0
MAX_SECONDS = 86400
COMPARISONS = ("above", "below", "equals")
#: Action "setpoint" -> the command whose arguments it takes (setpoints.COMMANDS).
ACTIONS: Mapping[str, str] = {
    "power_limit": "set_power_limit",
    "connection": "set_connection",
    "power_factor": "set_power_factor",
    "point": "set_point",
}


class RuleState(StrEnum):
    INACTIVE = "inactive"
    ACTIVE = "active"
    STALE = "stale"


@dataclass(frozen=True)
class Action:
    """What to do: one setpoint for each target device (explicit ids or every device of a kind)."""

    setpoint: str
    args: Mapping[str, Any]
    devices: tuple[str, ...] = ()
    kind: str | None = None

    def setpoint_for(self, device: str) -> Setpoint:
        return setpoint_from_command(ACTIONS[self.setpoint], {**self.args, "device": device})[1]

    def describe(self) -> dict[str, Any]:
        target = {"devices": list(self.devices)} if self.devices else {"kind": self.kind}
        return {"setpoint": self.setpoint, **self.args, **target}


@dataclass(frozen=True)
class Rule:
    name: str
    device: str
    point: str
    comparison: str
    threshold: float
    for_s: float
    clear_for_s: float
    then: Action
    otherwise: Action | None = None
    on_stale: Action | None = None
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    dry_run: bool = False

    def holds(self, value: float) -> bool:
        if self.comparison == "above":
            return value > self.threshold
        if self.comparison == "below":
            return value < self.threshold
        return value == self.threshold


@dataclass(frozen=True)
class Firing:
    """One action the engine decided on, and why."""

    rule: Rule
    transition: str  # "then", "otherwise", "on_stale", "fresh"
    #: None: nothing to do but report (stale without on_stale: hold; fresh: inputs are back).
    action: Action | None
    reason: str
    value: float | None


@dataclass
class _Track:
    state: RuleState = RuleState.INACTIVE
    value: float | None = None
    seen_at: float | None = None
    since: float | None = None  # when the condition started to disagree with the state


@dataclass(frozen=True)
class SiteLogicConfig:
    rules: tuple[Rule, ...] = ()
    dry_run: bool = False


class RuleEngine:
    """Pure: `observe` readings and `tick` the clock; both return the actions to carry out."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._tracks = {rule.name: _Track() for rule in self.rules}

    def state(self, rule: str) -> RuleState:
        return self._tracks[rule].state

    def observe(self, device: str, points: Mapping[str, Any], now: float) -> list[Firing]:
        firings: list[Firing] = []
        for rule in self.rules:
            value = points.get(rule.point) if rule.device == device else None
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            track = self._tracks[rule.name]
            track.value, track.seen_at = float(value), now
            if track.state is RuleState.STALE:  # fresh input again: start over, conservatively
                track.state, track.since = RuleState.INACTIVE, None
                firings.append(Firing(rule, "fresh", None, f"{rule.device}.{rule.point} is read again", track.value))
            firings += self._evaluate(rule, track, now)
        return firings

    def comm_lost(self, device: str, now: float) -> list[Firing]:
        """The device stopped answering: its rules' inputs are stale at once."""
        firings: list[Firing] = []
        for rule in self.rules:
            track = self._tracks[rule.name]
            if rule.device == device and track.state is not RuleState.STALE:
                firings += self._go_stale(rule, track, "communication with the device lost")
        return firings

    def tick(self, now: float) -> list[Firing]:
        firings: list[Firing] = []
        for rule in self.rules:
            track = self._tracks[rule.name]
            if track.state is RuleState.STALE:
                continue
            age = now - track.seen_at if track.seen_at is not None else None
            if age is not None and age > rule.stale_after_s:
                firings += self._go_stale(rule, track, f"no reading of {rule.device}.{rule.point} for {age:.0f} s")
            elif track.value is not None:
                firings += self._evaluate(rule, track, now)
        return firings

    def _evaluate(self, rule: Rule, track: _Track, now: float) -> list[Firing]:
        assert track.value is not None
        holds = rule.holds(track.value)
        if holds == (track.state is RuleState.ACTIVE):
            track.since = None
            return []
        if track.since is None:
            track.since = now
        needed = rule.for_s if holds else rule.clear_for_s
        if now - track.since < needed:
            return []
        track.since = None
        where = f"{rule.device}.{rule.point}={track.value:g}"
        if holds:
            track.state = RuleState.ACTIVE
            reason = f"{where} {rule.comparison} {rule.threshold:g} for {needed:g} s"
            return [Firing(rule, "then", rule.then, reason, track.value)]
        track.state = RuleState.INACTIVE
        if rule.otherwise is None:
            return []
        reason = f"{where} no longer {rule.comparison} {rule.threshold:g} for {needed:g} s"
        return [Firing(rule, "otherwise", rule.otherwise, reason, track.value)]

    @staticmethod
    def _go_stale(rule: Rule, track: _Track, reason: str) -> list[Firing]:
        track.state, track.since = RuleState.STALE, None
        what = "" if rule.on_stale is not None else "; holding (no on_stale action)"
        return [Firing(rule, "on_stale", rule.on_stale, f"input stale: {reason}{what}", None)]


# -- configuration --------------------------------------------------------------------------------


def parse_site_logic(raw: Any, devices: Mapping[str, str], problems: list[str]) -> SiteLogicConfig:
    """`site_logic` of the field configuration; `devices` maps ids to kinds. Appends every
    problem as 'site_logic.rules[N].field: what to change'."""
    if raw is None:
        return SiteLogicConfig()
    if not isinstance(raw, Mapping):
        problems.append("site_logic: must be an object with 'rules' and optional 'dry_run'")
        return SiteLogicConfig()
    problems.extend(
        f"site_logic.{key}: unknown key (known: dry_run, rules)" for key in sorted(set(raw) - {"rules", "dry_run"})
    )
    dry_run = raw.get("dry_run", False)
    if not isinstance(dry_run, bool):
        problems.append("site_logic.dry_run: must be true or false")
        dry_run = False
    raw_rules = raw.get("rules", [])
    if not isinstance(raw_rules, list):
        problems.append("site_logic.rules: must be a list")
        return SiteLogicConfig(dry_run=dry_run)
    rules = [_rule(f"site_logic.rules[{i}]", r, devices, dry_run, problems) for i, r in enumerate(raw_rules)]
    names = [r.name for r in rules if r is not None]
    problems.extend(
        f"site_logic.rules: name {duplicate!r} is used more than once"
        for duplicate in sorted({n for n in names if names.count(n) > 1})
    )
    return SiteLogicConfig(rules=tuple(r for r in rules if r is not None), dry_run=dry_run)


def _rule(path: str, raw: Any, devices: Mapping[str, str], dry_run: bool, problems: list[str]) -> Rule | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be an object with name, when, then")
        return None
    before = len(problems)
    known = {"name", "when", "then", "otherwise", "on_stale", "stale_after_s", "dry_run"}
    problems += [f"{path}.{k}: unknown key (known: {', '.join(sorted(known))})" for k in sorted(set(raw) - known)]
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{path}.name: required, 1-64 letters, digits, '.', '_' or '-'")
    when = raw.get("when")
    condition = _condition(f"{path}.when", when, devices, problems)
    then = _action(f"{path}.then", raw.get("then"), devices, problems, required=True)
    otherwise = _action(f"{path}.otherwise", raw.get("otherwise"), devices, problems)
    on_stale = _action(f"{path}.on_stale", raw.get("on_stale"), devices, problems)
    stale_after = _seconds(f"{path}.stale_after_s", raw.get("stale_after_s", DEFAULT_STALE_AFTER_S), problems)
    rule_dry_run = raw.get("dry_run", dry_run)
    if not isinstance(rule_dry_run, bool):
        problems.append(f"{path}.dry_run: must be true or false")
    if len(problems) > before or condition is None or then is None:
        return None
    device, point, comparison, threshold, for_s, clear_for_s = condition
    return Rule(
        name=str(name),
        device=device,
        point=point,
        comparison=comparison,
        threshold=threshold,
        for_s=for_s,
        clear_for_s=clear_for_s,
        then=then,
        otherwise=otherwise,
        on_stale=on_stale,
        stale_after_s=stale_after,
        dry_run=bool(rule_dry_run),
    )


def _condition(
    path: str, raw: Any, devices: Mapping[str, str], problems: list[str]
) -> tuple[str, str, str, float, float, float] | None:
    if not isinstance(raw, Mapping):
        problems.append(f'{path}: required, e.g. {{"device": "mtr-1", "point": "W", "below": -5000, "for_s": 10}}')
        return None
    before = len(problems)
    known = {"device", "point", "for_s", "clear_for_s", *COMPARISONS}
    problems += [f"{path}.{k}: unknown key (known: {', '.join(sorted(known))})" for k in sorted(set(raw) - known)]
    device, point = raw.get("device"), raw.get("point")
    if device not in devices:
        problems.append(
            f"{path}.device: one of the configured devices ({', '.join(devices) or 'none'}), got {device!r}"
        )
    if not isinstance(point, str) or not point:
        problems.append(f"{path}.point: required, the telemetry point name (e.g. 'W', 'DI1')")
    given = [c for c in COMPARISONS if c in raw]
    threshold = raw.get(given[0]) if len(given) == 1 else None
    if len(given) != 1:
        problems.append(f"{path}: exactly one of above, below, equals")
    elif isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        problems.append(f"{path}.{given[0]}: must be a number")
    for_s = _seconds(f"{path}.for_s", raw.get("for_s", 0), problems)
    clear_for_s = _seconds(f"{path}.clear_for_s", raw.get("clear_for_s", for_s), problems)
    if len(problems) > before:
        return None
    assert isinstance(threshold, int | float)  # checked above
    return str(device), str(point), given[0], float(threshold), for_s, clear_for_s


def _action(
    path: str, raw: Any, devices: Mapping[str, str], problems: list[str], *, required: bool = False
) -> Action | None:
    if raw is None:
        if required:
            problems.append(f'{path}: required, e.g. {{"setpoint": "power_limit", "percent": 50, "kind": "inverter"}}')
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be an object with setpoint and its arguments")
        return None
    setpoint = raw.get("setpoint")
    if setpoint not in ACTIONS:
        problems.append(f"{path}.setpoint: one of {', '.join(ACTIONS)} (got {setpoint!r})")
        return None
    targets, kind = raw.get("devices"), raw.get("kind")
    args = {k: v for k, v in raw.items() if k not in ("setpoint", "devices", "kind")}
    if "percent" in args:  # the rule says percent; the command says limit_pct
        args["limit_pct"] = args.pop("percent")
    if (targets is None) == (kind is None):
        problems.append(f"{path}: give either devices (a list of ids) or kind (e.g. 'inverter')")
        return None
    if targets is not None and (not isinstance(targets, list) or not targets or any(t not in devices for t in targets)):
        problems.append(f"{path}.devices: a list of configured device ids ({', '.join(devices)})")
        return None
    if kind is not None and kind not in set(devices.values()):
        problems.append(f"{path}.kind: no configured device is of kind {kind!r}")
        return None
    action = Action(str(setpoint), args, tuple(targets or ()), kind)
    try:
        action.setpoint_for(next(iter(devices)))  # the arguments make a valid setpoint
    except ControlRejected as exc:
        problems.append(f"{path}: {str(exc).replace('args.', '')}")
        return None
    return action


def _seconds(path: str, value: Any, problems: list[str]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_SECONDS:
        problems.append(f"{path}: seconds 0..{MAX_SECONDS} (got {value!r})")
        return 0.0
    return float(value)
