"""The OpenAPI 3.1 document of /api/v1: paths listed here, schemas generated from the
pydantic models that also validate the requests, so the two cannot drift apart."""

from __future__ import annotations

import functools

from pydantic.json_schema import models_json_schema

from web.schemas import (EventList, ErrorOut, Health, JobOut, JobPage, JobSubmission, Stats, VerdictList, VerdictPage,
                         VerifyBody)
from web.training_api import (OPENAPI_MODELS, Analysis, ArtifactList, CloneBody, Comparison, ExperiencePage,
                              MetricSeries)
from service.kinds import KINDS

REF = "#/components/schemas/{model}"


def _ref(model) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model, description: str = "") -> dict:
    return {"description": description or model.__name__, "content": {"application/json": {"schema": _ref(model)}}}


ERRORS = {code: _json(ErrorOut, text) for code, text in {
    400: "Invalid request; `detail` lists each bad field", 401: "Missing or unknown token",
    404: "No such job (or not yours)", 409: "Not allowed in the job's current state", 413: "Body too large",
}.items()}


def _op(summary: str, responses: dict, body=None, params: list | None = None, auth: bool = True) -> dict:
    op = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    if not auth:
        op["security"] = []
    return op


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
               "description": "A retried submit with the same key returns the first job (200) instead of a new one."}


@functools.cache
def openapi_document() -> dict:
    models = [JobSubmission, JobOut, JobPage, EventList, VerdictPage, VerifyBody, VerdictList, ErrorOut, Health, Stats,
              *OPENAPI_MODELS, *(kind.spec for kind in KINDS.values())]
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    e = ERRORS
    paths = {
        "/jobs": {
            "post": _op("Submit a job", {201: _json(JobOut, "Created"), 200: _json(JobOut, "Replayed submit"),
                                         400: e[400], 401: e[401], 413: e[413]},
                        body=JobSubmission, params=[IDEMPOTENCY]),
            "get": _op("List your jobs, newest first", {200: _json(JobPage), 400: e[400], 401: e[401]}, params=[
                _query("status", {"type": "string"}, "Only jobs in this state"),
                _query("kind", {"type": "string"}, "Only jobs of this kind"),
                _query("limit", {"type": "integer", "default": 20, "maximum": 100}, "Page size"),
                _query("offset", {"type": "integer", "default": 0}, "Jobs to skip")]),
        },
        "/jobs/{job_id}": {"get": _op("A job's status, progress and result", {200: _json(JobOut), 404: e[404]},
                                      params=[JOB_ID])},
        "/jobs/{job_id}/events": {"get": _op("The job's timeline", {200: _json(EventList), 404: e[404]},
                                             params=[JOB_ID])},
        "/jobs/{job_id}/verdicts": {"get": _op("A verify job's verdicts by program index, paginated",
                                               {200: _json(VerdictPage), 400: e[400], 404: e[404]}, params=[
            JOB_ID, _query("limit", {"type": "integer", "default": 100, "maximum": 1000}, "Page size"),
            _query("offset", {"type": "integer", "default": 0}, "Verdicts to skip")])},
        "/jobs/{job_id}/metrics": {"get": _op("A train, eval or SFT job's metric series by name",
                                              {200: _json(MetricSeries), 404: e[404]}, params=[
            JOB_ID, _query("names", {"type": "string"}, "Comma-separated names (reward,kl,...); all when absent"),
            _query("after", {"type": "integer"}, "Only steps after this one")])},
        "/jobs/{job_id}/analysis": {"get": _op("Error patterns, reward distribution per step, convergence step",
                                               {200: _json(Analysis), 400: e[400], 404: e[404]}, params=[
            JOB_ID, _query("metric", {"type": "string"}, "Series for the convergence step (pass_rate, reward, loss)"),
            _query("window", {"type": "integer", "default": 5}, "Steps in the trailing mean"),
            _query("tolerance", {"type": "number", "default": 0.05}, "Distance from the final value that counts "
                                                                     "as settled")])},
        "/jobs/{job_id}/resume": {"post": _op("Requeue a cancelled, crashed or failed train/SFT job as the same job, "
                                              "from its last checkpoint",
                                              {202: _json(JobOut), 404: e[404], 409: e[409]}, params=[JOB_ID])},
        "/jobs/{job_id}/clone": {"post": {**_op("A new job of the same kind with an edited spec, linked to this one",
                                                {201: _json(JobOut), 400: e[400], 404: e[404]}, params=[JOB_ID]),
                                          "requestBody": {"required": False, "content": {
                                              "application/json": {"schema": _ref(CloneBody)}}}}},
        "/compare": {"get": _op("Metric series of several of your jobs side by side",
                                {200: _json(Comparison), 400: e[400], 404: e[404]}, params=[
            {**_query("jobs", {"type": "string"}, "Comma-separated job ids (1,2)"), "required": True},
            _query("names", {"type": "string"}, "Comma-separated metric names; all when absent")])},
        "/jobs/{job_id}/experiences": {"get": _op("A train job's rollouts, paginated and filtered",
                                                  {200: _json(ExperiencePage), 400: e[400], 404: e[404]}, params=[
            JOB_ID, _query("step", {"type": "integer"}, "Only this step"),
            _query("verdict", {"type": "string"}, "Only this verdict (pass, fail, error)"),
            _query("min_reward", {"type": "number"}, "Reward at least"),
            _query("max_reward", {"type": "number"}, "Reward at most"),
            _query("limit", {"type": "integer", "default": 50, "maximum": 500}, "Page size"),
            _query("offset", {"type": "integer", "default": 0}, "Rows to skip")])},
        "/jobs/{job_id}/artifacts": {"get": _op("Checkpoints and the final model a job wrote",
                                                {200: _json(ArtifactList), 404: e[404]}, params=[JOB_ID])},
        "/jobs/{job_id}/download": {"get": _op("The final LoRA adapter or weights as .tar.gz",
                                               {200: {"description": "application/gzip"}, 404: e[404], 409: e[409]},
                                               params=[JOB_ID])},
        "/jobs/{job_id}/cancel": {"post": _op("Cancel a queued or running job",
                                              {202: _json(JobOut), 404: e[404], 409: e[409]}, params=[JOB_ID])},
        "/jobs/{job_id}/retry": {"post": _op("Run a finished job again as a new job linked to it",
                                             {201: _json(JobOut), 404: e[404], 409: e[409]}, params=[JOB_ID])},
        "/verify": {"post": _op("Verify a small batch now (bounded size and time)",
                                {200: _json(VerdictList), 400: e[400], 413: e[413],
                                 504: _json(ErrorOut, "No verdicts in time")}, body=VerifyBody)},
        "/health": {"get": _op("Database, Redis and live workers per queue",
                               {200: _json(Health, "Healthy"), 503: _json(Health, "Degraded")}, auth=False)},
        "/metrics": {"get": _op("Prometheus text: jobs by state, queue depths, verify latency, and "
                                "rlvr_train_* gauges of running train/SFT jobs by job_id",
                                {200: {"description": "text/plain"}}, auth=False)},
        "/stats": {"get": _op("Counts of jobs, queues and verified programs; your running train/SFT jobs' step, "
                              "latest metrics, speed and ETA", {200: _json(Stats), 401: e[401]})},
        "/openapi.json": {"get": _op("This document", {200: {"description": "OpenAPI 3.1"}}, auth=False)},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "rlvr-service", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "paths": {path: {verb: {**op, "responses": {str(k): v for k, v in op["responses"].items()}}
                         for verb, op in ops.items()} for path, ops in paths.items()},
        "components": {"schemas": schemas["$defs"],
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
