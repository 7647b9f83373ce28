"""The `rlvr` service commands against the real web app served over HTTP in a thread, with
a private Redis; the last test adds a real train worker and runs `python -m rlvr` itself."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import redis
import yaml
from support import ROOT, TINY, free_port, train_spec
from werkzeug.serving import WSGIRequestHandler, make_server

from rlvr.cli import main
from service.db import Job


class QuietRequests(WSGIRequestHandler):
    def log_request(self, *args) -> None:  # one line per request would bury what a test prints
        pass


@pytest.fixture
def service(app, make_user, monkeypatch):
    """The app on a real port; RLVR_URL and RLVR_TOKEN point the CLI at it as a fresh user."""
    server = make_server(
        "127.0.0.1", free_port(), app, threaded=True, request_handler=QuietRequests
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    _, token = make_user()
    monkeypatch.setenv("RLVR_URL", url)
    monkeypatch.setenv("RLVR_TOKEN", token)
    yield url
    server.shutdown()
    thread.join()


def rlvr(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_spec(tmp_path, spec: dict, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


SPEC = {
    "model": {"name": "tiny"},
    "task": {"name": "arithmetic", "max_digits": 1},
    "stopping": {"max_steps": 5},
}


def submitted_id(out: str) -> int:
    first = out.splitlines()[0]  # "submitted train job 7 (queued)"
    return int(first.split(" job ")[1].split()[0])


def stored_spec(app, job_id: int) -> dict:
    with app.extensions["rlvr"].db.read() as s:
        return s.get(Job, job_id).spec


def test_submit_status_cancel_resume_and_clone(service, app, capsys, tmp_path, redis_server):
    code, out, err = rlvr(capsys, "submit", write_spec(tmp_path, SPEC), "--kind", "train")
    assert code == 0, err
    job_id = submitted_id(out)
    assert out == f"submitted train job {job_id} (queued)\n"
    assert redis.Redis.from_url(redis_server.url).llen("train") == 1

    code, out, _ = rlvr(capsys, "status", str(job_id))
    assert code == 0 and out.startswith(f"job {job_id}  train  queued  step 0/5 (0%)  attempt 0/")
    assert rlvr(capsys, "cancel", str(job_id))[:2] == (0, f"job {job_id} cancelled\n")
    code, out, err = rlvr(capsys, "cancel", str(job_id))
    assert code == 1 and "conflict (409)" in err and "only queued or running jobs cancel" in err
    code, out, _ = rlvr(
        capsys, "logs", str(job_id), "--follow"
    )  # a finished job: prints and ends at once
    assert code == 1 and [line.split()[1] for line in out.splitlines()] == [
        "queued",
        "cancelled",
        str(job_id),
    ]
    assert out.splitlines()[-1] == f"job {job_id} cancelled"
    assert rlvr(capsys, "resume", str(job_id))[:2] == (0, f"job {job_id} queued for attempt 1\n")

    code, out, err = rlvr(
        capsys,
        "clone",
        str(job_id),
        "--set",
        "optim.learning_rate=1e-4",
        "--set",
        "model.lora=null",
        "--set",
        "stopping.max_steps=7",
    )
    assert code == 0, err
    clone_id = int(out.split(" job ")[-1].split()[0])
    assert out == f"cloned job {job_id} as train job {clone_id} (queued)\n"
    spec = stored_spec(app, clone_id)
    assert (
        spec["optim"]["learning_rate"],
        spec["model"]["lora"],
        spec["stopping"]["max_steps"],
    ) == (1e-4, None, 7)
    assert spec["task"] == stored_spec(app, job_id)["task"]
    code, out, _ = rlvr(capsys, "status", str(clone_id), "--json")
    assert code == 0 and yaml.safe_load(out)["parent_id"] == job_id


def test_a_bad_spec_prints_each_field_and_exits_2(service, capsys, tmp_path):
    bad = {**SPEC, "optim": {"learning_rate": -1}, "stopping": {"max_step": 3}}
    code, out, err = rlvr(capsys, "submit", write_spec(tmp_path, bad))
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == "error: invalid spec"
    assert {line.split(":")[0].strip() for line in err.splitlines()[1:]} == {
        "spec.optim.learning_rate",
        "spec.stopping.max_step",
    }

    job_id = submitted_id(rlvr(capsys, "submit", write_spec(tmp_path, SPEC))[1])
    code, _, err = rlvr(capsys, "clone", str(job_id), "--set", "algorithm.group_size=many")
    assert code == 2 and "spec.algorithm.group_size:" in err
    code, _, err = rlvr(capsys, "clone", str(job_id), "--set", "algorithm")
    assert code == 2 and err == "error: --set 'algorithm': expected KEY.PATH=VALUE\n"
    code, _, err = rlvr(capsys, "submit", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


def test_errors_without_a_service_or_a_token(service, capsys, monkeypatch):
    token = os.environ["RLVR_TOKEN"]
    code, out, err = rlvr(capsys, "status", "1", "--url", f"http://127.0.0.1:{free_port()}")
    assert (code, out) == (1, "")
    assert (
        err.count("\n") == 1
        and "cannot reach the rlvr service" in err
        and "Connection refused" in err
    )
    code, _, err = rlvr(capsys, "status", "1", "--token", "nope")
    assert (code, err) == (1, "error: unauthorized (401): unknown, expired or revoked API token\n")
    monkeypatch.delenv("RLVR_TOKEN")
    code, _, err = rlvr(capsys, "status", "1")
    assert code == 1 and err.startswith("error: unauthorized (401): send an API token")
    assert rlvr(capsys, "status", "999999", "--token", token)[:3] == (
        1,
        "",
        "error: not found (404): no job 999999\n",
    )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_follow_a_train_job_then_read_its_logs_and_download_its_adapter(
    service, procfile, capsys, tmp_path, tiny_model
):
    procfile("train")
    spec = write_spec(
        tmp_path, train_spec(TINY, steps=3)
    )  # the registered copy: a path is for admins
    followed = subprocess.run(
        [sys.executable, "-m", "rlvr", "submit", spec, "--follow", "--every", "0.2"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert followed.returncode == 0, followed.stdout + followed.stderr
    lines = followed.stdout.splitlines()
    job_id = submitted_id(followed.stdout)
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["1/3", "2/3", "3/3"]
    assert all(" reward " in line and " pass_rate " in line for line in steps)
    events = [
        line.split()[1] for line in lines if line.startswith("20")
    ]  # "2026-11-22T07:54:40  running"
    assert events == ["queued", "running", "succeeded"]
    assert lines.index(steps[-1]) < len(lines) - 2 and lines[-2].split()[1] == "succeeded"
    assert lines[-1].startswith(f"job {job_id} succeeded") and '"steps": 3' in lines[-1]

    code, out, _ = rlvr(capsys, "logs", str(job_id), "--names", "reward")
    assert code == 0 and [line.split()[1] for line in out.splitlines()] == [
        "queued",
        "running",
        "1/3",
        "2/3",
        "3/3",
        "succeeded",
    ]
    assert rlvr(capsys, "status", str(job_id))[1].startswith(
        f"job {job_id}  train  succeeded  step 3/3 (100%)"
    )

    code, out, _ = rlvr(capsys, "download", str(job_id), "-o", str(tmp_path / "models"))
    assert code == 0 and out == f"{tmp_path / 'models' / f'job-{job_id}-model'}\n"
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out.strip())
    assert any("lora" in name for name, _ in model.named_parameters())


def test_the_client_imports_nothing_of_the_service_nor_torch():
    code = (
        "import sys, rlvr.cli, rlvr.client\n"
        "loaded = {'flask', 'celery', 'web', 'worker', 'torch'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
