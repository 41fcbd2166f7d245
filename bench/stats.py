"""Small statistics helpers: medians with their spread, ratios, and a goal check."""

from __future__ import annotations

import statistics


def summary(values: list[float]) -> dict:
    """Median, min, max, interquartile range and count of a list of numbers (None if empty)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "iqr": None}
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4)
        iqr = q3 - q1
    else:
        iqr = values[-1] - values[0]
    return {"n": len(values), "median": statistics.median(values), "min": values[0],
            "max": values[-1], "iqr": iqr}


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing or theirs is zero."""
    if ours is None or not theirs:
        return None
    return ours / theirs


def goal(value: float | None, limit: float, *, at_most: bool) -> dict:
    """{"value", "goal", "met"} for a value that should be <= limit (at_most) or >= limit."""
    met = None if value is None else (value <= limit if at_most else value >= limit)
    return {"value": value, "goal": f"{'<=' if at_most else '>='} {limit}", "met": met}
