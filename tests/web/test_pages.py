"""The HTML pages through the Flask test client: sign-in, CSRF, field errors, ownership."""

from __future__ import annotations

import re

import pytest


def csrf(page: bytes) -> str:
    return re.search(rb'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1).decode()


@pytest.fixture
def signed_in(client, make_user):
    """`signed_in(admin=False)`: signs the client in as a fresh user; returns its token."""
    def sign_in(admin: bool = False) -> str:
        _, token = make_user(admin)
        page = client.get("/login").data
        response = client.post("/login", data={"token": token, "csrf_token": csrf(page)})
        assert response.status_code == 302
        return token
    return sign_in


def test_pages_need_a_sign_in(client):
    response = client.get("/jobs")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_wrong_token_and_missing_csrf_are_refused(client):
    page = client.get("/login").data
    assert b"Unknown token" in client.post("/login", data={"token": "x", "csrf_token": csrf(page)},
                                           follow_redirects=True).data
    assert client.post("/login", data={"token": "x"}).status_code == 400  # no CSRF token


def test_form_shows_errors_next_to_fields_and_submits(client, signed_in):
    signed_in()
    form = client.get("/jobs/new/verify")
    bad = client.post("/jobs/new/verify", data={"csrf_token": csrf(form.data), "program": "",
                                                "tests": "assert f() == 1\nprint(2)", "wall_seconds": "10"})
    assert bad.status_code == 400
    assert re.search(rb'id="program-error">This field is required', bad.data)
    assert re.search(rb'id="tests-error">line 2 is not an assert statement', bad.data)
    good = client.post("/jobs/new/verify", data={"csrf_token": csrf(form.data), "program": "def f():\n  return 1",
                                                 "tests": "assert f() == 1", "wall_seconds": "10"})
    assert good.status_code == 302
    job_page = client.get(good.headers["Location"])
    assert b'class="badge queued"' in job_page.data and b"submitted" in job_page.data
    assert b'http-equiv="refresh"' in job_page.data  # it refreshes itself until the job ends
    listing = client.get("/jobs?status=queued").data
    assert good.headers["Location"].encode() in listing


def test_cancel_and_retry_buttons(client, signed_in, api):
    signed_in()
    form = client.get("/jobs/new/verify")
    location = client.post("/jobs/new/verify", data={"csrf_token": csrf(form.data), "program": "x = 1",
                                                     "tests": "assert x == 1", "wall_seconds": "5"}).headers["Location"]
    page = client.get(location).data
    client.post(location + "/cancel", data={"csrf_token": csrf(page)})
    page = client.get(location).data
    assert b'id="status">cancelled' in page
    retried = client.post(location + "/retry", data={"csrf_token": csrf(page)})
    assert b"retry of" in client.get(retried.headers["Location"]).data


def test_someone_elses_job_page_is_404(client, signed_in, api):
    job_id = api.post("/jobs", json={"kind": "verify", "spec": {"requests": [
        {"program": "x = 1", "tests": {"kind": "function", "tests": ["assert x == 1"]}}]}}).json["id"]
    signed_in()
    assert client.get(f"/jobs/{job_id}").status_code == 404
    signed_in(admin=True)
    assert client.get(f"/jobs/{job_id}").status_code == 200


def test_training_job_page_shows_its_result_and_metric_charts(client, signed_in, db):
    from rlvr.db import accounts, jobs, training

    token = signed_in()
    with db.begin() as session:
        user_id = accounts.user_for_token(session, token).id
        job, _ = jobs.submit(session, user_id=user_id, kind="train", spec={}, total=3, max_attempts=1)
        for step, reward in ((1, 0.1), (2, 0.5), (3, 0.4)):
            training.save_metrics(session, job.id, step, {"reward": reward, "kl": 0.01 * step})
        job.result = {"steps": 3, "stop_reason": "max_steps"}
    page = client.get(f"/jobs/{job.id}").data.decode()
    assert "stop_reason" in page and "max_steps" in page
    assert re.findall(r'data-metric="([^"]+)"', page) == ["reward", "kl"]
    reward = re.search(r'data-metric="reward".*?points="([^"]+)"', page, re.S).group(1).split()
    assert reward == ["4.0,86.0", "160.0,4.0", "316.0,24.5"]  # steps 1..3 across, 0.1..0.5 up
