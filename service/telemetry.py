"""Counters and histograms that workers add to in Redis, for the web app's `/metrics`.

Owns: the Redis hashes behind `rlvr_verified_programs_total`, `rlvr_verify_seconds` and
`rlvr_train_step_seconds`, and the label a verdict is counted under. Does not own: rendering
them as Prometheus text (`web.monitoring`) or anything read from the database.

Workers are many processes on many machines and a scrape reaches one web process, so the
counts live where every process can add to them: one Redis hash per metric, one field per
label set (and per histogram bucket), `HINCRBY` being atomic. Like the queues, this is
live data: a Redis that restarts empty resets the counters, which Prometheus's `rate()`
and `increase()` read as a counter reset, not as a drop. A failed write is logged and
dropped: a metric never fails the work it counts.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable

import redis

log = logging.getLogger(__name__)

VERIFIED = "rlvr:metrics:verified"
VERIFY_SECONDS = "rlvr:metrics:verify_seconds"
STEP_SECONDS = "rlvr:metrics:step_seconds"

# Sandbox wall time of one program: a jail starts in ~50 ms, a test times out at 5 s by default.
VERIFY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One optimizer step: under a second for the tiny CPU model, minutes for a 7B model's rollouts.
STEP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

SEP = "|"  # between label values in a field name; no label value contains it


def verdict_label(verdict: dict) -> str:
    """`passed` or `failed` for a program the sandbox ran to the end, else the sandbox's status
    (`timeout`, `memory`, `output_limit`, `sandbox_error`).

    >>> verdict_label({"status": "ok", "passed": 2, "total": 2})
    'passed'
    >>> verdict_label({"status": "ok", "passed": 1, "total": 2})
    'failed'
    >>> verdict_label({"status": "timeout", "passed": 0, "total": 2})
    'timeout'
    """
    if verdict.get("status") != "ok":
        return str(verdict.get("status"))
    return (
        "passed"
        if verdict.get("total") and verdict.get("passed") == verdict.get("total")
        else "failed"
    )


def count_verified(client: redis.Redis, queue: str, source: str, verdicts: Iterable[dict]) -> None:
    """Adds judged programs to `rlvr_verified_programs_total{queue, source, verdict}` and their
    wall time to `rlvr_verify_seconds{source}`."""
    with client.pipeline(transaction=False) as pipe:
        for verdict in verdicts:
            pipe.hincrby(VERIFIED, SEP.join((queue, source, verdict_label(verdict))), 1)
            _observe(
                pipe,
                VERIFY_SECONDS,
                source,
                float(verdict.get("wall_seconds") or 0.0),
                VERIFY_BUCKETS,
            )
        _execute(pipe)


def observe_step(client: redis.Redis, kind: str, seconds: float) -> None:
    """One optimizer step of a `kind` job took `seconds` (`rlvr_train_step_seconds{kind}`)."""
    with client.pipeline(transaction=False) as pipe:
        _observe(pipe, STEP_SECONDS, kind, seconds, STEP_BUCKETS)
        _execute(pipe)


def _observe(pipe, key: str, label: str, value: float, buckets: tuple[float, ...]) -> None:
    # Each observation lands in its own bucket only (the first `le` >= value, or +Inf);
    # `histograms` adds them up into Prometheus's cumulative buckets when read.
    index = bisect.bisect_left(buckets, value)
    le = repr(buckets[index]) if index < len(buckets) else "+Inf"
    pipe.hincrby(key, SEP.join((label, le)), 1)
    pipe.hincrbyfloat(key, SEP.join((label, "sum")), value)


def _execute(pipe) -> None:
    try:
        pipe.execute()
    except redis.RedisError:
        log.warning("could not add to the metrics in Redis", exc_info=True)


def counters(client: redis.Redis) -> dict[tuple[str, ...], int]:
    """`{(queue, source, verdict): programs}` since Redis last started empty."""
    return {
        tuple(field.decode().split(SEP)): int(n) for field, n in client.hgetall(VERIFIED).items()
    }


def histograms(
    client: redis.Redis, key: str, buckets: tuple[float, ...]
) -> dict[str, tuple[list, int, float]]:
    """Per label value: (cumulative [(le, count), ..., ("+Inf", count)], count, sum)."""
    raw: dict[str, dict[str, float]] = {}
    for field, value in client.hgetall(key).items():
        label, part = field.decode().rsplit(SEP, 1)
        raw.setdefault(label, {})[part] = float(value)
    out = {}
    for label, parts in sorted(raw.items()):
        running, cumulative = 0, []
        for le in [*map(repr, buckets), "+Inf"]:
            running += int(parts.get(le, 0))
            cumulative.append((le, running))
        out[label] = (cumulative, running, parts.get("sum", 0.0))
    return out
