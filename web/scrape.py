"""Prometheus's scrape endpoint at `/metrics`, the path scrapers and Kubernetes annotations
look at by default. `/api/v1/metrics` answers the same text for clients of the old path.

Anyone sees aggregate counts, never a spec, program or user; the per-job `rlvr_train_*`
gauges need the operator's `RLVR_METRICS_TOKEN` or an admin's token or session.
"""

from __future__ import annotations

from flask import Blueprint, Response

from web import monitoring
from web.auth import sees_every_job
from web.context import services

# The classic text format that `generate_latest` writes and every Prometheus version reads
# (prometheus_client's own CONTENT_TYPE_LATEST now names 1.0.0, which older scrapers do not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

bp = Blueprint("scrape", __name__)


def metrics_reply() -> Response:
    scrape_token = services().settings.metrics_token.get_secret_value()
    text = monitoring.metrics_text(services(), per_job=sees_every_job(scrape_token))
    return Response(text, content_type=CONTENT_TYPE)


@bp.get("/metrics")
def metrics():
    return metrics_reply()
