"""The API under schemathesis, in-process (WSGI) against a real database and Redis.

Each operation in the OpenAPI document gets `EXAMPLES` generated requests, valid and
invalid (schemathesis's example, coverage and fuzzing phases), sent with a fresh user's
token; the test fails on any 5xx and on any status the document does not list for the
operation. On Postgres only: it refuses all that SQLite does and more (NUL in text, an int32
column where SQLite takes int64), and the whole run takes about two and a half minutes here,
most of it the coverage phase's 3,000 submissions that probe each field of each job kind's
spec at and past its bounds. `tests/web/test_inputs.py` runs the known bad inputs on both.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from service import queues
from service.settings import load_settings
from web import create_app

EXAMPLES = 25  # per operation

# The document depends on the routes alone, so it is read from an app that connects to
# nothing; each call goes to the test's own app, on a real database.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", create_app(load_settings({"DATABASE_URL": "sqlite://"}), TESTING=True)
)


@pytest.fixture
def fuzzed_app(stack_env):
    # A reaper period of an hour keeps beat and the reaper, marked seen below as if they ran,
    # seen for the whole test, so /health answers 200.
    app = create_app(
        load_settings({**stack_env, "RLVR_REAPER_SECONDS": "3600"}),
        TESTING=True,
    )
    for key in (queues.BEAT_SEEN, queues.REAPER_SEEN):
        queues.mark_seen(app.extensions["rlvr"], key)
    yield app
    app.extensions["rlvr"].db.dispose()


@pytest.fixture
def token(make_user):
    return make_user()[1]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_no_server_errors_and_only_documented_statuses(case, fuzzed_app, token):
    response = case.call(app=fuzzed_app, headers={"Authorization": f"Bearer {token}"})
    case.validate_response(response, checks=[status_code_conformance, not_a_server_error])
