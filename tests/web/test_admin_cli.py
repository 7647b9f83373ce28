"""The operator commands of web/cli.py, run for real: `flask --app web ...` as a process for
what an operator sees on a mistake, Flask's CLI runner on the real app for the token round
trip (a token issued here is then used, and refused once revoked, by the real API)."""

from __future__ import annotations

import subprocess
import uuid

from support import ROOT

from service.db import accounts


def flask(stack_env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["flask", "--app", "web", *args],
        cwd=ROOT,
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_create_user_twice_is_one_line_and_a_nonzero_exit(stack_env):
    name = f"dup-{uuid.uuid4().hex[:6]}"
    first = flask(stack_env, "create-user", name)
    assert first.returncode == 0 and first.stdout.startswith("rlvr_"), first.stderr
    again = flask(stack_env, "create-user", name, "--admin")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip() == f"Error: a user named {name!r} already exists"
    assert "Traceback" not in again.stderr


def test_tokens_are_listed_issued_and_revoked(app, client, db):
    runner = app.test_cli_runner()
    name = f"ops-{uuid.uuid4().hex[:6]}"
    first = runner.invoke(args=["create-user", name]).output.strip()
    second = runner.invoke(args=["issue-token", name, "--label", "ci", "--expires-days", "1"])
    assert second.exit_code == 0 and second.output.startswith("rlvr_")
    second = second.output.strip()

    listed = runner.invoke(args=["tokens", name])
    lines = [line.split("\t") for line in listed.output.splitlines()]
    assert listed.exit_code == 0
    assert [(f[1], f[3].split()[0]) for f in lines] == [("cli", "never"), ("ci", "expires")]
    assert first not in listed.output and second not in listed.output  # only ids and labels
    with db.read() as s:
        assert accounts.credential_for_token(s, second).user.name == name

    ci_id = lines[1][0]
    revoked = runner.invoke(args=["revoke-token", name, ci_id])
    assert (revoked.exit_code, revoked.output.strip()) == (0, f"revoked token {ci_id} of {name}")
    with db.read() as s:
        assert accounts.credential_for_token(s, second) is None
    # `second` was never shown to this app before, so no cached credential answers for it
    refused = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {second}"})
    assert refused.status_code == 401
    kept = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {first}"})
    assert [t["label"] for t in kept.json["tokens"]] == ["cli"]


def test_mistakes_are_refused_without_a_change(app, make_user, db):
    runner = app.test_cli_runner()
    owner = f"own-{uuid.uuid4().hex[:6]}"
    other = f"oth-{uuid.uuid4().hex[:6]}"
    runner.invoke(args=["create-user", owner])
    runner.invoke(args=["create-user", other])
    other_id = runner.invoke(args=["tokens", other]).output.split("\t")[0]
    cases = {
        ("revoke-token", owner, other_id): f"{owner!r} has no token {other_id}",
        ("tokens", "nobody-here"): "no user named 'nobody-here'",
        ("issue-token", "nobody-here"): "no user named 'nobody-here'",
        ("revoke-tokens", "nobody-here"): "no user named 'nobody-here'",
        ("issue-token", owner, "--label", "x" * 101): "a label has at most 100 characters",
    }
    for args, message in cases.items():
        result = runner.invoke(args=list(args))
        assert result.exit_code == 1 and f"Error: {message}" in result.output, (args, result.output)
    assert len(runner.invoke(args=["tokens", other]).output.splitlines()) == 1
    assert len(runner.invoke(args=["tokens", owner]).output.splitlines()) == 1
