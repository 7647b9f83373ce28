"""API tokens through the API: list, issue (never outliving the token that asks), revoke."""

from __future__ import annotations

from datetime import datetime, timedelta

from service.db import accounts
from service.db.models import utcnow


def test_list_issue_and_revoke(api, client):
    listed = api.get("/tokens").json["tokens"]
    assert [(t["label"], t["current"], t["expires_at"]) for t in listed] == [("tests", True, None)]
    issued = api.post("/tokens", json={"label": "ci", "expires_in_days": 1})
    assert issued.status_code == 201 and issued.json["token"].startswith("rlvr_")
    expires = datetime.fromisoformat(issued.json["expires_at"])
    assert timedelta(hours=23) < expires - utcnow() <= timedelta(days=1)
    bearer = {"Authorization": f"Bearer {issued.json['token']}"}
    assert client.get("/api/v1/tokens", headers=bearer).status_code == 200
    assert api.delete(f"/tokens/{issued.json['id']}").status_code == 204
    refused = client.get("/api/v1/tokens", headers=bearer)
    assert (refused.status_code, refused.json["detail"]) == (
        401,
        "unknown, expired or revoked API token",
    )
    assert [t["label"] for t in api.get("/tokens").json["tokens"]] == ["tests"]


def test_a_token_cannot_mint_one_that_outlives_it(client, db, make_user):
    user_id, _ = make_user()
    ends = utcnow() + timedelta(hours=1)
    with db.begin() as s:
        short = accounts.issue_token(s, user_id, "short", expires_at=ends)
    bearer = {"Authorization": f"Bearer {short}"}
    for body in ({}, {"expires_in_days": 30}):
        made = client.post("/api/v1/tokens", json=body, headers=bearer).json
        assert datetime.fromisoformat(made["expires_at"]) <= ends


def test_someone_elses_token_is_a_404(api, as_user):
    other_token_id = as_user().get("/tokens").json["tokens"][0]["id"]
    assert api.delete(f"/tokens/{other_token_id}").status_code == 404
    assert api.post("/tokens", json={"expires_in_days": 0}).status_code == 400
