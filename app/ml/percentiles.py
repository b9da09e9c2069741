"""Where a served probability falls among a classifier's held-out scores (pure Python: on the request path)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right


def percentile_of(quantiles: list[float], value: float) -> float:
    """Where `value` falls among held-out scores, 0-100, from their quantiles (ties take the middle of their run,
    between two quantiles it interpolates linearly)."""
    steps = len(quantiles) - 1
    lo, hi = bisect_left(quantiles, value), bisect_right(quantiles, value)
    if lo < hi:  # equal to one or more quantiles
        position = (lo + hi - 1) / 2
    elif lo == 0:
        position = 0.0
    elif lo > steps:
        position = float(steps)
    else:
        below, above = quantiles[lo - 1], quantiles[lo]
        position = lo - 1 + (value - below) / (above - below)
    return round(100 * position / steps, 2)
