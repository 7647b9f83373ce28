"""Hostile tenants: each row is an attack that worked before (issue 14), asserting the exact
refusal and that nothing leaked.

Two users share the service: the attacker (`api`) and a victim who owns a finished job with
a final model, a running one, and an uploaded file. The judge listener is a real HTTP server
on this machine that records every request; the worker's secrets are in this process's
environment, as they are in a train worker's. A spec refused at submit is then written
straight to the database (as a spec stored before the rules, or by other means, would be) and
run by the worker's own code in this process (`worker.runners.run_job`): the job must fail
naming the field, with no server path in its error, and the listener must have heard nothing.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from support import ROOT

from service.db import Job, accounts, jobs, training
from service.db.models import utcnow
from service.settings import load_settings
from web import create_app
from worker import runners

OLD_DEFAULT_KEY = "dev-only-not-secret"
# What a train worker's environment holds (the stack's settings come from their own dict, so
# these reach only what reads the process environment: the old judge did).
WORKER_SECRETS = {
    "DATABASE_URL": "postgresql://rlvr:hunter2@db/rlvr",
    "REDIS_URL": "redis://:hunter3@redis:6379/0",
}
OPERATOR_JUDGE_KEY = "operator-judge-key"
ROWS = b'{"prompt": "1+1", "answer": "2"}\n{"prompt": "2+2", "answer": "4"}\n{"prompt": "3+3", "answer": "6"}\n'


class Listener(ThreadingHTTPServer):
    """An OpenAI-compatible endpoint that answers "8" and keeps every request it got."""

    def __init__(self):
        heard = self.heard = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                heard.append({"path": self.path, "headers": dict(self.headers), "body": body})
                reply = json.dumps({"choices": [{"message": {"content": "8"}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def listener():
    server = Listener()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def stack_env(stack_env, listener, monkeypatch):
    """The test stack, with the operator's judge endpoint `ops` on the listener, and the
    secrets a train worker holds in its environment."""
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    endpoints = {"ops": {"url": listener.url, "model": "judge", "api_key": OPERATOR_JUDGE_KEY}}
    return {**stack_env, "RLVR_JUDGE_ENDPOINTS": json.dumps(endpoints)}


@dataclass
class Victim:
    user_id: int
    token: str
    job_id: int
    final: Path
    running_id: int
    file_id: int
    file_path: Path
    listener: str


@pytest.fixture
def victim(as_user, db, stack_settings, listener) -> Victim:
    """Another user: a finished SFT job with a final model on disk, a running train job, and an
    uploaded file."""
    api = as_user()
    token = api.headers["Authorization"].split()[1]
    with db.begin() as s:
        user_id = accounts.user_for_token(s, token).id
        done, _ = jobs.submit(s, user_id=user_id, kind="sft", spec={}, total=1, max_attempts=1)
        running, _ = jobs.submit(
            s, user_id=user_id, kind="train", spec={}, total=10, max_attempts=1
        )
    final = stack_settings.data_dir / "artifacts" / "jobs" / str(done.id) / "final"
    final.mkdir(parents=True)
    (final / "config.json").write_text('{"model_type": "llama"}')
    with db.begin() as s:
        training.save_artifact(s, done.id, "final", f"jobs/{done.id}/final")
        assert jobs.claim(s, running.id, "victims-worker")
        training.save_metrics(s, running.id, 1, {"reward": 0.75})
    uploaded = api.post("/files", data=ROWS, content_type="application/jsonl")
    assert uploaded.status_code == 201, uploaded.json
    file_id = uploaded.json["id"]
    file_path = stack_settings.data_dir / "files" / str(user_id) / f"{file_id}.jsonl"
    assert file_path.read_bytes() == ROWS
    return Victim(user_id, token, done.id, final, running.id, file_id, file_path, listener.url)


def eval_spec(**fields) -> dict:
    """An eval that judges the task's own references: no model loads, so a row runs in seconds
    on the worker's code, and a reward (the judge) is called once per problem."""
    spec = {
        "model": {"name": "tiny"},
        "use_references": True,
        "num_problems": 2,
        "task": {"name": "arithmetic", "max_digits": 1, "train_size": 8, "test_size": 4},
    }
    model = fields.pop("model", {})
    return {**spec, "model": {**spec["model"], **model}, **fields}


def judge(**kwargs) -> list[dict]:
    return [{"name": "llm_judge", "weight": 1.0, "kwargs": kwargs}]


def jsonl(**fields) -> dict:
    return {"task": {"name": "jsonl", "heldout_size": 1, **fields}}


# (id, spec from the victim, the fields refused). Each spec was accepted (201) before.
SPEC_ATTACKS = [
    (
        "judge_url_and_key_from_the_worker_env",
        lambda v: eval_spec(rewards=judge(url=v.listener, model="m", api_key_env="DATABASE_URL")),
        ["rewards.0.kwargs.url", "rewards.0.kwargs.api_key_env", "rewards.0.kwargs.endpoint"],
    ),
    (
        "declared_endpoint_but_the_redis_password_as_key",
        lambda v: eval_spec(rewards=judge(endpoint="ops", api_key_env="REDIS_URL")),
        ["rewards.0.kwargs.api_key_env"],
    ),
    (
        "judge_inside_composite",
        lambda v: eval_spec(
            rewards=[
                {
                    "name": "composite",
                    "kwargs": {
                        "components": judge(url=v.listener, model="m", api_key_env="DATABASE_URL")
                    },
                }
            ]
        ),
        [
            "rewards.0.kwargs.components.0.kwargs.url",
            "rewards.0.kwargs.components.0.kwargs.api_key_env",
            "rewards.0.kwargs.components.0.kwargs.endpoint",
        ],
    ),
    (
        "judge_endpoint_is_an_address",
        lambda v: eval_spec(rewards=judge(endpoint=v.listener)),
        ["rewards.0.kwargs.endpoint"],
    ),
    (
        "model_is_the_victims_final_path",
        lambda v: eval_spec(model={"name": str(v.final)}),
        ["model.name"],
    ),
    (
        "init_from_the_victims_final_path",
        lambda v: eval_spec(model={"init_from": str(v.final)}),
        ["model.init_from"],
    ),
    (
        "model_is_a_relative_path_to_it",
        lambda v: eval_spec(model={"name": os.path.relpath(v.final, ROOT)}),
        ["model.name"],
    ),
    (
        "model_is_the_victims_job",
        lambda v: eval_spec(model={"name": f"job:{v.job_id}"}),
        ["model.name"],
    ),
    (
        "registered_name_climbs_out",
        lambda v: eval_spec(model={"name": "registered:../../artifacts"}),
        ["model.name"],
    ),
    (
        "hub_name_that_is_a_server_folder",
        lambda v: eval_spec(model={"name": "rlvr/tasks"}),
        ["model.name"],
    ),
    (
        "jsonl_reads_a_server_file",
        lambda v: eval_spec(**jsonl(path="/etc/hostname")),
        ["task.path"],
    ),
    (
        "jsonl_climbs_out_of_the_repository",
        lambda v: eval_spec(**jsonl(path="../../../../etc/hostname")),
        ["task.path"],
    ),
    (
        "jsonl_reads_the_victims_upload_by_path",
        lambda v: eval_spec(**jsonl(path=str(v.file_path))),
        ["task.path"],
    ),
    (
        "jsonl_test_split_from_a_server_file",
        lambda v: eval_spec(**jsonl(path=f"file:{v.file_id}", test_path="/etc/hostname")),
        ["task.path", "task.test_path"],
    ),
    (
        "jsonl_names_the_victims_file",
        lambda v: eval_spec(**jsonl(path=f"file:{v.file_id}")),
        ["task.path"],
    ),
]


def server_paths(victim: Victim, settings) -> list[str]:
    return [
        str(settings.data_dir),
        str(ROOT),
        str(victim.final),
        str(victim.file_path),
        "/etc/hostname",
    ]


@pytest.mark.parametrize(
    ("make_spec", "fields"), [row[1:] for row in SPEC_ATTACKS], ids=[row[0] for row in SPEC_ATTACKS]
)
def test_a_spec_names_nothing_outside_its_tenancy(
    api, app, db, victim, listener, stack_settings, make_spec, fields
):
    spec = make_spec(victim)
    response = api.post("/jobs", json={"kind": "eval", "spec": spec})
    assert (response.status_code, response.json["error"]) == (400, "invalid spec"), response.json
    refused = sorted(f"spec.{field}" for field in fields)  # the test client sends keys sorted
    assert sorted(e["field"] for e in response.json["detail"]) == refused
    assert not any(
        path in response.get_data(as_text=True) for path in server_paths(victim, stack_settings)
    )

    # The same spec in the database, as if submitted before the rules: the worker refuses it.
    with db.begin() as s:
        job, _ = jobs.submit(
            s, user_id=_user_id(db, api), kind="eval", spec=spec, total=1, max_attempts=1
        )
    runners.run_job(app.extensions["rlvr"], job.id, "hostile-test")
    with db.read() as s:
        stored = s.get(Job, job.id)
    assert stored.status == "failed" and stored.error.startswith("Refused: "), stored.error
    assert (
        sorted(part.split(":")[0] for part in stored.error.removeprefix("Refused: ").split("; "))
        == refused
    )
    assert not any(path in stored.error for path in server_paths(victim, stack_settings))
    assert listener.heard == []  # no secret, no request at all


def _user_id(db, api) -> int:
    with db.read() as s:
        return accounts.user_for_token(s, api.headers["Authorization"].split()[1]).id


def test_a_judge_is_the_operators_endpoint_with_the_operators_key(api, app, db, listener):
    """The working path beside the refusals: a spec names `ops`; the request carries the key the
    operator declared and nothing of the worker's."""
    response = api.post(
        "/jobs", json={"kind": "eval", "spec": eval_spec(rewards=judge(endpoint="ops"))}
    )
    assert response.status_code == 201, response.json
    runners.run_job(app.extensions["rlvr"], response.json["id"], "hostile-test")
    job = api.get(f"/jobs/{response.json['id']}").json
    assert (job["status"], job["result"]["mean_reward"]) == ("succeeded", 0.8), job
    assert len(listener.heard) == 2
    assert {h["headers"]["Authorization"] for h in listener.heard} == {
        f"Bearer {OPERATOR_JUDGE_KEY}"
    }
    heard = json.dumps(listener.heard)
    assert not any(secret in heard for secret in WORKER_SECRETS.values())


def test_an_uploaded_file_feeds_the_jsonl_task_by_its_id(api, app):
    uploaded = api.post("/files?name=sums.jsonl", data=ROWS, content_type="application/jsonl").json
    spec = eval_spec(**jsonl(path=uploaded["ref"]), num_problems=None)
    response = api.post("/jobs", json={"kind": "eval", "spec": spec})
    assert response.status_code == 201, response.json
    runners.run_job(app.extensions["rlvr"], response.json["id"], "hostile-test")
    job = api.get(f"/jobs/{response.json['id']}").json
    assert (job["status"], job["result"]["greedy/pass_rate"], job["result"]["num_problems"]) == (
        "succeeded",
        1.0,
        1.0,
    )


def test_an_error_does_not_tell_whether_a_server_file_exists(app, db, make_user, stack_settings):
    """Stored specs naming a file that exists and one that does not fail with the same words."""
    user_id, _ = make_user()
    errors = []
    for path in ("/etc/hostname", "/etc/no-such-file"):
        with db.begin() as s:
            job, _ = jobs.submit(
                s,
                user_id=user_id,
                kind="eval",
                spec=eval_spec(**jsonl(path=path)),
                total=1,
                max_attempts=1,
            )
        runners.run_job(app.extensions["rlvr"], job.id, "hostile-test")
        with db.read() as s:
            errors.append(s.get(Job, job.id).error)
    assert errors[0] == errors[1] and "/etc" not in errors[0], errors


# ---- sessions, keys, redirects, headers ------------------------------------------------------


def forged_cookie(data: dict) -> str:
    """A session cookie signed with the key that used to be the default."""
    signer = Flask("forger")
    signer.secret_key = OLD_DEFAULT_KEY
    return SecureCookieSessionInterface().get_signing_serializer(signer).dumps(data)


def csrf(page: bytes) -> str:
    return (
        re.search(rb'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1).decode()
    )


def login(client, token: str, next_: str | None = None):
    page = client.get("/login").data
    query = f"?next={next_}" if next_ is not None else ""
    return client.post(f"/login{query}", data={"token": token, "csrf_token": csrf(page)})


def cookie(client) -> str | None:
    found = client.get_cookie("session")
    return found and found.value


def forged_admin_session(client, as_user, victim, db):
    """A cookie naming an admin, signed with the old default key, reads every job."""
    admin = as_user(admin=True)
    client.set_cookie("session", forged_cookie({"user_id": _user_id(db, admin), "sid": "guessed"}))
    return client.get("/api/v1/jobs"), 401


def forged_session_and_csrf_cancel_the_victims_job(client, as_user, victim, db):
    """With a forged CSRF token too, the forged session acts: it cancels the victim's job."""
    raw = "f" * 40
    client.set_cookie("session", forged_cookie({"user_id": victim.user_id, "csrf_token": raw}))
    token = URLSafeTimedSerializer(OLD_DEFAULT_KEY, salt="wtf-csrf-token").dumps(raw)
    response = client.post(f"/jobs/{victim.running_id}/cancel", data={"csrf_token": token})
    with db.read() as s:
        assert s.get(Job, victim.running_id).status == "running"
    return response, 400


def session_replayed_after_logout(client, as_user, victim, db):
    assert login(client, victim.token).status_code == 302
    kept = cookie(client)
    assert client.get("/api/v1/jobs").status_code == 200
    page = client.get("/jobs").data
    client.post("/logout", data={"csrf_token": csrf(page)})
    client.set_cookie("session", kept)
    return client.get("/api/v1/jobs"), 401


def session_replayed_after_its_token_is_revoked(client, as_user, victim, db):
    assert login(client, victim.token).status_code == 302
    with db.begin() as s:
        token_id = accounts.credential_for_token(s, victim.token).token_id
        assert accounts.revoke_token(s, victim.user_id, token_id)
    return client.get("/api/v1/jobs"), 401


def token_used_past_its_expiry(client, as_user, victim, db):
    with db.begin() as s:
        token = accounts.issue_token(
            s, victim.user_id, "short", expires_at=utcnow() + timedelta(seconds=1)
        )
    bearer = {"Authorization": f"Bearer {token}"}
    assert (
        client.get("/api/v1/jobs", headers=bearer).status_code == 200
    )  # and now known to this process
    time.sleep(1.1)
    assert login(client, token).status_code == 200  # the form again, not a session
    return client.get("/api/v1/jobs", headers=bearer), 401


SESSION_ATTACKS = [
    forged_admin_session,
    forged_session_and_csrf_cancel_the_victims_job,
    session_replayed_after_logout,
    session_replayed_after_its_token_is_revoked,
    token_used_past_its_expiry,
]


@pytest.mark.parametrize("attack", SESSION_ATTACKS, ids=[a.__name__ for a in SESSION_ATTACKS])
def test_a_session_is_only_what_the_server_issued_and_has_not_ended(
    client, as_user, victim, db, attack
):
    response, status = attack(client, as_user, victim, db)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    if status == 401:
        assert response.json["error"] == "unauthorized"


@pytest.mark.parametrize(
    "target",
    ["/%09/evil.example", "/%0a/evil.example", "/%5Cevil.example"],
    ids=["tab", "newline", "backslash"],
)
def test_a_sign_in_only_goes_on_to_this_sites_paths(client, victim, target):
    response = login(client, victim.token, next_=target)
    assert (response.status_code, response.headers["Location"]) == (302, "/jobs")


def test_a_known_or_short_key_is_refused_on_a_network_address(stack_env):
    for key in (OLD_DEFAULT_KEY, "s" * 31):
        with pytest.raises(RuntimeError, match="SECRET_KEY is a known or short key"):
            create_app(load_settings({**stack_env, "SECRET_KEY": key, "RLVR_BIND": "0.0.0.0:8000"}))


def test_without_a_key_one_is_made_kept_0600_and_shared(stack_env, tmp_path):
    env = {**stack_env, "RLVR_DATA_DIR": str(tmp_path / "fresh"), "SECRET_KEY": ""}
    first, second = (create_app(load_settings(env)) for _ in range(2))
    kept = tmp_path / "fresh" / "secret_key"
    assert first.secret_key == second.secret_key == kept.read_text() != OLD_DEFAULT_KEY
    assert len(first.secret_key) >= 32 and kept.stat().st_mode & 0o777 == 0o600
    for made in (first, second):
        made.extensions["rlvr"].db.dispose()


def test_cookies_are_lax_httponly_and_secure_over_https(app, victim):
    plain = login(app.test_client(), victim.token).headers["Set-Cookie"]
    https = app.test_client()
    page = https.get("/login", base_url="https://localhost").data
    secure = https.post(
        "/login",
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},
        data={"token": victim.token, "csrf_token": csrf(page)},
    ).headers["Set-Cookie"]
    assert "SameSite=Lax" in plain and "HttpOnly" in plain and "Secure" not in plain
    assert "SameSite=Lax" in secure and "Secure" in secure
    assert https.get("/jobs", base_url="https://localhost").headers["Strict-Transport-Security"]


@pytest.mark.parametrize("path", ["/login", "/api/v1/health", "/api/docs/"])
def test_no_page_can_be_framed_or_run_injected_script(client, path):
    headers = client.get(path).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self';" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_metrics_and_stats_show_no_one_elses_jobs(client, api, as_user, victim):
    """A scraper without the operator's scrape token, and any other user, see counts only."""
    label = f'job_id="{victim.running_id}"'
    text = client.get("/api/v1/metrics").get_data(as_text=True)
    assert (
        label not in text and 'rlvr_jobs{kind="train",state="running"}' in text
    )  # counts for anyone
    assert label not in client.get("/api/v1/metrics", headers=api.headers).get_data(as_text=True)
    stats = api.get("/stats").json
    assert stats["training"] == [] and sum(stats["jobs"].values()) == 0
    admin = as_user(admin=True)
    assert label in client.get("/api/v1/metrics", headers=admin.headers).get_data(as_text=True)
    assert victim.running_id in [entry["job_id"] for entry in admin.get("/stats").json["training"]]


def test_the_operators_scrape_token_sees_every_job(stack_env, victim):
    scraper = create_app(
        load_settings({**stack_env, "RLVR_METRICS_TOKEN": "scrape-" + "s" * 32})
    ).test_client()
    label = f'job_id="{victim.running_id}"'
    assert label not in scraper.get(
        "/api/v1/metrics", headers={"Authorization": "Bearer wrong"}
    ).get_data(as_text=True)
    assert label in scraper.get(
        "/api/v1/metrics", headers={"Authorization": f"Bearer scrape-{'s' * 32}"}
    ).get_data(as_text=True)
