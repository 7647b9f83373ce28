"""What a user may name in a spec, and what the worker loads for it, against a real database."""

from __future__ import annotations

import doctest
import json
import uuid

import pytest

from service import tenancy
from service.db import User, files, jobs, training
from service.db.models import DataFile


def test_doctests():
    assert doctest.testmod(tenancy).failed == 0
    assert doctest.testmod(files).failed == 0


@pytest.fixture
def people(db, make_user):
    """(user, admin) rows."""
    with db.read() as s:
        return s.get(User, make_user()[0]), s.get(User, make_user(admin=True)[0])


def refused(db, user, spec, settings) -> list[str]:
    with db.read() as s:
        return [".".join(map(str, loc)) for loc, _ in tenancy.refusals(s, user, spec, settings)]


def test_hub_names_registered_models_and_paths(db, people, stack_settings):
    user, admin = people
    name = f"llama-{uuid.uuid4().hex[:6]}"
    (stack_settings.models_dir / name).mkdir()
    for ok in ("tiny", "Qwen/Qwen2.5-0.5B", "gpt2", f"registered:{name}"):
        assert (
            refused(db, user, {"model": {"name": ok, "init_from": None}}, stack_settings) == []
        ), ok
    for bad in (
        "/srv/models/x",
        "models/x/y",
        "~/x",
        "registered:missing",
        "registered:a/b",
        "job:x",
        "job:99999999",
    ):
        assert refused(db, user, {"model": {"init_from": bad}}, stack_settings) == [
            "model.init_from"
        ], bad
    assert (
        refused(db, admin, {"model": {"name": "/srv/models/x"}}, stack_settings) == []
    )  # admins may
    with db.read() as s:
        resolved = tenancy.resolve(
            s, user, {"model": {"name": f"registered:{name}"}}, stack_settings
        )
    assert resolved["model"]["name"] == str(stack_settings.models_dir / name)


def test_a_job_of_ones_own_resolves_to_its_final_model(db, people, stack_settings):
    user, admin = people
    with db.begin() as s:
        job, _ = jobs.submit(s, user_id=user.id, kind="sft", spec={}, total=1, max_attempts=1)
    spec = {"model": {"name": f"job:{job.id}", "init_from": None}}
    with (
        db.read() as s,
        pytest.raises(ValueError, match=f"job:{job.id}: that job has no final model"),
    ):
        tenancy.resolve(s, user, spec, stack_settings)
    final = stack_settings.data_dir / "artifacts" / "jobs" / str(job.id) / "final"
    final.mkdir(parents=True)
    (final / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "gpt2"}))
    with db.begin() as s:
        training.save_artifact(s, job.id, "final", f"jobs/{job.id}/final")
    with db.read() as s:
        assert tenancy.resolve(s, user, spec, stack_settings)["model"] == {
            "name": "gpt2",
            "init_from": str(final),
        }
        assert tenancy.resolve(s, admin, spec, stack_settings)["model"]["init_from"] == str(final)
    stranger = User(id=-1, name="stranger", is_admin=False)
    with (
        db.read() as s,
        pytest.raises(tenancy.Refused, match=f"spec.model.name: no job {job.id} of yours"),
    ):
        tenancy.resolve(s, stranger, spec, stack_settings)


def test_a_file_resolves_to_its_owners_upload_and_a_lost_one_says_so(db, people, stack_settings):
    user, _ = people
    with db.begin() as s:
        row = files.store(
            s, stack_settings.data_dir, user.id, "x.jsonl", b'{"prompt": "a", "answer": "b"}\n'
        )
    spec = {"task": {"name": "jsonl", "path": f"file:{row.id}", "test_path": None}}
    with db.read() as s:
        assert tenancy.resolve(s, user, spec, stack_settings)["task"]["path"] == str(
            stack_settings.data_dir / "files" / str(user.id) / f"{row.id}.jsonl"
        )
    files.path(stack_settings.data_dir, user.id, row.id).unlink()
    with db.read() as s, pytest.raises(ValueError) as lost:
        tenancy.resolve(s, user, spec, stack_settings)
    assert (
        str(lost.value)
        == f"file:{row.id} is missing from this machine's data dir (ask the operator)"
    )
    with db.begin() as s:
        s.delete(s.get(DataFile, row.id))
    assert refused(db, user, spec, stack_settings) == ["task.path"]


def test_judge_options_and_endpoints(db, people, stack_settings):
    user, _ = people
    settings = stack_settings.model_copy(
        update={"judge_endpoints": {"ops": {"url": "http://j/v1", "model": "m"}}}
    )
    ok = {
        "rewards": [
            {"name": "llm_judge", "kwargs": {"endpoint": "ops", "rubric": "r", "model": "m2"}}
        ]
    }
    assert refused(db, user, ok, settings) == []
    bad = {
        "rewards": [
            {"name": "f1"},
            {"name": "llm_judge", "kwargs": {"endpoint": "nope", "api_key": "k"}},
        ]
    }
    assert refused(db, user, bad, settings) == [
        "rewards.1.kwargs.api_key",
        "rewards.1.kwargs.endpoint",
    ]


def test_a_local_source_must_be_one_the_operator_has(
    db, people, stack_settings, tmp_path, monkeypatch
):
    user, _ = people
    monkeypatch.setenv("RLVR_DATASETS_ROOT", str(tmp_path / "datasets"))
    (tmp_path / "datasets" / "mine").mkdir(parents=True)
    (tmp_path / "datasets" / "afile").write_text("{}")
    task = {"name": "gsm8k", "source": None}
    for ok in ("bundled", "hf:openai/gsm8k:main", "local:mine"):
        assert refused(db, user, {"task": {**task, "source": ok}}, stack_settings) == [], ok
    for missing in ("local:theirs", "local:afile"):
        assert refused(db, user, {"task": {**task, "source": missing}}, stack_settings) == [
            "task.source"
        ], missing
