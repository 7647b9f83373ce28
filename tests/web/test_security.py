"""The web app's own defences that the hostile table does not cover row by row: the pure
helpers, the pages' scripts under the Content-Security-Policy, and the operator commands."""

from __future__ import annotations

import doctest

from sqlalchemy import select

from service.db import ApiToken
from web import security


def test_doctests():
    assert doctest.testmod(security).failed == 0


def test_pages_load_scripts_only_from_files(client):
    """No inline script or handler attribute is left for the policy to block (the browser
    tests drive the pages under it; the job list's filters are tests/web/test_pages.py's)."""
    for path in ("/login", "/api/docs/"):
        page = client.get(path).get_data(as_text=True)
        assert "onchange=" not in page and "<script>" not in page, path
    docs = client.get("/api/docs/").get_data(as_text=True)
    assert 'data-url="/api/v1/openapi.json"' in docs and "/static/swagger-init.js" in docs
    assert client.get("/static/swagger-init.js").status_code == 200


def test_operator_commands_issue_expiring_tokens_and_revoke_them(app, db):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["create-user", "carol", "--expires-days", "2"])
    assert made.exit_code == 0 and made.output.startswith("rlvr_")
    with db.read() as s:
        assert s.scalar(select(ApiToken.expires_at).order_by(ApiToken.id.desc())) is not None
    revoked = runner.invoke(args=["revoke-tokens", "carol"])
    assert (revoked.exit_code, revoked.output.strip()) == (0, "revoked 1 token(s) of carol")
    assert runner.invoke(args=["revoke-tokens", "nobody"]).exit_code != 0
