"""Service fixtures for the whole suite: real Redis, Postgres and Celery worker processes.

- `database_url` runs a test once on SQLite and once on Postgres (TEST_DATABASES picks);
  a heavy test pins one backend with `@pytest.mark.parametrize("database_url", ["postgres"],
  indirect=True)`. Each backend gets a database migrated by Alembic, shared by in-process
  tests; `test_database_url` (behind `db` and `stack_env`) gives a test that starts worker
  processes a database of its own.
- `redis_server` is a private redis-server on a free port, one per test, so no message
  from one test reaches another test's workers and a test may restart it at will.
- `stack_env` is the environment a test's processes share; `stack_settings` the same, parsed.
- `app`, `client`, `api` (a client speaking as a fresh user) and `as_user` for the web app.
- `procfile` starts lines of Procfile as real processes and waits until they serve.
- `mlflow_server` is a real MLflow tracking server (SQLite) on a free port, one per session.
- `browser` is headless Chromium under Playwright; `web_page` a page of it signed in to a
  web process of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from support import ROOT, TINY, Api, free_port, wait_until

from service.db import Database, accounts
from service.db.migrate import upgrade
from service.settings import load_settings, sqlalchemy_url
from web import create_app

PG_ADMIN_URL = sqlalchemy_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
)
BACKENDS = os.environ.get("TEST_DATABASES", "sqlite,postgres").split(",")

# Short clocks so that crash, reap and redelivery happen within seconds in tests.
FAST_CLOCKS = {
    "RLVR_HEARTBEAT_SECONDS": "0.5",
    "RLVR_STALE_AFTER_SECONDS": "4",
    "RLVR_REAPER_SECONDS": "1",
    "RLVR_RESEND_AFTER_SECONDS": "3",
    "RLVR_VERIFY_HARD_SECONDS": "60",
    "RLVR_VERIFY_SOFT_SECONDS": "50",
    "RLVR_VISIBILITY_TIMEOUT": "90",
    "RLVR_VERIFY_BATCH_SIZE": "4",
}


class RedisServer:
    def __init__(self, workdir: Path):
        self.workdir, self.port, self.proc = workdir, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Stops it the way a crash or a restart without persistence would: everything is lost."""
        self.proc.terminate()
        self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@contextmanager
def new_database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database of `backend`, migrated to head; dropped afterwards (Postgres)."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'rlvr-{uuid.uuid4().hex[:8]}.sqlite3'}"
        upgrade(url)
        yield url
        return
    subprocess.run([ROOT / "scripts/services.sh", "postgres"], check=True)
    name = f"rlvr_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory):
    with new_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


@pytest.fixture
def test_database_url(request, database_url, tmp_path):
    """The backend's shared database; a database of its own for a test that starts worker
    processes, so that no job another test left queued reaches its workers."""
    if "procfile" not in request.fixturenames:
        yield database_url
        return
    with new_database(make_url(database_url).get_backend_name(), tmp_path) as url:
        yield url


@pytest.fixture
def db(test_database_url):
    database = Database(test_database_url)
    yield database
    database.dispose()


@pytest.fixture
def make_user(db):
    """`make_user(admin=False) -> (user_id, token)`: a fresh user with one API token."""

    def make(admin: bool = False) -> tuple[int, str]:
        with db.begin() as session:
            user = accounts.create_user(session, f"user-{uuid.uuid4().hex[:8]}", is_admin=admin)
            return user.id, accounts.issue_token(session, user.id, "tests")

    return make


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """The operator's RLVR_MODELS_DIR in every test stack: `registered:<name>` is a folder here."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def stack_env(test_database_url, redis_server, tmp_path, models_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLVR_")}
    env.update(FAST_CLOCKS)
    env.update(
        DATABASE_URL=test_database_url,
        REDIS_URL=redis_server.url,
        RLVR_DATA_DIR=str(tmp_path / "data"),
        RLVR_MODELS_DIR=str(models_dir),
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def stack_settings(stack_env):
    return load_settings(stack_env)


class Process:
    def __init__(self, name: str, command: str, env: dict, log: Path):
        self.name, self.log = name, log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, pattern: str, timeout: float = 60) -> None:
        def ready():
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited {self.popen.returncode}:\n{self.output()[-3000:]}"
                )
            return re.search(pattern, self.output())

        wait_until(ready, timeout, f"{self.name} to be ready")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signals the whole process group: a Celery worker and its pool children alike."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass
        self.popen.wait(30)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        try:  # pool children outlive a main process that was killed alone
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


READY = {
    "web": r"Booting worker",
    "train": r"ready\.",
    "verify": r"ready\.",
    "coordinate": r"ready\.",
    "beat": r"beat: Starting",
}


def procfile_commands() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


@pytest.fixture
def procfile(stack_env, tmp_path):
    """`procfile("verify", VERIFY_CONCURRENCY="1") -> Process`, started and ready; `args` go
    after the line's command (`args="-n verify-b@%h"`: a second worker on this machine)."""
    started: list[Process] = []
    commands = procfile_commands()

    def start(line: str, args: str = "", **env) -> Process:
        log = tmp_path / f"{line}-{len(started)}.log"
        proc = Process(line, f"{commands[line]} {args}".rstrip(), {**stack_env, **env}, log)
        started.append(proc)
        proc.wait_ready(READY[line])
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def app(stack_settings):
    app = create_app(stack_settings, TESTING=True)
    yield app
    app.extensions["rlvr"].db.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def as_user(client, make_user):
    """`as_user(admin=False) -> Api` for a fresh user."""
    return lambda admin=False: Api(client, make_user(admin)[1])


@pytest.fixture
def api(as_user):
    return as_user()


@pytest.fixture(scope="session")
def tiny_model(models_dir) -> str:
    """The project's tiny Llama at its smallest, for jobs on real train workers: its path, and
    registered with the operator, so a user's spec names it `support.TINY`."""
    from rlvr.tiny import build_tiny_model

    return str(
        build_tiny_model(
            models_dir / TINY.removeprefix("registered:"), hidden_size=32, layers=2, heads=2
        )
    )


MLFLOW_SERVER = ROOT / ".venv-mlflow" / "bin" / "mlflow"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    """Headless Chromium (Debian's build) driven by Playwright; there is no internet."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def web_page(browser, procfile, make_user):
    """A Chromium page signed in as a fresh user to a web process of Procfile."""
    bind = f"127.0.0.1:{free_port()}"
    procfile("web", RLVR_BIND=bind, WEB_CONCURRENCY="1")
    _, token = make_user()
    page = browser.new_page()
    page.goto(f"http://{bind}/jobs")
    page.fill("#token", token)
    page.click("button[type=submit]")
    return page


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """`http://127.0.0.1:<port>` of an MLflow tracking server on SQLite. It comes from a
    virtualenv of its own (`.venv-mlflow`, made by scripts/bootstrap.sh): the full `mlflow`
    package pins older gunicorn and pyarrow than the service runs; the workers and the
    tests' `MlflowClient` use the client alone (`mlflow-skinny`, the `mlflow` extra)."""
    assert MLFLOW_SERVER.exists(), f"{MLFLOW_SERVER} is missing: run scripts/bootstrap.sh"
    work: Path = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115  (the server writes to it until teardown)
    server = subprocess.Popen(
        [
            str(MLFLOW_SERVER),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{work / 'mlflow.db'}",
            "--artifacts-destination",
            str(work / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if server.poll() is not None:
            raise AssertionError(
                f"mlflow server exited: {(work / 'server.log').read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(healthy, 120, "the MLflow server", every=0.5)
    yield url
    server.terminate()
    server.wait(30)
    log.close()


@pytest.fixture(scope="session")
def sandbox():
    """One nsjail sandbox for the session (tests/sandbox and anything verifying code)."""
    from sandbox import Sandbox

    box = Sandbox()
    yield box
    box.close()
