"""Task sources: the repository's data/, an operator's saved datasets by name, and hub names.

The bundled tests run a copy of the package in a fresh folder, so they prove that the
tasks read the data/ beside their own code and nothing else on this machine.
"""

import doctest
import hashlib
import json
import os
import shutil
import subprocess
import sys

import datasets
import pytest
from pydantic import ValidationError

from rlvr.tasks import sources
from rlvr.tasks.gsm8k import GSM8KOptions
from rlvr.tasks.sources import REPO, load_rows, parse_source

ROWS = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(6)]

LOAD_EACH_TASK = """
import rlvr
from rlvr.tasks.base import build_task
from rlvr.tasks.countdown import CountdownOptions
from rlvr.tasks.gsm8k import GSM8KOptions
from rlvr.tasks.math500 import Math500Options
from rlvr.tasks.mbpp import MBPPOptions

print(rlvr.__file__)
for options in (GSM8KOptions(), Math500Options(), MBPPOptions(), MBPPOptions(variant="sanitized"), CountdownOptions()):
    try:
        print(options.name, len(build_task(options).problems("test")))
    except FileNotFoundError as error:
        print(options.name, "FileNotFoundError:", error)
"""


def test_doctests():
    assert doctest.testmod(sources).failed == 0


def test_bundled_files_match_their_sha256sums():
    listed = [
        line.split()
        for line in (REPO / "data" / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    ]
    assert len(listed) == 6
    for digest, name in listed:
        assert hashlib.sha256((REPO / "data" / name).read_bytes()).hexdigest() == digest, name


def run_copy(tmp_path, with_data: bool) -> list[str]:
    """LOAD_EACH_TASK in a copy of rlvr/ (and data/) in tmp_path, from another working directory."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "rlvr", checkout / "rlvr", ignore=shutil.ignore_patterns("__pycache__"))
    if with_data:
        shutil.copytree(REPO / "data", checkout / "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_EACH_TASK],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str(checkout / "rlvr" / "__init__.py")
    return lines[1:]


def test_a_copy_of_the_package_reads_the_data_beside_it(tmp_path):
    assert run_copy(tmp_path, with_data=True) == [
        "gsm8k 1319",
        "math500 100",
        "mbpp 500",
        "mbpp 257",
        "countdown 256",
    ]


def test_without_its_data_every_task_fails_loudly(tmp_path):
    """Countdown used to generate a test set in silence when its file was missing."""
    lines = run_copy(tmp_path, with_data=False)
    assert [line.split(" ", 1)[1] for line in lines] == [
        "FileNotFoundError: bundled dataset file data/gsm8k/test.jsonl is missing from this checkout",
        "FileNotFoundError: bundled dataset file data/math500/test.jsonl is missing from this checkout",
        "FileNotFoundError: bundled dataset file data/mbpp/mbpp.jsonl is missing from this checkout",
        "FileNotFoundError: bundled dataset file data/mbpp/sanitized-mbpp.json is missing from this checkout",
        "FileNotFoundError: bundled dataset file data/countdown/countdown_cd3_test.jsonl is missing from this checkout",
    ]


def test_importing_the_tasks_imports_neither_torch_nor_datasets():
    code = (
        "import sys, rlvr.tasks, rlvr.spec; print(sorted({'torch', 'datasets'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_a_saved_dataset_dict_gives_its_splits(datasets_root):
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(ROWS[:4]),
            "test": datasets.Dataset.from_list(ROWS[4:]),
        }
    ).save_to_disk(datasets_root / "mine")
    assert load_rows("local:mine", "train", bundled="") == ROWS[:4]
    assert load_rows("local:mine", "test", bundled="") == ROWS[4:]
    with pytest.raises(
        ValueError,
        match=r"source 'local:mine' has no split 'validation'; it has \['test', 'train'\]",
    ):
        load_rows("local:mine", "validation", bundled="")


def test_one_saved_dataset_serves_every_split(datasets_root):
    datasets.Dataset.from_list(ROWS).save_to_disk(datasets_root / "one")
    assert (
        load_rows("local:one", "train", bundled="")
        == load_rows("local:one", "test", bundled="")
        == ROWS
    )


def test_a_saved_dataset_per_split_folder(datasets_root):
    datasets.Dataset.from_list(ROWS[:2]).save_to_disk(datasets_root / "per" / "test")
    assert load_rows("local:per", "test", bundled="") == ROWS[:2]


def test_jsonl_and_parquet_files_are_split_by_their_names(datasets_root):
    (datasets_root / "lines").mkdir()
    for split, rows in (("train", ROWS[:5]), ("test", ROWS[5:])):
        (datasets_root / "lines" / f"{split}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows)
        )
    assert load_rows("local:lines", "test", bundled="") == ROWS[5:]
    assert load_rows("local:lines", "train", bundled="") == ROWS[:5]
    (datasets_root / "pq" / "data").mkdir(parents=True)  # the hub's layout
    datasets.Dataset.from_list(ROWS).to_parquet(
        datasets_root / "pq" / "data" / "train-00000-of-00001.parquet"
    )
    assert load_rows("local:pq", "train", bundled="") == ROWS
    with pytest.raises(
        ValueError, match=r"^source 'local:pq': split 'test' could not be read \(ValueError\)$"
    ):
        load_rows("local:pq", "test", bundled="")


@pytest.mark.parametrize(
    "source",
    [
        "local:../x",
        "local:/etc",
        "local:a/b",
        "local:..",
        "local:.",
        "local:.hidden",
        "local:a..b",
        "local:",
        "hf:gsm8k",
        "hf:../x/y",
        "hf:a/b/c",
        "hf:/etc/x",
        "file:/etc/passwd",
        "/etc/passwd",
        "",
    ],
)
def test_bad_sources_are_refused_by_the_options_and_the_loader(source, datasets_root):
    with pytest.raises(ValidationError, match=r"source\n  Value error, source .* is not `bundled`"):
        GSM8KOptions(source=source)
    with pytest.raises(
        ValueError, match="is not `bundled`, `hf:<owner>/<name>\\[:<config>\\]` or `local:<name>`"
    ):
        load_rows(source, "train", bundled="gsm8k/train.jsonl")


def test_a_missing_local_dataset_is_named_without_the_server_path(datasets_root):
    with pytest.raises(ValueError) as error:
        load_rows("local:absent", "train", bundled="")
    assert (
        str(error.value)
        == "source 'local:absent': the operator has no local dataset named 'absent'"
    )
    assert str(datasets_root) not in str(error.value)


@pytest.mark.parametrize(
    "source, parsed",
    [
        ("hf:openai/gsm8k", ("hf", "openai/gsm8k", None)),
        ("hf:openai/gsm8k:main", ("hf", "openai/gsm8k", "main")),
        (
            "hf:google-research-datasets/mbpp:sanitized",
            ("hf", "google-research-datasets/mbpp", "sanitized"),
        ),
        ("hf:HuggingFaceH4/MATH-500", ("hf", "HuggingFaceH4/MATH-500", None)),
        ("local:my_set.v2", ("local", "my_set.v2", None)),
    ],
)
def test_source_parsing(source, parsed):
    assert parse_source(source) == parsed
    assert GSM8KOptions(source=source).source == source


def test_a_hub_name_is_never_read_from_a_local_folder(datasets_root, tmp_path, monkeypatch):
    """``load_dataset("owner/name")`` reads ./owner/name when that folder exists; hf: must not."""
    (tmp_path / "owner" / "name").mkdir(parents=True)
    (tmp_path / "owner" / "name" / "train.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError
    ) as error:  # offline and not cached: the hub is the only place it looks
        load_rows("hf:owner/name", "train", bundled="")
    assert str(error.value) == (
        "source 'hf:owner/name': split 'train' could not be loaded from the Hugging Face hub "
        "(ConnectionError); offline, only datasets already cached load"
    )
