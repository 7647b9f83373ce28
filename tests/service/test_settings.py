"""Settings: typed, with derived defaults, a `.env` file, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import PROJECT_ROOT, Settings, load_settings


def test_defaults_put_sqlite_under_the_data_dir():
    settings = load_settings({})
    assert settings.data_dir == PROJECT_ROOT / ".data"
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / '.data' / 'rlvr.sqlite3'}"
    assert (
        settings.verify_hard_seconds,
        settings.verify_soft_seconds,
        settings.visibility_timeout,
    ) == (300, 240, 600)


def test_values_come_from_the_named_variables(tmp_path):
    settings = load_settings(
        {
            "RLVR_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u@h/db",
            "RLVR_VERIFY_HARD_SECONDS": "10",
            "RLVR_MAX_ATTEMPTS": "5",
            "UNRELATED": "x",
        }
    )
    assert settings.data_dir == tmp_path
    assert (
        settings.database_url == "postgresql+psycopg://u@h/db"
    )  # psycopg 3 is the driver we install
    assert (settings.verify_soft_seconds, settings.visibility_timeout) == (8, 20)
    assert settings.max_attempts == 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RLVR_MAX_ATTEMPTS", "three"),
        ("RLVR_MAX_ATTEMPTS", "0"),
        ("RLVR_HEARTBEAT_SECONDS", "-1"),
        ("RLVR_WEB_THREADS", "1.5"),
        ("RLVR_JUDGE_ENDPOINTS", "{not json"),
        ("RLVR_JUDGE_ENDPOINTS", '{"x": {"url": "file:///etc/passwd", "model": "m"}}'),
        ("RLVR_PROXY_HOPS", "-1"),
        ("RLVR_GPUS", "0,x"),
        ("RLVR_GPUS", "-1"),
        ("RLVR_GPUS", "1,1"),
        ("RLVR_MAX_STEPS", "0"),
        ("RLVR_SANDBOX_MAX_MEMORY_MB", "16"),
        ("RLVR_USER_MAX_QUEUED", "many"),
        ("RLVR_KILL_GRACE_SECONDS", "0"),
    ],
)
def test_a_bad_value_names_its_variable(variable, value):
    with pytest.raises(ValidationError) as error:
        load_settings({variable: value})
    assert variable in str(error.value)


def test_the_tenancy_settings(tmp_path):
    settings = load_settings(
        {
            "RLVR_DATA_DIR": str(tmp_path),
            "SECRET_KEY": "signing-key-1",
            "RLVR_METRICS_TOKEN": "scrape-token-2",
            "RLVR_JUDGE_ENDPOINTS": '{"ops": {"url": "https://judge.internal/v1", "model": "m", "api_key": "judge-key-3"}}',  # noqa: E501
        }
    )
    assert settings.models_dir == tmp_path / "models"  # registered:<name> is a folder here
    assert settings.judge_endpoints["ops"].api_key.get_secret_value() == "judge-key-3"
    assert not any(
        secret in repr(settings) for secret in ("signing-key-1", "scrape-token-2", "judge-key-3")
    )
    assert load_settings({"RLVR_MODELS_DIR": "/srv/models"}).models_dir == Path("/srv/models")


@pytest.mark.parametrize(
    ("value", "gpus"), [("0,1", [0, 1]), (" 3 , 5 ", [3, 5]), ("2", [2]), ("", None)]
)
def test_gpus_are_a_comma_separated_list(value, gpus, monkeypatch):
    assert load_settings({"RLVR_GPUS": value}).gpus == gpus
    monkeypatch.setenv("RLVR_GPUS", value)  # the environment source too, which would read JSON
    assert Settings().gpus == gpus


def test_the_process_environment_and_a_dotenv_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("RLVR_REAPER_SECONDS=7\nRLVR_BIND=0.0.0.0:9000\n")
    monkeypatch.setenv("RLVR_BIND", "127.0.0.1:9001")  # the environment wins over the file
    settings = Settings()
    assert (settings.reaper_seconds, settings.web_bind) == (7, "127.0.0.1:9001")


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        load_settings({}).max_attempts = 9


def test_a_job_logs_only_to_mlflow_servers_the_operator_allows():
    settings = load_settings(
        {"RLVR_MLFLOW_URIS": "http://mlflow.internal:5000/, https://mlflow.example.com"}
    )
    assert settings.mlflow_uri(None) == "http://mlflow.internal:5000"  # the first is the default
    assert settings.mlflow_uri("https://mlflow.example.com/") == "https://mlflow.example.com"
    for uri in (
        "http://169.254.169.254/latest",
        "file:///etc",
        "sqlite:////srv/rlvr/x.db",
        "http://mlflow.internal:5000.evil.com",
        "http://mlflow.internal:5000/../admin",
    ):
        with pytest.raises(ValueError, match="not an MLflow server this service logs to"):
            settings.mlflow_uri(uri)
    with pytest.raises(ValueError, match="RLVR_MLFLOW_URIS"):
        load_settings({}).mlflow_uri(None)


def test_the_ceilings_quotas_and_graces():
    """The defaults the README's table states; the kill grace follows STALE_AFTER unless set,
    so a worker kills a wedged job's process before the reaper would requeue its job."""
    settings = load_settings({})
    assert (settings.max_steps, settings.max_samples_per_step, settings.max_new_tokens) == (
        10_000,
        1024,
        4096,
    )
    assert (settings.user_max_queued, settings.user_max_running) == (100, 4)
    assert (settings.kill_grace_seconds, settings.cancel_grace_seconds) == (45.0, 120.0)
    assert load_settings({"RLVR_STALE_AFTER_SECONDS": "4"}).kill_grace_seconds == 3.0
    assert load_settings({"RLVR_KILL_GRACE_SECONDS": "7"}).kill_grace_seconds == 7.0
