"""The service commands of the `rlvr` CLI: submit, status, logs, cancel, resume, clone, download.

Owns the command line of `rlvr.client` only: arguments, what is printed and the exit
status (0 done, 1 the job failed or the service said no, 2 the service named bad fields).
The service's URL and token come from `--url`/`--token` or `RLVR_URL`/`RLVR_TOKEN`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from rlvr.client import DEFAULT_URL, ApiError, Client, Event, Step, Unreachable

COMMANDS = ("submit", "status", "logs", "cancel", "resume", "clone", "download")
KINDS = ("train", "eval", "sft")
HEADLINE = ("reward", "pass_rate", "kl", "entropy", "loss", "eval/greedy/pass_rate")


def add_commands(commands) -> None:
    """Adds the service commands to the `rlvr` parser's subcommands."""
    service = argparse.ArgumentParser(add_help=False)
    service.add_argument(
        "--url",
        default=os.environ.get("RLVR_URL", DEFAULT_URL),
        help=f"the service (env RLVR_URL, default {DEFAULT_URL})",
    )
    service.add_argument(
        "--token", default=os.environ.get("RLVR_TOKEN"), help="API token (env RLVR_TOKEN)"
    )
    following = argparse.ArgumentParser(add_help=False)
    following.add_argument(
        "--follow", action="store_true", help="print events and steps until the job ends"
    )
    following.add_argument("--names", default=",".join(HEADLINE), help="metrics to print per step")
    following.add_argument("--every", type=float, default=1.0, help="seconds between polls")

    def command(name: str, help_text: str, *parents) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, parents=[service, *parents])
        if name != "submit":
            parser.add_argument("job_id", type=int, metavar="ID")
        return parser

    submit = command("submit", "submit a job to the service from a YAML or JSON spec", following)
    submit.add_argument("spec", help="path to SPEC.yaml or SPEC.json")
    submit.add_argument("--kind", choices=KINDS, default="train")
    command("status", "a job's status, progress and result").add_argument(
        "--json", action="store_true", help="print the API's JSON"
    )
    command("logs", "a job's events and per-step metrics (with --follow, until it ends)", following)
    command("cancel", "cancel a queued or running job")
    command(
        "resume",
        "requeue a cancelled, crashed or failed train/SFT job from its checkpoint",
        following,
    )
    clone = command("clone", "a new job from this one's spec with edits", following)
    clone.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        dest="edits",
        help="a spec field to change, e.g. optim.learning_rate=1e-4 (YAML value; repeatable)",
    )
    command(
        "download", "fetch and unpack a job's final model (LoRA adapter or weights)"
    ).add_argument("-o", "--out", default=".", help="directory to unpack into (default .)")


def run(args: argparse.Namespace) -> int:
    client = Client(args.url, args.token)
    try:
        return RUNS[args.command](client, args)
    except ApiError as exc:
        return _report(exc)
    except Unreachable as exc:
        print(f"error: {exc}; is it running? (--url or RLVR_URL)", file=sys.stderr)
        return 1
    except (OSError, ValueError, yaml.YAMLError) as exc:  # an unreadable spec file or bad --set
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _report(exc: ApiError) -> int:
    fields = exc.bad_fields()
    if exc.status == 400 and fields:
        print(f"error: {exc.error}", file=sys.stderr)
        for field, message in fields:
            print(f"  {field}: {message}", file=sys.stderr)
        return 2
    detail = f": {exc.detail}" if exc.detail else ""
    print(f"error: {exc.error} ({exc.status}){detail}", file=sys.stderr)
    return 2 if exc.status == 400 else 1


def _submit(client: Client, args) -> int:
    text = Path(args.spec).read_text(encoding="utf-8")
    spec = json.loads(text) if args.spec.endswith(".json") else yaml.safe_load(text)
    job = client.submit(args.kind, spec or {})
    print(f"submitted {job['kind']} job {job['id']} ({job['status']})")
    return _follow(client, job["id"], args) if args.follow else 0


def _status(client: Client, args) -> int:
    job = client.job(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    progress = job["progress"]
    print(
        f"job {job['id']}  {job['kind']}  {job['status']}  step {progress['done']}/{progress['total']} "
        f"({progress['fraction']:.0%})  attempt {job['attempt']}/{job['max_attempts']}"
    )
    for field in ("parent_id", "created_at", "started_at", "finished_at", "error"):
        if job.get(field) is not None:
            print(f"{field}: {job[field]}")
    if job.get("result"):
        print("result: " + json.dumps(job["result"], indent=2))
    return 0


def _logs(client: Client, args) -> int:
    return _follow(client, args.job_id, args, wait=args.follow)


def _cancel(client: Client, args) -> int:
    job = client.cancel(args.job_id)
    print(f"job {job['id']} {job['status']}")
    return 0


def _resume(client: Client, args) -> int:
    job = client.resume(args.job_id)
    print(f"job {job['id']} {job['status']} for attempt {job['attempt'] + 1}")
    return _follow(client, job["id"], args) if args.follow else 0


def _clone(client: Client, args) -> int:
    job = client.clone(args.job_id, spec_edits(args.edits))
    print(f"cloned job {args.job_id} as {job['kind']} job {job['id']} ({job['status']})")
    return _follow(client, job["id"], args) if args.follow else 0


def _download(client: Client, args) -> int:
    print(client.download(args.job_id, args.out))
    return 0


def spec_edits(pairs: list[str]) -> dict:
    """`["optim.learning_rate=1e-4", "model.lora=null"]` -> the nested partial spec, values
    read as YAML (numbers, booleans, null, lists).

    >>> spec_edits(["optim.learning_rate=1e-4", "optim.seed=3", "model.lora=null"])
    {'optim': {'learning_rate': 0.0001, 'seed': 3}, 'model': {'lora': None}}
    """
    edits: dict = {}
    for pair in pairs:
        path, equals, text = pair.partition("=")
        keys = path.split(".")
        if not equals or not all(keys):
            raise ValueError(f"--set {pair!r}: expected KEY.PATH=VALUE")
        node = edits
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {pair!r}: {key} is already set to a value")
        node[keys[-1]] = _yaml_value(text)
    return edits


def _yaml_value(text: str):
    value = yaml.safe_load(text) if text.strip() else ""
    return (
        float(text) if isinstance(value, str) and _is_float(text) else value
    )  # YAML reads 1e-4 as a string


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _follow(client: Client, job_id: int, args, wait: bool = True) -> int:
    names = [n for n in args.names.split(",") if n]
    for item in client.follow(job_id, names, every=args.every, wait=wait):
        if isinstance(item, Event):
            print(f"{item.at[:19]}  {item.status:<10}  {item.message or ''}".rstrip(), flush=True)
        elif isinstance(item, Step):
            shown = "  ".join(
                f"{name} {item.metrics[name]:.4g}" for name in names if name in item.metrics
            )
            print(f"step {item.step}/{item.total}  {shown}".rstrip(), flush=True)
        elif wait:  # the job, once it is finished
            return _ended(item)
    return 0


def _ended(job: dict) -> int:
    """Prints how the job ended; 0 if it succeeded."""
    outcome = (
        f": {job['error']}"
        if job.get("error")
        else f"  {json.dumps(job['result'])}"
        if job.get("result")
        else ""
    )
    print(f"job {job['id']} {job['status']}{outcome}")
    return 0 if job["status"] == "succeeded" else 1


RUNS = {
    "submit": _submit,
    "status": _status,
    "logs": _logs,
    "cancel": _cancel,
    "resume": _resume,
    "clone": _clone,
    "download": _download,
}
