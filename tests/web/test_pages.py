"""The HTML pages through the Flask test client: sign-in, CSRF, field errors, ownership."""

from __future__ import annotations

import re

import pytest


def csrf(page: bytes) -> str:
    return (
        re.search(rb'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1).decode()
    )


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
    assert (
        b"Unknown token"
        in client.post(
            "/login", data={"token": "x", "csrf_token": csrf(page)}, follow_redirects=True
        ).data
    )
    assert client.post("/login", data={"token": "x"}).status_code == 400  # no CSRF token


def test_form_shows_errors_next_to_fields_and_submits(client, signed_in):
    signed_in()
    form = client.get("/jobs/new/verify")
    bad = client.post(
        "/jobs/new/verify",
        data={
            "csrf_token": csrf(form.data),
            "program": "",
            "tests": "assert f() == 1\nprint(2)",
            "wall_seconds": "10",
        },
    )
    assert bad.status_code == 400
    assert re.search(rb'id="program-error">This field is required', bad.data)
    assert re.search(rb'id="tests-error">line 2 is not an assert statement', bad.data)
    good = client.post(
        "/jobs/new/verify",
        data={
            "csrf_token": csrf(form.data),
            "program": "def f():\n  return 1",
            "tests": "assert f() == 1",
            "wall_seconds": "10",
        },
    )
    assert good.status_code == 302
    job_page = client.get(good.headers["Location"])
    assert b'class="badge queued"' in job_page.data and b"submitted" in job_page.data
    assert b'http-equiv="refresh"' in job_page.data  # it refreshes itself until the job ends
    listing = client.get("/jobs?status=queued").data
    assert good.headers["Location"].encode() in listing


def test_cancel_and_retry_buttons(client, signed_in, api):
    signed_in()
    form = client.get("/jobs/new/verify")
    location = client.post(
        "/jobs/new/verify",
        data={
            "csrf_token": csrf(form.data),
            "program": "x = 1",
            "tests": "assert x == 1",
            "wall_seconds": "5",
        },
    ).headers["Location"]
    page = client.get(location).data
    client.post(location + "/cancel", data={"csrf_token": csrf(page)})
    page = client.get(location).data
    assert b'id="status">cancelled' in page
    retried = client.post(location + "/retry", data={"csrf_token": csrf(page)})
    assert b"retry of" in client.get(retried.headers["Location"]).data


def test_someone_elses_job_page_is_404(client, signed_in, api):
    job_id = api.post(
        "/jobs",
        json={
            "kind": "verify",
            "spec": {
                "requests": [
                    {"program": "x = 1", "tests": {"kind": "function", "tests": ["assert x == 1"]}}
                ]
            },
        },
    ).json["id"]
    signed_in()
    assert client.get(f"/jobs/{job_id}").status_code == 404
    signed_in(admin=True)
    assert client.get(f"/jobs/{job_id}").status_code == 200


def own_job(db, token: str, kind: str = "train", **fields):
    """A job of the token's user, written straight to the database, with `fields` set."""
    from service.db import accounts, jobs

    with db.begin() as session:
        user_id = accounts.user_for_token(session, token).id
        job, _ = jobs.submit(session, user_id=user_id, kind=kind, spec={}, total=3, max_attempts=1)
        for name, value in fields.items():
            setattr(job, name, value)
    return job.id


def test_training_job_page_shows_its_result_and_charts_its_metrics_from_the_api(
    client, signed_in, db
):
    from service.db import training

    token = signed_in()
    job_id = own_job(db, token, result={"steps": 3, "stop_reason": "max_steps"})
    with db.begin() as session:
        for step, reward in ((1, 0.1), (2, 0.5), (3, 0.4)):
            training.save_metrics(session, job_id, step, {"reward": reward, "kl": 0.01 * step})
    page = client.get(f"/jobs/{job_id}").data.decode()
    assert "stop_reason" in page and "max_steps" in page
    assert "/static/charts.js" in page and "/static/job.js" in page
    assert re.search(r'data-metrics="\[&#34;reward&#34;, &#34;pass_rate&#34;, &#34;kl&#34;', page)
    # the page's script reads the API with the session cookie, no token
    series = client.get(f"/api/v1/jobs/{job_id}/metrics?names=reward,kl").json["series"]
    assert series == {
        "reward": [[1, 0.1], [2, 0.5], [3, 0.4]],
        "kl": [[1, 0.01], [2, 0.02], [3, 0.03]],
    }
    assert client.get(f"/api/v1/jobs/{job_id}").json["status"] == "queued"


def test_the_session_cookie_reads_the_api_but_never_writes_through_it(
    client, signed_in, db, make_user
):
    job_id = own_job(db, signed_in())
    assert (
        client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 401
    )  # the API does no CSRF check
    assert client.get(f"/api/v1/jobs/{job_id}").json["status"] == "queued"
    _, other = make_user()
    assert client.get(f"/api/v1/jobs/{own_job(db, other)}/metrics").status_code == 404
    client.post("/logout", data={"csrf_token": csrf(client.get("/jobs").data)})
    assert client.get(f"/api/v1/jobs/{job_id}/metrics").status_code == 401


def experience(step: int, prompt: int, sample: int, reward: float, verdict: str, **extra) -> dict:
    return {
        "step": step,
        "prompt_index": prompt,
        "sample_index": sample,
        "problem_id": f"p{prompt}",
        "prompt": f"What is {prompt} + {prompt}?",
        "completion": f"= {sample} (step {step})",
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "truncated": False,
        "reward": reward,
        "verdict": verdict,
        "advantage": 0.25,
        "logprob_mean": -1.5,
        "reward_components": {"verdict": reward, "format": 0.1},
        "extra": extra,
    }


FAILED_CODE = {
    "status": "ok",
    "passed": 1,
    "total": 2,
    "error": None,
    "wall_seconds": 0.05,
    "tests": [
        {"outcome": "pass", "error_type": None, "detail": None, "test": "assert f(1) == 1"},
        {"outcome": "wrong", "error_type": None, "detail": "got 3", "test": "assert f(2) == 4"},
    ],
}


def test_rollout_browser_filters_pages_and_opens_a_rollout(client, signed_in, db):
    from service.db import training

    job_id = own_job(db, signed_in())
    with db.begin() as session:
        training.save_experiences(
            session,
            job_id,
            [
                experience(
                    step,
                    prompt,
                    sample,
                    1.0 if sample == 0 else -0.5,
                    "pass" if sample == 0 else "fail",
                    code=FAILED_CODE if sample else None,
                )
                for step in (1, 2)
                for prompt in range(3)
                for sample in range(4)
            ],
        )

    everything = client.get(f"/jobs/{job_id}/rollouts").data.decode()
    assert "24 rollouts · page 1 of 2" in everything and "next ›" in everything
    assert everything.count('<tr class="rollout">') == 20
    second = client.get(f"/jobs/{job_id}/rollouts?page=2").data.decode()
    assert second.count('<tr class="rollout">') == 4 and "‹ previous" in second

    failing = client.get(f"/jobs/{job_id}/rollouts?step=2&verdict=fail&max_reward=0").data.decode()
    assert "9 rollouts · page 1 of 1" in failing
    assert failing.count('<span class="verdict fail">fail</span>') == 9
    detail = re.search(
        r'<tr class="detail" id="rollout-2-1-3">(.*?)</tr>\s*<tr class="(rollout|detail)"',
        failing,
        re.S,
    )
    assert detail, "a row opens its full rollout by its anchor"
    text = detail.group(1)
    assert "What is 1 + 1?" in text and "= 3 (step 2)" in text
    row = re.search(r'<tr class="rollout">(.*?)</tr>', failing, re.S).group(1)
    assert '<td class="prompt"' in row and "What is 0 + 0?" in row  # the prompt, without opening it
    assert "assert f(2) == 4 failed: got 3" in text and "1/2 tests passed" in text
    assert "page=2" not in failing  # the filters fit on one page

    none = client.get(f"/jobs/{job_id}/rollouts?min_reward=2").data.decode()
    assert "No rollouts match these filters" in none
    bad = client.get(f"/jobs/{job_id}/rollouts?step=-1")
    assert (
        bad.status_code == 400 and b"step: Input should be greater than or equal to 0" in bad.data
    )


def test_compare_page_offers_the_users_training_jobs(client, signed_in, db, make_user):
    token = signed_in()
    mine, sft = own_job(db, token), own_job(db, token, kind="sft")
    _, other = make_user()
    theirs = own_job(db, other)
    page = client.get(f"/compare?jobs={mine}&jobs={sft}&jobs={theirs}").data.decode()
    offered = re.findall(r'name="jobs" value="(\d+)"', page)
    assert str(mine) in offered and str(sft) in offered and str(theirs) not in offered
    assert f'data-jobs="[{mine}, {sft}]"' in page and "/static/compare.js" in page


def test_spec_form_shows_yaml_and_spec_errors_under_the_spec_and_submits(client, signed_in, db):
    signed_in()
    form = client.get("/jobs/new/train")
    assert b"max_steps: 100" in form.data  # starts from the defaults
    token = csrf(form.data)
    not_yaml = client.post("/jobs/new/train", data={"csrf_token": token, "spec": "model: [tiny"})
    assert not_yaml.status_code == 400 and re.search(
        rb'id="spec-error">not YAML: line 1, column 13', not_yaml.data
    )
    bad = client.post(
        "/jobs/new/train",
        data={"csrf_token": token, "spec": "stopping:\n  max_steps: 0\noptim: {lr: 1}"},
    )
    assert bad.status_code == 400
    assert re.search(
        rb'id="spec-error">stopping.max_steps: Input should be greater than or equal to 1', bad.data
    )
    assert re.search(rb'id="spec-error">optim.lr: Extra inputs are not permitted', bad.data)
    path = client.post(
        "/jobs/new/train", data={"csrf_token": token, "spec": "model: {name: /srv/models/x}"}
    )
    assert path.status_code == 400  # what a user may name is checked here as in the API
    assert re.search(rb'id="spec-error">model.name: a path is not allowed here', path.data)
    good = client.post(
        "/jobs/new/sft", data={"csrf_token": token, "spec": "max_steps: 7\nbatch_size: 4"}
    )
    assert good.status_code == 302
    job_id = int(good.headers["Location"].rsplit("/", 1)[1])
    from service.db import Job

    with db.read() as session:
        job = session.get(Job, job_id)
        assert (job.kind, job.progress_total, job.spec["batch_size"]) == ("sft", 7, 4)


def test_resume_and_clone_with_edits_from_the_job_page(client, signed_in, db):
    from service.db import Job

    signed_in()
    form = client.get("/jobs/new/train")
    spec = "model: {name: tiny, lora: null}\nstopping: {max_steps: 4}\noptim: {seed: 9}"
    location = client.post(
        "/jobs/new/train", data={"csrf_token": csrf(form.data), "spec": spec}
    ).headers["Location"]
    page = client.get(location).data
    assert b">Resume<" not in page  # queued: nothing to resume yet
    client.post(location + "/cancel", data={"csrf_token": csrf(page)})
    page = client.get(location).data
    assert b'id="status">cancelled' in page
    client.post(location + "/resume", data={"csrf_token": csrf(page)})
    page = client.get(location).data
    assert b'id="status">queued' in page and b"resumed by its owner" in page

    clone_form = client.get(location + "/clone").data.decode()
    assert (
        "Clone job #" in clone_form and "max_steps: 4" in clone_form and "lora: null" in clone_form
    )
    bad = client.post(
        location + "/clone",
        data={"csrf_token": csrf(clone_form.encode()), "spec": "stopping: {max_steps: -1}"},
    )
    assert bad.status_code == 400
    assert re.search(
        rb'id="spec-error">stopping.max_steps: Input should be greater than or equal to 1', bad.data
    )
    made = client.post(
        location + "/clone",
        data={"csrf_token": csrf(clone_form.encode()), "spec": "stopping: {max_steps: 6}"},
    )
    assert made.status_code == 302
    new_page = client.get(made.headers["Location"]).data.decode()
    assert f'from <a href="{location}">' in new_page and "clone of job" in new_page
    with db.read() as session:
        clone = session.get(Job, int(made.headers["Location"].rsplit("/", 1)[1]))
        assert (
            clone.progress_total == 6
            and clone.spec["optim"]["seed"] == 9
            and clone.spec["model"]["lora"] is None
        )


TRAIN_SPEC = {
    "model": {"name": "tiny", "lora": None},
    "task": {"name": "arithmetic", "operators": ["+"]},
    "optim": {"learning_rate": 1e-5, "seed": 0},
    "stopping": {"max_steps": 3},
}


def test_job_list_shows_model_task_duration_final_metric_and_error_filters_and_pages(
    client, signed_in, db
):
    from datetime import UTC, datetime, timedelta

    from service.db import training

    token = signed_in()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    done = own_job(
        db,
        token,
        spec=TRAIN_SPEC,
        status="succeeded",
        started_at=start,
        finished_at=start + timedelta(minutes=2, seconds=5),
        result={"steps": 3, "pass_rate": 0.8125, "reward": 0.5},
        name="Baseline",
        tags=["lr-1e5", "baseline"],
    )
    failed = own_job(db, token, spec=TRAIN_SPEC, status="failed", error="RuntimeError: CUDA OOM")
    with db.begin() as session:  # no result: the latest logged value stands in
        training.save_metrics(session, failed, 1, {"reward": 0.25})
    page = client.get("/jobs").data.decode()
    row = re.search(rf'href="/jobs/{done}">#{done}</a>(.*?)</tr>', page, re.S).group(1)
    assert "Baseline" in row and ">lr-1e5</a>" in row and "tiny · arithmetic" in row
    assert "2m 05s" in row and "pass_rate</span> 0.8125" in row
    row = re.search(rf'href="/jobs/{failed}">#{failed}</a>(.*?)</tr>', page, re.S).group(1)
    assert "RuntimeError: CUDA OOM" in row and "reward</span> 0.25" in row

    assert f'href="/jobs/{done}"' not in client.get("/jobs?tag=lr").data.decode()
    assert f'href="/jobs/{done}"' in client.get("/jobs?tag=lr-1e5").data.decode()
    by_name = client.get("/jobs?q=basel").data.decode()
    assert f'href="/jobs/{done}"' in by_name and f'href="/jobs/{failed}"' not in by_name
    assert "No jobs match these filters" in client.get("/jobs?q=nothing").data.decode()

    more = [own_job(db, token, kind="sft") for _ in range(50)]
    first = client.get("/jobs").data.decode()
    assert "52 jobs · page 1 of 2" in first and f'href="/jobs/{more[-1]}"' in first
    assert f'href="/jobs/{done}"' not in first  # the oldest are on the next page
    second = client.get("/jobs?page=2&kind=").data.decode()
    assert f'href="/jobs/{done}"' in second and f'href="/jobs/{failed}"' in second
    assert client.get(f"/jobs?page={10**30}").status_code == 200  # past the end: an empty page
    filtered = client.get("/jobs?kind=train").data.decode()
    assert "2 jobs" in filtered and "page 1 of" not in filtered


def test_job_page_shows_its_settings_and_its_owner_names_and_tags_it(
    client, signed_in, db, make_user
):
    token = signed_in()
    job_id = own_job(db, token, spec=TRAIN_SPEC)
    page = client.get(f"/jobs/{job_id}").data.decode()
    settings = "".join(re.findall(r'<table class="settings">(.*?)</table>', page, re.S))
    assert re.search(r"<th>optim.learning_rate</th><td><code>1e-05</code>", settings)
    assert re.search(r"<th>model.lora</th><td><code>null</code>", settings)
    assert re.search(r"<th>task.operators</th><td><code>\[&#34;\+&#34;\]</code>", settings)

    form = {"csrf_token": csrf(page.encode()), "name": "  Lower LR ", "tags": "lr-1e5, small"}
    assert client.post(f"/jobs/{job_id}/labels", data=form).status_code == 302
    page = client.get(f"/jobs/{job_id}").data.decode()
    assert '<span id="job-name">Lower LR</span>' in page and ">small</a>" in page
    bad = client.post(f"/jobs/{job_id}/labels", data={**form, "tags": 'a"b'}, follow_redirects=True)
    assert b"tags: String should match pattern" in bad.data
    assert '<span id="job-name">Lower LR</span>' in client.get(f"/jobs/{job_id}").data.decode()

    signed_in(admin=True)  # sees the job, may not rename it
    page = client.get(f"/jobs/{job_id}").data.decode()
    assert 'id="edit-labels"' not in page
    refused = client.post(
        f"/jobs/{job_id}/labels",
        data={"csrf_token": csrf(page.encode()), "name": "admin's"},
        follow_redirects=True,
    )
    assert b"only the owner of job" in refused.data and b"Lower LR" in refused.data


def test_a_failed_job_page_shows_its_error_and_log_tail_not_no_steps(client, signed_in, db):
    from service.db import jobs

    token = signed_in()
    job_id = own_job(db, token, spec=TRAIN_SPEC)
    with db.begin() as session:
        jobs.claim(session, job_id, "worker-1")
        jobs.finish(session, job_id, "failed", error="ValueError: task 'nope' is not registered")
    page = client.get(f"/jobs/{job_id}").data.decode()
    failure = re.search(r'<section class="failure" id="failure">(.*?)</section>', page, re.S)
    assert failure and "ValueError: task &#39;nope&#39; is not registered" in failure.group(1)
    assert 'id="log-tail"' in failure.group(1) and "queued: submitted" in failure.group(1)
    assert "No steps yet" not in page and "It logged no metrics before it ended as failed" in page


def test_compare_page_lists_the_settings_that_differ_under_the_job_names(client, signed_in, db):
    token = signed_in()
    base = own_job(db, token, spec=TRAIN_SPEC, name="base")
    faster = own_job(
        db, token, spec={**TRAIN_SPEC, "optim": {"learning_rate": 3e-5, "seed": 0}}, name="faster"
    )
    sft = own_job(db, token, kind="sft", spec={"model": {"name": "tiny"}, "max_steps": 9})
    page = client.get(f"/compare?jobs={base}&jobs={faster}&jobs={sft}").data.decode()
    table = re.search(r'<table class="settings" id="differences">(.*?)</table>', page, re.S)
    rows = dict(re.findall(r"<tr><th>([^<]+)</th>(.*?)</tr>", table.group(1), re.S))
    assert (
        "model.name" not in rows and "optim.seed" in rows
    )  # the same everywhere but absent in SFT
    assert re.findall(r"<code>([^<]*)</code>", rows["optim.learning_rate"]) == [
        "1e-05",
        "3e-05",
        "—",
    ]
    assert re.findall(r"<code>([^<]*)</code>", rows["max_steps"]) == ["—", "—", "9"]
    assert f"#{base} base" in table.group(1) and f"#{faster} faster" in table.group(1)
    assert (
        f'data-labels="[&#34;#{base} base&#34;, &#34;#{faster} faster&#34;, &#34;#{sft}&#34;]"'
        in page
    )
    one = client.get(f"/compare?jobs={base}").data.decode()
    assert "Settings that differ" not in one


def test_new_train_job_form_lays_its_common_fields_over_the_yaml(client, signed_in, db):
    import yaml

    from service.db import Job

    signed_in()
    form = client.get("/jobs/new/train").data.decode()
    assert re.search(r'id="set_optim_learning_rate"[^>]*placeholder="1e-05"', form)
    spec = yaml.safe_load(
        re.search(r'<textarea[^>]*id="spec"[^>]*>(.*?)</textarea>', form, re.S)
        .group(1)
        .replace("&#39;", "'")
    )
    spec["stopping"]["max_steps"] = 7
    data = {
        "csrf_token": csrf(form.encode()),
        "spec": yaml.safe_dump(spec),
        "name": "from the form",
        "tags": "form-test",
        "set_model_name": "tiny",
        "set_optim_learning_rate": "0.0003",
        "set_algorithm_group_size": "4",
        "set_stopping_max_steps": "",  # empty: the YAML's 7 stands
    }
    bad = client.post("/jobs/new/train", data={**data, "set_algorithm_group_size": "0"})
    assert bad.status_code == 400
    assert re.search(
        rb'id="set_algorithm_group_size-error">algorithm.group_size: Input should be', bad.data
    )
    created = client.post("/jobs/new/train", data=data)
    assert created.status_code == 302, created.data.decode()[-2000:]
    job_id = int(created.headers["Location"].rsplit("/", 1)[1])
    with db.read() as session:
        job = session.get(Job, job_id)
    assert (job.name, job.tags) == ("from the form", ["form-test"])
    assert job.spec["optim"]["learning_rate"] == 0.0003 and job.spec["algorithm"]["group_size"] == 4
    assert job.spec["stopping"]["max_steps"] == 7


def test_workers_page_lists_pools_and_queue_depths(client, signed_in, api):
    signed_in()
    for _ in range(2):  # a verify job's message waits on the coordinate queue: no worker runs here
        api.post(
            "/jobs",
            json={
                "kind": "verify",
                "spec": {
                    "requests": [
                        {"program": "x = 1", "tests": {"kind": "function", "tests": ["assert x"]}}
                    ]
                },
            },
        )
    page = client.get("/workers").data.decode()
    pools = re.search(r'<table id="pools">(.*?)</table>', page, re.S).group(1)
    rows = dict(re.findall(r"<td><strong>(\w+)</strong></td>(.*?)</tr>", pools, re.S))
    assert set(rows) == {"train", "verify", "coordinate"}
    assert "<td>2</td>" in rows["coordinate"] and "<td>0</td>" in rows["train"]
    assert all("none" in rest for rest in rows.values())
