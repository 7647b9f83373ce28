"""Custom JSONL task: files, held-out rows, match modes."""

import json

import pytest

from rlvr.tasks.base import build_task
from rlvr.tasks.jsonl import JsonlOptions


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [{"q": f"capital {i}?", "a": f"City{i}"} for i in range(10)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_heldout_rows_form_the_test_split(data_file):
    options = JsonlOptions(
        path=str(data_file),
        prompt_field="q",
        answer_field="a",
        heldout_size=3,
        template="Q: {prompt}\nA:",
    )
    task = build_task(options)
    train, test = task.problems("train"), task.problems("test")
    assert (len(train), len(test)) == (7, 3)
    assert test[0].prompt == "Q: capital 7?\nA:" and test[0].answer == "City7"


@pytest.mark.parametrize(
    "match, completion, grade",
    [
        ("exact", " city3 ", "pass"),
        ("exact", "It is City3", "fail"),
        ("contains", "It is City3", "pass"),
        ("numeric", "the answer: 3", "fail"),
    ],
)
def test_match_modes(data_file, match, completion, grade):
    task = build_task(
        JsonlOptions(
            path=str(data_file), prompt_field="q", answer_field="a", heldout_size=0, match=match
        )
    )
    problem = next(p for p in task.problems("train") if p.answer == "City3")
    assert task.check(problem, completion) == grade


def test_a_relative_path_is_read_from_the_repository_not_the_working_directory(
    tmp_path, monkeypatch
):
    (tmp_path / "data" / "countdown").mkdir(parents=True)
    (tmp_path / "data" / "countdown" / "countdown_cd3_test.jsonl").write_text(
        '{"input": "1", "output": "1"}\n'
    )
    monkeypatch.chdir(tmp_path)
    task = build_task(
        JsonlOptions(
            path="data/countdown/countdown_cd3_test.jsonl",
            prompt_field="input",
            answer_field="output",
            heldout_size=6,
        )
    )
    assert len(task.problems("train")) == 250 and task.problems("test")[0].prompt == "80,1,21"
