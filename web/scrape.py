"""Prometheus's scrape endpoint at `/metrics`, the path scrapers and Kubernetes annotations
look at by default. `/api/v1/metrics` answers the same text for clients of the old path.

No token: like `/health`, it shows counts and names, never a spec, program or user.
"""

from __future__ import annotations

from flask import Blueprint, Response

from web import monitoring, services

# The classic text format that `generate_latest` writes and every Prometheus version reads
# (prometheus_client's own CONTENT_TYPE_LATEST now names 1.0.0, which older scrapers do not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

bp = Blueprint("scrape", __name__)


@bp.get("/metrics")
def metrics():
    return Response(monitoring.metrics_text(services()), content_type=CONTENT_TYPE)
