"""Error patterns across a run: what went wrong in the programs, and how rewards moved.

``error_patterns(experiences)`` reads experience records (``Experience`` objects or the
dicts of ``experiences.jsonl`` / the service's rows) and returns plain JSON: sandbox
statuses, exception types, the tests that fail most, timeouts, unjudged samples, and the
reward distribution per step. Code details come from ``extra["code"]`` (what the trainer
stores from a ``CodeGrade``) or from the record's ``verdict`` itself when it is a ``CodeGrade``;
records of rule tasks contribute to the reward part only. ``convergence_step(points)`` says
from which step a metric series settled. Pure: no I/O, no torch.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

REWARD_BINS = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0)


def _record(experience: Any) -> Mapping[str, Any]:
    return (
        asdict(experience) | {"verdict": experience.verdict}
        if is_dataclass(experience)
        else experience
    )


def _code_details(record: Mapping[str, Any]) -> dict[str, Any] | None:
    extra = record.get("extra") or {}
    if extra.get("code"):
        return extra["code"]
    verdict = record.get("verdict")
    return verdict.details() if hasattr(verdict, "details") else None


def _bin(value: float) -> str:
    """The histogram bin label of a reward: ``<-1``, ``[-1,-0.5)``, ..., ``>=1``."""
    if value < REWARD_BINS[0]:
        return f"<{REWARD_BINS[0]:g}"
    for low, high in zip(REWARD_BINS, REWARD_BINS[1:]):
        if value < high:
            return f"[{low:g},{high:g})"
    return f">={REWARD_BINS[-1]:g}"


def reward_distribution(rewards: list[float | None]) -> dict[str, Any]:
    """Count, None count, mean, min, max and a histogram of one step's rewards.

    >>> reward_distribution([1.0, -0.5, None, 0.25])["histogram"]
    {'[-0.5,0)': 1, '[0.25,0.5)': 1, '>=1': 1}
    """
    valid = [r for r in rewards if r is not None]
    return {
        "count": len(rewards),
        "none": len(rewards) - len(valid),
        "mean": sum(valid) / len(valid) if valid else None,
        "min": min(valid, default=None),
        "max": max(valid, default=None),
        "histogram": dict(
            sorted(Counter(_bin(r) for r in valid).items(), key=lambda kv: _bin_order(kv[0]))
        ),
    }


def _bin_order(label: str) -> int:
    labels = [f"<{REWARD_BINS[0]:g}"] + [
        f"[{a:g},{b:g})" for a, b in zip(REWARD_BINS, REWARD_BINS[1:])
    ]
    return labels.index(label) if label in labels else len(labels)


def error_patterns(experiences: Iterable[Any], top: int = 10) -> dict[str, Any]:
    """Summary of a run's rollouts; see the module docstring. ``top`` bounds the test list."""
    statuses: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()  # programs with at least one test raising this type
    failing: Counter[str] = Counter()
    seen_tests: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    rewards_by_step: dict[int, list[float | None]] = defaultdict(list)
    programs = timeouts = 0
    for experience in experiences:
        record = _record(experience)
        verdicts[str(record.get("verdict"))] += 1
        rewards_by_step[int(record.get("step", 0))].append(record.get("reward"))
        code = _code_details(record)
        if code is None:
            continue
        programs += 1
        statuses[code["status"]] += 1
        tests = code.get("tests") or []
        if code["status"] == "timeout" or any(t["outcome"] == "timeout" for t in tests):
            timeouts += 1
        exceptions.update(
            {t["error_type"] for t in tests if t["outcome"] == "error" and t.get("error_type")}
        )
        for index, test in enumerate(tests):
            name = test.get("test") or f"test {index + 1}"
            seen_tests[name] += 1
            failing[name] += test["outcome"] != "pass"
    return {
        "samples": sum(verdicts.values()),
        "verdicts": dict(verdicts),
        "programs": programs,
        "unjudged": statuses.get("sandbox_error", 0),
        "timeouts": timeouts,
        "statuses": dict(statuses),
        "exception_types": dict(exceptions.most_common()),
        "failing_tests": [
            {
                "test": name,
                "failed": count,
                "runs": seen_tests[name],
                "fail_rate": count / seen_tests[name],
            }
            for name, count in failing.most_common(top)
            if count
        ],
        "reward_by_step": {
            step: reward_distribution(values) for step, values in sorted(rewards_by_step.items())
        },
    }


def convergence_step(
    points: Sequence[tuple[int, float]], window: int = 5, tolerance: float = 0.05
) -> int | None:
    """The step from which a metric stays settled: the first step after which the trailing
    mean of the last ``window`` values (fewer at the start) stays within ``tolerance`` of its
    final value to the end of the series. ``points`` are ``(step, value)`` in step order.

    None when fewer than ``window`` points lie from that step to the end: too few to say the
    metric stays there (so a series shorter than ``window`` never converges).

    >>> convergence_step([(1, 0.0), (2, 0.0), (3, 1.0), (4, 1.0), (5, 1.0), (6, 1.0)], window=2, tolerance=0.1)
    4
    >>> convergence_step([(1, 0.0), (2, 1.0)], window=2) is None
    True
    """
    values = [value for _, value in points]
    smoothed = [
        sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))
        for i in range(len(values))
    ]
    if not smoothed:
        return None
    unsettled = [i for i, mean in enumerate(smoothed) if abs(mean - smoothed[-1]) > tolerance]
    first = unsettled[-1] + 1 if unsettled else 0
    return points[first][0] if first <= len(points) - window else None
