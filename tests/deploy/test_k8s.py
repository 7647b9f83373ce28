"""deploy/k8s: every manifest against the Kubernetes API's schemas (kubernetes-validate,
strict: unknown fields are errors), KEDA's resources against KEDA's CRD schemas (vendored in
tests/deploy/schemas), and what the schemas cannot say: the autoscalers read every Redis list
of their queue and count the right jobs, one GPU per train pod, nsjail's privileges."""

from __future__ import annotations

import copy
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml
from support import ROOT

from service.db import jobs
from service.kinds import KINDS
from service.queues import job_queue, queue_keys

MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
SCHEMAS = ROOT / "tests" / "deploy" / "schemas"
KUBERNETES = "1.33"  # the oldest minor whose schemas know every field used (appArmorProfile: 1.30)


def resources() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources() if r["kind"] == kind}


def strict(schema: dict) -> dict:
    """A CRD's schema that refuses unknown fields, as `kubectl apply --validate=strict` does
    (the API server would otherwise drop them silently)."""
    schema = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            open_ended = "additionalProperties" in node or node.get(
                "x-kubernetes-preserve-unknown-fields"
            )
            if (
                "properties" in node
                and not open_ended
                and node is not schema["properties"].get("metadata")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def crd_schemas() -> dict[str, dict]:
    out = {}
    for path in SCHEMAS.glob("keda.sh_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = f"{crd['spec']['group']}/{version['name']}/{crd['spec']['names']['kind']}"
            out[key] = strict(version["schema"]["openAPIV3Schema"])
    return out


@pytest.mark.parametrize(
    "resource", resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}"
)
def test_each_resource_is_valid(resource):
    if resource["apiVersion"].startswith("keda.sh/"):
        schema = crd_schemas()[f"{resource['apiVersion']}/{resource['kind']}"]
        errors = [
            f"{e.json_path}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(resource)
        ]
        assert errors == []
    else:
        kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_typos_are_caught_by_both_validators():
    deployment = copy.deepcopy(by_kind("Deployment")["rlvr-web"])
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"][
        "nmae"
    ] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    scaled = copy.deepcopy(by_kind("ScaledObject")["rlvr-verify"])
    scaled["spec"]["triggers"][0]["metdata"] = scaled["spec"]["triggers"][0].pop("metadata")
    assert not jsonschema.Draft7Validator(crd_schemas()["keda.sh/v1alpha1/ScaledObject"]).is_valid(
        scaled
    )


@pytest.mark.parametrize("pool", ["train", "verify"])
def test_each_pool_scales_on_every_list_of_its_queue(pool):
    scaled = by_kind("ScaledObject")[f"rlvr-{pool}"]
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind("Deployment")
    redis = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis"]
    assert sorted(t["metadata"]["listName"] for t in redis) == sorted(queue_keys(pool))
    formula = scaled["spec"]["advanced"]["scalingModifiers"]["formula"]
    assert sorted(re.findall(r"\w+", formula)) == sorted(
        t["name"] for t in scaled["spec"]["triggers"]
    )
    assert set(formula.replace(" ", "")) - set("abcdefghijklmnopqrstuvwxyz_0123456789") == {"+"}


def test_train_also_counts_the_jobs_running_on_it():
    [running] = [
        t
        for t in by_kind("ScaledObject")["rlvr-train"]["spec"]["triggers"]
        if t["type"] == "postgresql"
    ]
    query = running["metadata"]["query"]
    statuses, kinds = re.findall(r"IN \(([^)]*)\)", query)
    assert re.findall(r"'(\w+)'", statuses) == list(jobs.ACTIVE)
    assert re.findall(r"'(\w+)'", kinds) == sorted(k for k in KINDS if job_queue(k) == "train")


def test_one_gpu_per_train_pod_and_one_job_per_gpu():
    [container] = by_kind("Deployment")["rlvr-train"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "TRAIN_CONCURRENCY", "value": "1"} in container["env"]


def test_verify_pods_get_what_nsjail_needs_and_no_more():
    deployments = by_kind("Deployment")
    [verify] = deployments["rlvr-verify"]["spec"]["template"]["spec"]["containers"]
    context = verify["securityContext"]
    assert context["capabilities"] == {"add": ["SYS_ADMIN"]} and context["privileged"] is False
    assert context["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/rlvr-verify.json",
    }
    assert context["appArmorProfile"] == {"type": "Unconfined"}
    others = [
        c
        for name, d in deployments.items()
        if name != "rlvr-verify"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert not any("securityContext" in c for c in others)


def test_each_deployment_runs_a_procfile_line_and_has_a_budget():
    lines = {
        line.split(":", 1)[0]
        for line in (ROOT / "Procfile").read_text().splitlines()
        if ": " in line
    }
    deployments = by_kind("Deployment")
    assert {
        d["spec"]["template"]["spec"]["containers"][0]["args"][0] for d in deployments.values()
    } == lines
    budgets = by_kind("PodDisruptionBudget").values()
    covered = {
        name
        for name, d in deployments.items()
        for b in budgets
        if b["spec"]["selector"]["matchLabels"].items()
        <= d["spec"]["template"]["metadata"]["labels"].items()
    }
    assert covered == {
        "rlvr-web",
        "rlvr-train",
        "rlvr-verify",
        "rlvr-coordinate",
    }  # beat: exactly one, no budget
    assert by_kind("Job")["rlvr-migrate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "python",
        "-m",
        "service.db.migrate",
    ]
