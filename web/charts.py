"""Line charts of a job's metric series as SVG coordinates, drawn by the job page's template.

Owns the scaling only: series in (step, value) pairs to points in a fixed box. The page
refreshes itself while the job runs, so the charts grow without any script.
"""

from __future__ import annotations

from dataclasses import dataclass

CHART_METRICS = ("reward", "pass_rate", "kl", "entropy", "completions/mean_length", "loss",
                 "eval/greedy/pass_rate")
WIDTH, HEIGHT, PAD = 320, 90, 4


@dataclass(frozen=True)
class Chart:
    name: str
    points: str  # "x,y x,y ..." for an SVG polyline
    first_step: int
    last_step: int
    low: float
    high: float
    last: float


def chart(name: str, series: list[list[float]]) -> Chart:
    steps = [s for s, _ in series]
    values = [v for _, v in series]
    low, high = min(values), max(values)
    x_span = (steps[-1] - steps[0]) or 1
    y_span = (high - low) or 1.0
    points = " ".join(
        f"{PAD + (WIDTH - 2 * PAD) * (s - steps[0]) / x_span:.1f},"
        f"{HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v - low) / y_span:.1f}"
        for s, v in series)
    return Chart(name, points, int(steps[0]), int(steps[-1]), low, high, values[-1])


def charts(series: dict[str, list[list[float]]]) -> list[Chart]:
    return [chart(name, series[name]) for name in CHART_METRICS if series.get(name)]
