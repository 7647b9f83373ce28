"""Health, Prometheus metrics and stats: read from Postgres (the truth) and Redis (queues).

Prometheus text is rendered by `prometheus_client` from values gathered at scrape time, so
every gunicorn process answers the same and no state lives in one process's memory. The
verify latency histogram is of per-program sandbox wall time, from the verdict rows.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select, text

from rlvr.db import Job, verdicts
from rlvr.db.models import JOB_STATES
from worker.services import QUEUES, Services, queue_keys


def _check(probe) -> dict:
    try:
        probe()
        return {"ok": True}
    except Exception as exc:  # a health check reports failures, it never raises them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def live_workers(svc: Services, timeout: float = 1.0) -> dict[str, int]:
    """Worker processes answering a broadcast, counted per queue they consume."""
    replies = svc.celery.control.inspect(timeout=timeout).active_queues() or {}
    counts = Counter(q["name"] for queues in replies.values() for q in queues)
    return {queue: counts.get(queue, 0) for queue in QUEUES}


def health(svc: Services) -> dict:
    def ping_db():
        with svc.db.read() as s:
            s.execute(text("SELECT 1"))

    report = {"database": _check(ping_db), "redis": _check(svc.redis.ping)}
    report["workers"] = live_workers(svc) if report["redis"]["ok"] else {q: 0 for q in QUEUES}
    report["status"] = "ok" if report["database"]["ok"] and report["redis"]["ok"] else "degraded"
    return report


def queue_depths(svc: Services) -> dict[str, int]:
    with svc.redis.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            for key in queue_keys(queue):
                pipe.llen(key)
        lengths = iter(pipe.execute())
    return {queue: sum(next(lengths) for _ in queue_keys(queue)) for queue in QUEUES}


def jobs_by_state(svc: Services) -> dict[tuple[str, str], int]:
    with svc.db.read() as s:
        rows = s.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)).all()
    return {(kind, status): n for kind, status, n in rows}


def stats(svc: Services) -> dict:
    states, kinds = Counter(), Counter()
    for (kind, status), n in jobs_by_state(svc).items():
        states[status] += n
        kinds[kind] += n
    with svc.db.read() as s:
        _, programs, seconds = verdicts.latency_histogram(s)
    return {
        "jobs": {status: states[status] for status in JOB_STATES},
        "jobs_by_kind": dict(kinds),
        "queues": queue_depths(svc),
        "verified_programs": programs,
        "verify_seconds_mean": round(seconds / programs, 4) if programs else None,
    }


class _Collector:
    def __init__(self, svc: Services):
        self.svc = svc

    def collect(self):
        jobs = GaugeMetricFamily("rlvr_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        for (kind, status), n in sorted(jobs_by_state(self.svc).items()):
            jobs.add_metric([kind, status], n)
        yield jobs
        depth = GaugeMetricFamily("rlvr_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        for queue, n in queue_depths(self.svc).items():
            depth.add_metric([queue], n)
        yield depth
        with self.svc.db.read() as s:
            buckets, count, total = verdicts.latency_histogram(s)
        histogram = HistogramMetricFamily("rlvr_verify_seconds", "Sandbox wall time per verified program.")
        histogram.add_metric([], [(str(le), n) for le, n in buckets] + [("+Inf", count)], total)
        yield histogram


def metrics_text(svc: Services) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(svc))
    return generate_latest(registry)
