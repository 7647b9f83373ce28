"""The OpenAPI document (web.openapi): valid, one operation per API route and method, each
typed, tagged and with the errors its view can return; and the Swagger UI page.

The document is the routes and their models, so these tests need no database or Redis: the
app is built once with settings that nothing here connects to."""

from __future__ import annotations

import json
import re

import pytest
from openapi_spec_validator import validate

from service.kinds import KINDS
from service.settings import load_settings
from web import create_app

VERBS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    return create_app(
        load_settings(
            {"DATABASE_URL": f"sqlite:///{tmp / 'unused.sqlite3'}", "RLVR_DATA_DIR": str(tmp)}
        ),
        TESTING=True,
    )


@pytest.fixture(scope="module")
def doc(app) -> dict:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json


def operations(doc: dict):
    """(path, method, operation) of every operation in the document."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in VERBS:
                yield path, method, op


def api_rules(app):
    """(OpenAPI path, method, view) of every URL rule under /api/v1."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield path, method.lower(), app.view_functions[rule.endpoint]


def test_the_document_is_valid_openapi(doc):
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_the_document_has_exactly_the_api_routes(app, doc):
    assert {(path, method) for path, method, _ in operations(doc)} == {
        (path, method) for path, method, _ in api_rules(app)
    }


def test_every_operation_has_an_id_tags_and_the_errors_its_view_returns(app, doc):
    ops = {(path, method): op for path, method, op in operations(doc)}
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(ids)
    tags = {tag["name"] for tag in doc["tags"]}
    for path, method, view in api_rules(app):
        op = ops[path, method]
        assert op["tags"] and set(op["tags"]) <= tags, op["operationId"]
        assert any(code.startswith("2") for code in op["responses"]), op["operationId"]
        needs_token = getattr(view, "needs_token", False)
        assert ("401" in op["responses"]) == needs_token, op["operationId"]
        assert (op.get("security") == [{"bearer": []}]) == needs_token, op["operationId"]
        validates = "requestBody" in op or any(
            p["in"] in ("query", "header") for p in op.get("parameters", ())
        )
        assert ("400" in op["responses"]) == validates, op["operationId"]
        if "{job_id}" in path:
            assert "404" in op["responses"], op["operationId"]
        for code, response in op["responses"].items():
            if code[0] in "45":
                assert response["content"]["application/json"]["schema"] in (
                    {"$ref": "#/components/schemas/ErrorOut"},
                    {"$ref": "#/components/schemas/Health"},
                )


def test_a_submission_is_one_of_the_kinds_picked_by_kind(doc):
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/api/v1/jobs"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobSubmission"
    }
    submission = schemas["JobSubmission"]
    assert submission["discriminator"]["propertyName"] == "kind"
    assert set(submission["discriminator"]["mapping"]) == set(KINDS)
    assert len(submission["oneOf"]) == len(KINDS)
    for kind, job_kind in KINDS.items():
        member = schemas[submission["discriminator"]["mapping"][kind].rsplit("/", 1)[1]]
        assert member["properties"]["kind"]["const"] == kind
        assert member["properties"]["spec"] == {
            "$ref": f"#/components/schemas/{job_kind.spec.__name__}"
        }
        assert job_kind.spec.__name__ in schemas
    assert {"VerifyRequest", "Verdict"} <= set(schemas)
    headers = [p for p in doc["paths"]["/api/v1/jobs"]["post"]["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in headers] == ["Idempotency-Key"]


def test_query_parameters_carry_their_bounds(doc):
    def params(path):
        return {p["name"]: p for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "query"}

    jobs = params("/api/v1/jobs")
    assert set(jobs) == {"status", "kind", "tag", "q", "limit", "offset"}
    assert '"pattern"' in json.dumps(jobs["tag"]) and '"maxLength": 200' in json.dumps(jobs["q"])
    assert params("/api/v1/jobs/{job_id}")["spec"]["schema"]["default"] is True
    assert (jobs["limit"]["schema"]["minimum"], jobs["limit"]["schema"]["maximum"]) == (1, 100)
    assert jobs["offset"]["schema"]["minimum"] == 0 and not jobs["limit"]["required"]
    assert params("/api/v1/jobs/{job_id}/verdicts")["limit"]["schema"]["maximum"] == 1000
    assert params("/api/v1/jobs/{job_id}/experiences")["limit"]["schema"]["maximum"] == 500
    analysis = params("/api/v1/jobs/{job_id}/analysis")
    assert (
        analysis["window"]["schema"]["default"] == 5
        and analysis["tolerance"]["schema"]["exclusiveMinimum"] == 0
    )
    compare = params("/api/v1/compare")["jobs"]
    assert compare["required"] and (compare["style"], compare["explode"]) == ("form", False)  # 3,5
    assert compare["schema"]["maxItems"] == 20


def test_a_job_reads_with_its_spec_and_is_relabelled_by_patch(doc):
    job = doc["paths"]["/api/v1/jobs/{job_id}"]
    detail = job["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "spec" in doc["components"]["schemas"][detail.rsplit("/", 1)[1]]["properties"]
    patch = job["patch"]
    assert patch["operationId"] == "relabel_job" and "403" in patch["responses"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert set(doc["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]) == {
        "name",
        "tags",
    }


def test_replies_are_typed(doc):
    def reply(path, method, code):
        return doc["paths"][path][method]["responses"][code]["content"]

    assert reply("/api/v1/stats", "get", "200")["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Stats"
    }
    assert (
        set(reply("/api/v1/jobs", "post", "201"))
        == set(reply("/api/v1/jobs", "post", "200"))
        == {"application/json"}
    )
    assert "application/gzip" in reply("/api/v1/jobs/{job_id}/download", "get", "200")
    assert "text/plain" in reply("/api/v1/metrics", "get", "200")
    assert doc["paths"]["/api/v1/jobs/{job_id}/clone"]["post"]["requestBody"]["required"] is False
    schemas = doc["components"]["schemas"]
    assert set(schemas["LiveTraining"]["properties"]) >= {"job_id", "step", "eta_seconds"}
    assert {
        "Analysis",
        "Comparison",
        "CloneBody",
        "RewardDistribution",
        "Health",
        "VerifyTicket",
    } <= set(schemas)
    # Quotas are documented where they apply; a verify call answers with a ticket at once.
    for path, method in [("/api/v1/jobs", "post"), ("/api/v1/verify", "post")]:
        assert "429" in doc["paths"][path][method]["responses"]
    assert set(doc["paths"]["/api/v1/verify"]["post"]["responses"]) >= {"202", "400", "413", "429"}
    assert "200" not in doc["paths"]["/api/v1/verify"]["post"]["responses"]


def test_validation_runs_after_the_token_check(app):
    client = app.test_client()
    assert client.post("/api/v1/jobs", json={"kind": "bake"}).status_code == 401
    assert (
        client.post("/api/v1/verify", data=b"[", content_type="application/json").status_code == 401
    )


def test_the_docs_page_serves_swagger_ui_from_the_package(app):
    client = app.test_client()
    page = client.get("/api/docs/")
    assert page.status_code == 200 and b"/api/v1/openapi.json" in page.data
    for asset in re.findall(rb'(?:src|href)="\./([\w.-]+\.(?:js|css))"', page.data):
        assert client.get(f"/api/docs/{asset.decode()}").status_code == 200, asset
    assert b"unpkg.com" not in page.data and b"cdn." not in page.data


def test_the_document_states_the_bounds_the_server_enforces(doc):
    ops = {(path, method): op for path, method, op in operations(doc)}
    for (path, _method), op in ops.items():
        if path != "/api/v1/openapi.json":  # every other view reads the database or Redis
            assert "503" in op["responses"], op["operationId"]
        assert ("413" in op["responses"]) == ("requestBody" in op), op["operationId"]
        for p in op.get("parameters", ()):
            if p["in"] == "path" and p["name"] == "ticket":  # `POST /verify`'s, a UUID
                assert p["schema"]["format"] == "uuid", op["operationId"]
            elif p["in"] == "path":
                assert (p["schema"]["minimum"], p["schema"]["maximum"]) == (1, 2**31 - 1), op[
                    "operationId"
                ]
    headers = {
        p["name"]: p for p in ops["/api/v1/jobs", "post"]["parameters"] if p["in"] == "header"
    }
    assert headers["Idempotency-Key"]["schema"]["anyOf"][0]["maxLength"] == 200
    metrics = {p["name"]: p for p in ops["/api/v1/jobs/{job_id}/metrics", "get"]["parameters"]}
    assert metrics["after"]["schema"]["anyOf"][0]["maximum"] == 2**31 - 1
    schemas = doc["components"]["schemas"]
    assert schemas["StoppingSpec"]["properties"]["max_steps"]["maximum"] == 2**31 - 1
    assert "32 levels" in doc["info"]["description"]
