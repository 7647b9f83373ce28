"""Faults while jobs run, against real worker processes from Procfile: Postgres restarted
under a running and a queued job, and beat killed.

Postgres here is a cluster of the test's own (`PostgresCluster`), never the suite's shared
server, so the test may stop it at will. The API is the app in-process, on that cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from glob import glob
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, select
from support import Api, free_port, timeline, wait_for, wait_until
from test_lifecycle import CORRECT, request, slow, submit

from service import queues
from service.db import Database, VerdictRow, accounts
from service.db.migrate import upgrade
from service.settings import load_settings
from web import create_app


class PostgresCluster:
    """initdb into a fresh directory, pg_ctl on a free port. The directory is under /tmp, not
    pytest's tmp_path: initdb refuses to run as root, so as root the cluster runs as the
    `postgres` user, who cannot enter root's private pytest directories."""

    def __init__(self):
        self.bin = Path(sorted(glob("/usr/lib/postgresql/*/bin"))[-1])
        self.root = Path(tempfile.mkdtemp(prefix="rlvr-pg-"))
        self.data, self.port = self.root / "data", free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"
        )

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args) -> None:
        command = [str(self.bin / program), *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-l", self.root / "log", "-o", options, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown, as a restart or a failover does: every session is ended."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        upgrade(self.url(name))
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres():
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


def api_on(url: str, stack_env: dict) -> tuple[Api, object]:
    """A fresh user's API client on an app whose database is `url`; and the app."""
    app = create_app(load_settings({**stack_env, "DATABASE_URL": url}), TESTING=True)
    db = Database(load_settings({"DATABASE_URL": url}).database_url)
    with db.begin() as session:
        user = accounts.create_user(session, "outage")
        token = accounts.issue_token(session, user.id)
    db.dispose()
    return Api(app.test_client(), token), app


# The test's own Postgres carries the jobs; the suite's database fixture is only set up.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_postgres_restarted_under_a_running_and_a_queued_job(private_postgres, stack_env, procfile):
    url = private_postgres.create_database("rlvr")
    api, app = api_on(url, stack_env)
    # Verify jobs are coordinated on the coordinate pool; one thread, so the second job waits.
    procfile("coordinate", DATABASE_URL=url, COORDINATE_CONCURRENCY="1")
    verify = procfile("verify", DATABASE_URL=url, VERIFY_CONCURRENCY="1")  # also runs the reaper
    procfile("beat", DATABASE_URL=url)
    running = submit(api, [slow(1.0)] * 16)  # four batches, one at a time: seconds of work
    wait_for(api, running, "running")
    queued = submit(api, [request(*CORRECT)] * 2)  # behind it: the one coordinator thread is busy

    private_postgres.stop()
    # The running job's coordinator meets the outage and ends; the coordinate worker then takes
    # the queued job's message, acked on receipt, drops its marker and fails to claim it.
    broker = redis.Redis.from_url(stack_env["REDIS_URL"])
    wait_until(
        lambda: not broker.exists(queues.job_marker(queued)), 60, "the queued job's claim to fail"
    )
    during = [
        api.get(f"/jobs/{running}"),
        api.get("/jobs"),
        api.post("/jobs", json={"kind": "verify", "spec": {"requests": [request(*CORRECT)]}}),
        api.get("/health"),
    ]
    assert [r.status_code for r in during] == [503, 503, 503, 503], [r.json for r in during]
    assert all(r.headers.get("Retry-After") == "5" for r in during[:3])

    private_postgres.start()
    assert api.get(f"/jobs/{queued}").status_code == 200  # the very next request reconnects
    seen = []

    def both_done():
        statuses = []
        for job_id in (running, queued):
            response = api.get(f"/jobs/{job_id}")
            seen.append(response.status_code)
            statuses.append(response.json.get("status"))
        return all(s in ("succeeded", "failed", "cancelled") for s in statuses)

    wait_until(both_done, 120, "both jobs to finish", every=0.5)
    assert set(seen) == {200}
    first, second = wait_for(api, running, "succeeded"), wait_for(api, queued, "succeeded")
    assert first["result"]["all_passed"] == 16 and second["result"]["all_passed"] == 2
    assert timeline(api, running) == [
        "queued",
        "running",
        "crashed",
        "queued",
        "running",
        "succeeded",
    ]
    assert timeline(api, queued) == ["queued", "running", "succeeded"]
    with Database(app.extensions["rlvr"].settings.database_url).read() as s:
        indices = s.scalars(select(VerdictRow.index).where(VerdictRow.job_id == running)).all()
    assert sorted(indices) == list(range(16))  # nothing judged twice
    assert re.search(rf"re-sent lost \[[^\]]*\b{queued}\b", verify.output()), (
        "the reaper did not re-send it"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a property of beat and Redis
def test_health_reports_beat_killed(app, client, procfile, stack_settings):
    procfile("verify")
    beat = procfile("beat")
    wait_until(
        lambda: client.get("/api/v1/health").status_code == 200,
        30,
        "beat and the reaper to be seen",
    )
    beat.kill()
    report = wait_until(
        lambda: (r := client.get("/api/v1/health")).status_code == 503 and r.json,
        30,
        "health to notice beat is gone",
    )
    assert not report["beat"]["ok"] and "is beat running?" in report["beat"]["error"]
    assert report["database"]["ok"] and report["redis"]["ok"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_restart_between_two_requests_costs_the_second_nothing(private_postgres, stack_env):
    # Every pooled connection is dead after the restart; the pool must notice before using one.
    api, _ = api_on(private_postgres.create_database("rlvr"), stack_env)
    job_id = submit(api, [request(*CORRECT)])
    assert api.get("/jobs").status_code == api.get(f"/jobs/{job_id}").status_code == 200
    private_postgres.stop()
    private_postgres.start()
    assert api.get(f"/jobs/{job_id}").status_code == 200  # the status poll's prepared read
    assert api.get("/jobs").status_code == 200  # an ORM session


def test_redis_flushed_under_a_running_and_a_queued_job(api, procfile, redis_server, db):
    procfile("coordinate")
    procfile("verify", VERIFY_CONCURRENCY="1")
    procfile("beat")
    running = submit(api, [slow(1.0)] * 12)
    wait_for(api, running, "running")
    queued = submit(api, [request(*CORRECT)] * 2)
    redis.Redis.from_url(redis_server.url).flushall()  # every message, marker and binding is gone
    after = submit(api, [request(*CORRECT)])
    for job_id, programs in ((running, 12), (queued, 2), (after, 1)):
        job = wait_for(api, job_id, "succeeded", "failed", timeout=120)
        assert job["status"] == "succeeded" and job["result"]["all_passed"] == programs, job
        assert timeline(api, job_id) == ["queued", "running", "succeeded"]
    with db.read() as s:
        indices = s.scalars(select(VerdictRow.index).where(VerdictRow.job_id == running)).all()
    assert sorted(indices) == list(range(12))
