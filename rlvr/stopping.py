"""Stopping rules: a pass rate held with confidence over a window, and reward convergence.

Pure functions over the per-step history; the trainer keeps the history and asks.
"""

import math
from statistics import NormalDist


def wilson_lower_bound(passes: int, total: int, confidence: float) -> float:
    """One-sided Wilson score lower bound of a pass rate at ``confidence``.

    >>> round(wilson_lower_bound(90, 100, 0.95), 4)
    0.8396
    """
    if total == 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    rate = passes / total
    centre = rate + z * z / (2 * total)
    spread = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total))
    return (centre - spread) / (1 + z * z / total)


def reached_target(
    passes: list[int], totals: list[int], target: float, window: int, confidence: float
) -> bool:
    """True once the last ``window`` steps pooled show a pass rate >= target at ``confidence``.

    >>> reached_target([9, 10, 10], [10, 10, 10], target=0.7, window=3, confidence=0.9)
    True
    >>> reached_target([10], [10], target=0.7, window=3, confidence=0.9)
    False
    """
    if len(passes) < window:
        return False
    return wilson_lower_bound(sum(passes[-window:]), sum(totals[-window:]), confidence) >= target


def converged(rewards: list[float], window: int, threshold: float) -> bool:
    """True when the mean reward of the last window moved less than ``threshold`` from the one before.

    >>> converged([0.5, 0.5, 0.51, 0.5], window=2, threshold=0.02)
    True
    >>> converged([0.1, 0.2, 0.5, 0.6], window=2, threshold=0.02)
    False
    """
    if len(rewards) < 2 * window:
        return False
    last = sum(rewards[-window:]) / window
    before = sum(rewards[-2 * window : -window]) / window
    return abs(last - before) < threshold
