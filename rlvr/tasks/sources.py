"""Where a task's rows come from: its ``source`` option.

Owns the grammar of ``source`` (``SOURCE_PATTERN``; ``Source`` and ``source_field`` make it
a task option), ``bundled_path``, the one place that locates the data/ folder the repository
ships, the operator's root for ``local:`` datasets (``datasets_root``), and ``load_rows``,
which turns a source and a split into a list of row dicts. Each task maps rows to problems.

- ``bundled``: the task's file under data/ (see data/README.md).
- ``hf:<owner>/<name>[:<config>]``: ``datasets.load_dataset`` from the Hugging Face hub.
  Offline (``HF_HUB_OFFLINE=1``) only a dataset already in the local cache loads.
- ``local:<name>``: the directory ``<name>`` under ``$RLVR_DATASETS_ROOT`` (default
  ``<repo>/.data/datasets``), saved with ``save_to_disk`` or holding parquet/JSONL/Arrow files.

No source is a path a user wrote: this is a multi-tenant service, and a path option would let
any tenant read the server's files. For the same reason an error names the option and the
source, never a server path; the cause stays chained for the operator's logs.
"""

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

REPO = Path(__file__).resolve().parents[2]

# One path component: no separator, no "..", no leading dot (hidden files, "." itself).
_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
SOURCE_PATTERN = rf"^(?:bundled|hf:{_NAME}/{_NAME}(?::{_NAME})?|local:{_NAME})$"
SOURCE_FORMS = "`bundled`, `hf:<owner>/<name>[:<config>]` or `local:<name>`"


def parse_source(source: str) -> tuple[str, str, str | None]:
    """``(kind, name, config)``; a bad source is a ValueError that names the option.

    >>> parse_source("hf:openai/gsm8k:main"), parse_source("local:my.set"), parse_source("bundled")
    (('hf', 'openai/gsm8k', 'main'), ('local', 'my.set', None), ('bundled', '', None))
    """
    if not re.fullmatch(SOURCE_PATTERN, source):
        raise ValueError(
            f"source {source!r} is not {SOURCE_FORMS}; a name has letters, digits, `_`, `-` "
            "and single dots, and no `/`, `..` or absolute path"
        )
    kind, _, rest = source.partition(":")
    name, _, config = rest.partition(":") if kind == "hf" else (rest, "", "")
    return kind, name, config or None


def _checked(source: str) -> str:
    parse_source(source)
    return source


Source = Annotated[str, AfterValidator(_checked)]
"""The type of a ``source`` option: a bad value is a validation error that lists the allowed
forms (pydantic's own pattern error would print the regex instead)."""


def source_field(bundled: str, more: str = "") -> Any:
    """A task's ``source`` field: ``bundled`` by default, the pattern in its JSON schema."""
    return Field(
        "bundled",
        json_schema_extra={"pattern": SOURCE_PATTERN},
        description=(
            f"Where rows come from: `bundled` ({bundled}), `hf:<owner>/<name>[:<config>]` (a Hugging Face hub "
            f"dataset) or `local:<name>` (a dataset the operator saved under $RLVR_DATASETS_ROOT).{more}"
        ),
    )


def bundled_path(relative: str) -> Path:
    """A file under the repository's data/ folder; missing is an error, never a fallback."""
    path = REPO / "data" / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled dataset file data/{relative} is missing from this checkout"
        )
    return path


def datasets_root() -> Path:
    """The operator's folder of ``local:`` datasets, read when used so a test can point it elsewhere."""
    return Path(os.environ.get("RLVR_DATASETS_ROOT") or REPO / ".data" / "datasets")


def load_rows(source: str, split: str, bundled: str) -> list[dict[str, Any]]:
    """The rows of ``split`` from ``source``; ``bundled`` is the data/ file that ``bundled`` means."""
    kind, name, config = parse_source(source)
    if kind == "bundled":
        return read_rows(bundled_path(bundled))
    if kind == "hf":
        return _from_hub(source, name, config, split)
    return _from_local(source, name, split)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A JSON Lines file, or a JSON array (MBPP's sanitized set is one)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _from_hub(source: str, repo: str, config: str | None, split: str) -> list[dict[str, Any]]:
    import datasets  # lazily: importing rlvr.tasks must stay cheap (the web app validates specs)

    try:
        # hf://datasets/ makes the name hub-only: a bare "owner/name" that exists as a directory
        # relative to the worker's working directory would otherwise be read from disk.
        dataset = datasets.load_dataset(f"hf://datasets/{repo}", config, split=split)
    except Exception as exc:
        raise ValueError(
            f"source {source!r}: split {split!r} could not be loaded from the Hugging Face hub "
            f"({type(exc).__name__}); offline, only datasets already cached load"
        ) from exc
    return dataset.to_list()


def _from_local(source: str, name: str, split: str) -> list[dict[str, Any]]:
    root = datasets_root()
    folder = root / name
    # parse_source already refused separators and "..": this guards the guarantee itself.
    if folder.parent != root or not folder.is_dir():
        raise ValueError(f"source {source!r}: the operator has no local dataset named {name!r}")
    import datasets  # lazily, as above

    try:
        if (folder / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk
            splits = datasets.load_from_disk(str(folder))
            if split not in splits:
                raise _NoSplit(sorted(splits))
            dataset = splits[split]
        elif (folder / split / "state.json").is_file():  # one Dataset.save_to_disk per split
            dataset = datasets.load_from_disk(str(folder / split))
        elif (folder / "state.json").is_file():  # one Dataset.save_to_disk: it serves every split
            dataset = datasets.load_from_disk(str(folder))
        else:  # parquet/JSONL/Arrow files; datasets names splits after the files (train.jsonl, test-*.parquet)
            dataset = datasets.load_dataset(str(folder), split=split)
    except _NoSplit as missing:
        raise ValueError(
            f"source {source!r} has no split {split!r}; it has {missing.args[0]}"
        ) from None
    except Exception as exc:
        raise ValueError(
            f"source {source!r}: split {split!r} could not be read ({type(exc).__name__})"
        ) from exc
    return dataset.to_list()


class _NoSplit(Exception):
    """A saved DatasetDict without the split asked for (its splits are the argument)."""
