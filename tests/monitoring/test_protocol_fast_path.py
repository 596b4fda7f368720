"""The uplink's hand-written fast path accepts exactly what the published schema accepts.

`fleet.uplink.protocol._plainly_valid` checks telemetry and log payloads by hand because
jsonschema costs most of the parsing time. If it ever accepted a payload the schema refuses, bad
data would be stored; if it refused one the schema accepts, the speed-up would be lost. Hypothesis
generates payloads around every limit of docs/protocol/schemas/telemetry.json and log.json.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.core.protocol_schemas import LOG_LEVELS
from fleet.uplink.protocol import (
    _VALIDATORS,
    MAX_DEVICE_CHARS,
    MAX_LOGGER_CHARS,
    MAX_POINT_NAME_CHARS,
    MAX_POINTS,
    Kind,
    _plainly_valid,
)

MISSING = object()

# Anything JSON can carry, for the places where a payload puts the wrong type.
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


def text_around(limit: int) -> st.SearchStrategy[str]:
    """Strings of lengths at and around the edges 0, 1 and `limit`, some not ASCII."""
    lengths = st.sampled_from([0, 1, 2, limit - 1, limit, limit + 1])
    return st.builds(lambda n, c: c * n, lengths, st.sampled_from(["a", "é", "漢", "\U0001f600"]))


def with_optional(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads where each field may be missing, plus sometimes a key the schema does not name."""
    drawn = st.fixed_dictionaries({name: st.one_of(st.just(MISSING), value) for name, value in fields.items()})
    extra = st.dictionaries(st.sampled_from(["extra", "x"]), json_values, max_size=1)
    return st.builds(lambda d, e: {**{k: v for k, v in d.items() if v is not MISSING}, **e}, drawn, extra)


valid_point_values = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False))
point_values = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.text(max_size=3)
)


@st.composite
def points(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.sampled_from([0, 1, 2, 3, MAX_POINTS, MAX_POINTS + 1]))
    if count > 3:  # many points: vary only the values, names are plain
        names = [f"p{i}" for i in range(count)]
    else:
        names = draw(st.lists(text_around(MAX_POINT_NAME_CHARS), min_size=count, max_size=count, unique=True))
        count = len(names)
    values = draw(st.lists(valid_point_values, min_size=count, max_size=count))
    if values and draw(st.booleans()):  # spoil one value, anywhere
        values[draw(st.integers(0, count - 1))] = draw(point_values)
    return dict(zip(names, values, strict=True))


telemetry_payloads = with_optional(
    {
        "device": st.one_of(text_around(MAX_DEVICE_CHARS), json_scalars),
        "points": st.one_of(points(), json_values),
    }
)
log_payloads = with_optional(
    {
        "level": st.one_of(st.sampled_from([*LOG_LEVELS, "fatal", "INFO", ""]), json_scalars),
        "message": st.one_of(st.text(max_size=20), json_scalars),
        "logger": st.one_of(text_around(MAX_LOGGER_CHARS), json_scalars),
        "fields": json_values,
    }
)


@settings(max_examples=400, deadline=None)
@given(telemetry_payloads)
def test_the_fast_path_accepts_exactly_the_telemetry_the_schema_accepts(payload: dict[str, Any]) -> None:
    assert _plainly_valid(Kind.TELEMETRY, payload) == _VALIDATORS[Kind.TELEMETRY].is_valid(payload)


@settings(max_examples=400, deadline=None)
@given(log_payloads)
def test_the_fast_path_accepts_exactly_the_logs_the_schema_accepts(payload: dict[str, Any]) -> None:
    assert _plainly_valid(Kind.LOG, payload) == _VALIDATORS[Kind.LOG].is_valid(payload)


@given(st.sampled_from([k for k in Kind if k not in (Kind.TELEMETRY, Kind.LOG)]), telemetry_payloads | log_payloads)
def test_every_other_kind_is_left_to_the_schema(kind: Kind, payload: dict[str, Any]) -> None:
    assert not _plainly_valid(kind, payload)
