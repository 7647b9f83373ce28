"""Inputs that gave 500s under fuzzing (issue 14, finding 9), one row each: every one is a
400 naming what is wrong, or a 404 for an id no row can have, on SQLite and Postgres."""

from __future__ import annotations

import json

import pytest

from web.inputs import MAX_DEPTH, MAX_ID, unstorable

BIG = MAX_ID + 1  # 2^31: past Postgres `integer`
HUGE = 2**64  # past SQLite's int64 too

PROGRAM = {
    "program": "def f():\n    return 1",
    "tests": {"kind": "function", "tests": ["assert f() == 1"]},
}


def verify_body(program: str = PROGRAM["program"]) -> dict:
    return {"kind": "verify", "spec": {"requests": [{**PROGRAM, "program": program}]}}


def train_body(**stopping) -> dict:
    return {"kind": "train", "spec": {"stopping": stopping}}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (method, path with {job} for an existing job of the caller, body (dict, or str sent as is), headers, status, field)
ROWS = {
    "path id past int32": ("get", f"/jobs/{BIG}", None, {}, 404, None),
    "path id past int64": ("get", f"/jobs/{HUGE}/events", None, {}, 404, None),
    "path id past int32 on a write": ("post", f"/jobs/{BIG}/cancel", None, {}, 404, None),
    "compare an id past int32": ("get", f"/compare?jobs=1,{BIG}", None, {}, 400, "jobs.1"),
    "metrics after past int32": (
        "get",
        f"/jobs/{{job}}/metrics?after={BIG}",
        None,
        {},
        400,
        "after",
    ),
    "experiences step past int32": (
        "get",
        f"/jobs/{{job}}/experiences?step={BIG}",
        None,
        {},
        400,
        "step",
    ),
    "offset past int64": ("get", f"/jobs?offset={2**63}", None, {}, 400, "offset"),
    "max_steps past int32": (
        "post",
        "/jobs",
        train_body(max_steps=BIG),
        {},
        400,
        "spec.stopping.max_steps",
    ),
    "SFT max_steps past int32": (
        "post",
        "/jobs",
        {"kind": "sft", "spec": {"max_steps": BIG}},
        {},
        400,
        "spec.max_steps",
    ),
    "JSON nested 500 deep": (
        "post",
        "/jobs",
        f'{{"kind": "verify", "spec": {nested(500)}}}',
        {},
        400,
        "spec" + ".0" * (MAX_DEPTH - 1),
    ),
    "JSON nested past the parser's recursion": ("post", "/jobs", nested(100_000), {}, 400, None),
    "NUL in a string": (
        "post",
        "/jobs",
        verify_body("def f():\x00"),
        {},
        400,
        "spec.requests.0.program",
    ),
    "NUL in a query string": (
        "get",
        "/jobs/{job}/experiences?verdict=%00",
        None,
        {},
        400,
        "verdict",
    ),
    "lone surrogate in a string": (
        "post",
        "/jobs",
        '{"kind": "verify", "spec": {"requests": [{"program": '
        '"\\ud800", "tests": {"kind": "function", "tests": []}}]}}',
        {},
        400,
        "spec.requests.0.program",
    ),
    "lone surrogate in a key": (
        "post",
        "/jobs/{job}/clone",
        '{"spec": {"\\udfff": 1}}',
        {},
        400,
        "spec",
    ),
    "number past float": (
        "post",
        "/jobs",
        '{"kind": "train", "spec": {"optim": {"learning_rate": 1e400}}}',
        {},
        400,
        "spec.optim.learning_rate",
    ),
    "NaN": (
        "post",
        "/jobs/{job}/clone",
        '{"spec": {"optim": {"learning_rate": NaN}}}',
        {},
        400,
        "spec.optim.learning_rate",
    ),
    "Idempotency-Key past its column": (
        "post",
        "/jobs",
        verify_body(),
        {"Idempotency-Key": "k" * 201},
        400,
        "Idempotency-Key",
    ),
    "sync verify with a lone surrogate": (
        "post",
        "/verify",
        '{"requests": [{"program": "\\udfff", "tests": {"kind": "function", "tests": []}}]}',
        {},
        400,
        "requests.0.program",
    ),
}


@pytest.fixture
def job(api) -> int:
    response = api.post("/jobs", json=verify_body())
    assert response.status_code == 201
    return response.json["id"]


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_bad_input_is_a_400_or_404_never_a_500(api, job, row):
    method, path, body, headers, status, field = row
    kwargs = {"headers": headers}
    if isinstance(body, str):
        kwargs.update(data=body.encode("utf-8", "surrogatepass"), content_type="application/json")
    elif body is not None:
        kwargs["json"] = body
    response = getattr(api, method)(path.format(job=job), **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert set(response.json) == {"error", "detail"}
    if field:
        assert field in [e["field"] for e in response.json["detail"]], response.json


def test_a_job_is_still_there_after_the_refusals(api, job):
    assert api.get(f"/jobs/{job}").json["status"] == "queued"
    assert api.get(f"/jobs/{MAX_ID}").status_code == 404  # the largest id is a plain miss


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"a": [1, "ok", 2.5, None, True]}, None),
        ({"a": {"b": "x\x00"}}, ("a.b", "NUL")),
        ({"a": ["\ud800"]}, ("a.0", "lone surrogate")),
        ({"k\x00": 1}, ("body", "a key contains NUL")),
        ({"a": float("inf")}, ("a", "not a finite number")),
        (json.loads(nested(MAX_DEPTH)), None),
        (json.loads(nested(MAX_DEPTH + 1)), ("0" + ".0" * (MAX_DEPTH - 1), "nested deeper")),
    ],
)
def test_unstorable(data, problem):
    found = unstorable(data)
    if problem is None:
        assert found is None
    else:
        assert found["field"] == problem[0] and problem[1] in found["message"], found
