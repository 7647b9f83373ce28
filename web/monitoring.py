"""Health, Prometheus metrics and stats: read from Postgres (the truth) and Redis (queues).

Prometheus text is rendered by `prometheus_client` from values gathered at scrape time, so
every gunicorn process answers the same and no state lives in one process's memory. The
verify latency histogram is of per-program sandbox wall time, from the verdict rows.

Live training statistics cover the train and SFT jobs running now: their step, latest
headline metrics, unjudged (None) rewards, and a speed and ETA from the `step_time` the loop
itself measured over the last steps (so eval and checkpoint pauses are not in it).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select, text

from service.db import Job, jobs, training, verdicts
from service.db.models import JOB_STATES
from web.schemas import LiveTraining
from service import queues
from service.queues import QUEUES, Services, queue_keys


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


HEALTH_CHECKS = ("database", "redis", "beat", "reaper")


def health(svc: Services) -> dict:
    """Each check, live workers per queue, and `ok` only if every check passed. Beat and the
    reaper are judged by when Redis last saw them (`service.queues.mark_seen`)."""
    def ping_db():
        with svc.db.read() as s:
            s.execute(text("SELECT 1"))

    report = {"database": _check(ping_db), "redis": _check(svc.redis.ping)}
    if report["redis"]["ok"]:
        report["workers"] = live_workers(svc)
        report["beat"] = _seen(svc, queues.BEAT_SEEN, "has not sent the reaper", "is beat running?")
        report["reaper"] = _seen(svc, queues.REAPER_SEEN, "has not finished a run",
                                 "are beat and a verify worker running, and the database up?")
    else:
        report["workers"] = {q: 0 for q in QUEUES}
        report["beat"] = report["reaper"] = {"ok": False, "error": "unknown while Redis is down"}
    report["status"] = "ok" if all(report[check]["ok"] for check in HEALTH_CHECKS) else "degraded"
    return report


def _seen(svc: Services, key: str, missing: str, hint: str) -> dict:
    at = queues.last_seen(svc, key)
    if at is None:
        return {"ok": False, "error": f"{missing} in the last {queues.seen_window(svc.settings):g} s: {hint}"}
    return {"ok": True, "last_seen": datetime.fromtimestamp(at, UTC)}


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


TRAINING_KINDS = ("train", "sft")
LIVE_METRICS = ("reward", "pass_rate", "kl", "loss")


def live_training(svc: Services, owner: int | None = None) -> list[dict]:
    """One entry per running train or SFT job (of `owner` only, when given), by id."""
    query = select(Job.id, Job.kind, Job.progress_done, Job.progress_total).where(
        Job.kind.in_(TRAINING_KINDS), Job.status.in_(jobs.ACTIVE))
    if owner is not None:
        query = query.where(Job.user_id == owner)
    with svc.db.read() as s:
        running = s.execute(query.order_by(Job.id)).all()
        ids = [job.id for job in running]
        latest = training.latest_values(s, ids, LIVE_METRICS)
        seconds = training.recent_step_seconds(s, ids)
        unverified = training.unverified_rewards(s, ids)
    return [{"job_id": job.id, "kind": job.kind, "step": job.progress_done, "total": job.progress_total,
             **{name: latest[job.id].get(name) for name in LIVE_METRICS},
             "unverified_rewards": unverified[job.id],
             **pace(job.progress_done, job.progress_total, seconds[job.id])} for job in running]


def pace(step: int, total: int, step_seconds: list[float]) -> dict[str, float | None]:
    """Steps per minute and seconds left, from recent step durations (None before any).

    >>> pace(4, 10, [2.0, 4.0])
    {'steps_per_minute': 20.0, 'eta_seconds': 18.0}
    """
    if not step_seconds:
        return {"steps_per_minute": None, "eta_seconds": None}
    per_step = sum(step_seconds) / len(step_seconds)
    return {"steps_per_minute": round(60 / per_step, 3) if per_step > 0 else None,
            "eta_seconds": round(max(total - step, 0) * per_step, 1)}


def stats(svc: Services, owner: int | None = None) -> dict:
    """Counts over all jobs; the running training jobs of `owner` (everyone's when None)."""
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
        "training": live_training(svc, owner),
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
        yield from training_gauges(live_training(self.svc))


TRAINING_GAUGES = tuple(field for field in LiveTraining.model_fields if field not in ("job_id", "kind"))


def training_gauges(live: list[dict]):
    """`rlvr_train_<field>{job_id, kind}` for each field of the live entries that has a value."""
    for field in TRAINING_GAUGES:
        gauge = GaugeMetricFamily(f"rlvr_train_{field}", LiveTraining.model_fields[field].description,
                                  labels=["job_id", "kind"])
        for job in live:
            if job[field] is not None:
                gauge.add_metric([str(job["job_id"]), job["kind"]], job[field])
        yield gauge


def metrics_text(svc: Services) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(svc))
    return generate_latest(registry)
