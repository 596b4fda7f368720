"""A dependency-free line chart as inline SVG geometry (the page draws it; no JavaScript library)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .selectors import SeriesPoint


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    line: str  # SVG polyline points of the averages
    band: str  # SVG polygon points: the min..max envelope of each bucket
    y_min: float
    y_max: float
    x_start: str
    x_end: str


def line_chart(points: Sequence[SeriesPoint], *, width: int = 800, height: int = 220, pad: int = 4) -> Chart | None:
    if not points:
        return None
    t0, t1 = points[0].ts.timestamp(), points[-1].ts.timestamp()
    lo = min(p.min for p in points)
    hi = max(p.max for p in points)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    span_t = (t1 - t0) or 1.0

    def x(ts: float) -> float:
        return pad + (ts - t0) / span_t * (width - 2 * pad)

    def y(value: float) -> float:
        return height - pad - (value - lo) / (hi - lo) * (height - 2 * pad)

    line = " ".join(f"{x(p.ts.timestamp()):.1f},{y(p.avg):.1f}" for p in points)
    upper = [f"{x(p.ts.timestamp()):.1f},{y(p.max):.1f}" for p in points]
    lower = [f"{x(p.ts.timestamp()):.1f},{y(p.min):.1f}" for p in reversed(points)]
    return Chart(
        width=width,
        height=height,
        line=line,
        band=" ".join(upper + lower),
        y_min=lo,
        y_max=hi,
        x_start=points[0].ts.strftime("%Y-%m-%d %H:%M"),
        x_end=points[-1].ts.strftime("%Y-%m-%d %H:%M"),
    )
