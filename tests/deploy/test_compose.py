"""deploy/docker: compose.yaml against the Compose Specification's JSON schema (vendored in
tests/deploy/schemas), and what the file must say beyond the schema: one service per
Procfile line, the GPU reservation, nsjail's privileges and nothing more, health checks,
volumes, and the migration before everything else."""

from __future__ import annotations

import json
import subprocess

import jsonschema
import pytest
import yaml
from support import ROOT

DOCKER = ROOT / "deploy" / "docker"
SCHEMAS = ROOT / "tests" / "deploy" / "schemas"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def procfile_lines() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_compose_follows_the_compose_specification(compose):
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = [
        f"{e.json_path}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(compose)
    ]
    assert errors == []


def test_a_wrong_key_is_caught(compose):
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    broken = {
        **compose,
        "services": {**compose["services"], "web": {**compose["services"]["web"], "gpus": "x"}},
    }
    broken["services"]["web"]["cap_ad"] = ["SYS_ADMIN"]
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_each_procfile_line_is_a_service_and_migrate_runs_first(compose):
    services = compose["services"]
    assert {name for name, s in services.items() if s.get("command") == [name]} == set(
        procfile_lines()
    )
    assert services["migrate"]["command"] == ["python", "-m", "service.db.migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in procfile_lines():
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        ), name


def test_stateful_services_have_volumes_and_health_checks(compose):
    services = compose["services"]
    for name in ("postgres", "redis", "web", "train", "verify", "coordinate"):
        assert services[name]["healthcheck"]["test"], name
    assert services["postgres"]["volumes"] == ["postgres:/var/lib/postgresql/data"]
    assert services["redis"]["volumes"] == ["redis:/data"]
    assert set(compose["volumes"]) == {"postgres", "redis", "artifacts"}


def test_train_reserves_one_gpu(compose):
    train = compose["services"]["train"]
    assert train["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert train["build"]["target"] == "gpu" and train["environment"]["TRAIN_CONCURRENCY"] == "1"
    assert all(
        s.get("build", {}).get("target", "cpu") == "cpu"
        for n, s in compose["services"].items()
        if n != "train"
    )


def test_verify_gets_what_nsjail_needs_and_no_more(compose):
    verify = compose["services"]["verify"]
    assert verify["user"] == "0" and verify["cap_add"] == ["SYS_ADMIN"]
    assert sorted(verify["security_opt"]) == ["apparmor=unconfined", "seccomp=seccomp-verify.json"]
    assert not verify.get("privileged") and "cgroup" not in verify
    assert not any("/sys/fs/cgroup" in volume for volume in verify["volumes"])
    assert verify["mem_limit"] and verify["pids_limit"]
    assert not any(
        s.get("cap_add") or s.get("security_opt")
        for n, s in compose["services"].items()
        if n != "verify"
    )


def test_the_verify_seccomp_profile_is_dockers_default_plus_pivot_root():
    profile = json.loads((DOCKER / "seccomp-verify.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    pivot = [rule for rule in profile["syscalls"] if "pivot_root" in rule["names"]]
    assert pivot == [profile["syscalls"][-1]] and pivot[0]["names"] == ["pivot_root"]
    assert (
        pivot[0]["action"] == "SCMP_ACT_ALLOW" and not pivot[0]["args"] and not pivot[0]["includes"]
    )
    # The calls nsjail makes that Docker's default allows only with CAP_SYS_ADMIN (hence cap_add).
    admin = [
        rule
        for rule in profile["syscalls"]
        if rule.get("includes", {}).get("caps") == ["CAP_SYS_ADMIN"]
    ]
    assert {"clone", "unshare", "mount", "umount2", "sethostname"} <= {
        n for rule in admin for n in rule["names"]
    }


def test_the_image_runs_procfile_lines_or_any_command():
    script = DOCKER / "procfile-line"
    ran = subprocess.run([script, "echo", "as given"], capture_output=True, text=True, check=True)
    assert ran.stdout == "as given\n"
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert {"AS cpu", "AS gpu"} <= {
        line.split(" ", 2)[-1] for line in dockerfile.splitlines() if " AS " in line
    }
    assert 'ENTRYPOINT ["/app/deploy/docker/procfile-line"]' in dockerfile
