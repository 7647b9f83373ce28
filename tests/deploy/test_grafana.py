"""deploy/grafana/rlvr-dashboard.json: every query is valid PromQL (promtool parses it as a
recording rule) and names only series that the service's `/metrics` exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from support import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "rlvr-dashboard.json"
# The text format types a counter under its `_total` name, a histogram under its base name.
SUFFIXES = {"counter": ("",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_the_dashboard_queries_only_exposed_series(client, as_user):
    # Grafana scrapes as an admin (or with RLVR_METRICS_TOKEN): it sees the per-job series too.
    text = client.get("/metrics", headers=as_user(admin=True).headers).get_data(as_text=True)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    exposed = {name + suffix for name, kind in types.items() for suffix in SUFFIXES[kind]}
    used = {name for expr in queries() for name in re.findall(r"\brlvr_[a-z_]+", expr)}
    assert used and used <= exposed, used - exposed
    assert {
        "rlvr_train_step_seconds_bucket",
        "rlvr_verified_programs_total",
        "rlvr_workers",
    } <= used


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_every_query_is_valid_promql(tmp_path):
    # Grafana fills in $__rate_interval; promtool needs a literal range.
    rules = [
        {"record": f"dashboard:query{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(queries())
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
