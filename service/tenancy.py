"""What a tenant may name in a job's spec, and what those names are on a worker.

Owns the references a spec carries where a shared service must never take a path or an
address from a user:

- a model (`model.name`, `model.init_from`): a Hugging Face hub name (`owner/name` or
  `name`, `tiny` among them), `registered:<name>` (the folder <name> in the operator's
  `RLVR_MODELS_DIR`) or `job:<id>` (the final model of one of the user's jobs). An admin may
  also give a path on the train machines.
- a data file (the jsonl task's `path` and `test_path`): `file:<id>`, a file the user
  uploaded (`service.db.files`).
- a task's `source`: `local:<name>` must be a dataset folder under the operator's
  `RLVR_DATASETS_ROOT` on this machine (as `registered:` models must be in `RLVR_MODELS_DIR`).
- a judge (the `llm_judge` reward's kwargs, inside `composite` too): `endpoint`, a name the
  operator declared in `RLVR_JUDGE_ENDPOINTS`; the URL and the key are the operator's.

`refusals` lists what a spec names that its user may not. The web app answers 400 with them
at submit, and the worker asks again before it loads anything, so a spec stored before a rule
existed, or cloned from one, meets the rule too. `resolve` turns the references into the
server paths rlvr loads, on the worker only: a spec a user reads back never holds one.
`without_paths` keeps the server's paths out of what a user reads back (a job's error), and
`public_adapter_files` out of a downloaded adapter (its base model, as the spec named it).

Does not own: the shape of a spec (`rlvr.spec`), storing files (`service.db.files`).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic_core import PydanticCustomError, ValidationError
from sqlalchemy.orm import Session

from rlvr.rewards.llm import llm_judge
from rlvr.tasks.sources import datasets_root
from service.db import Job, User, files, training
from service.settings import Settings

# One path component: no separator, no "..", no leading dot (as rlvr.tasks.sources' names).
_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
HUB_NAME = re.compile(rf"{_NAME}(?:/{_NAME})?")
_ID = re.compile(r"[0-9]{1,9}")  # fits every backend's integer column
MODEL_FORMS = "a hub name (`owner/name`), `registered:<name>` or `job:<id>` of one of your jobs"
JUDGE_OPTIONS = frozenset(
    name
    for name, parameter in inspect.signature(llm_judge).parameters.items()
    if parameter.kind is not parameter.VAR_KEYWORD and name not in ("completions", "prompt")
)

Location = tuple[str | int, ...]
Refusal = tuple[Location, str]


class Refused(ValueError):
    """A spec names what its user may not; the message lists each field, `; ` between them."""

    def __init__(self, problems: list[Refusal]):
        self.problems = problems
        super().__init__(
            "; ".join(f"spec.{'.'.join(map(str, loc))}: {message}" for loc, message in problems)
        )


def check(
    session: Session, user: User, spec: dict[str, Any], settings: Settings, title: str = "spec"
) -> None:
    """Raises pydantic's ValidationError with one error per refused field, so a refusal is
    reported like any other bad field (the API's 400, the form's messages)."""
    problems = refusals(session, user, spec, settings)
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                {
                    "type": PydanticCustomError("not_allowed", message),
                    "loc": loc,
                    "input": _at(spec, loc),
                }
                for loc, message in problems
            ],
        )


def refusals(
    session: Session, user: User, spec: dict[str, Any], settings: Settings
) -> list[Refusal]:
    found: list[Refusal] = []
    model = spec.get("model") or {}
    for field in ("name", "init_from"):
        if isinstance(ref := model.get(field), str) and (
            why := _model_refusal(session, user, ref, settings)
        ):
            found.append((("model", field), why))
    task = spec.get("task") or {}
    if task.get("name") == "jsonl":
        for field in ("path", "test_path"):
            if (ref := task.get(field)) is not None and (why := _file_refusal(session, user, ref)):
                found.append((("task", field), why))
    if isinstance(source := task.get("source"), str) and (why := _source_refusal(source)):
        found.append((("task", "source"), why))
    for loc, kwargs in _judges(spec.get("rewards") or [], ("rewards",)):
        found.extend(((*loc, *where), why) for where, why in _judge_refusals(kwargs, settings))
    return found


def _model_refusal(session: Session, user: User, ref: str, settings: Settings) -> str | None:
    kind, _, rest = ref.partition(":")
    if kind == "job" and rest:
        if not _ID.fullmatch(rest) or _own_job(session, user, int(rest)) is None:
            return f"no job {rest} of yours"
        return None
    if kind == "registered" and rest:
        if not re.fullmatch(_NAME, rest) or not (settings.models_dir / rest).is_dir():
            return f"the operator registered no model named {rest!r}"
        return None
    if HUB_NAME.fullmatch(ref):
        # transformers reads a name that is also a folder under the working directory from
        # disk, not from the hub: such a name would reach the server's files.
        return (
            f"{ref!r} is not a hub model name this service can load" if Path(ref).exists() else None
        )
    return None if user.is_admin else f"a path is not allowed here: name {MODEL_FORMS}"


def _own_job(session: Session, user: User, job_id: int) -> Job | None:
    job = session.get(Job, job_id)
    return job if job is not None and (job.user_id == user.id or user.is_admin) else None


def _file_refusal(session: Session, user: User, ref: Any) -> str | None:
    kind, _, rest = str(ref).partition(":")
    if kind != "file" or not _ID.fullmatch(rest):
        return "name a file you uploaded (POST /api/v1/files) as `file:<id>`, not a path"
    return None if files.find(session, user, int(rest)) else f"no file {rest} of yours"


def _source_refusal(source: str) -> str | None:
    """A `local:<name>` dataset the operator does not have (the spec's model already refused
    a malformed source; `hf:` ones are fetched or found in the cache by the worker)."""
    kind, _, name = source.partition(":")
    if kind != "local" or not re.fullmatch(_NAME, name):
        return None
    if not (datasets_root() / name).is_dir():
        return f"the operator has no local dataset named {name!r}"
    return None


def _judges(rewards: list, loc: Location) -> Iterator[tuple[Location, dict]]:
    """(location, kwargs) of each `llm_judge` among `rewards`, inside `composite` ones too."""
    for index, reward in enumerate(rewards):
        if not isinstance(reward, dict):
            continue
        kwargs = reward.get("kwargs") or {}
        if reward.get("name") == "llm_judge":
            yield (*loc, index, "kwargs"), kwargs
        elif reward.get("name") == "composite" and isinstance(kwargs.get("components"), list):
            yield from _judges(kwargs["components"], (*loc, index, "kwargs", "components"))


def _judge_refusals(kwargs: dict, settings: Settings) -> Iterator[tuple[Location, str]]:
    for key in kwargs:
        if key not in JUDGE_OPTIONS:
            yield (
                (key,),
                (
                    f"not an llm_judge option (it takes {', '.join(sorted(JUDGE_OPTIONS))}): a judge's "
                    "address and key are the operator's, a spec names the endpoint"
                ),
            )
    declared = sorted(settings.judge_endpoints)
    if kwargs.get("endpoint") not in settings.judge_endpoints:
        yield (
            ("endpoint",),
            f"name one of the operator's judge endpoints: {', '.join(declared) or 'none declared'}",
        )


def _at(spec: Any, loc: Location) -> Any:
    """The value at `loc` in the spec (what a refusal quotes as its input)."""
    for part in loc:
        try:
            spec = spec[part]
        except (KeyError, IndexError, TypeError):
            return None
    return spec


def resolve(
    session: Session, user: User, spec: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """The spec with its references made server paths, for rlvr to load; raises `Refused` when
    `user` may not name one of them, ValueError when one is gone (a deleted file, a job
    without a final model)."""
    if problems := refusals(session, user, spec, settings):
        raise Refused(problems)
    spec = copy.deepcopy(spec)
    model = spec.get("model") or {}
    for field in ("init_from", "name"):  # init_from first: a job's adapter under `name` may set it
        ref = model.get(field)
        if not isinstance(ref, str):
            continue
        if ref.startswith("job:"):
            path = _final_model(session, user, int(ref.removeprefix("job:")), settings)
            adapter = path / "adapter_config.json"
            if (
                field == "name" and adapter.exists()
            ):  # an adapter goes on top of the base it was trained on
                model["name"] = json.loads(adapter.read_text())["base_model_name_or_path"]
                model["init_from"] = model.get("init_from") or str(path)
            else:
                model[field] = str(path)
        elif ref.startswith("registered:"):
            model[field] = str(settings.models_dir / ref.removeprefix("registered:"))
    task = spec.get("task") or {}
    if task.get("name") == "jsonl":
        for field in ("path", "test_path"):
            if task.get(field) is not None:
                task[field] = str(
                    _file_path(session, user, int(task[field].removeprefix("file:")), settings)
                )
    return spec


def _final_model(session: Session, user: User, job_id: int, settings: Settings) -> Path:
    source = _own_job(session, user, job_id)
    finals = training.artifacts(session, job_id, "final")
    if not finals:
        raise ValueError(
            f"model job:{job_id}: that job has no final model (status {source.status})"
        )
    return settings.data_dir / "artifacts" / finals[-1].path


def _file_path(session: Session, user: User, file_id: int, settings: Settings) -> Path:
    row = files.find(session, user, file_id)
    path = files.path(settings.data_dir, row.user_id, row.id)
    if not path.is_file():
        raise ValueError(
            f"file:{file_id} is missing from this machine's data dir (ask the operator)"
        )
    return path


ADAPTER_FILES = ("adapter_config.json", "README.md")
"""What peft writes naming the base model: the adapter's config, and its model card."""


def public_adapter_files(folder: Path, base_name: str) -> dict[str, bytes]:
    """The files of a final model `folder` that name the base model by its server path (a LoRA
    adapter's `base_model_name_or_path`, and peft's model card), rewritten to `base_name`, the
    model as the job's spec named it (`registered:tiny`, a hub name, `job:<id>`): what a user
    downloads must neither show the server's folders nor point at a path they do not have.
    Empty for full weights, whose config names no base."""
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        return {}
    config = json.loads(config_path.read_text())
    server_base = config.get("base_model_name_or_path")
    config["base_model_name_or_path"] = base_name
    found = {"adapter_config.json": json.dumps(config, indent=2, sort_keys=True).encode()}
    card = folder / "README.md"
    if card.is_file() and server_base:
        found["README.md"] = card.read_text().replace(server_base, base_name).encode()
    return found


_SERVER_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"(),;]+")


def without_paths(text: str) -> str:
    """`text` with every absolute path replaced, for what a user reads back (a job's error):
    a traceback's message names server folders, and whether a file exists or is readable.

    >>> without_paths("FileNotFoundError: [Errno 2] No such file or directory: '/srv/rlvr/files/7/3.jsonl'")
    "FileNotFoundError: [Errno 2] No such file or directory: '<server path>'"
    >>> without_paths("no score from http://judge:8000/v1 for hf:openai/gsm8k, job:3 (a/b)")
    'no score from http://judge:8000/v1 for hf:openai/gsm8k, job:3 (a/b)'
    """
    return _SERVER_PATH.sub("<server path>", text)
